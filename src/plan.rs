//! Planning: gather each project's upstream view, apply the selection, and
//! diff it against the store. Touches nothing but the network (and, in a
//! build, the state's cached views), so `airlock plan` shows exactly what a
//! build would do.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use url::Url;

use crate::hashing::Sha256;
use crate::listing::{Listing, Skipped, UpstreamFile};
use crate::manifest::Manifest;
use crate::names::ProjectName;
use crate::requirements::RequirementLine;
use crate::select;
use crate::state::{Artifact, ProjectView, State, StateError};
use crate::store::Store;
use crate::ui::Progress;
use crate::upstream::{Client, Page};
use crate::wire;

/// Where a project's listing came from this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Fetched and changed (or first seen).
    Fetched,
    /// The upstream answered "not modified", or sent the same bytes.
    Unchanged,
    /// From the state only (`--offline`, or upstream failed: see errors).
    Cached,
}

#[derive(Debug)]
pub struct Views {
    pub listings: BTreeMap<ProjectName, (Listing, Freshness)>,
    /// Upstream failures, one message per project.
    pub errors: Vec<String>,
    pub skipped: Vec<(ProjectName, Skipped)>,
    /// New views to store in the state.
    pub updated: Vec<ProjectView>,
}

/// The projects a manifest asks for (markers evaluated against its targets),
/// each with the requirement lines naming it, constraints included.
pub fn requested(manifest: &Manifest) -> BTreeMap<ProjectName, Vec<RequirementLine>> {
    let mut out: BTreeMap<ProjectName, Vec<RequirementLine>> = BTreeMap::new();
    for line in &manifest.select.requirements {
        let project = ProjectName::from(&line.requirement.name);
        let opts = manifest.select.options_for(&project);
        if select::applies(&line.requirement, &select::environments(&opts.tags), &[]) {
            out.entry(project).or_default().push(line.clone());
        }
    }
    out.retain(|_, lines| lines.iter().any(|l| !l.constraint));
    out
}

fn view_listing(view: &ProjectView) -> Result<(Listing, Vec<Skipped>), String> {
    let page: wire::ProjectPage =
        serde_json::from_str(&view.page).map_err(|e| format!("stored view is corrupt: {e}"))?;
    let url = Url::parse(&view.page_url).map_err(|e| format!("stored view URL is corrupt: {e}"))?;
    Ok(Listing::from_wire(&page, &url, &view.project))
}

/// Fetch (or, offline, recall) the listing of every project, in parallel.
pub fn gather(
    client: Option<&Client>,
    state: &State,
    projects: &[ProjectName],
    jobs: usize,
) -> Result<Views, StateError> {
    let stored: Vec<Option<ProjectView>> = projects.iter().map(|p| state.project_view(p)).collect::<Result<_, _>>()?;
    let progress = Progress::count("index", projects.len() as u64);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().expect("thread pool");
    type One = (ProjectName, Result<Gathered, String>);
    let results: Vec<One> = pool.install(|| {
        projects
            .par_iter()
            .zip(stored.par_iter())
            .map(|(project, old)| {
                let r = gather_one(client, project, old.as_ref());
                progress.inc(1);
                (project.clone(), r)
            })
            .collect()
    });
    progress.finish();
    let mut views = Views { listings: BTreeMap::new(), errors: Vec::new(), skipped: Vec::new(), updated: Vec::new() };
    // `results` is in `projects` order (sorted), so the output is deterministic.
    for (project, r) in results {
        match r {
            Ok(g) => {
                views.skipped.extend(g.skipped.into_iter().map(|s| (project.clone(), s)));
                views.updated.extend(g.updated);
                // Served from the stored view, but the run still failed to refresh it.
                views.errors.extend(g.error);
                views.listings.insert(project, (g.listing, g.freshness));
            }
            Err(e) => views.errors.push(e),
        }
    }
    Ok(views)
}

/// One project's listing and how it was obtained.
struct Gathered {
    listing: Listing,
    skipped: Vec<Skipped>,
    freshness: Freshness,
    /// A new view to store.
    updated: Option<ProjectView>,
    /// The upstream failed and the stored view stands in.
    error: Option<String>,
}

fn gather_one(client: Option<&Client>, project: &ProjectName, old: Option<&ProjectView>) -> Result<Gathered, String> {
    let from_view = |v: &ProjectView, freshness, error| -> Result<Gathered, String> {
        let (listing, skipped) = view_listing(v)?;
        Ok(Gathered { listing, skipped, freshness, updated: None, error })
    };
    let Some(client) = client else {
        return match old {
            Some(v) => from_view(v, Freshness::Cached, None),
            None => Err(format!("{project}: no stored upstream view (run once online first)")),
        };
    };
    let previous =
        old.map(|v| crate::upstream::Validators { etag: v.etag.clone(), last_modified: v.last_modified.clone() });
    match client.project_page(project, previous.as_ref()) {
        Ok(Page::NotModified) => {
            from_view(old.expect("validators only come from a stored view"), Freshness::Unchanged, None)
        }
        Ok(Page::Fresh(fetched)) => {
            let body_sha256 = fetched.body_sha256.hex();
            if let Some(v) = old.filter(|v| v.body_sha256 == body_sha256) {
                return from_view(v, Freshness::Unchanged, None);
            }
            // Stored with absolute URLs: the view must not depend on where it was fetched.
            let mut page = fetched.page;
            for f in &mut page.files {
                if let Ok(abs) = fetched.url.join(&f.url) {
                    f.url = abs.to_string();
                }
            }
            let (listing, skipped) = Listing::from_wire(&page, &fetched.url, project);
            let view = ProjectView {
                project: project.clone(),
                page_url: fetched.url.to_string(),
                etag: fetched.validators.etag,
                last_modified: fetched.validators.last_modified,
                body_sha256,
                page: serde_json::to_string(&page).expect("serializable"),
                fetched_at: crate::state::now(),
                plan_key: old.and_then(|v| v.plan_key.clone()),
            };
            Ok(Gathered { listing, skipped, freshness: Freshness::Fetched, updated: Some(view), error: None })
        }
        Err(e) => match old {
            Some(v) => {
                tracing::warn!("{e}; serving the view of {project} stored at {}", v.fetched_at);
                from_view(v, Freshness::Cached, Some(e.to_string()))
            }
            None => Err(e.to_string()),
        },
    }
}

/// What a run will do for one project.
#[derive(Debug, Clone, Default)]
pub struct ProjectPlan {
    /// Files the index lists after this run (selected and stored or fetched).
    pub selected: Vec<UpstreamFile>,
    /// Selected files not yet in the store.
    pub fetch: Vec<UpstreamFile>,
    /// Selected files already stored and verified.
    pub keep: Vec<String>,
    /// Stored files whose upstream sha256 changed: (filename, mirrored, upstream).
    pub tampered: Vec<(String, Sha256, Sha256)>,
    /// Stored files that leave the index with this run.
    pub unlist: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub projects: BTreeMap<ProjectName, ProjectPlan>,
    /// Stored files that leave the store with this run (past `keep_runs`).
    pub prune: Vec<(ProjectName, String)>,
}

impl Plan {
    pub fn fetch_count(&self) -> usize {
        self.projects.values().map(|p| p.fetch.len()).sum()
    }
    pub fn fetch_bytes(&self) -> u64 {
        self.projects.values().flat_map(|p| p.fetch.iter().filter_map(|f| f.size)).sum()
    }
}

/// Select and diff. `run` is the run being planned; `published` the run
/// whose tree is served now. Stored artifacts not selected for more than
/// `keep_runs` runs are pruned.
pub fn make(
    manifest: &Manifest,
    requested: &BTreeMap<ProjectName, Vec<RequirementLine>>,
    views: &Views,
    stored: &[Artifact],
    store: &Store,
    run: i64,
    published: Option<i64>,
) -> Plan {
    let mut by_project: BTreeMap<&ProjectName, BTreeMap<&str, &Artifact>> = BTreeMap::new();
    for a in stored {
        by_project.entry(&a.project).or_default().insert(a.filename.as_str(), a);
    }
    let mut plan = Plan::default();
    for (project, lines) in requested {
        let Some((listing, _)) = views.listings.get(project) else {
            continue;
        };
        let opts = manifest.select.options_for(project);
        let refs: Vec<&RequirementLine> = lines.iter().collect();
        let selected = select::select(listing, &refs, &opts);
        let have = by_project.get(project);
        let mut pp = ProjectPlan::default();
        for f in selected {
            let name = f.filename.as_str();
            match have.and_then(|h| h.get(name)) {
                Some(a) if store.path(project, name).is_file() => {
                    if let Some(up) = f.sha256.filter(|up| *up != a.sha256) {
                        pp.tampered.push((name.to_string(), a.sha256, up));
                    }
                    pp.keep.push(name.to_string());
                    pp.selected.push(f);
                }
                _ => {
                    pp.fetch.push(f.clone());
                    pp.selected.push(f);
                }
            }
        }
        plan.projects.insert(project.clone(), pp);
    }
    // Projects whose upstream failed keep their previous selection listed.
    let failed: BTreeSet<&ProjectName> = requested.keys().filter(|p| !views.listings.contains_key(*p)).collect();
    let keep_runs = i64::from(manifest.mirror.keep_runs);
    for (project, files) in &by_project {
        let selected_now: BTreeSet<String> = plan
            .projects
            .get(*project)
            .map(|p| p.selected.iter().map(|f| f.filename.to_string()).collect())
            .unwrap_or_default();
        for (name, a) in files {
            if failed.contains(project) || selected_now.contains(*name) {
                continue;
            }
            if published.is_some_and(|p| a.selected_run >= p) {
                plan.projects.entry((*project).clone()).or_default().unlist.push((*name).to_string());
            }
            if run - a.selected_run > keep_runs {
                plan.prune.push(((*project).clone(), (*name).to_string()));
            }
        }
    }
    plan
}
