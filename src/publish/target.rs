//! The interface every publish target implements, and what a publish did.

use crate::util::run_id::RunId;
use std::path::Path;

use super::error::PublishError;
use crate::tree::TreeEntry;
use crate::util::ui::human_bytes;

/// What a publish did.
#[derive(Debug, Default)]
pub struct PublishReport {
    pub uploaded: Vec<String>,
    pub bytes: u64,
    pub unchanged: usize,
    pub deleted: Vec<String>,
    /// Stale objects waiting for their grace period.
    pub pending: usize,
    /// A directory target: files are linked (or copied), not uploaded.
    pub local: bool,
}

impl std::fmt::Display for PublishReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.local {
            return write!(
                f,
                "published {} file(s) ({}) as links into the directory (copies across file systems), swapped in atomically",
                self.uploaded.len(),
                human_bytes(self.bytes)
            );
        }
        write!(
            f,
            "uploaded {} object(s) ({}), {} unchanged, deleted {}, {} stale object(s) waiting for their grace period",
            self.uploaded.len(),
            human_bytes(self.bytes),
            self.unchanged,
            self.deleted.len(),
            self.pending
        )
    }
}

/// A place a tree can be published to.
pub trait PublishTarget {
    /// Make the tree at `root` (its files listed in `tree`, published by
    /// `run`) what this target serves.
    fn publish(&self, root: &Path, tree: &[TreeEntry], run: RunId) -> Result<PublishReport, PublishError>;

    /// The target, for messages.
    fn describe(&self) -> String;
}
