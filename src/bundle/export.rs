//! `airlock export`: the published tree (or what changed since a run) as a
//! bundle, streamed: each file is read once, hashed against the listing the
//! state recorded when the tree was published, and written into the tar.

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use super::manifest::{BundleError, BundleManifest, FORMAT, MANIFEST};
use crate::manifest::Mirror;
use crate::run::{ServedTree, Session};
use crate::store::state::State;
use crate::tree::{TreeEntry, decode_listing, listing_digest};
use crate::util::hashing::{BUF_SIZE, HashingWriter};
use crate::util::ui::Progress;

/// Which tree an export starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Full,
    Run(RunId),
    /// The run of the last export, or full when there was none.
    LastExport,
}

#[derive(Debug)]
pub struct ExportReport {
    pub from_run: Option<RunId>,
    pub to_run: RunId,
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

fn err(s: String) -> BundleError {
    BundleError::Export(s)
}

/// The listing of an earlier run's tree, as the state kept it.
fn listing(state: &State, run: RunId) -> Result<Vec<TreeEntry>, BundleError> {
    let blob = state.tree(run)?.ok_or_else(|| {
        err(format!(
            "the state no longer holds the listing of run {run}'s tree (it keeps the last 8 and every exported one); use --full"
        ))
    })?;
    decode_listing(&blob).ok_or_else(|| err(format!("the listing of run {run}'s tree is corrupt")))
}

/// What a bundle from `base` (or full) to the served tree carries and deletes.
fn manifest(
    (mirror, trusted_root): (&str, Option<String>),
    served: &ServedTree,
    base_run: Option<RunId>,
    base: Option<&[TreeEntry]>,
) -> BundleManifest {
    let tree = &served.listing;
    let base_map: BTreeMap<&str, &TreeEntry> = base.into_iter().flatten().map(|e| (e.path.as_str(), e)).collect();
    let members: Vec<String> = tree
        .iter()
        .filter(|e| base_map.get(e.path.as_str()).is_none_or(|b| b.sha256 != e.sha256 || b.size != e.size))
        .map(|e| e.path.clone())
        .collect();
    let now: BTreeSet<&str> = tree.iter().map(|e| e.path.as_str()).collect();
    let delete =
        base.into_iter().flatten().filter(|e| !now.contains(e.path.as_str())).map(|e| e.path.clone()).collect();
    BundleManifest {
        format: FORMAT.into(),
        mirror: mirror.to_string(),
        created_at: crate::util::clock::output_time().to_string(),
        from_run: base_run,
        from_listing: base.map(listing_digest),
        to_run: served.run,
        to_listing: listing_digest(tree),
        tree: tree.clone(),
        members,
        delete,
        trusted_root,
    }
}

/// Write the bundle's bytes into `file`: the manifest first, then every
/// member, each hashed on the way and checked against the listing.
fn write_tar(
    (file, tmp): (&std::fs::File, &Path),
    bundle: &BundleManifest,
    root: &Path,
    bucket: Option<&crate::store::remote::RemoteStore>,
) -> Result<u64, BundleError> {
    let entries: BTreeMap<&str, &TreeEntry> = bundle.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    let members: Vec<&TreeEntry> = bundle.members.iter().filter_map(|m| entries.get(m.as_str()).copied()).collect();
    let total: u64 = members.iter().map(|e| e.size).sum();
    let progress = Progress::bytes("export", total);
    let mut enc = zstd::stream::Encoder::new(BufWriter::with_capacity(BUF_SIZE, file), 3)?;
    enc.include_checksum(true)?;
    let mut tar = tar::Builder::new(enc);
    let json = serde_json::to_vec_pretty(bundle).unwrap_or_default();
    tar.append_data(&mut tar_header(json.len() as u64), MANIFEST, &json[..])?;
    for e in members {
        let mut path = root.join(&e.path);
        // One layout: a package the tree does not hold comes from the
        // bucket, one at a time, checked against the listing on the way.
        let fetched = match (bucket, e.path.strip_prefix("packages/")) {
            (Some(b), Some(rel)) if !path.is_file() => {
                Some(b.package(rel, tmp, e.sha256).map_err(|e| err(e.to_string()))?)
            }
            _ => None,
        };
        if let Some(f) = &fetched {
            path = f.path().to_path_buf();
        }
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
    let mut out = tar.into_inner()?.finish()?;
    out.flush()?;
    progress.finish();
    Ok(total)
}

/// `airlock export`: write the published tree (or what changed) as a bundle.
pub fn export(
    mirror: &Mirror,
    (trusted_root, bucket): (Option<&Path>, Option<&crate::store::remote::RemoteStore>),
    out: &Path,
    since: Since,
) -> Result<Option<ExportReport>, BundleError> {
    // Held for the whole export: a build must not swap trees underneath.
    let session = Session::open(mirror, &mirror.output, crate::run::Command::Export)?;
    let served = session.served()?;
    let to_run = served.run;
    let base_run = match since {
        Since::Full => None,
        Since::Run(r) => Some(r),
        Since::LastExport => session.state.last_export_run()?,
    };
    if base_run == Some(to_run) {
        tracing::info!("nothing to export: run {to_run} is what the last bundle brought; no bundle written");
        return Ok(None);
    }
    if let Some(b) = base_run.filter(|b| *b > to_run) {
        return Err(err(format!("--since {b} is newer than the published run {to_run}")));
    }
    let base = base_run.map(|r| listing(&session.state, r)).transpose()?;
    let root = trusted_root.map(fs_err::read_to_string).transpose()?;
    let bundle = manifest((&mirror.name, root), &served, base_run, base.as_deref());
    let tmp = crate::util::fsx::temp_beside(out)?;
    let scratch = tempfile::tempdir_in(out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
    let bytes = write_tar((tmp.as_file(), scratch.path()), &bundle, &served.root, bucket)?;
    crate::util::fsx::persist(tmp, out)?;
    let bundle_bytes = fs_err::metadata(out)?.len();
    session.state.record_export(to_run, base_run, &out.display().to_string())?;
    Ok(Some(ExportReport {
        from_run: base_run,
        to_run,
        members: bundle.members.len(),
        deleted: bundle.delete.len(),
        bytes,
        bundle_bytes,
    }))
}
