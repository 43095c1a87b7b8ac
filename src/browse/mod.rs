//! Pages for people (`[mirror] project_pages`): `projects/<project>/index.html`
//! for every listed project, and `projects/index.html`, every project with a
//! search that runs in the browser over `projects/index.js` (a script file:
//! browsers load one from `file://`, where they refuse to fetch JSON).
//!
//! Two passes over the served files, a batch of projects at a time, so memory
//! is one batch plus a few facts per project whatever the mirror's size:
//! [`Catalog`] reads each project's newest core metadata (summary,
//! keywords, dependencies), which reverse dependencies and the search index
//! need before any page is written; [`Pages::batch`] then writes the pages.
//! A page carries the key of what it was rendered from, and a page whose key
//! is the served tree's is linked from that tree instead of rendered again
//! (only projects that changed cost a README render).

mod html;
pub mod readme;
pub(crate) mod view;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::audit::AuditedVersion;
use crate::audit::report::Inputs;
use crate::audit::report::admission::{HeldView, WithdrawnView};
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::index::{RenderError, SiteFile, Templates};
use crate::tree::{TreeEntry, TreeError, write_entry};

/// Longest summary and keyword line kept per project: the search index stays
/// small at tens of thousands of projects (a summary is one line on PyPI).
const SUMMARY_CHARS: usize = 160;
const KEYWORDS_CHARS: usize = 120;

/// What every page needs to know of every other project: one entry per
/// listed project, gathered before any page is rendered.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: BTreeMap<ProjectName, Entry>,
    /// Projects added whose metadata is not read yet.
    pending: Vec<Newest>,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    summary: String,
    keywords: String,
    newest: Option<Version>,
    versions: usize,
    /// Dependency names of the version whose metadata is read.
    deps: Vec<ProjectName>,
    /// Listed projects whose newest metadata depends on this one.
    dependents: Vec<ProjectName>,
}

/// A project's listed files, newest version first (within a version, by
/// filename): the order pages show.
fn listed_by_project(files: &[SiteFile]) -> Vec<(&ProjectName, Vec<&SiteFile>)> {
    crate::index::render::project_files(files)
        .into_iter()
        .map(|(p, fs)| {
            let mut fs: Vec<&SiteFile> = fs.into_iter().filter(|f| f.listed).collect();
            fs.reverse();
            (p, fs)
        })
        .filter(|(_, fs)| !fs.is_empty())
        .collect()
}

/// The core metadata a page describes its project by: the newest version's
/// that has a `.metadata` (wheels do), and that version.
fn newest_metadata<'f>(files: &[&'f SiteFile]) -> Option<(&'f SiteFile, Vec<u8>)> {
    files.iter().filter(|f| f.metadata_source.is_some()).find_map(|f| {
        let bytes = std::fs::read(f.metadata_source.as_ref()?).ok()?;
        Some((*f, bytes))
    })
}

fn cut(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", s[..i].trim_end()),
        None => s.to_string(),
    }
}

/// One project's listed versions and where the newest one's core metadata
/// is, as the catalog pass over the state's rows finds them.
#[derive(Debug)]
pub struct Newest {
    pub project: ProjectName,
    versions: Vec<Version>,
    metadata: Option<(Version, std::path::PathBuf)>,
}

impl Newest {
    pub fn of(project: ProjectName) -> Newest {
        Newest { project, versions: Vec::new(), metadata: None }
    }

    /// A listed file of the project, with its `.metadata` if it has one.
    pub fn see(&mut self, version: &Version, metadata: Option<std::path::PathBuf>) {
        if self.versions.last() != Some(version) {
            self.versions.push(version.clone());
        }
        if let Some(path) = metadata.filter(|_| self.metadata.as_ref().is_none_or(|(v, _)| version > v)) {
            self.metadata = Some((version.clone(), path));
        }
    }
}

/// Projects read at once, in parallel: enough for every core, and a bounded
/// number of metadata files in memory.
const CATALOG_BATCH: usize = 1024;

impl Catalog {
    /// Add a project (`None`: nothing); its metadata is read with a batch's.
    pub fn add(&mut self, project: Option<Newest>) {
        self.pending.extend(project);
        if self.pending.len() >= CATALOG_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        // Parallel per project (a metadata read each); collected into a
        // BTreeMap, so the order is the names', whatever the threads did.
        let entries: Vec<(ProjectName, Entry)> = pending
            .into_par_iter()
            .map(|mut n| {
                n.versions.sort();
                n.versions.dedup();
                let mut entry =
                    Entry { newest: n.versions.last().cloned(), versions: n.versions.len(), ..Entry::default() };
                if let Some(bytes) = n.metadata.and_then(|(_, path)| std::fs::read(path).ok()) {
                    let meta = view::Metadata::parse(&bytes);
                    entry.summary = cut(&meta.summary, SUMMARY_CHARS);
                    entry.keywords = cut(&meta.keywords.join(" "), KEYWORDS_CHARS);
                    entry.deps = meta.requires.iter().filter_map(|r| r.name.clone()).collect();
                    entry.deps.sort();
                    entry.deps.dedup();
                }
                (n.project, entry)
            })
            .collect();
        self.entries.extend(entries);
    }

    /// Reverse dependencies, once every project is in.
    pub fn finish(&mut self) {
        self.flush();
        let mut dependents: BTreeMap<ProjectName, Vec<ProjectName>> = BTreeMap::new();
        for (project, e) in &self.entries {
            for dep in e.deps.iter().filter(|d| *d != project && self.entries.contains_key(*d)) {
                dependents.entry(dep.clone()).or_default().push(project.clone());
            }
        }
        for (project, list) in dependents {
            if let Some(e) = self.entries.get_mut(&project) {
                e.dependents = list;
            }
        }
    }

    fn contains(&self, project: &ProjectName) -> bool {
        self.entries.contains_key(project)
    }
}

/// Where pages point a reader: the mirror's name and address.
pub struct Site<'a> {
    pub name: &'a str,
    /// `[mirror] base_url` + `simple/`, for the install commands.
    pub index_url: Option<&'a str>,
}

/// Everything a batch of project pages is rendered from, indexed by project
/// once per publish.
pub struct Pages<'a> {
    templates: &'a Templates,
    out: &'a Path,
    /// The served tree, whose unchanged pages are linked instead of rendered.
    previous: Option<&'a Path>,
    catalog: &'a Catalog,
    site: Site<'a>,
    audit: BTreeMap<&'a ProjectName, Vec<&'a AuditedVersion>>,
    held: BTreeMap<String, Vec<HeldView>>,
    withdrawn: BTreeMap<&'a str, Vec<&'a WithdrawnView>>,
    inputs: Inputs<'a>,
}

impl<'a> Pages<'a> {
    pub fn new(
        inputs: Inputs<'a>,
        catalog: &'a Catalog,
        site: Site<'a>,
        templates: &'a Templates,
        (out, previous): (&'a Path, Option<&'a Path>),
    ) -> Pages<'a> {
        let mut audit: BTreeMap<&ProjectName, Vec<&AuditedVersion>> = BTreeMap::new();
        for v in &inputs.audit.versions {
            audit.entry(&v.project).or_default().push(v);
        }
        let mut held: BTreeMap<String, Vec<HeldView>> = BTreeMap::new();
        for h in crate::audit::report::admission::held_views(inputs.diagnostics) {
            held.entry(h.project.clone()).or_default().push(h);
        }
        let mut withdrawn: BTreeMap<&str, Vec<&WithdrawnView>> = BTreeMap::new();
        for w in inputs.withdrawn {
            withdrawn.entry(w.project.as_str()).or_default().push(w);
        }
        Pages { templates, out, previous, catalog, site, audit, held, withdrawn, inputs }
    }

    /// The pages of a batch's projects (whole projects, as the render batches them).
    pub fn batch(&self, files: &[SiteFile]) -> Result<Vec<TreeEntry>, RenderError> {
        let projects = listed_by_project(files);
        // Parallel per project; the listing is sorted by the caller.
        projects
            .par_iter()
            .filter(|(p, _)| self.catalog.contains(p))
            .map(|(project, files)| self.page(project, files))
            .collect()
    }

    fn page(&self, project: &ProjectName, files: &[&SiteFile]) -> Result<TreeEntry, RenderError> {
        let rel = format!("projects/{project}/index.html");
        let meta = newest_metadata(files);
        let mut page = self.view_of(project, files, meta.as_ref().map(|(f, b)| (*f, b.as_slice())));
        let key = page.key(self.templates.digest());
        if let Some(old) = self.previous.map(|d| d.join(&rel)).filter(|old| page_key(old).as_deref() == Some(&key)) {
            let dst = self.out.join(&rel);
            fs_err::create_dir_all(dst.parent().unwrap_or(self.out)).map_err(TreeError::from)?;
            crate::tree::place(&old, &dst)?;
            let (sha256, size) = crate::util::hashing::hash_file(&dst).map_err(TreeError::from)?;
            return Ok(TreeEntry { path: rel, sha256, size });
        }
        page.key = key;
        if let Some((_, bytes)) = &meta {
            page.readme = readme::description(bytes).map(|(text, markup)| readme::render(&text, markup));
        }
        let html = match (self.templates.is_builtin("project.html"), self.templates.builtin_style()) {
            (true, Some(style)) => html::project_page(&page, style),
            _ => self.templates.render("project.html", &page)?,
        };
        Ok(write_entry(self.out, &rel, html.as_bytes())?)
    }

    /// Every version of the page, newest first: the served files' and the
    /// blocked ones, each with its advisories; and how many are vulnerable.
    fn version_rows(&self, project: &ProjectName, files: &[&SiteFile]) -> (Vec<view::VersionRow>, usize) {
        let publishers = self.inputs.publishers;
        let audited = self.audit.get(project).map(Vec::as_slice).unwrap_or_default();
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, crate::index::render::PATH_SEGMENT).to_string();
        // Versions newest first: the served files', and the blocked ones
        // (no file served, said why).
        let mut versions: BTreeMap<crate::dist::Version, view::VersionRow> = BTreeMap::new();
        for f in files {
            let row = versions.entry(f.version().clone()).or_insert_with(|| view::VersionRow {
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
            row.uploaded = row.uploaded.take().max(view::time(f.facts.upload_time));
            row.files.push(view::FileRow {
                filename: f.filename.to_string(),
                href: format!("../../packages/{project}/{}", encode(f.filename.as_str())),
                size: crate::util::ui::human_bytes(f.size),
                sha256: f.sha256.hex(),
                tags: view::tags(&f.filename),
                requires_python: f.facts.requires_python.as_ref().map(|r| r.as_str().to_string()),
                uploaded: view::time(f.facts.upload_time),
                yanked: f.facts.yanked.is_yanked(),
                yanked_reason: f.facts.yanked.reason().unwrap_or_default().to_string(),
                publisher: crate::audit::report::provenance::publisher_of(publishers, project, f.filename.as_str())
                    .map(ToString::to_string),
            });
        }
        let mut vulnerable = 0;
        for v in audited {
            if !versions.contains_key(&v.version) && !v.blocked {
                continue;
            }
            let row = versions.entry(v.version.clone()).or_insert_with(|| view::VersionRow {
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
                .map(|a| view::Advisory {
                    id: a.id.clone(),
                    severity: if a.malicious { "malicious".into() } else { a.severity.to_string() },
                    summary: a.summary.clone(),
                    href: format!("../../reports/security.html#{}", row.id),
                    ignored: a.ignored.is_some(),
                })
                .collect();
            vulnerable += usize::from(v.active().next().is_some());
        }
        (versions.into_values().rev().collect(), vulnerable)
    }

    /// The page of `project` from its listed files (newest first) and the
    /// metadata of `described`; the README is left for the caller.
    fn view_of(
        &'a self,
        project: &'a ProjectName,
        files: &[&SiteFile],
        described: Option<(&SiteFile, &[u8])>,
    ) -> view::PageView<'a> {
        let meta = described.map(|(_, b)| view::Metadata::parse(b)).unwrap_or_default();
        let entry = self.catalog.entries.get(project);
        let status = self.inputs.statuses.get(project);
        let publishers = self.inputs.publishers;
        let (versions, vulnerable) = self.version_rows(project, files);
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
                r.href = r.name.as_ref().filter(|n| self.catalog.contains(n)).map(view::page_href);
                r
            })
            .collect();
        view::PageView {
            key: String::new(),
            mirror: self.site.name,
            name: project.as_str(),
            summary: meta.summary,
            keywords: meta.keywords,
            license: meta.license,
            links: meta.links,
            newest: entry.and_then(|e| e.newest.as_ref()).map(ToString::to_string).unwrap_or_default(),
            status: status.map(|s| s.status.as_str()),
            status_reason: status.and_then(|s| s.reason.as_deref()),
            index_url: self.site.index_url,
            described: described.map(|(f, _)| f.version().to_string()),
            readme: None,
            readme_source: described.map(|(_, b)| crate::util::hashing::Sha256::of(b).hex()),
            requires_python: meta.requires_python,
            dependencies,
            dependents: entry
                .map(|e| &e.dependents[..])
                .unwrap_or_default()
                .iter()
                .map(|d| view::Link { label: d.to_string(), href: view::page_href(d) })
                .collect(),
            publishers: shown,
            versions,
            vulnerable,
            held: self.held.get(project.as_str()).map(|h| h.iter().collect()).unwrap_or_default(),
            withdrawn: self.withdrawn.get(project.as_str()).cloned().unwrap_or_default(),
        }
    }

    /// `projects/index.html`, its search index and its script.
    pub fn finish(&self) -> Result<Vec<TreeEntry>, RenderError> {
        let statuses = self.inputs.statuses;
        let projects: Vec<IndexRow> = self
            .catalog
            .entries
            .iter()
            .map(|(name, e)| IndexRow {
                name: name.as_str(),
                summary: &e.summary,
                newest: e.newest.as_ref().map(ToString::to_string).unwrap_or_default(),
                versions: e.versions,
                status: statuses.get(name).map(|s| s.status.as_str()),
            })
            .collect();
        // The search index: one array per project, its fields in the order
        // `projects.js` reads them (name, summary, keywords).
        let data: Vec<[&str; 3]> =
            self.catalog.entries.iter().map(|(n, e)| [n.as_str(), e.summary.as_str(), e.keywords.as_str()]).collect();
        let mut js = b"window.airlockProjects = ".to_vec();
        // Plain strings: serialization cannot fail.
        js.extend(serde_json::to_vec(&data).unwrap_or_else(|_| b"[]".to_vec()));
        js.extend_from_slice(b";\n");
        let view = IndexView { mirror: self.site.name, count: projects.len(), projects };
        Ok(vec![
            write_entry(self.out, "projects/index.html", self.templates.render("projects.html", &view)?.as_bytes())?,
            write_entry(self.out, "projects/index.js", &js)?,
            write_entry(self.out, "projects/search.js", self.templates.asset("projects.js")?.as_bytes())?,
        ])
    }
}

/// The key a page was rendered from, from its head (`None`: no page, or one
/// without a key).
fn page_key(page: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 1024];
    let mut f = std::fs::File::open(page).ok()?;
    let n = f.read(&mut head).ok()?;
    let text = std::str::from_utf8(&head[..n]).ok()?;
    let start = text.find(view::KEY_META)? + view::KEY_META.len();
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_string())
}

#[derive(Serialize)]
struct IndexView<'a> {
    mirror: &'a str,
    count: usize,
    projects: Vec<IndexRow<'a>>,
}

#[derive(Serialize)]
struct IndexRow<'a> {
    name: &'a str,
    summary: &'a str,
    newest: String,
    versions: usize,
    status: Option<&'a str>,
}
