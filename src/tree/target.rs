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
use super::recycled::{PACKAGES, SIMPLE};

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
        Ok(Staged { target: self.clone(), dir, id: id.to_string(), committed: false, meta: None, recycled: None })
    }

    /// The oldest tree the next commit would remove anyway (neither the
    /// served one nor, after the swap, the previous one), if any.
    fn recyclable(&self) -> Option<PathBuf> {
        let current = self.current();
        let mut old: Vec<PathBuf> = std::fs::read_dir(&self.trees)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("tree-"))
            .map(|e| e.path())
            .filter(|p| !current.as_ref().is_some_and(|c| same_dir(c, p)))
            .collect();
        // The oldest by name; the others go at the commit, as always.
        old.sort();
        old.into_iter().next()
    }

    /// Whether [`Target::stage_recycling`] would start from an old tree:
    /// a caller that knows its sources' inodes cheaply (an open file's
    /// `fstat`) gathers them only then.
    pub fn will_recycle(&self) -> bool {
        self.recyclable().is_some()
    }

    /// Start a new tree in a tree the commit would remove anyway, when
    /// there is one: its `packages/` stays, and each file already linked to
    /// the inode it must be costs a lookup instead of an unlink there and a
    /// link here; its `simple/` stays, and each page whose bytes did not
    /// change costs a read instead of an unlink, a directory and a new file
    /// (together most of a rerun's system calls); everything else in it
    /// goes first. Readers of that old tree keep what they opened (nothing
    /// is rewritten in place: a changed page is a new file). The caller
    /// must [`Staged::prune`] to its listing before the commit, which
    /// refuses otherwise: a file or page the listing no longer has must not
    /// stay served. With no such tree this is [`Target::stage`].
    pub fn stage_recycling(&self, id: &str) -> Result<Staged, TreeError> {
        let old = self.recyclable();
        let mut staged = self.stage(id)?;
        let Some(old) = old else { return Ok(staged) };
        fs_err::remove_dir(&staged.dir)?;
        fs_err::rename(&old, &staged.dir)?;
        let old_id = old.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("tree-"));
        let _ = std::fs::remove_file(self.trees.join(format!("meta-{}.json", old_id.unwrap_or_default())));
        for entry in fs_err::read_dir(&staged.dir)? {
            let entry = entry?;
            if entry.file_name() != PACKAGES && entry.file_name() != SIMPLE {
                crate::util::fsx::remove_entry(&entry.path(), entry.file_type()?.is_dir())?;
            }
        }
        staged.recycled = Some(super::recycled::Recycled::walk(&staged.dir)?);
        Ok(staged)
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
    /// Made from an old tree ([`Target::stage_recycling`]) and not yet
    /// pruned to its listing: what that tree held.
    recycled: Option<super::recycled::Recycled>,
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

    /// What a recycled tree held when it was staged, for `tree::place_in`.
    pub fn recycled(&self) -> Option<&super::recycled::Recycled> {
        self.recycled.as_ref()
    }

    /// Remove what a recycled tree held under `packages/` and `simple/`
    /// that `listing` (the new tree's paths) does not (a no-op on a fresh
    /// tree), with the directories that leaves empty: what this run placed
    /// or wrote stays, what only an earlier run did goes.
    pub fn prune<'a>(&mut self, listing: impl IntoIterator<Item = &'a str>) -> Result<(), TreeError> {
        use rayon::prelude::*;
        let Some(recycled) = self.recycled.take() else { return Ok(()) };
        let listed: std::collections::HashSet<&str> = listing.into_iter().collect();
        let gone: Vec<&str> = recycled.paths().filter(|p| !listed.contains(p)).collect();
        gone.par_iter().try_for_each(|rel| fs_err::remove_file(self.dir.join(rel)))?;
        let mut dirs: Vec<&str> = gone.iter().filter_map(|rel| rel.rsplit_once('/').map(|(d, _)| d)).collect();
        dirs.sort_unstable();
        dirs.dedup();
        for dir in dirs {
            match fs_err::remove_dir(self.dir.join(dir)) {
                // Still holding a file this run placed: it stays.
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Swap the staged tree in. Returns the published tree's directory.
    pub fn commit(mut self) -> Result<PathBuf, TreeError> {
        if self.recycled.is_some() {
            return Err(TreeError::Unpruned { path: self.dir.display().to_string() });
        }
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
            if !is_tree || keep.iter().any(|k| same_dir(k, &path)) {
                continue;
            }
            if let Err(e) = crate::util::fsx::remove_tree(&path) {
                tracing::warn!("cannot remove old tree: {e}");
                continue;
            }
            // Its record goes with it (it describes nothing served).
            let id = entry.file_name().to_string_lossy().strip_prefix("tree-").map(str::to_owned);
            if let Some(id) = id {
                let _ = std::fs::remove_file(t.trees.join(format!("meta-{id}.json")));
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
    fn a_tree_no_longer_kept_takes_its_metadata_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::new(&dir.path().join("public")).unwrap();
        for i in 0..3 {
            let mut staged = target.stage(&format!("{i}")).unwrap();
            staged.set_meta(format!("{{\"run\":{i}}}").into_bytes());
            staged.commit().unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join(".public.airlock"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["meta-1.json", "meta-2.json", "tree-1", "tree-2"]);
        assert_eq!(target.current_meta().unwrap(), b"{\"run\":2}");
    }

    /// A tree whose `packages/` links `files` (each a file in `src`) and
    /// whose `simple/` holds `pages` (project, bytes); the listing of it.
    fn write_tree(staged: &Staged, src: &Path, files: &[&str], pages: &[(&str, &str)]) -> Vec<crate::tree::TreeEntry> {
        let mut listing = Vec::new();
        for f in files {
            let rel = format!("packages/p/{f}");
            crate::tree::place_in(staged.recycled(), (&src.join(f), None), staged.dir(), &rel).unwrap();
            listing.push(crate::tree::TreeEntry { path: rel, sha256: crate::util::hashing::Sha256::of(b""), size: 0 });
        }
        for (project, bytes) in pages {
            let rel = format!("simple/{project}/index.html");
            let parent = staged.dir().join("simple").join(project);
            if !staged.recycled().is_some_and(|r| r.has_dir(&format!("simple/{project}"))) {
                std::fs::create_dir_all(parent).unwrap();
            }
            listing.push(crate::tree::write_page_in(staged.recycled(), staged.dir(), &rel, bytes.as_bytes()).unwrap());
        }
        listing
    }

    #[test]
    fn a_recycled_tree_keeps_only_what_the_new_listing_has() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for f in ["a", "b", "c"] {
            std::fs::write(src.join(f), f).unwrap();
        }
        let out = dir.path().join("public");
        let target = Target::new(&out).unwrap();
        let old_pages = [("p", "a,b"), ("q", "q"), ("s", "same")];
        for id in ["1", "2"] {
            assert!(!target.will_recycle());
            let mut staged = target.stage_recycling(id).unwrap();
            let listing = write_tree(&staged, &src, &["a", "b"], &old_pages);
            staged.prune(listing.iter().map(|e| e.path.as_str())).unwrap();
            staged.commit().unwrap();
        }
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let tree_1 = dir.path().join(".public.airlock/tree-1");
        // A reader of the old tree keeps the page it opened; an unchanged
        // page keeps its (old) modification time: it is not written again.
        let mut reader = std::fs::File::open(tree_1.join("simple/p/index.html")).unwrap();
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let unchanged = std::fs::File::options().write(true).open(tree_1.join("simple/s/index.html")).unwrap();
        unchanged.set_modified(long_ago).unwrap();
        // Tree 1 is neither served nor kept after the next swap: recycled.
        // `a` changes inode (a new file of the same name), `b` leaves, `c`
        // comes; p's page changes, q's project leaves, s's page stays.
        assert!(target.will_recycle());
        std::fs::remove_file(src.join("a")).unwrap();
        std::fs::write(src.join("a"), "a2").unwrap();
        let mut staged = target.stage_recycling("3").unwrap();
        assert!(staged.recycled().is_some());
        let listing = write_tree(&staged, &src, &["a", "c"], &[("p", "a,c"), ("s", "same")]);
        staged.prune(listing.iter().map(|e| e.path.as_str())).unwrap();
        staged.commit().unwrap();
        let served = |f: &str| out.join("packages/p").join(f);
        assert_eq!(std::fs::read_to_string(served("a")).unwrap(), "a2");
        assert_eq!(inode(&served("a")), inode(&src.join("a")));
        assert_eq!(std::fs::read_to_string(served("c")).unwrap(), "c");
        assert!(!served("b").exists(), "a file the listing no longer has is not served");
        assert_eq!(std::fs::read_to_string(out.join("simple/p/index.html")).unwrap(), "a,c");
        let mut held = String::new();
        std::io::Read::read_to_string(&mut reader, &mut held).unwrap();
        assert_eq!(held, "a,b", "a changed page is a new file: the old one's readers keep theirs");
        let modified = std::fs::metadata(out.join("simple/s/index.html")).unwrap().modified().unwrap();
        assert_eq!(modified, long_ago, "an unchanged page is not written again");
        assert!(!out.join("simple/q").exists(), "a page the listing no longer has is not served, nor its directory");
        let trees = std::fs::read_dir(dir.path().join(".public.airlock")).unwrap().count();
        assert_eq!(trees, 2, "the served tree and the previous one");
    }

    #[test]
    fn a_page_recycled_with_other_bytes_of_any_length_is_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        let target = Target::new(&out).unwrap();
        let src = dir.path();
        for (id, page) in [("1", "abc"), ("2", "abc"), ("3", "ab"), ("4", "abcd"), ("5", "abd"), ("6", "")] {
            let mut staged = target.stage_recycling(id).unwrap();
            let listing = write_tree(&staged, src, &[], &[("p", page)]);
            staged.prune(listing.iter().map(|e| e.path.as_str())).unwrap();
            staged.commit().unwrap();
            assert_eq!(std::fs::read_to_string(out.join("simple/p/index.html")).unwrap(), page, "run {id}");
        }
    }

    #[test]
    fn a_recycled_tree_is_not_swapped_in_unpruned() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        let target = Target::new(&out).unwrap();
        for id in ["1", "2"] {
            let s = target.stage(id).unwrap();
            std::fs::create_dir_all(s.dir().join("packages/p")).unwrap();
            std::fs::write(s.dir().join("packages/p/old"), id).unwrap();
            s.commit().unwrap();
        }
        let staged = target.stage_recycling("3").unwrap();
        assert!(matches!(staged.commit(), Err(TreeError::Unpruned { .. })));
        assert_eq!(std::fs::read_to_string(out.join("packages/p/old")).unwrap(), "2", "the served tree stays");
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
