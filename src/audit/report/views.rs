//! What every report format is rendered from: the run's [`Inputs`] and the
//! views of diagnostics and tampering evidence the formats share.

use serde::Serialize;

use crate::audit::Audit;
use crate::diagnostics::{Diagnostic, Level, Tampering};
use crate::select::installable::Installability;

use super::changes;

/// What the reports are rendered from.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub audit: &'a Audit,
    /// The run's diagnostics, sorted.
    pub diagnostics: &'a [Diagnostic],
    pub installability: &'a Installability,
    /// What the tree changes against the served one (summary.md leads
    /// with it), once computed.
    pub changes: Option<&'a changes::Changes>,
    /// Files withdrawn from the tree and not listed again, from the state
    /// (viewed once, for every format).
    pub withdrawn: &'a [super::admission::WithdrawnView],
    /// The verified PEP 740 publisher of each served attested file.
    pub publishers: &'a super::provenance::Publishers,
    /// Who published the served files, at a glance (computed once, for
    /// the landing page and the HTML report).
    pub provenance: &'a super::provenance::ProvenanceView,
    /// PEP 792: the projects the upstream marks other than active.
    pub statuses: &'a crate::index::Statuses,
    /// `[mirror] project_pages`: the reports link into `projects/`.
    pub project_pages: bool,
}

/// Tampering evidence as reports show it.
#[derive(Debug, Serialize)]
pub struct TamperingView {
    pub project: String,
    pub filename: String,
    pub mirrored_sha256: String,
    pub upstream_sha256: String,
    pub first_run: i64,
    pub last_run: i64,
}

pub fn tampering_views(t: &[Tampering]) -> Vec<TamperingView> {
    t.iter()
        .map(|t| TamperingView {
            project: t.project.to_string(),
            filename: t.filename.clone(),
            mirrored_sha256: t.mirrored.hex(),
            upstream_sha256: t.upstream.hex(),
            first_run: t.first_run.0,
            last_run: t.last_run.0,
        })
        .collect()
}

/// One diagnostic of the run as reports show it.
#[derive(Debug, Serialize)]
pub struct DiagnosticView {
    pub level: Level,
    pub code: &'static str,
    pub project: String,
    pub file: Option<String>,
    pub version: Option<String>,
    pub message: String,
}

pub fn diagnostic_views(ds: &[Diagnostic]) -> Vec<DiagnosticView> {
    ds.iter()
        .map(|d| DiagnosticView {
            level: d.level(),
            code: d.code(),
            project: d.project().to_string(),
            file: d.filename().map(str::to_string),
            version: d.version().map(ToString::to_string),
            message: d.to_string(),
        })
        .collect()
}
