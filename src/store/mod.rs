//! Everything a mirror keeps between runs: verified artifacts (`Store`), the
//! SQLite state (`state`), the run lock (`lock`), and the verified fetch that
//! brings files from the upstream into the store (`fetch`), and an object
//! store as the mirror's home (`remote`, over `object`).
//!
//! `store/<project>/<filename>` holds verified artifacts only: a file reaches
//! its store path by an atomic rename after its hash and size matched, so a
//! file at a store path is always complete. Downloads in progress live in
//! `tmp/` on the same file system and are removed at the start of every run.
//!
//! With one layout (`[mirror] store` and `[publish] to` the same bucket
//! prefix) the bucket holds the distributions under the keys the tree
//! publishes, and the local store is a working copy of the small files
//! beside them (`.metadata`, `.provenance`) plus the downloads in flight: a
//! distribution leaves it once it is in the bucket ([`Store::attach_bucket`],
//! [`Store::evict`]), so a runner's disk follows its downloads and its state,
//! not the mirror.

pub mod fetch;
pub mod lock;
pub mod metadata;
pub mod object;
pub mod remote;
pub mod state;

use std::path::{Path, PathBuf};

use crate::dist::filename::{DistFilename, WheelFilename};

use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;

/// What a bucket holds, by `project/filename`: size. Shared between the
/// object-store store, which lists and uploads, and the local store, which
/// asks it whether a file it lacks is in the mirror all the same.
pub type Held = std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, u64>>>;

/// One layout: files only the bucket holds that the restore-files stage
/// vouched for (the sha256 their upload recorded is the one the upstream
/// declares), by `project/filename`: what adopt records without a copy.
pub type Vouched = std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, (Sha256, u64)>>>;

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
    /// One layout: the bucket holding the distributions under their
    /// published keys.
    bucket: Option<(Held, Vouched)>,
}

/// The temp directory made absolute once: tempfile makes every relative
/// one absolute itself, with a `getcwd` per file.
fn absolute(tmp: &Path) -> PathBuf {
    std::path::absolute(tmp).unwrap_or_else(|_| tmp.to_path_buf())
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store { root: state_dir.join("store"), tmp: absolute(&state_dir.join("tmp")), bucket: None }
    }

    /// The mirror's store: `[mirror] store`, or `<state>/store`. A shared
    /// store keeps its temporary files inside itself (`.tmp/`: same file
    /// system, so the final rename is atomic; no project name starts with
    /// a dot).
    pub fn for_mirror(m: &crate::manifest::Mirror) -> Store {
        match &m.store {
            Some(root) => Store { root: root.clone(), tmp: absolute(&root.join(".tmp")), bucket: None },
            None => Store::new(&m.state),
        }
    }

    /// The same store with its own scratch directory under `tmp/`: for a
    /// shard fetching beside others, whose partial files nobody else clears.
    pub fn with_tmp(&self, name: &str) -> Store {
        Store { root: self.root.clone(), tmp: self.tmp.join(name), bucket: self.bucket.clone() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One layout: a file the bucket holds is in the mirror though this
    /// working copy lacks it (see the module doc).
    pub fn attach_bucket(&mut self, (held, vouched): (Held, Vouched)) {
        self.bucket = Some((held, vouched));
    }

    /// One layout: the sha256 and size of a file only the bucket holds, if
    /// the restore-files stage vouched for it.
    pub fn vouched(&self, project: &ProjectName, filename: &DistFilename) -> Option<(Sha256, u64)> {
        let (_, vouched) = self.bucket.as_ref()?;
        vouched.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&format!("{project}/{filename}")).copied()
    }

    /// A stored wheel's PEP 658 metadata: extracted from the wheel here,
    /// or (one layout, the wheel only in the bucket) the `.metadata` that
    /// came down beside it.
    pub fn metadata_of(&self, project: &ProjectName, wheel: &WheelFilename) -> Option<(Sha256, u64)> {
        let name = DistFilename::Wheel(wheel.clone());
        if !self.path(project, &name).is_file() && self.bucket.is_some() {
            return crate::util::hashing::hash_file(&self.metadata_path(project, &name)).ok();
        }
        self.extract_metadata(project, wheel)
    }

    /// Whether the distributions live in a bucket (one layout).
    pub fn in_bucket(&self) -> bool {
        self.bucket.is_some()
    }

    /// Whether the bucket (one layout) holds `project/filename`.
    pub fn bucket_holds(&self, project: &ProjectName, filename: &str) -> bool {
        self.bucket.as_ref().is_some_and(|(held, _)| {
            held.read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(&format!("{project}/{filename}"))
        })
    }

    /// Whether the mirror holds a verified file: here, or (one layout) in
    /// the bucket.
    pub fn holds(&self, project: &ProjectName, filename: &DistFilename) -> bool {
        self.path(project, filename).is_file() || self.bucket_holds(project, filename.as_str())
    }

    /// One layout: drop the working copy of a distribution the bucket now
    /// holds (its `.metadata` and `.provenance` stay: pages are rendered
    /// from them). A file the bucket lacks is kept.
    pub fn evict(&self, project: &ProjectName, filename: &DistFilename) {
        if !self.bucket_holds(project, filename.as_str()) {
            return;
        }
        let path = self.path(project, filename);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }

    /// Where a file is kept. Path-safe by its type: a `DistFilename` passed
    /// `filename::check_safe` when it was parsed, and a `ProjectName` is
    /// normalized.
    pub fn path(&self, project: &ProjectName, filename: &DistFilename) -> PathBuf {
        self.root.join(project.as_str()).join(filename.as_str())
    }

    pub fn metadata_path(&self, project: &ProjectName, filename: &DistFilename) -> PathBuf {
        self.root.join(project.as_str()).join(format!("{}.metadata", filename.as_str()))
    }

    /// Where a file's verified PEP 740 provenance is kept: beside it.
    pub fn provenance_path(&self, project: &ProjectName, filename: &DistFilename) -> PathBuf {
        self.root.join(project.as_str()).join(format!("{}.provenance", filename.as_str()))
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Create the store and temp directories, removing partial downloads a
    /// killed run left behind. Returns how many were removed.
    pub fn prepare(&self) -> std::io::Result<usize> {
        crate::util::fsx::probe_writable(&self.root)?;
        let removed = if self.tmp.exists() { clear_dir(&self.tmp)? } else { 0 };
        crate::util::fsx::probe_writable(&self.tmp)?;
        Ok(removed)
    }

    /// Write `<wheel>.metadata` beside a stored wheel (PEP 658). A wheel
    /// without readable METADATA is still mirrored (pip decides), just
    /// without PEP 658 metadata.
    pub fn extract_metadata(&self, project: &ProjectName, wheel: &WheelFilename) -> Option<(Sha256, u64)> {
        let name = DistFilename::Wheel(wheel.clone());
        let (source, dest) = (self.path(project, &name), self.metadata_path(project, &name));
        match crate::dist::metadata::extract_to(&source, wheel, &dest) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("no PEP 658 metadata for {wheel}: {e}");
                None
            }
        }
    }

    /// Remove a file, its metadata and its provenance (pruning, refusals).
    /// A file already gone is fine.
    pub fn remove(&self, project: &ProjectName, filename: &DistFilename) {
        let paths = [
            self.path(project, filename),
            self.metadata_path(project, filename),
            self.provenance_path(project, filename),
        ];
        for path in paths {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Remove everything in `dir` (the store's `tmp/`: partial downloads and
/// scratch files, all the running process's own while it holds the lock).
pub fn clear_dir(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs_err::remove_dir_all(entry.path())?;
        } else {
            fs_err::remove_file(entry.path())?;
        }
        removed += 1;
    }
    Ok(removed)
}
