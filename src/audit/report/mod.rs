//! Security reports, all from one [`Audit`](crate::audit::Audit) and the
//! diagnostics of the run that publishes them: `reports/security.json`
//! (schema `airlock.security/v1`), `reports/security.sarif` (SARIF 2.1.0),
//! `reports/security.html` (self-contained) and `reports/summary.md` (CI step
//! summaries). Each format has its own wire structs, converted explicitly.

pub mod changes;
pub mod html;
pub mod installability;
pub mod json;
pub mod markdown;
pub mod sarif;

use std::path::Path;

use serde::Serialize;

use crate::audit::Audit;
use crate::diagnostics::{Diagnostic, Level, Tampering};
use crate::index::{RenderError, Templates};
use crate::select::installable::Installability;
use crate::tree::{TreeEntry, write_entry, write_entry_with};

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
}

/// Write every report under `root/reports/`.
pub fn write_all(inputs: Inputs<'_>, templates: &Templates, root: &Path) -> Result<Vec<TreeEntry>, RenderError> {
    Ok(vec![
        write_entry(
            root,
            "reports/installability.json",
            &installability::render(inputs.installability, &inputs.audit.generated_at),
        )?,
        write_entry(root, "reports/security.html", &html::render(inputs, templates)?)?,
        write_entry_with(root, "reports/security.json", |w| json::write(inputs, w))?,
        write_entry(root, "reports/security.sarif", &sarif::render(inputs))?,
        write_entry(root, "reports/summary.md", &markdown::render(inputs))?,
    ])
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
            first_run: t.first_run,
            last_run: t.last_run,
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
