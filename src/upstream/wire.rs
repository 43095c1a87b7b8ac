//! Wire formats of the simple repository API: PEP 691 JSON (read from
//! upstreams and written into the published tree) and PEP 503 HTML (read from
//! upstreams, converted into the same JSON shape so that the rest of airlock
//! sees one form).
//!
//! Nothing here is trusted: conversion into domain types (`listing`) checks
//! filenames, hashes and URLs.

use std::collections::BTreeMap;

use html5gum::{Token, Tokenizer};
use serde::{Deserialize, Serialize};
use url::Url;

/// The API version airlock writes: PEP 691 with PEP 700's additions.
pub const API_VERSION: &str = "1.1";
/// The API version of a page that carries PEP 792 status (or PEP 740 provenance).
pub const API_VERSION_STATUS: &str = "1.4";
pub use crate::util::mime::SIMPLE_JSON as JSON_CONTENT_TYPE;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "api-version")]
    pub api_version: String,
    /// PyPI's serial of the project (a number, or a string of one); read,
    /// never written.
    #[serde(rename = "_last-serial", default, skip_serializing)]
    pub last_serial: Option<serde_json::Value>,
}

impl Meta {
    /// `_last-serial` as a number, if it is one.
    pub fn serial(&self) -> Option<i64> {
        match self.last_serial.as_ref()? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Default for Meta {
    fn default() -> Self {
        Meta { api_version: API_VERSION.to_string(), last_serial: None }
    }
}

/// `GET /simple/<project>/` as PEP 691 JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectPage {
    pub meta: Meta,
    pub name: String,
    pub files: Vec<File>,
    /// PEP 700: every version of the project, even ones without files here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    /// PEP 792 (api-version 1.4): the project's status and why.
    #[serde(rename = "project-status", default, skip_serializing_if = "Option::is_none")]
    pub project_status: Option<ProjectStatus>,
}

/// PEP 792: `{"status": "quarantined", "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectStatus {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// PEP 592 / 691: `false`, `true` or a reason string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Yanked {
    Flag(bool),
    Reason(String),
}

impl Default for Yanked {
    fn default() -> Self {
        Yanked::Flag(false)
    }
}

impl Yanked {
    /// `None` when not yanked, else the reason (possibly empty).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Yanked::Flag(false) => None,
            Yanked::Flag(true) => Some(""),
            Yanked::Reason(r) => Some(r),
        }
    }

    pub fn from_reason(reason: Option<&str>) -> Yanked {
        match reason {
            None => Yanked::Flag(false),
            Some("") => Yanked::Flag(true),
            Some(r) => Yanked::Reason(r.to_string()),
        }
    }
}

/// PEP 658 / 714: `true`, `false` or a hash map for the `.metadata` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CoreMetadata {
    Flag(bool),
    Hashes(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub filename: String,
    pub url: String,
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
    #[serde(rename = "requires-python", default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    #[serde(default)]
    pub yanked: Yanked,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(rename = "upload-time", default, skip_serializing_if = "Option::is_none")]
    pub upload_time: Option<String>,
    /// PEP 714 name.
    #[serde(rename = "core-metadata", default, skip_serializing_if = "Option::is_none")]
    pub core_metadata: Option<CoreMetadata>,
    /// PEP 658 name, still read by older clients; written beside the new one.
    #[serde(
        rename = "dist-info-metadata",
        alias = "data-dist-info-metadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dist_info_metadata: Option<CoreMetadata>,
    /// PEP 740: the provenance object's URL (absolute, or `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
}

/// `GET /simple/` as PEP 691 JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootPage {
    pub meta: Meta,
    pub projects: Vec<RootProject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootProject {
    pub name: String,
}

/// The project names of a root page: PEP 691 JSON's `projects`, or the
/// text of every link of a PEP 503 page. Anything unreadable gives none.
pub fn root_names(body: &[u8], content_type: &str) -> Vec<String> {
    if content_type.contains("json") {
        return serde_json::from_slice::<RootPage>(body)
            .map(|r| r.projects.into_iter().map(|p| p.name).collect())
            .unwrap_or_default();
    }
    let text = String::from_utf8_lossy(body);
    let mut names = Vec::new();
    let mut in_link = false;
    for token in Tokenizer::new(text.as_ref()).flatten() {
        match token {
            Token::StartTag(tag) if tag.name.as_slice() == b"a" => in_link = true,
            Token::EndTag(tag) if tag.name.as_slice() == b"a" => in_link = false,
            Token::String(s) if in_link => names.push(String::from_utf8_lossy(&s).trim().to_string()),
            _ => {}
        }
    }
    names
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{url}: not a PEP 691 project page: {error}")]
    Json { url: String, error: serde_json::Error },
    #[error("{url}: PEP 691 api-version {version} is not supported (major version 1 is)")]
    Version { url: String, version: String },
}

/// Parse a PEP 691 JSON project page. `url` only names the page in errors.
pub fn parse_json_page(body: &[u8], url: &str) -> Result<ProjectPage, WireError> {
    let page: ProjectPage =
        serde_json::from_slice(body).map_err(|error| WireError::Json { url: url.to_string(), error })?;
    if !page.meta.api_version.starts_with("1.") && page.meta.api_version != "1" {
        return Err(WireError::Version { url: url.to_string(), version: page.meta.api_version });
    }
    Ok(page)
}

/// Parse a PEP 503 HTML project page into the PEP 691 shape, resolving every
/// link against `base` (the final URL after redirects, or a `<base href>`).
pub fn parse_html_page(body: &[u8], base: &Url, name: &str) -> ProjectPage {
    let text = String::from_utf8_lossy(body);
    let mut base = base.clone();
    let mut files = Vec::new();
    let (mut status, mut reason) = (None, None);
    for token in Tokenizer::new(text.as_ref()).flatten() {
        let Token::StartTag(tag) = token else {
            continue;
        };
        let attr = |k: &str| tag.attributes.get(k.as_bytes()).map(|v| String::from_utf8_lossy(&v.value).into_owned());
        match tag.name.as_slice() {
            b"meta" => match attr("name").as_deref() {
                Some("pypi:project-status") => status = attr("content"),
                Some("pypi:project-status-reason") => reason = attr("content"),
                _ => {}
            },
            b"base" => {
                if let Some(href) = attr("href")
                    && let Ok(b) = base.join(href.trim())
                {
                    base = b;
                }
            }
            b"a" => {
                let Some(href) = attr("href") else { continue };
                let Ok(mut url) = base.join(href.trim()) else {
                    tracing::warn!("{}: skipping unparseable link {href:?}", crate::util::redact::url(&base));
                    continue;
                };
                let mut hashes = BTreeMap::new();
                if let Some((algo, digest)) = url.fragment().and_then(|f| f.split_once('=')) {
                    hashes.insert(algo.to_string(), digest.to_string());
                }
                url.set_fragment(None);
                let filename = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
                    .unwrap_or_default();
                let metadata = attr("data-core-metadata").or_else(|| attr("data-dist-info-metadata")).map(|v| match v
                    .split_once('=')
                {
                    Some((algo, digest)) => {
                        CoreMetadata::Hashes(BTreeMap::from([(algo.to_string(), digest.to_string())]))
                    }
                    None => CoreMetadata::Flag(v != "false"),
                });
                files.push(File {
                    filename,
                    url: url.to_string(),
                    hashes,
                    requires_python: attr("data-requires-python").filter(|s| !s.trim().is_empty()),
                    yanked: Yanked::from_reason(attr("data-yanked").as_deref()),
                    size: None,
                    upload_time: None,
                    core_metadata: metadata,
                    dist_info_metadata: None,
                    provenance: attr("data-provenance").filter(|s| !s.trim().is_empty()),
                });
            }
            _ => {}
        }
    }
    ProjectPage {
        meta: Meta { api_version: "1.0".into(), last_serial: None },
        name: name.to_string(),
        files,
        versions: None,
        project_status: status.map(|status| ProjectStatus { status, reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_page_resolves_links_and_reads_pep_592_658_fields() {
        let html = br#"<!DOCTYPE html><html><head><base href="https://files.example.invalid/root/"></head><body>
<a href="../packages/pkg-1.0-py3-none-any.whl#sha256=abcd" data-requires-python="&gt;=3.8" data-core-metadata="sha256=ef01">pkg-1.0-py3-none-any.whl</a>
<a href="pkg-1.1.tar.gz" data-yanked="broken &amp; bad">pkg-1.1.tar.gz</a>
<a href="pkg%2B1.2.tar.gz" data-yanked>x</a>
</body></html>"#;
        let base = Url::parse("https://index.example.invalid/simple/pkg/").unwrap();
        let page = parse_html_page(html, &base, "pkg");
        assert_eq!(page.files.len(), 3);
        let f = &page.files[0];
        assert_eq!(f.url, "https://files.example.invalid/packages/pkg-1.0-py3-none-any.whl");
        assert_eq!(f.hashes["sha256"], "abcd");
        assert_eq!(f.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(f.core_metadata, Some(CoreMetadata::Hashes(BTreeMap::from([("sha256".into(), "ef01".into())]))));
        assert_eq!(page.files[1].yanked.reason(), Some("broken & bad"));
        assert_eq!(page.files[2].yanked.reason(), Some(""));
        assert_eq!(page.files[2].filename, "pkg+1.2.tar.gz");
    }

    #[test]
    fn json_page_accepts_both_metadata_names_and_checks_version() {
        let body = br#"{"meta":{"api-version":"1.1","_last-serial":"7"},"name":"pkg","versions":["1.0"],
            "files":[{"filename":"pkg-1.0.tar.gz","url":"x","hashes":{"sha256":"00"},"yanked":"bad","data-dist-info-metadata":true}]}"#;
        let page = parse_json_page(body, "u").unwrap();
        assert_eq!(page.files[0].dist_info_metadata, Some(CoreMetadata::Flag(true)));
        assert_eq!(page.files[0].yanked.reason(), Some("bad"));
        let v2 = br#"{"meta":{"api-version":"2.0"},"name":"p","files":[]}"#;
        assert!(matches!(parse_json_page(v2, "u"), Err(WireError::Version { .. })));
    }
}
