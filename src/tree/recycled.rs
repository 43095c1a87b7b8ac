//! What an old tree holds when a new one is staged inside it
//! (`Target::stage_recycling`): each file under its top directory
//! by path, with the inode the directory listing gives, so placing a file
//! that is already there costs a lookup, not a link.

use std::path::Path;

use super::error::TreeError;

/// The files a recycled tree (`Target::stage_recycling`) holds under
/// its top directory: path in the tree → inode, as the directory listing
/// gives it (no `stat` per file).
#[derive(Debug)]
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
        let dirs: Vec<fs_err::DirEntry> = match fs_err::read_dir(root.join(top)) {
            Ok(rd) => rd.collect::<Result<_, _>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let per_dir = |d: &fs_err::DirEntry| -> Result<Vec<(String, u64)>, TreeError> {
            let is_dir = d.file_type()?.is_dir();
            let Some(name) = d.file_name().to_str().filter(|_| is_dir).map(str::to_owned) else {
                crate::util::fsx::remove_entry(&d.path(), is_dir)?;
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for f in fs_err::read_dir(d.path())? {
                let f = f?;
                let is_dir = f.file_type()?.is_dir();
                match f.file_name().to_str().filter(|_| !is_dir) {
                    Some(file) => out.push((format!("{top}/{name}/{file}"), f.ino())),
                    None => crate::util::fsx::remove_entry(&f.path(), is_dir)?,
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
