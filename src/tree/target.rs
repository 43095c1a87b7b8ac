//! Atomic publication of a complete tree.
//!
//! `output` is a symlink to `.<name>.airlock/tree-<id>/` beside it. A new
//! tree is written completely into `.<name>.airlock/staging-<id>/`, renamed to
//! `tree-<id>`, and then a fresh symlink is renamed over `output`: one
//! `rename(2)`, so a reader sees the old tree or the new one, never a mix.
//! A run that fails or is killed before that rename leaves the old tree
//! served untouched; its staging directory is removed by the next run. The
//! previous tree is kept (clients mid-download, rollback); older ones go.

use std::path::{Path, PathBuf};

use super::error::TreeError;

/// Where a tree is published.
#[derive(Debug, Clone)]
pub struct Target {
    output: PathBuf,
    trees: PathBuf,
    link_name: String,
}

impl Target {
    pub fn new(output: &Path) -> Result<Target, TreeError> {
        let bad = || TreeError::BadTarget { path: output.display().to_string() };
        let name = output.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?.to_string();
        if name == "." || name == ".." {
            return Err(bad());
        }
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let link_name = format!(".{name}.airlock");
        Ok(Target { output: output.to_path_buf(), trees: parent.join(&link_name), link_name })
    }

    pub fn output(&self) -> &Path {
        &self.output
    }

    /// The directory holding the trees, their metadata and staging.
    pub fn trees_dir(&self) -> &Path {
        &self.trees
    }

    /// The metadata recorded with the current tree ([`Staged::set_meta`]).
    pub fn current_meta(&self) -> Option<Vec<u8>> {
        let current = self.current()?;
        let id = current.file_name()?.to_str()?.strip_prefix("tree-")?.to_string();
        std::fs::read(self.trees.join(format!("meta-{id}.json"))).ok()
    }

    /// The directory `output` currently resolves to, if any.
    pub fn current(&self) -> Option<PathBuf> {
        let link = std::fs::read_link(&self.output).ok()?;
        let parent = self.trees.parent().unwrap_or(Path::new("."));
        Some(parent.join(link))
    }

    /// `output` is airlock's to replace: absent, an empty directory, or
    /// the link to a tree it published.
    fn check_managed(&self) -> Result<(), TreeError> {
        let Ok(meta) = std::fs::symlink_metadata(&self.output) else { return Ok(()) };
        let foreign = if meta.file_type().is_symlink() {
            false
        } else if meta.is_dir() {
            fs_err::read_dir(&self.output)?.next().is_some()
        } else {
            true
        };
        if foreign {
            return Err(TreeError::NotManaged { path: self.output.display().to_string() });
        }
        Ok(())
    }

    /// Before a run's first request: `output` is airlock's to replace and a
    /// tree can be written beside it.
    pub fn preflight(&self) -> Result<(), TreeError> {
        self.check_managed()?;
        crate::util::fsx::probe_writable(&self.trees)?;
        let parent = self.trees.parent().unwrap_or(Path::new("."));
        crate::util::fsx::probe_writable(parent)?;
        Ok(())
    }

    /// Start a new tree. Stale staging directories from killed runs go first.
    pub fn stage(&self, id: &str) -> Result<Staged, TreeError> {
        self.check_managed()?;
        fs_err::create_dir_all(&self.trees)?;
        for entry in fs_err::read_dir(&self.trees)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with("staging-") {
                tracing::debug!("removing stale staging directory {}", entry.path().display());
                crate::util::fsx::remove_tree(&entry.path())?;
            }
        }
        let dir = self.trees.join(format!("staging-{id}"));
        fs_err::create_dir_all(&dir)?;
        Ok(Staged { target: self.clone(), dir, id: id.to_string(), committed: false, meta: None })
    }
}

/// A tree being written. Dropped without [`Staged::commit`], it is removed.
#[derive(Debug)]
pub struct Staged {
    target: Target,
    dir: PathBuf,
    id: String,
    committed: bool,
    meta: Option<Vec<u8>>,
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Staged {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Metadata to record beside the tree (outside it: the tree's bytes stay
    /// exactly what was published), written before the swap.
    pub fn set_meta(&mut self, bytes: Vec<u8>) {
        self.meta = Some(bytes);
    }

    /// Swap the staged tree in. Returns the published tree's directory.
    pub fn commit(mut self) -> Result<PathBuf, TreeError> {
        let t = &self.target;
        let previous = t.current();
        let tree_name = format!("tree-{}", self.id);
        let tree = t.trees.join(&tree_name);
        if tree.exists() {
            crate::util::fsx::remove_tree(&tree)?;
        }
        fs_err::rename(&self.dir, &tree)?;
        if let Some(meta) = &self.meta {
            crate::util::fsx::write_atomically(&t.trees.join(format!("meta-{}.json", self.id)), meta)?;
        }
        sync_dir(&t.trees);

        // An empty directory in the way (first run into a created dir) is replaced.
        if let Ok(meta) = std::fs::symlink_metadata(&t.output)
            && meta.is_dir()
            && !meta.file_type().is_symlink()
        {
            fs_err::remove_dir(&t.output)
                .map_err(|_| TreeError::NotManaged { path: t.output.display().to_string() })?;
        }
        let parent = t.trees.parent().unwrap_or(Path::new("."));
        let tmp_link = parent.join(format!("{}.tmp-{}", t.link_name, self.id));
        let _ = std::fs::remove_file(&tmp_link);
        let relative = Path::new(&t.link_name).join(&tree_name);
        std::os::unix::fs::symlink(&relative, &tmp_link)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", tmp_link.display())))?;
        fs_err::rename(&tmp_link, &t.output)?;
        sync_dir(parent);
        self.committed = true;

        // Keep the new and the previous tree; older ones are no longer served.
        let keep: Vec<PathBuf> = [Some(tree.clone()), previous].into_iter().flatten().collect();
        for entry in fs_err::read_dir(&t.trees)? {
            let entry = entry?;
            let path = entry.path();
            let is_tree = entry.file_name().to_string_lossy().starts_with("tree-");
            if is_tree
                && !keep.iter().any(|k| same_dir(k, &path))
                && let Err(e) = crate::util::fsx::remove_tree(&path)
            {
                tracing::warn!("cannot remove old tree: {e}");
            }
        }
        Ok(tree)
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = crate::util::fsx::remove_tree(&self.dir);
        }
    }
}

/// A unique tree id for commands without a run number.
pub fn fresh_id() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-{}-{:04x}", now.as_millisecond(), std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_and_keeps_previous_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        let target = Target::new(&out).unwrap();
        for (i, body) in ["one", "two", "three"].iter().enumerate() {
            let staged = target.stage(&format!("{i}")).unwrap();
            std::fs::write(staged.dir().join("index.html"), body).unwrap();
            staged.commit().unwrap();
            assert_eq!(std::fs::read_to_string(out.join("index.html")).unwrap(), *body);
        }
        let trees: Vec<_> =
            std::fs::read_dir(dir.path().join(".public.airlock")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(trees.len(), 2, "{trees:?}");
    }

    #[test]
    fn abandoned_stage_leaves_old_tree() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        let target = Target::new(&out).unwrap();
        let s = target.stage("a").unwrap();
        std::fs::write(s.dir().join("f"), "old").unwrap();
        s.commit().unwrap();
        let s = target.stage("b").unwrap();
        std::fs::write(s.dir().join("f"), "new").unwrap();
        drop(s);
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "old");
        assert!(!dir.path().join(".public.airlock/staging-b").exists());
    }

    #[test]
    fn refuses_unmanaged_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("precious"), "x").unwrap();
        assert!(matches!(Target::new(&out).unwrap().stage("a"), Err(TreeError::NotManaged { .. })));
        assert!(out.join("precious").exists());
        // An empty directory is fine.
        std::fs::remove_file(out.join("precious")).unwrap();
        let s = Target::new(&out).unwrap().stage("a").unwrap();
        s.commit().unwrap();
        assert!(std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
    }
}
