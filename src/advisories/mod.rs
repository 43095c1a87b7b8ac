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
pub use source::SourceSpec;
