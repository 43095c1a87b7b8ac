//! Rendering the static tree: PEP 503 HTML and PEP 691 JSON simple pages
//! (with PEP 592, 629, 658/714 and 700 fields), `packages/` with each
//! wheel's `.metadata`, and the landing page.
//!
//! Every link is relative, so the tree can be moved, served from a sub-path
//! or opened from `file://`. Pages are rendered in parallel and the listing
//! of what was written is sorted by path, so identical inputs give
//! byte-identical trees and listings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rayon::prelude::*;
use serde::Serialize;

use super::templates::{TemplateError, Templates};
use crate::advisories::severity::Severity;
use crate::dist::Version;
use crate::dist::file::FileFacts;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::tree::{Recycled, TreeEntry, TreeError, place_in, write_entry, write_page_in};
use crate::upstream::wire;
use crate::util::hashing::Sha256;
use crate::util::ui::human_bytes;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// One artifact as the tree shows it.
#[derive(Debug, Clone)]
pub struct SiteFile {
    pub project: ProjectName,
    pub filename: DistFilename,
    pub sha256: Sha256,
    pub size: u64,
    pub facts: FileFacts,
    pub metadata: Option<(Sha256, u64)>,
    /// Where the verified bytes are (hard-linked, or copied across file systems).
    pub source: PathBuf,
    /// One layout: the bytes are in the bucket under the key the tree
    /// lists, not at `source`; the tree lists the file and holds no copy.
    pub in_bucket: bool,
    pub metadata_source: Option<PathBuf>,
    /// `source`'s device and inode, when the caller has stat'd it already:
    /// a recycled tree's link is compared with it without another `stat`.
    pub source_inode: Option<(u64, u64)>,
    /// The file's verified PEP 740 provenance, kept beside it in the store.
    pub provenance_source: Option<PathBuf>,
    /// Listed in the simple index. Unlisted files stay in `packages/` for a
    /// grace period so clients holding an older page never get a 404.
    pub listed: bool,
}

impl SiteFile {
    pub fn version(&self) -> &Version {
        self.filename.version()
    }
}

/// A vulnerable version, as the landing page marks it.
#[derive(Debug, Clone, Serialize)]
pub struct VulnMark {
    pub version: String,
    /// The highest severity of its advisories.
    pub severity: Severity,
    pub advisories: usize,
    pub blocked: bool,
    /// Its findings in the security report.
    pub href: String,
}

/// The id of a version's findings in `reports/security.html`, which the
/// landing page links to.
pub fn version_anchor(project: &str, version: &str) -> String {
    let safe = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c } else { '-' }).collect()
    };
    format!("v-{}-{}", safe(project), safe(version))
}

/// What the landing page shows of the security report.
#[derive(Debug, Clone, Default)]
pub struct SecuritySummary {
    pub banner: Option<String>,
    pub vulnerable_versions: usize,
    pub blocked_versions: usize,
    pub snapshot: String,
    pub marks: BTreeMap<ProjectName, Vec<VulnMark>>,
}

#[derive(Debug, Clone)]
pub struct SiteInfo {
    pub name: String,
    pub upstream: Option<String>,
    pub generated_at: jiff::Timestamp,
    /// The installability matrix (empty when not checked).
    pub environments: Vec<EnvStatus>,
    /// The simple index's URL where the tree is served (`[mirror]
    /// base_url`), for the install commands.
    pub index_url: Option<String>,
    /// Requested projects of which nothing is listed, and why.
    pub unselected: Vec<Unselected>,
    /// Releases the admission gate holds back, and files withdrawn.
    pub held: usize,
    pub withdrawn: usize,
    /// Served files with verified PEP 740 provenance ("12 of 40"), when any.
    pub attested: Option<String>,
    /// The pages for people are written (`projects/`): the landing page links there.
    pub project_pages: bool,
}

/// A requested project the index does not list, as the landing page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Unselected {
    pub name: String,
    pub note: String,
}

/// A target environment's installability, as the landing page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EnvStatus {
    pub name: String,
    pub ok: bool,
    pub note: String,
}

/// Characters left as-is in hrefs. `+` and `!` are encoded: S3 decodes a raw
/// `+` in a key path as a space.
pub(crate) const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

#[derive(Serialize)]
struct RootView<'a> {
    api_version: &'a str,
    projects: Vec<RootLink>,
}

#[derive(Serialize)]
struct RootLink {
    name: String,
    href: String,
}

#[derive(Serialize)]
struct ProjectView<'a> {
    api_version: &'a str,
    name: &'a str,
    /// PEP 792, when the upstream marks the project other than active.
    status: Option<&'a str>,
    status_reason: Option<&'a str>,
    files: Vec<FileView>,
}

#[derive(Serialize)]
struct FileView {
    filename: String,
    href: String,
    requires_python: Option<String>,
    yanked: bool,
    yanked_reason: String,
    metadata_sha256: Option<String>,
    /// PEP 740: the absolute URL of the file's provenance.
    provenance: Option<String>,
}

const PROJECT_TEMPLATE: &str = "simple_project.html";

/// The built-in `simple_project.html`, written directly: one page per
/// project made tera (a context built from the view, then escaping byte by
/// byte through a `dyn Write`) an eighth of a large index's time. The
/// bytes are tera's own, escaping included, which a test holds for pages
/// with every optional attribute and every escaped character; an
/// overridden template still goes through tera.
/// Tera's escape_html, appended to `out`: these five characters, nothing
/// else (the built-in pages' bytes are tera's own).
pub(crate) fn escape_html_into(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

fn builtin_project_page(view: &ProjectView<'_>) -> String {
    let escape = escape_html_into;
    fn truthy(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|s| !s.is_empty())
    }
    let mut out = String::with_capacity(300 + view.files.len() * 240);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"pypi:repository-version\" content=\"");
    escape(&mut out, view.api_version);
    out.push_str("\">\n");
    if let Some(status) = view.status.filter(|s| !s.is_empty()) {
        out.push_str("<meta name=\"pypi:project-status\" content=\"");
        escape(&mut out, status);
        out.push_str("\">\n");
        if let Some(reason) = view.status_reason.filter(|s| !s.is_empty()) {
            out.push_str("<meta name=\"pypi:project-status-reason\" content=\"");
            escape(&mut out, reason);
            out.push_str("\">\n");
        }
    }
    out.push_str("<title>Links for ");
    escape(&mut out, view.name);
    out.push_str("</title>\n</head>\n<body>\n<h1>Links for ");
    escape(&mut out, view.name);
    out.push_str("</h1>\n");
    for f in &view.files {
        out.push_str("<a href=\"");
        escape(&mut out, &f.href);
        out.push('"');
        if let Some(rp) = truthy(&f.requires_python) {
            out.push_str(" data-requires-python=\"");
            escape(&mut out, rp);
            out.push('"');
        }
        if f.yanked {
            out.push_str(" data-yanked=\"");
            escape(&mut out, &f.yanked_reason);
            out.push('"');
        }
        if let Some(sha) = truthy(&f.metadata_sha256) {
            for attr in [" data-core-metadata=\"sha256=", "\" data-dist-info-metadata=\"sha256="] {
                out.push_str(attr);
                escape(&mut out, sha);
            }
            out.push('"');
        }
        if let Some(url) = truthy(&f.provenance) {
            out.push_str(" data-provenance=\"");
            escape(&mut out, url);
            out.push('"');
        }
        out.push('>');
        escape(&mut out, &f.filename);
        out.push_str("</a><br>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[derive(Serialize)]
struct LandingView<'a> {
    name: &'a str,
    generated_at: String,
    upstream: Option<&'a str>,
    counts: Counts,
    projects: Vec<LandingProject>,
    security: Option<LandingSecurity<'a>>,
    environments: &'a [EnvStatus],
    index_url: Option<&'a str>,
    unselected: &'a [Unselected],
    held: usize,
    withdrawn: usize,
    attested: Option<&'a str>,
    project_pages: bool,
}

#[derive(Serialize)]
struct Counts {
    projects: usize,
    versions: usize,
    files: usize,
    size: String,
}

#[derive(Serialize)]
struct LandingProject {
    name: String,
    href: String,
    versions: usize,
    newest: String,
    files: usize,
    vulnerable: Vec<VulnMark>,
    /// PEP 792, when the upstream marks the project other than active.
    status: Option<String>,
}

#[derive(Serialize)]
struct LandingSecurity<'a> {
    banner: Option<&'a str>,
    vulnerable_versions: usize,
    blocked_versions: usize,
    snapshot: &'a str,
}

/// JSON of a wire struct: plain data, whose serialization cannot fail.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn project_files(files: &[SiteFile]) -> BTreeMap<&ProjectName, Vec<&SiteFile>> {
    let mut by_project: BTreeMap<&ProjectName, Vec<&SiteFile>> = BTreeMap::new();
    for f in files {
        by_project.entry(&f.project).or_default().push(f);
    }
    for list in by_project.values_mut() {
        list.sort_by(|a, b| a.version().cmp(b.version()).then_with(|| a.filename.as_str().cmp(b.filename.as_str())));
    }
    by_project
}

/// Render the complete tree into `out` (an empty staging directory).
pub fn render_site(
    files: &[SiteFile],
    info: &SiteInfo,
    security: Option<&SecuritySummary>,
    templates: &Templates,
    (out, recycled): Out<'_>,
) -> Result<Vec<TreeEntry>, RenderError> {
    let mut site = SiteRender::new(templates, out).with_recycled(recycled);
    site.projects(files)?;
    site.finish(info, security)
}

/// What the root pages and the landing page show of one listed project.
struct ProjectSummary {
    name: ProjectName,
    versions: usize,
    newest: Option<Version>,
    files: usize,
    size: u64,
}

/// A tree rendered a batch of projects at a time: only a batch's files and
/// one summary per project are in memory, whatever the size of the mirror
/// (a publish streams the state's rows through it).
pub struct SiteRender<'a> {
    templates: &'a Templates,
    out: &'a Path,
    entries: Vec<TreeEntry>,
    listed: Vec<ProjectSummary>,
    /// PEP 792 statuses the upstream gives, passed through on every page.
    statuses: Option<&'a Statuses>,
    /// Where the tree is served: PEP 740 needs absolute provenance URLs.
    base_url: Option<&'a url::Url>,
    /// What `out` already holds, when it is a recycled tree.
    recycled: Option<&'a Recycled>,
}

/// Projects the upstream marks other than active, by name.
pub type Statuses = std::collections::BTreeMap<ProjectName, crate::upstream::listing::ProjectStatus>;

impl<'a> SiteRender<'a> {
    pub fn new(templates: &'a Templates, out: &'a Path) -> SiteRender<'a> {
        SiteRender::with_capacity(templates, out, 0)
    }

    /// Room for `entries` listing entries up front: a large tree's listing
    /// then never doubles (and copies) its way there.
    pub fn with_capacity(templates: &'a Templates, out: &'a Path, entries: usize) -> SiteRender<'a> {
        SiteRender {
            templates,
            out,
            entries: Vec::with_capacity(entries),
            listed: Vec::new(),
            statuses: None,
            base_url: None,
            recycled: None,
        }
    }

    /// `out` is a recycled tree holding these files ([`crate::tree::Target::stage_recycling`]).
    pub fn with_recycled(mut self, recycled: Option<&'a Recycled>) -> SiteRender<'a> {
        self.recycled = recycled;
        self
    }

    /// Give pages the provenance URLs under `base`.
    pub fn with_base_url(mut self, base: Option<&'a url::Url>) -> SiteRender<'a> {
        self.base_url = base;
        self
    }

    /// Pass PEP 792 statuses through to the project pages.
    pub fn with_statuses(mut self, statuses: &'a Statuses) -> SiteRender<'a> {
        self.statuses = Some(statuses);
        self
    }

    /// Render a batch of files: every file of each project in it (a project
    /// is never split across batches), and no project of an earlier batch.
    pub fn projects(&mut self, files: &[SiteFile]) -> Result<(), RenderError> {
        let projects: Vec<(&ProjectName, Vec<&SiteFile>)> = project_files(files).into_iter().collect();
        // Parallel per project; each returns its own entries, sorted in `finish`.
        let per_project: Vec<Vec<TreeEntry>> = projects
            .par_iter()
            .map(|(project, files)| {
                let status = self.statuses.and_then(|s| s.get(*project));
                render_project(project, files, (status, self.base_url), self.templates, (self.out, self.recycled))
            })
            .collect::<Result<_, _>>()?;
        self.entries.extend(per_project.into_iter().flatten());
        crate::util::fault::point("render");
        for (project, fs) in projects {
            let listed: Vec<&SiteFile> = fs.into_iter().filter(|f| f.listed).collect();
            let status = self.statuses.and_then(|s| s.get(project));
            if listed.is_empty() || crate::upstream::listing::ProjectStatus::quarantined(status) {
                continue;
            }
            let versions: std::collections::BTreeSet<&Version> = listed.iter().map(|f| f.version()).collect();
            self.listed.push(ProjectSummary {
                name: project.clone(),
                versions: versions.len(),
                newest: versions.last().map(|v| (*v).clone()),
                files: listed.len(),
                size: listed.iter().map(|f| f.size).sum(),
            });
        }
        Ok(())
    }

    /// The root pages and the landing page; the listing of the whole tree.
    pub fn finish(
        mut self,
        info: &SiteInfo,
        security: Option<&SecuritySummary>,
    ) -> Result<Vec<TreeEntry>, RenderError> {
        let (out, templates) = (self.out, self.templates);
        self.listed.sort_by(|a, b| a.name.cmp(&b.name));
        // A quarantined project none of whose files is in the tree still
        // gets its page: the status, and no files.
        // One pass over the entries for all of them (not one per status).
        let quarantined: Vec<_> = (self.statuses.into_iter().flatten())
            .filter(|(_, s)| crate::upstream::listing::ProjectStatus::quarantined(Some(s)))
            .collect();
        if !quarantined.is_empty() {
            let paged: std::collections::HashSet<&str> = self.entries.iter().map(|e| e.path.as_str()).collect();
            let mut pages = Vec::new();
            for (project, status) in quarantined {
                if !paged.contains(format!("simple/{project}/index.v1_json").as_str()) {
                    pages.extend(render_project(project, &[], (Some(status), None), templates, (out, self.recycled))?);
                }
            }
            self.entries.extend(pages);
        }
        let listed = &self.listed;
        let root = RootView {
            api_version: wire::API_VERSION,
            projects: listed
                .iter()
                .map(|p| RootLink { name: p.name.to_string(), href: format!("{}/", p.name) })
                .collect(),
        };
        self.entries.push(write_entry(
            out,
            "simple/index.html",
            templates.render("simple_root.html", &root)?.as_bytes(),
        )?);
        let root_json = wire::RootPage {
            meta: wire::Meta::default(),
            projects: listed.iter().map(|p| wire::RootProject { name: p.name.to_string() }).collect(),
        };
        self.entries.push(write_entry(out, "simple/index.v1_json", &to_json(&root_json))?);

        let generated_at = info.generated_at.strftime("%Y-%m-%d %H:%M UTC").to_string();
        let landing = LandingView {
            name: &info.name,
            generated_at,
            upstream: info.upstream.as_deref(),
            counts: Counts {
                projects: listed.len(),
                versions: listed.iter().map(|p| p.versions).sum(),
                files: listed.iter().map(|p| p.files).sum(),
                size: human_bytes(listed.iter().map(|p| p.size).sum()),
            },
            projects: listed
                .iter()
                .map(|p| LandingProject {
                    name: p.name.to_string(),
                    href: match info.project_pages {
                        true => format!("projects/{}/index.html", p.name),
                        false => format!("simple/{}/", p.name),
                    },
                    versions: p.versions,
                    newest: p.newest.as_ref().map(ToString::to_string).unwrap_or_default(),
                    files: p.files,
                    vulnerable: security.and_then(|s| s.marks.get(&p.name).cloned()).unwrap_or_default(),
                    status: self.statuses.and_then(|s| s.get(&p.name)).map(|s| s.status.as_str().to_string()),
                })
                .collect(),
            environments: &info.environments,
            index_url: info.index_url.as_deref(),
            unselected: &info.unselected,
            held: info.held,
            withdrawn: info.withdrawn,
            attested: info.attested.as_deref(),
            project_pages: info.project_pages,
            security: security.map(|s| LandingSecurity {
                banner: s.banner.as_deref(),
                vulnerable_versions: s.vulnerable_versions,
                blocked_versions: s.blocked_versions,
                snapshot: &s.snapshot,
            }),
        };
        self.entries.push(write_entry(out, "index.html", templates.render("landing.html", &landing)?.as_bytes())?);
        // Paths are unique in a tree, so an unstable sort is as deterministic.
        self.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(self.entries)
    }
}

/// A file's verified provenance placed beside it, when it has one.
fn provenance_beside(f: &SiteFile, rel: &str, out: Out<'_>) -> Result<Option<TreeEntry>, RenderError> {
    let Some(src) = &f.provenance_source else { return Ok(None) };
    let rel = format!("{rel}.provenance");
    let (sha, size) = crate::util::hashing::hash_file(src).map_err(TreeError::from)?;
    place_in(out.1, (src, None), out.0, &rel)?;
    Ok(Some(TreeEntry { path: rel, sha256: sha, size }))
}

/// The tree being written, and what it already holds when it is recycled.
type Out<'a> = (&'a Path, Option<&'a Recycled>);

/// One file of a project into the tree, with what lies beside it; under
/// one layout the file itself is listed but not placed (it is in the bucket).
fn place_file(
    project: &ProjectName,
    f: &SiteFile,
    out: Out<'_>,
    entries: &mut Vec<TreeEntry>,
) -> Result<(), RenderError> {
    let rel = format!("packages/{project}/{}", f.filename);
    if !f.in_bucket {
        place_in(out.1, (&f.source, f.source_inode), out.0, &rel)?;
    }
    entries.push(TreeEntry { path: rel.clone(), sha256: f.sha256, size: f.size });
    if let (Some((sha, size)), Some(src)) = (f.metadata, &f.metadata_source) {
        let rel = format!("{rel}.metadata");
        place_in(out.1, (src, None), out.0, &rel)?;
        entries.push(TreeEntry { path: rel, sha256: sha, size });
    }
    entries.extend(provenance_beside(f, &rel, out)?);
    Ok(())
}

fn render_project(
    project: &ProjectName,
    files: &[&SiteFile],
    (status, base): (Option<&crate::upstream::listing::ProjectStatus>, Option<&url::Url>),
    templates: &Templates,
    (out, recycled): Out<'_>,
) -> Result<Vec<TreeEntry>, RenderError> {
    let mut entries = Vec::with_capacity(files.len() * 2 + 2);
    // The project's directories are made first, once each, unless a
    // recycled tree holds them: letting the first link or write fail for
    // want of one cost a failed system call per directory.
    let dir = |top: &str| {
        let rel = format!("{top}/{project}");
        if recycled.is_some_and(|r| r.has_dir(&rel)) {
            return Ok(());
        }
        fs_err::create_dir_all(out.join(rel)).map_err(TreeError::from)
    };
    if !files.is_empty() {
        dir("packages")?;
    }
    for f in files {
        place_file(project, f, (out, recycled), &mut entries)?;
    }
    let listed: Vec<&&SiteFile> = files.iter().filter(|f| f.listed).collect();
    // A quarantined project has a page with its status and no files (PEP
    // 792), so clients say why instead of "not found".
    let quarantined = crate::upstream::listing::ProjectStatus::quarantined(status);
    let listed = if quarantined { Vec::new() } else { listed };
    if listed.is_empty() && !quarantined {
        return Ok(entries);
    }
    dir("simple")?;
    let href = |f: &SiteFile| format!("../../packages/{project}/{}", encode(f.filename.as_str()));
    let attested = listed.iter().any(|f| f.provenance_source.is_some());
    let api_version = if status.is_some() || attested { wire::API_VERSION_STATUS } else { wire::API_VERSION };
    // PEP 740 wants a fully qualified URL: without `base_url`, none.
    let provenance_url = |f: &SiteFile| {
        let base = base?;
        f.provenance_source.as_ref()?;
        base.join(&format!("packages/{project}/{}.provenance", encode(f.filename.as_str()))).ok().map(|u| u.to_string())
    };
    let view = ProjectView {
        api_version,
        name: project.as_str(),
        status: status.map(|s| s.status.as_str()),
        status_reason: status.and_then(|s| s.reason.as_deref()),
        files: listed
            .iter()
            .map(|f| FileView {
                filename: f.filename.to_string(),
                href: format!("{}#sha256={}", href(f), f.sha256),
                requires_python: f.facts.requires_python.as_ref().map(|rp| rp.as_str().to_string()),
                yanked: f.facts.yanked.is_yanked(),
                yanked_reason: f.facts.yanked.reason().unwrap_or_default().to_string(),
                metadata_sha256: f.metadata.map(|m| m.0.hex()),
                provenance: provenance_url(f),
            })
            .collect(),
    };
    let html = match templates.is_builtin(PROJECT_TEMPLATE) {
        true => builtin_project_page(&view),
        false => templates.render(PROJECT_TEMPLATE, &view)?,
    };
    entries.push(write_page_in(recycled, out, &format!("simple/{project}/index.html"), html.as_bytes())?);

    let mut versions: Vec<&Version> = listed.iter().map(|f| f.version()).collect();
    versions.dedup();
    let page = wire::ProjectPage {
        meta: wire::Meta { api_version: api_version.to_string(), last_serial: None },
        name: project.to_string(),
        files: listed
            .iter()
            .map(|f| {
                let meta =
                    f.metadata.map(|m| wire::CoreMetadata::Hashes(BTreeMap::from([("sha256".to_string(), m.0.hex())])));
                wire::File {
                    filename: f.filename.to_string(),
                    url: href(f),
                    hashes: BTreeMap::from([("sha256".to_string(), f.sha256.hex())]),
                    requires_python: f.facts.requires_python.as_ref().map(|rp| rp.as_str().to_string()),
                    yanked: wire::Yanked::from_reason(f.facts.yanked.reason()),
                    size: Some(f.size),
                    upload_time: f.facts.upload_time.map(|t| t.to_string()),
                    core_metadata: Some(meta.clone().unwrap_or(wire::CoreMetadata::Flag(false))),
                    dist_info_metadata: Some(meta.unwrap_or(wire::CoreMetadata::Flag(false))),
                    provenance: provenance_url(f),
                }
            })
            .collect(),
        versions: Some(versions.iter().map(|v| v.to_string()).collect()),
        project_status: status
            .map(|s| wire::ProjectStatus { status: s.status.as_str().to_string(), reason: s.reason.clone() }),
    };
    entries.push(write_page_in(recycled, out, &format!("simple/{project}/index.v1_json"), &to_json(&page))?);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(filename: &str, rp: Option<&str>, yanked: Option<&str>, meta: Option<&str>) -> FileView {
        FileView {
            filename: filename.into(),
            href: format!("../../packages/p/{filename}#sha256=00ff"),
            requires_python: rp.map(Into::into),
            yanked: yanked.is_some(),
            yanked_reason: yanked.unwrap_or_default().into(),
            metadata_sha256: meta.map(Into::into),
            provenance: meta.map(|m| format!("https://m.example/packages/p/{filename}.provenance?{m}")),
        }
    }

    fn both(view: &ProjectView<'_>) -> (String, String) {
        let templates = Templates::new(None).unwrap();
        (templates.render(PROJECT_TEMPLATE, view).unwrap(), builtin_project_page(view))
    }

    #[test]
    fn builtin_project_page_is_the_templates_bytes() {
        let views = [
            ProjectView { api_version: "1.1", name: "empty", status: None, status_reason: None, files: vec![] },
            ProjectView {
                api_version: "1.4",
                name: "q",
                status: Some("quarantined"),
                status_reason: Some("malware <script>"),
                files: vec![],
            },
            ProjectView { api_version: "1.4", name: "a", status: Some("archived"), status_reason: None, files: vec![] },
            ProjectView {
                api_version: "1.1",
                name: "p",
                status: None,
                status_reason: None,
                files: vec![
                    file("p-1.0.tar.gz", None, None, None),
                    file("p-1.0-py3-none-any.whl", Some(">=3.8, <4"), Some("broken \"build\" & 'more'"), Some("ab")),
                    // Empty strings are false in tera: no attribute at all.
                    file("p-2.0.tar.gz", Some(""), Some(""), Some("")),
                    file("p<&>\"'.tar.gz", Some("<3"), None, Some("x")),
                ],
            },
        ];
        for view in &views {
            let (tera, ours) = both(view);
            assert_eq!(ours, tera);
        }
    }

    proptest! {
        #[test]
        fn builtin_project_page_matches_tera_on_any_text(
            name in ".{0,12}",
            fields in proptest::collection::vec(
                (".{0,12}", proptest::option::of(".{0,8}"), proptest::option::of(".{0,8}"), proptest::option::of("[a-f0-9<&\"]{0,4}")),
                0..4,
            ),
        ) {
            let files = fields
                .iter()
                .map(|(f, rp, y, m)| file(f, rp.as_deref(), y.as_deref(), m.as_deref()))
                .collect();
            let (tera, ours) = both(&ProjectView { api_version: "1.1", name: &name, status: None, status_reason: None, files });
            prop_assert_eq!(ours, tera);
        }
    }

    #[test]
    fn an_overridden_project_template_is_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROJECT_TEMPLATE), "custom {{ name }}").unwrap();
        let templates = Templates::new(Some(dir.path())).unwrap();
        assert!(!templates.is_builtin(PROJECT_TEMPLATE) && templates.is_builtin("landing.html"));
        let out = tempfile::tempdir().unwrap();
        let src = out.path().join("p-1.0.tar.gz");
        std::fs::write(&src, b"x").unwrap();
        let f = SiteFile {
            project: "p".parse().unwrap(),
            filename: DistFilename::parse("p-1.0.tar.gz", None).unwrap(),
            sha256: crate::util::hashing::Sha256::of(b"x"),
            size: 1,
            facts: Default::default(),
            metadata: None,
            source: src,
            metadata_source: None,
            provenance_source: None,
            source_inode: None,
            in_bucket: false,
            listed: true,
        };
        render_project(&f.project, &[&f], (None, None), &templates, (&out.path().join("tree"), None)).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("tree/simple/p/index.html")).unwrap(), "custom p");
    }
}
