//! The bundle's manifest (`airlock-bundle.json`), its limits and errors,
//! shared by export and import.

use crate::util::run_id::RunId;
use serde::{Deserialize, Serialize};

use crate::tree::TreeEntry;

pub const FORMAT: &str = "airlock.bundle/v1";
pub const MANIFEST: &str = "airlock-bundle.json";
/// The manifest itself is bounded: a few hundred bytes per file.
pub(super) const MAX_MANIFEST: u64 = 512 * 1024 * 1024;
/// A bundle may decompress to this many times its size (plus a floor):
/// wheels barely compress and pages compress about tenfold, so a higher
/// ratio is a decompression bomb.
pub(super) const MAX_RATIO: u64 = 100;
pub(super) const RATIO_FLOOR: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    State(#[from] crate::store::state::StateError),
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error(transparent)]
    Lock(#[from] crate::store::lock::LockError),
    #[error("{bundle}: {message}")]
    Invalid { bundle: String, message: String },
    #[error("{bundle}: member {member:?}: {message}")]
    Member { bundle: String, member: String, message: String },
    #[error("{bundle} does not follow what {into} holds: {message}")]
    Sequence { bundle: String, into: String, message: String },
    #[error("cannot export: {0}")]
    Export(String),
}

/// The first member of every bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: String,
    pub mirror: String,
    pub created_at: String,
    /// The run whose tree the receiver must hold (`None`: a full bundle).
    pub from_run: Option<RunId>,
    /// Digest of that tree's listing.
    pub from_listing: Option<String>,
    /// The run whose tree the receiver holds afterwards.
    pub to_run: RunId,
    /// Digest of `tree`.
    pub to_listing: String,
    /// The complete tree after import, sorted by path.
    pub tree: Vec<TreeEntry>,
    /// The paths this bundle carries (the rest come from the base tree).
    pub members: Vec<String>,
    /// Paths of the base tree the new one no longer has.
    pub delete: Vec<String>,
    /// The Sigstore trusted root the tree's PEP 740 provenance verifies
    /// against, as JSON, when the exporting mirror names its own
    /// (`[policy] trusted_root`); absent: Sigstore's production root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
}

/// What the receiving side records beside each imported tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Imported {
    pub(super) mirror: String,
    pub(super) run: RunId,
    pub(super) listing: String,
    pub(super) tree: Vec<TreeEntry>,
}

/// A relative path of plain components: no root, no `..`, no NUL or backslash.
pub fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() < 4096
        && !p.starts_with('/')
        && !p.contains(['\0', '\\'])
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["simple/index.html", "packages/a/a-1.0.tar.gz", "index.html"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/.", "a\\b", "a\0b"] {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }
}
