//! OSV advisories for PyPI: reading sources (`source`, `osv`), the SQLite
//! snapshot (`snapshot`), the exact OSV matcher (`matcher`), severity
//! ratings (`severity`), and the `airlock advisories` commands (`ops`).

pub mod matcher;
pub mod ops;
pub mod osv;
pub mod severity;
pub mod snapshot;
pub mod source;

pub use ops::AdvisoryError;
pub use snapshot::Snapshot;

/// Where advisories come from: a URL (fetched conditionally, cached) or a
/// local directory, `.zip` or record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Url(url::Url),
    Path(std::path::PathBuf),
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Url(u) => f.write_str(&crate::util::redact::url(u)),
            SourceSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}
