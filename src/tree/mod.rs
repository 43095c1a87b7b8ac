//! The published tree: what a tree is made of (`TreeEntry`: a path, its
//! sha256 and size), how entries are written and placed into a staged tree,
//! the listing of a whole tree as the state keeps it, and the atomic swap
//! that publishes a directory (`target`).
//!
//! Rendering, bundles, publishing and verify all speak these types; none of
//! them needs the pipeline that produced the tree.

pub mod error;
mod recycled;
pub mod target;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::util::hashing::{HashingWriter, Sha256};

pub use error::TreeError;
pub use recycled::Recycled;
pub use target::{Staged, Target};

/// A file written into the tree: its path relative to the tree root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    pub path: String,
    pub sha256: Sha256,
    pub size: u64,
}

/// Write `bytes` at `root/rel` and return its listing entry.
pub fn write_entry(root: &Path, rel: &str, bytes: &[u8]) -> Result<TreeEntry, TreeError> {
    let path = root.join(rel);
    // The directory is made when the write says it is missing: most
    // entries share a directory made for an earlier one, and a mkdir per
    // entry was a fifth of the system calls of a large index.
    if let Err(e) = std::fs::write(&path, bytes) {
        match path.parent().filter(|_| e.kind() == std::io::ErrorKind::NotFound) {
            Some(parent) => {
                fs_err::create_dir_all(parent)?;
                fs_err::write(&path, bytes)?;
            }
            None => return Err(fs_err::write(&path, bytes).err().unwrap_or(e).into()),
        }
    }
    Ok(TreeEntry { path: rel.to_string(), sha256: Sha256::of(bytes), size: bytes.len() as u64 })
}

/// Write `root/rel` by streaming into it, hashing as it goes: a report the
/// size of a large mirror is never held whole in memory.
pub fn write_entry_with(
    root: &Path,
    rel: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<TreeEntry, TreeError> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let file = fs_err::File::create(&path)?;
    let mut out = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 16, file));
    write(&mut out).map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    let (buffered, sha256, size) = out.finish();
    buffered.into_inner().map_err(|e| e.into_error())?;
    Ok(TreeEntry { path: rel.to_string(), sha256, size })
}

/// Hard-link `src` to `dst`, or copy when they are on different file systems.
pub fn place(src: &Path, dst: &Path) -> Result<(), TreeError> {
    let err = |error| TreeError::Place { src: src.display().to_string(), dst: dst.display().to_string(), error };
    let linked = match std::fs::hard_link(src, dst) {
        // The directory is made when the link says it is missing (see `write_entry`).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && src.exists() => {
            let parent = dst.parent().ok_or(e).map_err(err)?;
            std::fs::create_dir_all(parent).map_err(err)?;
            std::fs::hard_link(src, dst)
        }
        // A recycled tree ([`Target::stage_recycling`]) still holds the
        // link an earlier run placed: the same inode is the same bytes, so
        // it stays; anything else there (another file, a symlink) is
        // replaced. `dst` itself is never followed.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if same_inode(src, dst) {
                return Ok(());
            }
            std::fs::remove_file(dst).map_err(err)?;
            std::fs::hard_link(src, dst)
        }
        other => other,
    };
    match linked {
        Ok(()) => Ok(()),
        Err(_) => std::fs::copy(src, dst).map(|_| ()).map_err(err),
    }
}

/// [`place`] `src` at `root/rel`, where `root` may be a recycled tree:
/// a file already there that is `src` itself (same device and inode, as
/// `known` gives them or a `stat` finds) stays as it is.
pub fn place_in(
    recycled: Option<&Recycled>,
    (src, known): (&Path, Option<(u64, u64)>),
    root: &Path,
    rel: &str,
) -> Result<(), TreeError> {
    if recycled.is_some_and(|r| r.holds(rel, src, known)) {
        return Ok(());
    }
    place(src, &root.join(rel))
}

/// [`write_entry`] into `root`, where `root` may be a recycled tree: a
/// page already there with exactly these bytes stays as it is (a read
/// instead of an unlink and a new file); one with other bytes is unlinked
/// and written anew, so a reader of the old tree keeps the page it opened.
pub fn write_page_in(
    recycled: Option<&Recycled>,
    root: &Path,
    rel: &str,
    bytes: &[u8],
) -> Result<TreeEntry, TreeError> {
    if recycled.is_some_and(|r| r.has_page(rel)) {
        let path = root.join(rel);
        if holds_bytes(&path, bytes)? {
            return Ok(TreeEntry { path: rel.to_string(), sha256: Sha256::of(bytes), size: bytes.len() as u64 });
        }
        fs_err::remove_file(&path)?;
    }
    write_entry(root, rel, bytes)
}

/// Whether the file at `path` holds exactly `bytes`: read to its end, or
/// to one byte past `bytes`, whichever comes first.
fn holds_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    use std::io::Read;
    let file = fs_err::File::open(path)?;
    let mut held = Vec::with_capacity(bytes.len() + 1);
    file.take(bytes.len() as u64 + 1).read_to_end(&mut held)?;
    Ok(held == bytes)
}

/// Whether `dst` (not followed) is the very file `src` names.
fn same_inode(src: &Path, dst: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(src), std::fs::symlink_metadata(dst)) {
        (Ok(a), Ok(b)) => b.is_file() && a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A tree's listing compressed into `out` (a scratch file): the state takes
/// it from there, so a large tree's listing is never held whole in memory.
pub fn encode_listing_to(entries: &[TreeEntry], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut z = zstd::Encoder::new(std::io::BufWriter::new(out), 3)?;
    serde_json::to_writer(&mut z, entries)?;
    std::io::Write::flush(&mut z.finish()?)
}

/// The listing back, or `None` when the blob is not one.
pub fn decode_listing(blob: &[u8]) -> Option<Vec<TreeEntry>> {
    // From the state, which may come from a bucket: bounded, and streamed.
    let limit = crate::util::bounded::limit(
        blob.len() as u64,
        crate::util::bounded::RATIO,
        crate::util::bounded::FLOOR,
        u64::MAX,
    );
    let decoder = zstd::stream::Decoder::new(blob).ok()?;
    serde_json::from_reader(std::io::BufReader::new(crate::util::bounded::Bounded::new(decoder, limit))).ok()
}

/// The digest of a listing: what a bundle names a tree by.
pub fn listing_digest(entries: &[TreeEntry]) -> String {
    let mut h = HashingWriter::new(std::io::sink());
    // Writing into a sink cannot fail.
    let _ = serde_json::to_writer(&mut h, entries);
    h.finish().1.hex()
}

/// Every PEP 740 `.provenance` among `check` verified again, offline and in
/// parallel, against the file beside it as `listed` records it (its
/// sha256): the failures, sorted by path, each with why. The bytes are
/// read from `root`. `airlock verify` reports them; `airlock import`
/// refuses a bundle with any.
pub fn provenance_failures(
    root: &Path,
    check: &[&TreeEntry],
    listed: &std::collections::BTreeMap<&str, &TreeEntry>,
    trust: &crate::provenance::TrustRoot,
) -> Vec<(String, String)> {
    use rayon::prelude::*;
    let one = |e: &&TreeEntry| -> Option<(String, String)> {
        let dist = e.path.strip_suffix(".provenance")?;
        let failed = |message: String| Some((e.path.clone(), message));
        let Some(d) = listed.get(dist) else {
            return failed(format!("provenance for {dist}, which the tree does not hold"));
        };
        let bytes = match fs_err::read(root.join(&e.path)) {
            Ok(b) => b,
            Err(err) => return failed(err.to_string()),
        };
        let file = dist.rsplit('/').next().unwrap_or(dist);
        crate::provenance::verify_provenance(&bytes, file, &d.sha256, trust, None)
            .err()
            .and_then(|v| failed(v.to_string()))
    };
    let mut out: Vec<(String, String)> = check.par_iter().filter_map(one).collect();
    out.sort();
    out
}
