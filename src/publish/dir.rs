//! `airlock publish --to DIR`: the published tree linked (or copied across
//! file systems) into another directory, swapped in atomically like a build.

use crate::util::run_id::RunId;
use std::path::{Path, PathBuf};

use super::error::PublishError;
use super::target::{PublishReport, PublishTarget};
use crate::tree::{Target, TreeEntry, place};

pub struct DirTarget {
    dest: PathBuf,
}

impl DirTarget {
    pub fn new(dest: &Path) -> DirTarget {
        DirTarget { dest: dest.to_path_buf() }
    }
}

impl PublishTarget for DirTarget {
    fn publish(&self, root: &Path, tree: &[TreeEntry], run: RunId) -> Result<PublishReport, PublishError> {
        let target = Target::new(&self.dest)?;
        let staged = target.stage(&format!("{run:06}"))?;
        let mut report = PublishReport { local: true, ..PublishReport::default() };
        for e in tree {
            place(&root.join(&e.path), &staged.dir().join(&e.path))?;
            report.uploaded.push(e.path.clone());
            report.bytes += e.size;
        }
        staged.commit()?;
        Ok(report)
    }

    fn describe(&self) -> String {
        self.dest.display().to_string()
    }
}
