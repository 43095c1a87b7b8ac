//! Bundles for air-gapped networks: `airlock export` and `airlock import`.
//!
//! A bundle is a zstd-compressed tar. Its first member, `airlock-bundle.json`,
//! lists the complete tree the bundle brings the receiver to (every path with
//! size and sha256), the run range it covers, the members it carries and the
//! paths to delete. A full bundle carries every file; an incremental one only
//! what changed since its base run, and names the base tree by the digest of
//! its listing, so it applies to exactly that tree and nothing else.
//!
//! Export streams: each file is read once, hashed against the listing the
//! state recorded when the tree was published, and written; memory stays flat
//! whatever the bundle size. Import verifies everything before anything
//! becomes visible: members are written into a staging tree, each checked
//! against the manifest, and the result is published with the same atomic
//! swap as a build. Paths that are absolute, contain `..`, links, devices,
//! duplicates, members the manifest does not list, and bundles that
//! decompress far beyond their size are refused, naming the member.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::decode_listing;
use crate::error::Error;
use crate::hashing::{BUF_SIZE, HashingWriter};
use crate::manifest::Manifest;
use crate::publish::Target;
use crate::render::TreeEntry;
use crate::ui::{Progress, human_bytes};

pub const FORMAT: &str = "airlock.bundle/v1";
pub const MANIFEST: &str = "airlock-bundle.json";
/// The manifest itself is bounded: a few hundred bytes per file.
const MAX_MANIFEST: u64 = 512 * 1024 * 1024;
/// A bundle may decompress to this many times its size (plus a floor):
/// wheels barely compress and pages compress about tenfold, so a higher
/// ratio is a decompression bomb.
const MAX_RATIO: u64 = 100;
const RATIO_FLOOR: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{bundle}: {message}")]
    Invalid { bundle: String, message: String },
    #[error("{bundle}: member {member:?}: {message}")]
    Member { bundle: String, member: String, message: String },
    #[error("{bundle} does not follow what {into} holds: {message}")]
    Sequence { bundle: String, into: String, message: String },
    #[error("cannot export: {0}")]
    Export(String),
}

/// The first member of every bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: String,
    pub mirror: String,
    pub created_at: String,
    /// The run whose tree the receiver must hold (`None`: a full bundle).
    pub from_run: Option<i64>,
    /// Digest of that tree's listing.
    pub from_listing: Option<String>,
    /// The run whose tree the receiver holds afterwards.
    pub to_run: i64,
    /// Digest of `tree`.
    pub to_listing: String,
    /// The complete tree after import, sorted by path.
    pub tree: Vec<TreeEntry>,
    /// The paths this bundle carries (the rest come from the base tree).
    pub members: Vec<String>,
    /// Paths of the base tree the new one no longer has.
    pub delete: Vec<String>,
}

/// What the receiving side records beside each imported tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Imported {
    mirror: String,
    run: i64,
    listing: String,
    tree: Vec<TreeEntry>,
}

/// The digest of a listing: what a bundle names a tree by.
pub fn listing_digest(entries: &[TreeEntry]) -> String {
    let mut h = HashingWriter::new(std::io::sink());
    serde_json::to_writer(&mut h, entries).expect("serializable");
    h.finish().1.hex()
}

/// A relative path of plain components: no root, no `..`, no NUL or backslash.
pub fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() < 4096
        && !p.starts_with('/')
        && !p.contains(['\0', '\\'])
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Which tree an export starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Full,
    Run(i64),
    /// The run of the last export, or full when there was none.
    LastExport,
}

#[derive(Debug)]
pub struct ExportReport {
    pub from_run: Option<i64>,
    pub to_run: i64,
    pub members: usize,
    pub deleted: usize,
    pub bytes: u64,
    pub bundle_bytes: u64,
}

/// A reader that hashes what passes and stops at the declared size.
struct Checked<R> {
    inner: R,
    hasher: HashingWriter<std::io::Sink>,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn tar_header(size: u64) -> tar::Header {
    // Fixed metadata: the same tree always gives the same bundle bytes.
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// `airlock export`: write the published tree (or what changed) as a bundle.
pub fn export(manifest: &Manifest, out: &Path, since: Since) -> Result<Option<ExportReport>, Error> {
    let m = &manifest.mirror;
    // Held for the whole export: a build must not swap trees underneath.
    let served = crate::build::served_tree(manifest, "export")?;
    let (state, to_run, root, tree) = (&served.state, served.run, &served.root, served.listing.clone());
    let err = |s: String| Error::from(BundleError::Export(s));
    let listing = |run: i64| -> Result<Vec<TreeEntry>, Error> {
        let blob = state.tree(run)?.ok_or_else(|| {
            err(format!("the state no longer holds the listing of run {run}'s tree (it keeps the last 8 and every exported one); use --full"))
        })?;
        decode_listing(&blob).ok_or_else(|| err(format!("the listing of run {run}'s tree is corrupt")))
    };
    let base_run = match since {
        Since::Full => None,
        Since::Run(r) => Some(r),
        Since::LastExport => state.last_export_run()?,
    };
    if base_run == Some(to_run) {
        tracing::info!("nothing to export: run {to_run} is what the last bundle brought; no bundle written");
        return Ok(None);
    }
    if base_run.is_some_and(|b| b > to_run) {
        return Err(err(format!("--since {} is newer than the published run {to_run}", base_run.unwrap_or_default())));
    }
    let base = base_run.map(listing).transpose()?;
    let base_map: BTreeMap<&str, &TreeEntry> = base.iter().flatten().map(|e| (e.path.as_str(), e)).collect();
    let members: Vec<&TreeEntry> = tree
        .iter()
        .filter(|e| base_map.get(e.path.as_str()).is_none_or(|b| b.sha256 != e.sha256 || b.size != e.size))
        .collect();
    let now: BTreeSet<&str> = tree.iter().map(|e| e.path.as_str()).collect();
    let delete: Vec<String> =
        base.iter().flatten().filter(|e| !now.contains(e.path.as_str())).map(|e| e.path.clone()).collect();
    let bundle = BundleManifest {
        format: FORMAT.into(),
        mirror: m.name.clone(),
        created_at: crate::clock::output_time().to_string(),
        from_run: base_run,
        from_listing: base.as_deref().map(listing_digest),
        to_run,
        to_listing: listing_digest(&tree),
        tree: tree.clone(),
        members: members.iter().map(|e| e.path.clone()).collect(),
        delete,
    };

    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs_err::create_dir_all(&dir)?;
    let tmp = tempfile::Builder::new().prefix(".airlock-export-").tempfile_in(&dir)?;
    let total: u64 = members.iter().map(|e| e.size).sum();
    let progress = Progress::bytes("export", total);
    {
        let file = BufWriter::with_capacity(BUF_SIZE, tmp.as_file());
        let mut enc = zstd::stream::Encoder::new(file, 3)?;
        enc.include_checksum(true)?;
        let mut tar = tar::Builder::new(enc);
        let json = serde_json::to_vec_pretty(&bundle).expect("serializable");
        tar.append_data(&mut tar_header(json.len() as u64), MANIFEST, &json[..])?;
        for e in &members {
            let path = root.join(&e.path);
            let file = fs_err::File::open(&path)?;
            let mut reader = Checked { inner: file.take(e.size), hasher: HashingWriter::new(std::io::sink()) };
            tar.append_data(&mut tar_header(e.size), &e.path, &mut reader)?;
            let (_, sha, len) = reader.hasher.finish();
            if sha != e.sha256 || len != e.size {
                return Err(err(format!(
                    "{} does not match the published listing (expected sha256 {}, {} bytes; read {sha}, {len} bytes): run `airlock verify`",
                    path.display(),
                    e.sha256,
                    e.size
                )));
            }
            progress.inc(e.size);
        }
        let enc = tar.into_inner()?;
        let mut file = enc.finish()?;
        file.flush()?;
    }
    progress.finish();
    crate::store::make_readable(tmp.as_file())?;
    tmp.as_file().sync_all()?;
    tmp.persist(out).map_err(|e| Error::Io(e.error))?;
    let bundle_bytes = fs_err::metadata(out)?.len();
    state.record_export(to_run, base_run, &out.display().to_string())?;
    Ok(Some(ExportReport {
        from_run: base_run,
        to_run,
        members: members.len(),
        deleted: bundle.delete.len(),
        bytes: total,
        bundle_bytes,
    }))
}

/// Stops a decompression bomb: an error once more than `limit` bytes came out.
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(format!(
                "decompresses to more than {} ({MAX_RATIO} times its size, at least {}): refused as a decompression bomb",
                human_bytes(self.limit),
                human_bytes(RATIO_FLOOR)
            )));
        }
        Ok(n)
    }
}

#[derive(Debug)]
pub struct ImportReport {
    pub from_run: Option<i64>,
    pub to_run: i64,
    pub members: usize,
    pub linked: usize,
    pub deleted: usize,
    pub tree: PathBuf,
}

/// `airlock import BUNDLE --into DIR`.
pub fn import(bundle_path: &Path, into: &Path) -> Result<ImportReport, Error> {
    let bundle_name = bundle_path.display().to_string();
    let invalid = |message: String| Error::from(BundleError::Invalid { bundle: bundle_name.clone(), message });
    let member_err = |member: &str, message: String| {
        Error::from(BundleError::Member { bundle: bundle_name.clone(), member: member.to_string(), message })
    };
    let target = Target::new(into)?;
    fs_err::create_dir_all(target.trees_dir())?;
    let _lock = crate::lock::RunLock::acquire(target.trees_dir(), "import")?;

    let compressed = fs_err::metadata(bundle_path)?.len();
    let limit = compressed.saturating_mul(MAX_RATIO).max(RATIO_FLOOR);
    let decoder = zstd::stream::Decoder::new(fs_err::File::open(bundle_path)?)
        .map_err(|e| invalid(format!("not a zstd stream: {e}")))?;
    let mut archive = tar::Archive::new(Bounded { inner: decoder, read: 0, limit });
    let mut entries = archive.entries().map_err(|e| invalid(format!("not a tar archive: {e}")))?;

    // The manifest comes first, and decides everything else.
    let mut first = entries
        .next()
        .ok_or_else(|| invalid("empty archive".into()))?
        .map_err(|e| invalid(format!("unreadable: {e}")))?;
    let first_path = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if first_path != MANIFEST || first.header().entry_type() != tar::EntryType::Regular {
        return Err(invalid(format!("the first member is {first_path:?}, not {MANIFEST}: not an airlock bundle")));
    }
    if first.size() > MAX_MANIFEST {
        return Err(invalid(format!("{MANIFEST} is larger than {}", human_bytes(MAX_MANIFEST))));
    }
    let mut json = Vec::with_capacity(first.size() as usize);
    first.read_to_end(&mut json).map_err(|e| invalid(format!("{MANIFEST}: {e}")))?;
    drop(first);
    let bundle: BundleManifest = serde_json::from_slice(&json).map_err(|e| invalid(format!("{MANIFEST}: {e}")))?;
    if bundle.format != FORMAT {
        return Err(invalid(format!("format {:?}, this airlock reads {FORMAT}", bundle.format)));
    }
    if listing_digest(&bundle.tree) != bundle.to_listing {
        return Err(invalid(format!("{MANIFEST} is inconsistent: its tree does not hash to its to_listing")));
    }
    let tree: BTreeMap<&str, &TreeEntry> = bundle.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    if tree.len() != bundle.tree.len() {
        return Err(invalid(format!("{MANIFEST} lists a path twice")));
    }
    for p in bundle.tree.iter().map(|e| &e.path).chain(&bundle.members).chain(&bundle.delete) {
        if !safe_path(p) {
            return Err(member_err(p, "unsafe path (absolute, `..`, or odd characters): refused".into()));
        }
    }
    let members: BTreeSet<&str> = bundle.members.iter().map(String::as_str).collect();
    if members.len() != bundle.members.len() || members.iter().any(|m| !tree.contains_key(m)) {
        return Err(invalid(format!("{MANIFEST}: members must be distinct paths of the tree")));
    }
    let declared: u64 = members.iter().map(|m| tree[m].size).sum();
    if declared > limit {
        return Err(invalid(format!(
            "declares {} of members in a {} bundle: refused as a decompression bomb",
            human_bytes(declared),
            human_bytes(compressed)
        )));
    }

    // Sequence: full bundles move forward; incrementals continue exactly the tree held.
    let current: Option<Imported> = target.current_meta().and_then(|b| serde_json::from_slice(&b).ok());
    let seq = |message: String| {
        Error::from(BundleError::Sequence { bundle: bundle_name.clone(), into: into.display().to_string(), message })
    };
    if let Some(c) = &current {
        if c.mirror != bundle.mirror {
            return Err(seq(format!(
                "it is a bundle of mirror {:?}, and the directory holds mirror {:?}",
                bundle.mirror, c.mirror
            )));
        }
        if c.run >= bundle.to_run {
            return Err(seq(format!("replay: it brings run {}, and run {} is already imported", bundle.to_run, c.run)));
        }
    }
    if let Some(from) = bundle.from_run {
        match &current {
            None => {
                return Err(seq(format!(
                    "gap: it continues run {from}, and nothing is imported yet; import a full bundle (or the one ending at run {from}) first"
                )));
            }
            Some(c) if c.run < from => {
                return Err(seq(format!(
                    "gap: it continues run {from}, the directory holds run {}; import the bundle covering runs {}..{from} first",
                    c.run, c.run
                )));
            }
            Some(c) if c.run > from => {
                return Err(seq(format!("replay: it continues run {from}, and run {} is already imported", c.run)));
            }
            Some(c) if bundle.from_listing.as_deref() != Some(c.listing.as_str()) => {
                return Err(seq(format!("it continues a different tree of run {from} than the one imported")));
            }
            Some(_) => {}
        }
    }

    let mut staged = target.stage(&crate::publish::fresh_id())?;
    let root = staged.dir().to_path_buf();
    // Unchanged files come from the current tree (hard links, no copies).
    let mut linked = 0;
    if bundle.from_run.is_some() {
        let current_root = target.current().ok_or_else(|| seq("the imported tree is gone".into()))?;
        for e in bundle.tree.iter().filter(|e| !members.contains(e.path.as_str())) {
            let src = current_root.join(&e.path);
            let size = fs_err::metadata(&src).map(|m| m.len()).unwrap_or(u64::MAX);
            if size != e.size {
                return Err(seq(format!("{} is missing or changed in the imported tree", e.path)));
            }
            crate::render::place(&src, &root.join(&e.path))?;
            linked += 1;
        }
    }
    let progress = Progress::bytes("import", declared);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("unreadable: {e}")))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            let what = match kind {
                tar::EntryType::Symlink => "a symbolic link",
                tar::EntryType::Link => "a hard link",
                tar::EntryType::Char | tar::EntryType::Block => "a device",
                tar::EntryType::Fifo => "a FIFO",
                tar::EntryType::Directory => "a directory",
                _ => "not a regular file",
            };
            return Err(member_err(&path, format!("{what}: refused")));
        }
        if !safe_path(&path) {
            return Err(member_err(&path, "unsafe path (absolute, `..`, or odd characters): refused".into()));
        }
        if !members.contains(path.as_str()) {
            return Err(member_err(&path, format!("not listed in {MANIFEST}: refused")));
        }
        if !seen.insert(path.clone()) {
            return Err(member_err(&path, "appears twice: refused".into()));
        }
        let want = tree[path.as_str()];
        if entry.size() != want.size {
            return Err(member_err(&path, format!("{} bytes, the manifest says {}", entry.size(), want.size)));
        }
        let dest = root.join(&path);
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let file = fs_err::File::create(&dest)?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(BUF_SIZE, file));
        std::io::copy(&mut (&mut entry).take(want.size + 1), &mut w).map_err(|e| member_err(&path, e.to_string()))?;
        let (buf, sha, len) = w.finish();
        buf.into_inner().map_err(|e| Error::Io(e.into_error()))?;
        if sha != want.sha256 || len != want.size {
            return Err(member_err(
                &path,
                format!(
                    "sha256 mismatch: expected {} ({} bytes), computed {sha} ({len} bytes): refused",
                    want.sha256, want.size
                ),
            ));
        }
        progress.inc(len);
    }
    progress.finish();
    if let Some(missing) = members.iter().find(|m| !seen.contains(**m)) {
        return Err(member_err(missing, "listed in the manifest but not in the bundle".into()));
    }
    let imported = Imported {
        mirror: bundle.mirror.clone(),
        run: bundle.to_run,
        listing: bundle.to_listing.clone(),
        tree: bundle.tree.clone(),
    };
    staged.set_meta(serde_json::to_vec(&imported).expect("serializable"));
    let tree_dir = staged.commit()?;
    Ok(ImportReport {
        from_run: bundle.from_run,
        to_run: bundle.to_run,
        members: seen.len(),
        linked,
        deleted: bundle.delete.len(),
        tree: tree_dir,
    })
}

/// `airlock publish --to DIR`: the published tree, linked (or copied across
/// file systems) into another directory, swapped in atomically.
pub fn publish_dir(manifest: &Manifest, dest: &Path) -> Result<(usize, u64), Error> {
    let served = crate::build::served_tree(manifest, "publish")?;
    let (run, root, tree) = (served.run, &served.root, &served.listing);
    let target = Target::new(dest)?;
    let staged = target.stage(&format!("{run:06}"))?;
    let mut bytes = 0;
    for e in tree {
        crate::render::place(&root.join(&e.path), &staged.dir().join(&e.path))?;
        bytes += e.size;
    }
    staged.commit()?;
    Ok((tree.len(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["simple/index.html", "packages/a/a-1.0.tar.gz", "index.html"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/.", "a\\b", "a\0b"] {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }
}
