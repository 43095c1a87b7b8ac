//! What an old tree holds when a new one is staged inside it
//! (`Target::stage_recycling`): the placed files under `packages/` by path,
//! with the inode the directory listing gives, so placing a file that is
//! already there costs a lookup, not a link; and the pages under `simple/`,
//! so a page whose bytes did not change costs a read, not an unlink, a
//! directory and a new file.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::error::TreeError;

/// The one directory of placed files, compared by inode.
pub(crate) const PACKAGES: &str = "packages";
/// The one directory of pages, compared by their bytes.
pub(crate) const SIMPLE: &str = "simple";

/// What a recycled tree (`Target::stage_recycling`) holds under
/// [`PACKAGES`] and [`SIMPLE`], as the directory listing gives it (no
/// `stat` per file).
#[derive(Debug)]
pub struct Recycled {
    dev: u64,
    /// `packages/<project>/<file>` → inode.
    linked: HashMap<String, u64>,
    /// `simple/<project>/<page>`.
    pages: HashSet<String>,
    /// `<top>/<project>`: the directories both hold.
    dirs: HashSet<String>,
}

/// One `<top>/<dir>/` of an old tree: its files with their inodes.
type Listed = (String, Vec<(String, u64)>);

impl Recycled {
    /// `root/<top>/<dir>/<file>` for both tops, one directory per task;
    /// anything nested deeper or not UTF-8 is no tree's and goes now.
    pub(crate) fn walk(root: &Path) -> Result<Recycled, TreeError> {
        use rayon::prelude::*;
        use std::os::unix::fs::{DirEntryExt, MetadataExt};
        let dev = fs_err::metadata(root)?.dev();
        let mut dirs: Vec<(&str, fs_err::DirEntry)> = Vec::new();
        for top in [PACKAGES, SIMPLE] {
            match fs_err::read_dir(root.join(top)) {
                Ok(rd) => {
                    for d in rd {
                        dirs.push((top, d?));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let per_dir = |(top, d): &(&str, fs_err::DirEntry)| -> Result<Option<Listed>, TreeError> {
            let is_dir = d.file_type()?.is_dir();
            let Some(name) = d.file_name().to_str().filter(|_| is_dir).map(str::to_owned) else {
                crate::util::fsx::remove_entry(&d.path(), is_dir)?;
                return Ok(None);
            };
            let dir = format!("{top}/{name}");
            let mut out = Vec::new();
            for f in fs_err::read_dir(d.path())? {
                let f = f?;
                let is_dir = f.file_type()?.is_dir();
                match f.file_name().to_str().filter(|_| !is_dir) {
                    Some(file) => out.push((format!("{dir}/{file}"), f.ino())),
                    None => crate::util::fsx::remove_entry(&f.path(), is_dir)?,
                }
            }
            Ok(Some((dir, out)))
        };
        let lists: Vec<Option<Listed>> = dirs.par_iter().map(per_dir).collect::<Result<_, _>>()?;
        let mut recycled =
            Recycled { dev, linked: HashMap::new(), pages: HashSet::new(), dirs: HashSet::with_capacity(lists.len()) };
        for (dir, files) in lists.into_iter().flatten() {
            match dir.starts_with(SIMPLE) {
                true => recycled.pages.extend(files.into_iter().map(|(path, _)| path)),
                false => recycled.linked.extend(files),
            }
            recycled.dirs.insert(dir);
        }
        Ok(recycled)
    }

    /// Every file it held.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.linked.keys().chain(&self.pages).map(String::as_str)
    }

    /// Whether it held the directory `rel` (`<top>/<project>`).
    pub(crate) fn has_dir(&self, rel: &str) -> bool {
        self.dirs.contains(rel)
    }

    /// Whether it held a page at `rel`.
    pub(crate) fn has_page(&self, rel: &str) -> bool {
        self.pages.contains(rel)
    }

    /// Whether the file the tree held at `rel` is `src` itself (same
    /// device and inode): one lookup, and a `stat` of `src` only when the
    /// tree held a file there and `known` does not give them.
    pub(crate) fn holds(&self, rel: &str, src: &Path, known: Option<(u64, u64)>) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(&ino) = self.linked.get(rel) else { return false };
        match known {
            Some(known) => known == (self.dev, ino),
            None => std::fs::metadata(src).is_ok_and(|m| m.dev() == self.dev && m.ino() == ino),
        }
    }
}
