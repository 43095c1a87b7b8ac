//! OSV advisories for PyPI: reading sources, the SQLite snapshot, and the
//! matcher that joins mirrored versions with advisories.

pub mod matcher;
pub mod ops;
pub mod osv;
pub mod snapshot;
pub mod source;

pub use ops::AdvisoryError;
pub use snapshot::{Finding, Snapshot};
