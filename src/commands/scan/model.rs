//! What a scan reads and finds, shared by the readers (mod.rs) and the
//! output formats.

use std::path::Path;

use crate::advisories::Snapshot;
use crate::audit::AuditFinding;

/// One package to audit, and where it was named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Dependency {
    pub(super) name: String,
    /// `None`: not pinned, so not auditable (why in `skip`).
    pub(super) version: Option<String>,
    pub(super) skip: Option<String>,
    /// Where it was named: a file, and its line for requirements files.
    pub(super) origin: Origin,
    /// The PEP 740 publishers a lock file expects (`attestation-identities`).
    pub(super) identities: Vec<String>,
}

/// Where a dependency was named, for SARIF locations.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Origin {
    pub(super) file: String,
    pub(super) line: Option<u32>,
}

impl Origin {
    /// A requirements line's origin, `path:line`.
    pub(super) fn parse(origin: &str) -> Origin {
        match origin.rsplit_once(':').and_then(|(f, l)| Some((f, l.parse().ok()?))) {
            Some((file, line)) => Origin { file: file.to_string(), line: Some(line) },
            None => Origin { file: origin.to_string(), line: None },
        }
    }

    pub(super) fn of(path: &Path) -> Origin {
        Origin { file: path.display().to_string(), line: None }
    }
}

/// What a scan found: every dependency (sorted by name, then version), each
/// with the findings that apply to it, ignored ones included (formats that
/// can say so mark them; the others leave them out).
pub(super) struct Scanned<'s> {
    pub(super) snapshot: &'s Snapshot,
    pub(super) dependencies: Vec<(Dependency, Vec<AuditFinding>)>,
    pub(super) generated_at: jiff::Timestamp,
    /// The verified PEP 740 publishers of each (name, version) the mirror
    /// scanned against serves (its security.json), when it publishes them.
    pub(super) publishers: std::collections::BTreeMap<(String, String), Vec<String>>,
}
