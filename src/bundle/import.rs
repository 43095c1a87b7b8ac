//! `airlock import BUNDLE --into DIR`: verify everything before anything
//! becomes visible. The manifest is read first and checked; members are
//! written into a staging tree, each against its size and sha256; unchanged
//! files come from the tree already imported; the result is swapped in
//! atomically. Hostile bundles are refused naming the member.

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Read};
use std::path::Path;

use super::manifest::{
    BundleError, BundleManifest, FORMAT, Imported, MANIFEST, MAX_MANIFEST, MAX_RATIO, RATIO_FLOOR, safe_path,
};
use crate::store::lock::RunLock;
use crate::tree::{Target, TreeEntry, listing_digest, place};
use crate::util::hashing::{BUF_SIZE, HashingWriter};
use crate::util::ui::{Progress, human_bytes};

#[derive(Debug)]
pub struct ImportReport {
    pub to_run: RunId,
    pub members: usize,
    pub linked: usize,
    pub deleted: usize,
}

/// Names the bundle and the directory in every error.
struct Ctx {
    bundle: String,
    into: String,
}

impl Ctx {
    fn invalid(&self, message: String) -> BundleError {
        BundleError::Invalid { bundle: self.bundle.clone(), message }
    }
    fn member(&self, member: &str, message: String) -> BundleError {
        BundleError::Member { bundle: self.bundle.clone(), member: member.to_string(), message }
    }
    fn sequence(&self, message: String) -> BundleError {
        BundleError::Sequence { bundle: self.bundle.clone(), into: self.into.clone(), message }
    }
}

type Entries<'a, R> = tar::Entries<'a, R>;

/// The first member: the manifest, checked for consistency and safe paths.
fn read_manifest<R: Read>(
    cx: &Ctx,
    entries: &mut Entries<'_, R>,
    compressed: u64,
    limit: u64,
) -> Result<BundleManifest, BundleError> {
    let mut first = entries
        .next()
        .ok_or_else(|| cx.invalid("empty archive".into()))?
        .map_err(|e| cx.invalid(format!("unreadable: {e}")))?;
    let first_path = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if first_path != MANIFEST || first.header().entry_type() != tar::EntryType::Regular {
        return Err(cx.invalid(format!("the first member is {first_path:?}, not {MANIFEST}: not an airlock bundle")));
    }
    if first.size() > MAX_MANIFEST {
        return Err(cx.invalid(format!("{MANIFEST} is larger than {}", human_bytes(MAX_MANIFEST))));
    }
    let mut json = Vec::with_capacity(first.size() as usize);
    first.read_to_end(&mut json).map_err(|e| cx.invalid(format!("{MANIFEST}: {e}")))?;
    let bundle: BundleManifest = serde_json::from_slice(&json).map_err(|e| cx.invalid(format!("{MANIFEST}: {e}")))?;
    if bundle.format != FORMAT {
        return Err(cx.invalid(format!("format {:?}, this airlock reads {FORMAT}", bundle.format)));
    }
    if listing_digest(&bundle.tree) != bundle.to_listing {
        return Err(cx.invalid(format!("{MANIFEST} is inconsistent: its tree does not hash to its to_listing")));
    }
    let tree: BTreeSet<&str> = bundle.tree.iter().map(|e| e.path.as_str()).collect();
    if tree.len() != bundle.tree.len() {
        return Err(cx.invalid(format!("{MANIFEST} lists a path twice")));
    }
    for p in bundle.tree.iter().map(|e| &e.path).chain(&bundle.members).chain(&bundle.delete) {
        if !safe_path(p) {
            return Err(cx.member(p, "unsafe path (absolute, `..`, or odd characters): refused".into()));
        }
    }
    let members: BTreeSet<&str> = bundle.members.iter().map(String::as_str).collect();
    if members.len() != bundle.members.len() || members.iter().any(|m| !tree.contains(m)) {
        return Err(cx.invalid(format!("{MANIFEST}: members must be distinct paths of the tree")));
    }
    let declared: u64 = bundle.tree.iter().filter(|e| members.contains(e.path.as_str())).map(|e| e.size).sum();
    if declared > limit {
        return Err(cx.invalid(format!(
            "declares {} of members in a {} bundle: refused as a decompression bomb",
            human_bytes(declared),
            human_bytes(compressed)
        )));
    }
    Ok(bundle)
}

/// Full bundles move forward; incrementals continue exactly the tree held.
fn check_sequence(cx: &Ctx, bundle: &BundleManifest, current: Option<&Imported>) -> Result<(), BundleError> {
    if let Some(c) = current {
        if c.mirror != bundle.mirror {
            return Err(cx.sequence(format!(
                "it is a bundle of mirror {:?}, and the directory holds mirror {:?}",
                bundle.mirror, c.mirror
            )));
        }
        if c.run >= bundle.to_run {
            return Err(
                cx.sequence(format!("replay: it brings run {}, and run {} is already imported", bundle.to_run, c.run))
            );
        }
    }
    let Some(from) = bundle.from_run else { return Ok(()) };
    match current {
        None => Err(cx.sequence(format!(
            "gap: it continues run {from}, and nothing is imported yet; import a full bundle (or the one ending at run {from}) first"
        ))),
        Some(c) if c.run < from => Err(cx.sequence(format!(
            "gap: it continues run {from}, the directory holds run {}; import the bundle covering runs {}..{from} first",
            c.run, c.run
        ))),
        Some(c) if c.run > from => {
            Err(cx.sequence(format!("replay: it continues run {from}, and run {} is already imported", c.run)))
        }
        Some(c) if bundle.from_listing.as_deref() != Some(c.listing.as_str()) => {
            Err(cx.sequence(format!("it continues a different tree of run {from} than the one imported")))
        }
        Some(_) => Ok(()),
    }
}

/// Unchanged files come from the tree imported before (hard links, no copies).
fn link_unchanged(cx: &Ctx, bundle: &BundleManifest, current: &Path, root: &Path) -> Result<usize, BundleError> {
    let members: BTreeSet<&str> = bundle.members.iter().map(String::as_str).collect();
    let mut linked = 0;
    for e in bundle.tree.iter().filter(|e| !members.contains(e.path.as_str())) {
        let src = current.join(&e.path);
        let size = fs_err::metadata(&src).map(|m| m.len()).unwrap_or(u64::MAX);
        if size != e.size {
            return Err(cx.sequence(format!("{} is missing or changed in the imported tree", e.path)));
        }
        place(&src, &root.join(&e.path))?;
        linked += 1;
    }
    Ok(linked)
}

/// What is wrong with a member's header, if anything.
fn refuse(kind: tar::EntryType, path: &str, members: &BTreeSet<&str>, seen: &BTreeSet<String>) -> Option<String> {
    if kind != tar::EntryType::Regular {
        let what = match kind {
            tar::EntryType::Symlink => "a symbolic link",
            tar::EntryType::Link => "a hard link",
            tar::EntryType::Char | tar::EntryType::Block => "a device",
            tar::EntryType::Fifo => "a FIFO",
            tar::EntryType::Directory => "a directory",
            _ => "not a regular file",
        };
        return Some(format!("{what}: refused"));
    }
    if !safe_path(path) {
        return Some("unsafe path (absolute, `..`, or odd characters): refused".into());
    }
    if !members.contains(path) {
        return Some(format!("not listed in {MANIFEST}: refused"));
    }
    seen.contains(path).then(|| "appears twice: refused".to_string())
}

/// Write every member into `root`, each checked against the manifest.
fn extract<R: Read>(
    cx: &Ctx,
    entries: Entries<'_, R>,
    bundle: &BundleManifest,
    root: &Path,
) -> Result<usize, BundleError> {
    let tree: BTreeMap<&str, &TreeEntry> = bundle.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    let members: BTreeSet<&str> = bundle.members.iter().map(String::as_str).collect();
    let progress = Progress::bytes("import", members.iter().filter_map(|m| tree.get(m)).map(|e| e.size).sum());
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| cx.invalid(format!("unreadable: {e}")))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(why) = refuse(entry.header().entry_type(), &path, &members, &seen) {
            return Err(cx.member(&path, why));
        }
        seen.insert(path.clone());
        let Some(want) = tree.get(path.as_str()) else { return Err(cx.member(&path, "not in the tree".into())) };
        if entry.size() != want.size {
            return Err(cx.member(&path, format!("{} bytes, the manifest says {}", entry.size(), want.size)));
        }
        let dest = root.join(&path);
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let file = fs_err::File::create(&dest)?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(BUF_SIZE, file));
        std::io::copy(&mut (&mut entry).take(want.size + 1), &mut w).map_err(|e| cx.member(&path, e.to_string()))?;
        let (buf, sha, len) = w.finish();
        buf.into_inner().map_err(|e| BundleError::Io(e.into_error()))?;
        if sha != want.sha256 || len != want.size {
            let message = format!(
                "sha256 mismatch: expected {} ({} bytes), computed {sha} ({len} bytes): refused",
                want.sha256, want.size
            );
            return Err(cx.member(&path, message));
        }
        progress.inc(len);
    }
    progress.finish();
    if let Some(missing) = members.iter().find(|m| !seen.contains(**m)) {
        return Err(cx.member(missing, "listed in the manifest but not in the bundle".into()));
    }
    Ok(seen.len())
}

/// The file names a PEP 691 project page lists (none when unreadable).
fn page_files(path: &Path) -> BTreeSet<String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::upstream::wire::ProjectPage>(&b).ok())
        .map(|p| p.files.into_iter().map(|f| f.filename).collect())
        .unwrap_or_default()
}

/// How many files the pages of the imported tree list that the bundle's
/// pages no longer do, and how many files the imported tree holds. Only
/// pages that changed are read.
fn removals(current: &[TreeEntry], current_root: &Path, bundle: &BundleManifest, root: &Path) -> (u64, u64) {
    let is_page = |p: &str| p.starts_with("simple/") && p.ends_with("/index.v1_json") && p.matches('/').count() == 2;
    let new: BTreeMap<&str, &TreeEntry> = bundle.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut removed = 0;
    for old in current.iter().filter(|e| is_page(&e.path)) {
        let now = new.get(old.path.as_str());
        if now.is_some_and(|n| n.sha256 == old.sha256) {
            continue;
        }
        let before = page_files(&current_root.join(&old.path));
        let after = if now.is_some() { page_files(&root.join(&old.path)) } else { BTreeSet::new() };
        removed += before.difference(&after).count() as u64;
    }
    let total = current
        .iter()
        .filter(|e| {
            e.path.starts_with("packages/") && !e.path.ends_with(".metadata") && !e.path.ends_with(".provenance")
        })
        .count() as u64;
    (removed, total)
}

/// `airlock import BUNDLE --into DIR`. A bundle whose pages unlist more
/// of the imported files than `max_removed` is refused unless
/// `allow_removals`: an export made after a mistake must not empty the
/// air gap.
/// Every `.provenance` of the tree verified again, offline, against the
/// file beside it (whose bytes were just checked against the manifest) and
/// the trusted root the bundle names: a bundle forged consistently (bytes
/// and manifest) still cannot carry a file with provenance that fails.
fn verify_provenance(cx: &Ctx, bundle: &BundleManifest, root: &Path) -> Result<(), BundleError> {
    let attested: Vec<&TreeEntry> = bundle.tree.iter().filter(|e| e.path.ends_with(".provenance")).collect();
    if attested.is_empty() {
        return Ok(());
    }
    let trust = match &bundle.trusted_root {
        Some(json) => crate::provenance::TrustRoot::from_json(json),
        None => crate::provenance::TrustRoot::production(),
    }
    .map_err(|e| cx.invalid(format!("the trusted root it names does not load: {e}")))?;
    let listed: BTreeMap<&str, &TreeEntry> = bundle.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    match crate::tree::provenance_failures(root, &attested, &listed, &trust).into_iter().next() {
        Some((path, why)) => Err(cx.member(&path, format!("{why}: refused, nothing imported"))),
        None => Ok(()),
    }
}

pub fn import(
    bundle_path: &Path,
    into: &Path,
    (allow_removals, max_removed): (bool, crate::manifest::MaxFailures),
) -> Result<ImportReport, BundleError> {
    let cx = Ctx { bundle: bundle_path.display().to_string(), into: into.display().to_string() };
    let target = Target::new(into)?;
    fs_err::create_dir_all(target.trees_dir())?;
    let _lock = RunLock::acquire(target.trees_dir(), "import")?;
    let compressed = fs_err::metadata(bundle_path)?.len();
    let limit = compressed.saturating_mul(MAX_RATIO).max(RATIO_FLOOR);
    let decoder = zstd::stream::Decoder::new(fs_err::File::open(bundle_path)?)
        .map_err(|e| cx.invalid(format!("not a zstd stream: {e}")))?;
    let mut archive = tar::Archive::new(crate::util::bounded::Bounded::new(decoder, limit));
    let mut entries = archive.entries().map_err(|e| cx.invalid(format!("not a tar archive: {e}")))?;
    // The manifest comes first, and decides everything else.
    let bundle = read_manifest(&cx, &mut entries, compressed, limit)?;
    let current: Option<Imported> = target.current_meta().and_then(|b| serde_json::from_slice(&b).ok());
    check_sequence(&cx, &bundle, current.as_ref())?;
    let mut staged = target.stage(&crate::tree::target::fresh_id())?;
    let root = staged.dir().to_path_buf();
    let linked = match bundle.from_run {
        Some(_) => {
            let current_root = target.current().ok_or_else(|| cx.sequence("the imported tree is gone".into()))?;
            link_unchanged(&cx, &bundle, &current_root, &root)?
        }
        None => 0,
    };
    let members = extract(&cx, entries, &bundle, &root)?;
    verify_provenance(&cx, &bundle, &root)?;
    if let (Some(c), Some(current_root), false) = (current.as_ref(), target.current(), allow_removals) {
        let (removed, total) = removals(&c.tree, &current_root, &bundle, &root);
        if removed > 0 && max_removed.exceeded(removed, total) {
            return Err(cx.sequence(format!(
                "it unlists {removed} of the {total} file(s) {} serves ({:.0}%), more than `max_removed = {max_removed}`: refused, nothing changed; import with --allow-removals if that is right",
                cx.into,
                removed as f64 * 100.0 / total.max(1) as f64
            )));
        }
    }
    let imported = Imported {
        mirror: bundle.mirror.clone(),
        run: bundle.to_run,
        listing: bundle.to_listing.clone(),
        tree: bundle.tree.clone(),
    };
    staged.set_meta(serde_json::to_vec(&imported).unwrap_or_default());
    staged.commit()?;
    Ok(ImportReport { to_run: bundle.to_run, members, linked, deleted: bundle.delete.len() })
}
