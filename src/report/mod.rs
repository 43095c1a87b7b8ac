//! Security reports, all from one [`Audit`](crate::audit::Audit):
//! `reports/security.json` (schema `airlock.security/v1`),
//! `reports/security.sarif` (SARIF 2.1.0), `reports/security.html`
//! (self-contained) and `reports/summary.md` (CI step summaries).

pub mod html;
pub mod json;
pub mod markdown;
pub mod sarif;

use std::path::Path;

use crate::audit::Audit;
use crate::render::{RenderError, TreeEntry, write_entry};
use crate::templates::Templates;

/// Write every report under `root/reports/`.
pub fn write_all(audit: &Audit, templates: &Templates, root: &Path) -> Result<Vec<TreeEntry>, RenderError> {
    Ok(vec![
        write_entry(root, "reports/security.html", &html::render(audit, templates)?)?,
        write_entry(root, "reports/security.json", &json::render(audit))?,
        write_entry(root, "reports/security.sarif", &sarif::render(audit))?,
        write_entry(root, "reports/summary.md", &markdown::render(audit))?,
    ])
}
