//! What an upstream offers for one project, in domain terms.
//!
//! Converted explicitly from the wire form (`wire::ProjectPage`). This is the
//! trust boundary: filenames pass the allowlist and must belong to the
//! project, URLs must use a scheme the page itself may point at (an http
//! upstream can never make airlock read a local `file:` path), and hashes must
//! be well-formed. Anything else is skipped with a reason, never guessed at.

use std::collections::BTreeSet;

use url::Url;

use super::wire;
use crate::dist::file::{FileFacts, RequiresPython, Yanked};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;

#[derive(Debug, Clone)]
pub struct UpstreamFile {
    pub filename: DistFilename,
    pub url: Url,
    pub sha256: Option<Sha256>,
    pub size: Option<u64>,
    /// What the upstream says of the file (Requires-Python, yanked, upload time).
    pub facts: FileFacts,
    /// PEP 658/714: the upstream serves the file's core metadata beside it.
    pub metadata: Offered,
}

/// Whether an upstream offers a file's core metadata (PEP 658/714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offered {
    #[default]
    No,
    /// Offered, without a hash to check it by.
    Unhashed,
    /// Offered with its sha256.
    Sha256(Sha256),
}

/// A project's files, shared (not copied) by every stage that reads them:
/// resolution's index, the plan, each environment's candidates.
#[derive(Debug, Clone)]
pub struct Listing {
    pub files: std::sync::Arc<Vec<UpstreamFile>>,
    /// PEP 792: the project's status as the upstream marks it (`None`: active).
    pub status: Option<ProjectStatus>,
}

/// PEP 792's project status markers, and the reason the upstream gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectStatus {
    pub status: Status,
    pub reason: Option<String>,
}

/// PEP 792: one status per project; a status airlock does not know reads as
/// `active` (the spec's default), its text kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Active,
    Archived,
    /// Unsafe (malware, most often): the upstream offers no file of it.
    Quarantined,
    Deprecated,
    Other(String),
}

impl Status {
    pub fn parse(text: &str) -> Status {
        match text.trim() {
            "active" => Status::Active,
            "archived" => Status::Archived,
            "quarantined" => Status::Quarantined,
            "deprecated" => Status::Deprecated,
            other => Status::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Status::Active => "active",
            Status::Archived => "archived",
            Status::Quarantined => "quarantined",
            Status::Deprecated => "deprecated",
            Status::Other(s) => s,
        }
    }
}

impl ProjectStatus {
    /// Whether the mirror must offer no file of the project.
    pub fn quarantined(status: Option<&ProjectStatus>) -> bool {
        status.is_some_and(|s| s.status == Status::Quarantined)
    }
}

/// A file the upstream listed that airlock will not touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub filename: String,
    pub reason: String,
}

impl Listing {
    /// Convert a wire page fetched from `page_url` for `project`.
    pub fn from_wire(page: &wire::ProjectPage, page_url: &Url, project: &ProjectName) -> (Listing, Vec<Skipped>) {
        let mut files = Vec::with_capacity(page.files.len());
        let mut skipped = Vec::new();
        let mut seen = BTreeSet::new();
        for f in &page.files {
            match convert(f, page_url, project) {
                Ok(file) => {
                    if seen.insert(file.filename.as_str().to_string()) {
                        files.push(file);
                    } else {
                        skipped.push(Skipped { filename: f.filename.clone(), reason: "listed twice".into() });
                    }
                }
                Err(reason) if is_legacy_format(&f.filename) => {
                    tracing::debug!("{project}: ignoring {:?}: {reason}", f.filename);
                }
                Err(reason) => skipped.push(Skipped { filename: f.filename.clone(), reason: reason.to_string() }),
            }
        }
        let status = page.project_status.as_ref().map(|s| ProjectStatus {
            status: Status::parse(&s.status),
            reason: s.reason.clone().filter(|r| !r.trim().is_empty()),
        });
        (Listing { files: std::sync::Arc::new(files), status }, skipped)
    }
}

/// Why a listed file is refused at the trust boundary.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Filename(#[from] crate::dist::filename::FilenameError),
    #[error("bad URL {url:?}: {error}")]
    Url { url: String, error: url::ParseError },
    #[error("URL scheme `{scheme}` is not allowed from a `{page}` index")]
    Scheme { scheme: String, page: String },
    #[error(transparent)]
    Sha256(#[from] crate::util::hashing::Sha256Error),
    #[error("bad upload-time {text:?}: {error}")]
    UploadTime { text: String, error: jiff::Error },
}

/// Formats pip never installs (eggs, Windows and Mac installers, RPMs):
/// skipped quietly, unlike names that should have parsed and did not.
fn is_legacy_format(filename: &str) -> bool {
    let lower = filename.to_ascii_lowercase();
    [".egg", ".exe", ".msi", ".rpm", ".dmg", ".deb"].iter().any(|ext| lower.ends_with(ext))
}

/// Schemes a page may point at: a `file:` index may name local files.
fn allowed_scheme(page_url: &Url, url: &Url) -> bool {
    match page_url.scheme() {
        "file" => matches!(url.scheme(), "file" | "http" | "https"),
        _ => matches!(url.scheme(), "http" | "https"),
    }
}

fn convert(f: &wire::File, page_url: &Url, project: &ProjectName) -> Result<UpstreamFile, Refused> {
    let filename = DistFilename::parse(&f.filename, Some(project))?;
    let url = page_url.join(&f.url).map_err(|error| Refused::Url { url: f.url.clone(), error })?;
    if !allowed_scheme(page_url, &url) {
        return Err(Refused::Scheme { scheme: url.scheme().to_string(), page: page_url.scheme().to_string() });
    }
    let sha256 = match f.hashes.get("sha256") {
        None => None,
        Some(h) => Some(h.parse::<Sha256>()?),
    };
    let upload_time = match &f.upload_time {
        None => None,
        Some(t) => Some(t.parse::<jiff::Timestamp>().map_err(|error| Refused::UploadTime { text: t.clone(), error })?),
    };
    let metadata = match f.core_metadata.as_ref().or(f.dist_info_metadata.as_ref()) {
        None | Some(wire::CoreMetadata::Flag(false)) => Offered::No,
        Some(wire::CoreMetadata::Flag(true)) => Offered::Unhashed,
        // A malformed hash offers nothing we could check: treat as not offered.
        Some(wire::CoreMetadata::Hashes(h)) => match h.get("sha256").map(|d| d.parse::<Sha256>()) {
            Some(Ok(sha)) => Offered::Sha256(sha),
            Some(Err(_)) => Offered::No,
            None => Offered::Unhashed,
        },
    };
    // Held to the same schemes as the file itself; a bad one is no provenance.
    let provenance = f
        .provenance
        .as_deref()
        .and_then(|p| page_url.join(p).ok())
        .filter(|u| allowed_scheme(page_url, u))
        .map(|u| u.to_string());
    Ok(UpstreamFile {
        filename,
        url,
        sha256,
        size: f.size,
        facts: FileFacts {
            requires_python: f.requires_python.as_deref().map(RequiresPython::new),
            yanked: Yanked::from_reason(f.yanked.reason()),
            upload_time,
            provenance,
        },
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, url: &str) -> wire::File {
        wire::File {
            filename: name.into(),
            url: url.into(),
            hashes: [("sha256".to_string(), "aa".repeat(32))].into(),
            requires_python: None,
            yanked: wire::Yanked::Flag(false),
            size: Some(3),
            upload_time: Some("2024-01-02T03:04:05.123456Z".into()),
            core_metadata: None,
            dist_info_metadata: None,
            provenance: None,
        }
    }

    #[test]
    fn hostile_entries_are_skipped_with_reasons() {
        let page = wire::ProjectPage {
            meta: Default::default(),
            name: "pkg".into(),
            versions: None,
            project_status: None,
            files: vec![
                file("pkg-1.0.tar.gz", "../../files/pkg-1.0.tar.gz"),
                file("../pkg-1.0.tar.gz", "x"),
                file("pkg-1.1.tar.gz", "file:///etc/passwd"),
                file("other-1.0.tar.gz", "other-1.0.tar.gz"),
                file("pkg-1.0.tar.gz", "dup"),
                wire::File { hashes: [("sha256".to_string(), "zz".into())].into(), ..file("pkg-2.0.tar.gz", "y") },
            ],
        };
        let base = Url::parse("https://up.example.invalid/simple/pkg/").unwrap();
        let (listing, skipped) = Listing::from_wire(&page, &base, &"pkg".parse().unwrap());
        assert_eq!(listing.files.len(), 1);
        assert_eq!(listing.files[0].url.as_str(), "https://up.example.invalid/files/pkg-1.0.tar.gz");
        assert!(listing.files[0].facts.upload_time.is_some());
        let reasons: Vec<_> = skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].contains("unsafe filename"));
        assert!(reasons[1].contains("scheme `file`"));
        assert!(reasons[2].contains("does not belong") || reasons[2].contains("invalid sdist"));
        assert_eq!(reasons[3], "listed twice");
        assert!(reasons[4].contains("invalid sha256"));
    }
}
