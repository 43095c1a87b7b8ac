//! The artifact store under the state directory.
//!
//! `store/<project>/<filename>` holds verified artifacts only: a file reaches
//! its store path by an atomic rename after its hash and size matched, so a
//! file at a store path is always complete. Downloads in progress live in
//! `tmp/` on the same file system and are removed at the start of every run.

use std::path::{Path, PathBuf};

use crate::names::ProjectName;

/// Temporary files are created 0600; a file about to be published must be
/// readable by the web server's user (nginx runs workers as www-data).
pub fn make_readable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Store {
        Store { root: state_dir.join("store"), tmp: state_dir.join("tmp") }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `filename` must already have passed `filename::check_safe`.
    pub fn path(&self, project: &ProjectName, filename: &str) -> PathBuf {
        self.root.join(project.as_str()).join(filename)
    }

    pub fn metadata_path(&self, project: &ProjectName, filename: &str) -> PathBuf {
        self.root.join(project.as_str()).join(format!("{filename}.metadata"))
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Create the store and temp directories, removing partial downloads a
    /// killed run left behind. Returns how many were removed.
    pub fn prepare(&self) -> std::io::Result<usize> {
        fs_err::create_dir_all(&self.root)?;
        let mut removed = 0;
        if self.tmp.exists() {
            for entry in fs_err::read_dir(&self.tmp)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    fs_err::remove_dir_all(entry.path())?;
                } else {
                    fs_err::remove_file(entry.path())?;
                }
                removed += 1;
            }
        }
        fs_err::create_dir_all(&self.tmp)?;
        Ok(removed)
    }
}
