//! A project page as its template sees it: typed view structs built from the
//! served files, the newest core metadata, the audit, the gate and the
//! verified publishers. Every string from upstream reaches the page through
//! tera's escaping; only the README, sanitised by `readme`, is inserted as
//! HTML, and only `http(s)` URLs become links.

use serde::Serialize;

use crate::audit::report::admission::{HeldView, WithdrawnView};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;

/// How a page names the key it was rendered from, in its head.
pub(super) const KEY_META: &str = "<meta name=\"airlock:page\" content=\"";

/// What a page shows of core metadata (PEP 566/643), parsed leniently:
/// whatever does not parse is shown as written, never guessed at.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    pub(super) summary: String,
    pub(super) keywords: Vec<String>,
    pub(super) requires_python: Option<String>,
    pub(super) requires: Vec<Requirement>,
    pub(super) links: Vec<Link>,
    pub(super) license: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct Requirement {
    /// The name, normalized (none when the line does not parse).
    #[serde(skip)]
    pub name: Option<ProjectName>,
    /// The name as written, and the rest of the line (extras, versions,
    /// markers) as written.
    pub written: String,
    pub rest: String,
    /// Its page in this mirror, when the project is mirrored.
    pub href: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Link {
    pub label: String,
    pub href: String,
}

/// Only web links leave the page: no `javascript:`, `data:` or `file:`.
fn web_url(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

impl Metadata {
    pub(crate) fn parse(bytes: &[u8]) -> Metadata {
        use crate::dist::metadata::{header_values, headers};
        let h = headers(bytes);
        let first = |k: &str| header_values(&h, k).next().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let keywords = first("Keywords")
            .map(|k| {
                let sep: &[char] = if k.contains(',') { &[','] } else { &[' ', '\t'] };
                k.split(sep).map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect()
            })
            .unwrap_or_default();
        let requires = header_values(&h, "Requires-Dist")
            .map(|raw| {
                let raw = raw.trim();
                let end = raw
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                    .unwrap_or(raw.len());
                let (written, rest) = raw.split_at(end);
                Requirement {
                    name: written.parse().ok(),
                    written: written.to_string(),
                    rest: rest.trim().to_string(),
                    href: None,
                }
            })
            .collect();
        let mut links: Vec<Link> = header_values(&h, "Project-URL")
            .filter_map(|v| {
                let (label, url) = v.split_once(',')?;
                Some(Link { label: label.trim().to_string(), href: web_url(url)? })
            })
            .collect();
        if let Some(home) = first("Home-page").and_then(|u| web_url(&u)).filter(|h| !links.iter().any(|l| &l.href == h))
        {
            links.insert(0, Link { label: "Homepage".into(), href: home });
        }
        Metadata {
            summary: first("Summary").unwrap_or_default(),
            keywords,
            requires_python: first("Requires-Python"),
            requires,
            links,
            license: first("License-Expression").or_else(|| first("License").filter(|l| !l.contains('\n'))),
        }
    }
}

#[derive(Serialize)]
pub(super) struct PageView<'a> {
    /// The key this page was rendered from (set once computed).
    pub(super) key: String,
    pub(super) mirror: &'a str,
    pub(super) name: &'a str,
    pub(super) summary: String,
    pub(super) keywords: Vec<String>,
    pub(super) license: Option<String>,
    pub(super) links: Vec<Link>,
    pub(super) newest: String,
    /// PEP 792, when the upstream marks the project other than active.
    pub(super) status: Option<&'a str>,
    pub(super) status_reason: Option<&'a str>,
    pub(super) index_url: Option<&'a str>,
    /// The version the README, summary and dependencies are of.
    pub(super) described: Option<String>,
    /// The description as safe HTML (rendered only when the page is).
    pub(super) readme: Option<String>,
    /// What the README is rendered from: part of the key in its place.
    pub(super) readme_source: Option<String>,
    pub(super) requires_python: Option<String>,
    pub(super) dependencies: Vec<Requirement>,
    pub(super) dependents: Vec<Link>,
    pub(super) publishers: Vec<String>,
    pub(super) versions: Vec<VersionRow>,
    pub(super) vulnerable: usize,
    pub(super) held: Vec<&'a HeldView>,
    pub(super) withdrawn: Vec<&'a WithdrawnView>,
}

#[derive(Serialize)]
pub(super) struct VersionRow {
    pub(super) version: String,
    pub(super) id: String,
    pub(super) uploaded: Option<String>,
    pub(super) yanked: bool,
    /// Blocked by the policy: its files are not served.
    pub(super) blocked: bool,
    pub(super) upgrade_to: Option<String>,
    pub(super) advisories: Vec<Advisory>,
    pub(super) files: Vec<FileRow>,
}

#[derive(Serialize)]
pub(super) struct Advisory {
    pub(super) id: String,
    pub(super) severity: String,
    pub(super) summary: String,
    pub(super) href: String,
    pub(super) ignored: bool,
}

#[derive(Serialize)]
pub(super) struct FileRow {
    pub(super) filename: String,
    pub(super) href: String,
    pub(super) size: String,
    pub(super) sha256: String,
    pub(super) tags: String,
    pub(super) requires_python: Option<String>,
    pub(super) uploaded: Option<String>,
    /// Yanked, and why (PEP 592: the reason may be empty).
    pub(super) yanked: bool,
    pub(super) yanked_reason: String,
    pub(super) publisher: Option<String>,
}

pub(super) fn time(t: Option<jiff::Timestamp>) -> Option<String> {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

pub(super) fn tags(f: &DistFilename) -> String {
    match f {
        DistFilename::Wheel(w) => format!("{}-{}-{}", w.python.join("."), w.abi.join("."), w.platform.join(".")),
        DistFilename::Sdist(_) => "source".to_string(),
    }
}

pub(super) fn page_href(project: &ProjectName) -> String {
    format!("../{project}/index.html")
}

impl<'a> PageView<'a> {
    /// The key of everything the page shows (the README by its source), of
    /// the templates it is rendered with and of the airlock rendering it.
    pub fn key(&self, templates: &str) -> String {
        use std::io::Write;
        // Streamed into the hash: the view is never held as JSON. Plain
        // data into a sink: neither can fail.
        let mut h = crate::util::hashing::HashingWriter::new(std::io::sink());
        let _ = serde_json::to_writer(&mut h, self);
        let _ = h.write_all(templates.as_bytes());
        // The README renderer is code, not a template: a new airlock renders
        // every page again, as it does every tree (`inputs_key`).
        let _ = h.write_all(env!("CARGO_PKG_VERSION").as_bytes());
        h.finish().1.hex()
    }
}
