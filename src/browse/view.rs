//! A project page as its template sees it: typed view structs built from the
//! served files, the newest core metadata, the audit, the gate and the
//! verified publishers. Every string from upstream reaches the page through
//! tera's escaping; only the README, sanitised by `readme`, is inserted as
//! HTML, and only `http(s)` URLs become links.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Pages;
use crate::audit::report::admission::{HeldView, WithdrawnView};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::index::SiteFile;

/// How a page names the key it was rendered from, in its head.
pub(super) const KEY_META: &str = "<meta name=\"airlock:page\" content=\"";

/// What a page shows of core metadata (PEP 566/643), parsed leniently:
/// whatever does not parse is shown as written, never guessed at.
#[derive(Debug, Default)]
pub(super) struct Metadata {
    pub summary: String,
    pub keywords: Vec<String>,
    pub requires_python: Option<String>,
    pub requires: Vec<Requirement>,
    pub links: Vec<Link>,
    pub license: Option<String>,
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
    pub fn parse(bytes: &[u8]) -> Metadata {
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
    pub key: String,
    mirror: &'a str,
    name: &'a str,
    summary: String,
    keywords: Vec<String>,
    license: Option<String>,
    links: Vec<Link>,
    newest: String,
    /// PEP 792, when the upstream marks the project other than active.
    status: Option<&'a str>,
    status_reason: Option<&'a str>,
    index_url: Option<&'a str>,
    /// The version the README, summary and dependencies are of.
    described: Option<String>,
    /// The description as safe HTML (rendered only when the page is).
    pub readme: Option<String>,
    /// What the README is rendered from: part of the key in its place.
    readme_source: Option<String>,
    requires_python: Option<String>,
    dependencies: Vec<Requirement>,
    dependents: Vec<Link>,
    publishers: Vec<String>,
    versions: Vec<VersionRow>,
    vulnerable: usize,
    held: Vec<&'a HeldView>,
    withdrawn: Vec<&'a WithdrawnView>,
}

#[derive(Serialize)]
struct VersionRow {
    version: String,
    id: String,
    uploaded: Option<String>,
    yanked: bool,
    /// Blocked by the policy: its files are not served.
    blocked: bool,
    upgrade_to: Option<String>,
    advisories: Vec<Advisory>,
    files: Vec<FileRow>,
}

#[derive(Serialize)]
struct Advisory {
    id: String,
    severity: String,
    summary: String,
    href: String,
    ignored: bool,
}

#[derive(Serialize)]
struct FileRow {
    filename: String,
    href: String,
    size: String,
    sha256: String,
    tags: String,
    requires_python: Option<String>,
    uploaded: Option<String>,
    yanked: Option<String>,
    publisher: Option<String>,
}

fn time(t: Option<jiff::Timestamp>) -> Option<String> {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
}

fn tags(f: &DistFilename) -> String {
    match f {
        DistFilename::Wheel(w) => format!("{}-{}-{}", w.python.join("."), w.abi.join("."), w.platform.join(".")),
        DistFilename::Sdist(_) => "source".to_string(),
    }
}

fn page_href(project: &ProjectName) -> String {
    format!("../{project}/index.html")
}

impl<'a> PageView<'a> {
    /// The page of `project` from its listed files (newest first) and the
    /// metadata of `described`; the README is left for the caller.
    pub fn of(
        pages: &'a Pages<'a>,
        project: &'a ProjectName,
        files: &[&SiteFile],
        described: Option<(&SiteFile, &[u8])>,
    ) -> PageView<'a> {
        let meta = described.map(|(_, b)| Metadata::parse(b)).unwrap_or_default();
        let entry = pages.catalog.entries.get(project);
        let status = pages.inputs.statuses.get(project);
        let publishers = pages.inputs.publishers;
        let audited = pages.audit.get(project).map(Vec::as_slice).unwrap_or_default();
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, crate::index::render::PATH_SEGMENT).to_string();
        // Versions newest first: the served files', and the blocked ones
        // (no file served, said why).
        let mut versions: BTreeMap<crate::dist::Version, VersionRow> = BTreeMap::new();
        for f in files {
            let row = versions.entry(f.version().clone()).or_insert_with(|| VersionRow {
                version: f.version().to_string(),
                id: crate::index::version_anchor(project.as_str(), &f.version().to_string()),
                uploaded: None,
                yanked: true,
                blocked: false,
                upgrade_to: None,
                advisories: Vec::new(),
                files: Vec::new(),
            });
            row.yanked &= f.facts.yanked.is_yanked();
            row.uploaded = row.uploaded.take().max(time(f.facts.upload_time));
            row.files.push(FileRow {
                filename: f.filename.to_string(),
                href: format!("../../packages/{project}/{}", encode(f.filename.as_str())),
                size: crate::util::ui::human_bytes(f.size),
                sha256: f.sha256.hex(),
                tags: tags(&f.filename),
                requires_python: f.facts.requires_python.as_ref().map(|r| r.as_str().to_string()),
                uploaded: time(f.facts.upload_time),
                yanked: f.facts.yanked.is_yanked().then(|| f.facts.yanked.reason().unwrap_or_default().to_string()),
                publisher: crate::audit::report::provenance::publisher_of(publishers, project, f.filename.as_str())
                    .map(ToString::to_string),
            });
        }
        let mut vulnerable = 0;
        for v in audited {
            if !versions.contains_key(&v.version) && !v.blocked {
                continue;
            }
            let row = versions.entry(v.version.clone()).or_insert_with(|| VersionRow {
                version: v.version.to_string(),
                id: crate::index::version_anchor(project.as_str(), &v.version.to_string()),
                uploaded: None,
                yanked: false,
                blocked: true,
                upgrade_to: None,
                advisories: Vec::new(),
                files: Vec::new(),
            });
            row.blocked = v.blocked;
            row.upgrade_to = v.upgrade_to.as_ref().map(ToString::to_string);
            row.advisories = v
                .findings
                .iter()
                .map(|a| Advisory {
                    id: a.id.clone(),
                    severity: if a.malicious { "malicious".into() } else { a.severity.to_string() },
                    summary: a.summary.clone(),
                    href: format!("../../reports/security.html#{}", row.id),
                    ignored: a.ignored.is_some(),
                })
                .collect();
            vulnerable += usize::from(v.active().next().is_some());
        }
        let mut shown: Vec<String> = files
            .iter()
            .filter_map(|f| crate::audit::report::provenance::publisher_of(publishers, project, f.filename.as_str()))
            .map(ToString::to_string)
            .collect();
        shown.sort();
        shown.dedup();
        let dependencies = meta
            .requires
            .into_iter()
            .map(|mut r| {
                r.href = r.name.as_ref().filter(|n| pages.catalog.contains(n)).map(page_href);
                r
            })
            .collect();
        PageView {
            key: String::new(),
            mirror: pages.site.name,
            name: project.as_str(),
            summary: meta.summary,
            keywords: meta.keywords,
            license: meta.license,
            links: meta.links,
            newest: entry.and_then(|e| e.newest.as_ref()).map(ToString::to_string).unwrap_or_default(),
            status: status.map(|s| s.status.as_str()),
            status_reason: status.and_then(|s| s.reason.as_deref()),
            index_url: pages.site.index_url,
            described: described.map(|(f, _)| f.version().to_string()),
            readme: None,
            readme_source: described.map(|(_, b)| crate::util::hashing::Sha256::of(b).hex()),
            requires_python: meta.requires_python,
            dependencies,
            dependents: entry
                .map(|e| &e.dependents[..])
                .unwrap_or_default()
                .iter()
                .map(|d| Link { label: d.to_string(), href: page_href(d) })
                .collect(),
            publishers: shown,
            versions: versions.into_values().rev().collect(),
            vulnerable,
            held: pages.held.get(project.as_str()).map(|h| h.iter().collect()).unwrap_or_default(),
            withdrawn: pages.withdrawn.get(project.as_str()).cloned().unwrap_or_default(),
        }
    }

    /// The key of everything the page shows (the README by its source), and
    /// of the templates it is rendered with.
    pub fn key(&self, templates: &str) -> String {
        // Plain data: serialization cannot fail.
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.extend_from_slice(templates.as_bytes());
        crate::util::hashing::Sha256::of(&bytes).hex()
    }
}
