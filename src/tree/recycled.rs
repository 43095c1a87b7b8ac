//! What an old tree holds when a new one is staged inside it
//! (`Target::stage_recycling`): each file under its top directory
//! by path, with the inode the directory listing gives, so placing a file
//! that is already there costs a lookup, not a link.

use std::path::Path;

use super::error::TreeError;

/// The files a recycled tree (`Target::stage_recycling`) holds under
/// its top directory: path in the tree → inode, as the directory listing
/// gives it (no `stat` per file).
#[derive(Debug, Default)]
pub struct Recycled {
    dev: u64,
    linked: std::collections::HashMap<String, u64>,
}

impl Recycled {
    /// `root/top/<dir>/<file>`, one directory per task; anything nested
    /// deeper or not UTF-8 is no tree's and goes now.
    pub(crate) fn walk(root: &Path, top: &str) -> Result<Recycled, TreeError> {
        use rayon::prelude::*;
        use std::os::unix::fs::{DirEntryExt, MetadataExt};
        let dev = fs_err::metadata(root)?.dev();
        let dirs: Vec<std::fs::DirEntry> = match std::fs::read_dir(root.join(top)) {
            Ok(rd) => rd.collect::<Result<_, _>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let per_dir = |d: &std::fs::DirEntry| -> Result<Vec<(String, u64)>, TreeError> {
            let Some(name) =
                d.file_name().to_str().filter(|_| d.file_type().is_ok_and(|t| t.is_dir())).map(str::to_owned)
            else {
                let path = d.path();
                return match d.file_type()?.is_dir() {
                    true => Ok(crate::util::fsx::remove_tree(&path)?).map(|()| Vec::new()),
                    false => Ok(fs_err::remove_file(path)?).map(|()| Vec::new()),
                };
            };
            let mut out = Vec::new();
            for f in fs_err::read_dir(d.path())? {
                let f = f?;
                match f.file_name().to_str().filter(|_| f.file_type().is_ok_and(|t| !t.is_dir())) {
                    Some(file) => out.push((format!("{top}/{name}/{file}"), f.ino())),
                    None if f.file_type()?.is_dir() => crate::util::fsx::remove_tree(&f.path())?,
                    None => fs_err::remove_file(f.path())?,
                }
            }
            Ok(out)
        };
        let lists: Vec<Vec<(String, u64)>> = dirs.par_iter().map(per_dir).collect::<Result<_, _>>()?;
        Ok(Recycled { dev, linked: lists.into_iter().flatten().collect() })
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.linked.keys().map(String::as_str)
    }

    /// Whether the tree held a file at `rel` (one lookup, before a `stat`).
    pub(crate) fn has(&self, rel: &str) -> bool {
        self.linked.contains_key(rel)
    }

    /// Whether the file at `rel` is the inode `ino` of device `dev`.
    pub(crate) fn holds(&self, rel: &str, dev: u64, ino: u64) -> bool {
        dev == self.dev && self.linked.get(rel) == Some(&ino)
    }
}
