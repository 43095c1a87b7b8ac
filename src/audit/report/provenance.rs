//! PEP 740 in the reports: who published the served files, project by
//! project, and how many of the served files carry verified provenance
//! (the landing page's share, the HTML report's table).

use std::collections::BTreeMap;

use serde::Serialize;

/// Each attested file's verified publisher: project -> filename ->
/// publisher (looked up by reference, with no key built per file).
pub type Publishers = std::collections::BTreeMap<
    crate::dist::names::ProjectName,
    std::collections::BTreeMap<String, crate::provenance::Publisher>,
>;

/// A served file's verified publisher, if it has one.
pub fn publisher_of<'a>(
    publishers: &'a Publishers,
    project: &crate::dist::names::ProjectName,
    file: &str,
) -> Option<&'a crate::provenance::Publisher> {
    publishers.get(project).and_then(|files| files.get(file))
}

/// One project's files from one verified publisher.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PublisherRow {
    pub project: String,
    pub publisher: String,
    /// How many served files it published, and their versions (lowest, highest).
    pub files: usize,
    pub versions: String,
}

/// The served files' provenance at a glance.
#[derive(Debug, Serialize, Default, PartialEq, Eq)]
pub struct ProvenanceView {
    /// Served files with verified provenance, of `served`.
    pub verified: usize,
    pub served: usize,
    pub rows: Vec<PublisherRow>,
}

impl ProvenanceView {
    pub fn of(audit: &crate::audit::Audit, publishers: &Publishers) -> ProvenanceView {
        let mut out = ProvenanceView::default();
        // Keyed by (project, publisher): versions in audit order (PEP 440).
        let mut rows: BTreeMap<(String, String), (usize, String, String)> = BTreeMap::new();
        for v in &audit.versions {
            for f in &v.files {
                out.served += 1;
                let Some(p) = publisher_of(publishers, &v.project, f) else { continue };
                out.verified += 1;
                let version = v.version.to_string();
                let row = rows
                    .entry((v.project.to_string(), p.to_string()))
                    .or_insert_with(|| (0, version.clone(), version.clone()));
                row.0 += 1;
                row.2 = version;
            }
        }
        out.rows = rows
            .into_iter()
            .map(|((project, publisher), (files, low, high))| PublisherRow {
                project,
                publisher,
                files,
                versions: if low == high { low } else { format!("{low} – {high}") },
            })
            .collect();
        out
    }

    /// "12 of 40" (the landing page's card), when any file is attested.
    pub fn share(&self) -> Option<String> {
        (self.verified > 0).then(|| format!("{} of {}", self.verified, self.served))
    }
}
