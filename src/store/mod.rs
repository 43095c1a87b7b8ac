//! Everything a mirror keeps between runs: verified artifacts (`Store`), the
//! SQLite state (`state`), the run lock (`lock`), and the verified fetch that
//! brings files from the upstream into the store (`fetch`), and an object
//! store as the mirror's home (`remote`, over `object`).
//!
//! `store/<project>/<filename>` holds verified artifacts only: a file reaches
//! its store path by an atomic rename after its hash and size matched, so a
//! file at a store path is always complete. Downloads in progress live in
//! `tmp/` on the same file system and are removed at the start of every run.

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

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store { root: state_dir.join("store"), tmp: state_dir.join("tmp") }
    }

    /// The mirror's store: `[mirror] store`, or `<state>/store`. A shared
    /// store keeps its temporary files inside itself (`.tmp/`: same file
    /// system, so the final rename is atomic; no project name starts with
    /// a dot).
    pub fn for_mirror(m: &crate::manifest::Mirror) -> Store {
        match &m.store {
            Some(root) => Store { root: root.clone(), tmp: root.join(".tmp") },
            None => Store::new(&m.state),
        }
    }

    /// The same store with its own scratch directory under `tmp/`: for a
    /// shard fetching beside others, whose partial files nobody else clears.
    pub fn with_tmp(&self, name: &str) -> Store {
        Store { root: self.root.clone(), tmp: self.tmp.join(name) }
    }

    pub fn root(&self) -> &Path {
        &self.root
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
