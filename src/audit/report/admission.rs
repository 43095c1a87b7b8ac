//! What the admission gate held and let in early, and what was withdrawn
//! from the tree, as every report shows it (security.json's `held`,
//! `admitted` and `withdrawn`; changes.json's newly held, admitted and
//! withdrawn; the HTML report and summary.md).

use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::diagnostics::Diagnostic;

pub use crate::store::state::WithdrawnRow;

/// A release the admission gate holds, as security.json lists it.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeldView {
    pub project: String,
    pub version: String,
    /// `young`, `frozen`, `no-upload-time`.
    pub reason: String,
    /// When it enters if nothing changes (RFC 3339), `null` when not by time.
    pub due: Option<String>,
    pub detail: String,
}

/// A held release let in early.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AdmittedView {
    pub project: String,
    pub version: String,
    /// The `[[select.admit]]` entry's reason, or `fixes <advisory id>`.
    pub reason: String,
    pub expires: Option<String>,
}

/// Something withdrawn from the tree: a file, or a whole project
/// (`version` and `filename` null).
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WithdrawnView {
    pub project: String,
    pub version: Option<String>,
    pub filename: Option<String>,
    /// `removed-upstream`, `quarantined`, `frozen`.
    pub reason: String,
    pub since: String,
}

pub fn held_views(ds: &[Diagnostic]) -> Vec<HeldView> {
    ds.iter()
        .filter_map(|d| match d {
            Diagnostic::Held { project, version, reason, due, .. } => Some(HeldView {
                project: project.to_string(),
                version: version.to_string(),
                reason: reason.as_str().to_string(),
                due: due.map(|t| t.to_string()),
                detail: d.to_string(),
            }),
            _ => None,
        })
        .collect()
}

pub fn admitted_views(ds: &[Diagnostic]) -> Vec<AdmittedView> {
    ds.iter()
        .filter_map(|d| match d {
            Diagnostic::Admitted { project, version, reason, expires } => Some(AdmittedView {
                project: project.to_string(),
                version: version.to_string(),
                reason: reason.clone(),
                expires: expires.map(|e| e.to_string()),
            }),
            _ => None,
        })
        .collect()
}

/// The withdrawn files (sorted, as the state gives them), a project that
/// serves nothing any more said once.
pub fn withdrawn_views(rows: &[WithdrawnRow], audit: &Audit) -> Vec<WithdrawnView> {
    let serving: std::collections::BTreeSet<&str> =
        audit.versions.iter().filter(|v| !v.files.is_empty()).map(|v| v.project.as_str()).collect();
    let mut out: Vec<WithdrawnView> = Vec::new();
    for (project, filename, reason, since) in rows {
        let whole = !serving.contains(project.as_str());
        if whole && out.last().is_some_and(|w| w.project == project.as_str() && w.filename.is_none()) {
            continue;
        }
        let version = (!whole)
            .then(|| crate::dist::filename::DistFilename::parse(filename, Some(project)).ok())
            .flatten()
            .map(|f| f.version().to_string());
        out.push(WithdrawnView {
            project: project.to_string(),
            version,
            filename: (!whole).then(|| filename.clone()),
            reason: reason.clone(),
            since: since.clone(),
        });
    }
    out
}

/// A project the upstream marks other than active (PEP 792).
#[derive(Debug, Serialize)]
pub struct StatusView {
    pub project: String,
    pub status: String,
    pub reason: Option<String>,
}

pub fn status_views(statuses: &crate::index::Statuses) -> Vec<StatusView> {
    statuses
        .iter()
        .map(|(p, s)| StatusView {
            project: p.to_string(),
            status: s.status.as_str().to_string(),
            reason: s.reason.clone(),
        })
        .collect()
}

/// Everything of this module a page shows, built at once.
#[derive(Debug, Serialize)]
pub struct GateViews {
    pub held: Vec<HeldView>,
    pub admitted: Vec<AdmittedView>,
    pub withdrawn: Vec<WithdrawnView>,
    pub statuses: Vec<StatusView>,
}

impl GateViews {
    pub fn of(diagnostics: &[Diagnostic], withdrawn: &[WithdrawnView], statuses: &crate::index::Statuses) -> GateViews {
        GateViews {
            held: held_views(diagnostics),
            admitted: admitted_views(diagnostics),
            withdrawn: withdrawn.to_vec(),
            statuses: status_views(statuses),
        }
    }
}
