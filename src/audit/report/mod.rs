//! Security reports, all from one [`Audit`](crate::audit::Audit) and the
//! diagnostics of the run that publishes them: `reports/security.json`
//! (schema `airlock.security/v1`), `reports/security.sarif` (SARIF 2.1.0),
//! `reports/security.html` (self-contained) and `reports/summary.md` (CI step
//! summaries). Each format has its own wire structs, converted explicitly.

pub mod admission;
pub mod changes;
pub mod html;
pub mod installability;
pub mod json;
pub mod markdown;
pub mod provenance;
pub mod sarif;
pub mod views;

use std::path::Path;

use crate::index::{RenderError, Templates};
use crate::tree::{TreeEntry, write_entry, write_entry_with};

pub use views::Inputs;

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
