//! Planning: gather each project's upstream view, apply the selection, and
//! diff it against the store. Touches nothing but the network (and, in a
//! build, the state's cached views), so `airlock plan` shows exactly what a
//! build would do.
//!
//! Incremental by design: a project whose page is unchanged (304 Not
//! Modified, or the same bytes) and whose selection inputs are unchanged
//! (its plan key) is not re-planned, and its page is not even parsed; its
//! previous selection carries over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

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

/// One project's upstream, as gathered.
#[derive(Debug)]
pub struct Upstream {
    pub freshness: Freshness,
    /// The view in force: newly fetched or stored.
    pub view: ProjectView,
    listing: OnceLock<Result<(Listing, Vec<Skipped>), String>>,
}

impl Upstream {
    /// The listing, parsed from the view on first use.
    pub fn listing(&self) -> Result<&Listing, &str> {
        match self.listing.get_or_init(|| view_listing(&self.view)) {
            Ok((l, _)) => Ok(l),
            Err(e) => Err(e),
        }
    }

    /// Files the listing skipped (only for pages parsed this run).
    pub fn skipped(&self) -> &[Skipped] {
        match self.listing.get() {
            Some(Ok((_, s))) => s,
            _ => &[],
        }
    }
}

#[derive(Debug, Default)]
pub struct Views {
    pub projects: BTreeMap<ProjectName, Upstream>,
    /// Upstream failures, one message per project (with or without a stored view to fall back on).
    pub errors: Vec<String>,
    /// New views to store in the state.
    pub updated: Vec<ProjectView>,
}

/// The projects a manifest asks for (markers evaluated against its targets),
/// each with the requirement lines naming it, constraints included.
pub fn requested(manifest: &Manifest) -> BTreeMap<ProjectName, Vec<RequirementLine>> {
    let mut out: BTreeMap<ProjectName, Vec<RequirementLine>> = BTreeMap::new();
    // Environments depend only on the targets, which few projects override.
    let mut envs: Vec<(crate::tags::TagFilter, Vec<pep508_rs::MarkerEnvironment>)> = Vec::new();
    for line in &manifest.select.requirements {
        let project = ProjectName::from(&line.requirement.name);
        let applies = line.requirement.marker.is_true() || {
            let tags = manifest.select.options_for(&project).tags;
            let i = match envs.iter().position(|(t, _)| *t == tags) {
                Some(i) => i,
                None => {
                    let e = select::environments(&tags);
                    envs.push((tags, e));
                    envs.len() - 1
                }
            };
            select::applies(&line.requirement, &envs[i].1, &[])
        };
        if applies {
            out.entry(project).or_default().push(line.clone());
        }
    }
    out.retain(|_, lines| lines.iter().any(|l| !l.constraint));
    out
}

fn view_listing(view: &ProjectView) -> Result<(Listing, Vec<Skipped>), String> {
    let page: wire::ProjectPage =
        serde_json::from_str(&view.page).map_err(|e| format!("{}: stored view is corrupt: {e}", view.project))?;
    let url = Url::parse(&view.page_url).map_err(|e| format!("{}: stored view URL is corrupt: {e}", view.project))?;
    Ok(Listing::from_wire(&page, &url, &view.project))
}

/// Fetch (or, offline, recall) the listing of every project, in parallel.
pub fn gather(
    client: Option<&Client>,
    state: &State,
    projects: &[ProjectName],
    jobs: usize,
) -> Result<Views, StateError> {
    let mut all = state.project_views(projects)?;
    let stored: Vec<Option<ProjectView>> = projects.iter().map(|p| all.remove(p)).collect();
    let progress = Progress::count("index", projects.len() as u64);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().expect("thread pool");
    let results: Vec<(ProjectName, Result<Gathered, String>)> = pool.install(|| {
        projects
            .par_iter()
            .zip(stored.into_par_iter())
            .map(|(project, old)| {
                let r = gather_one(client, project, old);
                progress.inc(1);
                (project.clone(), r)
            })
            .collect()
    });
    progress.finish();
    let mut views = Views::default();
    // `results` is in `projects` order (sorted), so the output is deterministic.
    for (project, r) in results {
        match r {
            Ok(g) => {
                if g.fresh {
                    views.updated.push(g.upstream.view.clone());
                }
                // Served from the stored view, but the run still failed to refresh it.
                views.errors.extend(g.error);
                views.projects.insert(project, g.upstream);
            }
            Err(e) => views.errors.push(e),
        }
    }
    Ok(views)
}

/// One project's upstream and how it was obtained.
struct Gathered {
    upstream: Upstream,
    /// The view is new: store it.
    fresh: bool,
    /// The upstream failed and the stored view stands in.
    error: Option<String>,
}

fn stored(view: ProjectView, freshness: Freshness, error: Option<String>) -> Gathered {
    Gathered { upstream: Upstream { freshness, view, listing: OnceLock::new() }, fresh: false, error }
}

fn gather_one(client: Option<&Client>, project: &ProjectName, old: Option<ProjectView>) -> Result<Gathered, String> {
    let Some(client) = client else {
        return match old {
            Some(v) => Ok(stored(v, Freshness::Cached, None)),
            None => Err(format!("{project}: no stored upstream view (run once online first)")),
        };
    };
    let previous = old
        .as_ref()
        .map(|v| crate::upstream::Validators { etag: v.etag.clone(), last_modified: v.last_modified.clone() });
    match client.project_page(project, previous.as_ref()) {
        Ok(Page::NotModified) => {
            Ok(stored(old.expect("validators only come from a stored view"), Freshness::Unchanged, None))
        }
        Ok(Page::Fresh(fetched)) => {
            let body_sha256 = fetched.body_sha256.hex();
            if let Some(v) = old.as_ref().filter(|v| v.body_sha256 == body_sha256) {
                return Ok(stored(v.clone(), Freshness::Unchanged, None));
            }
            // Stored with absolute URLs: the view must not depend on where it was fetched.
            let mut page = fetched.page;
            for f in &mut page.files {
                if let Ok(abs) = fetched.url.join(&f.url) {
                    f.url = abs.to_string();
                }
            }
            let listing = Listing::from_wire(&page, &fetched.url, project);
            let view = ProjectView {
                project: project.clone(),
                page_url: fetched.url.to_string(),
                etag: fetched.validators.etag,
                last_modified: fetched.validators.last_modified,
                body_sha256,
                page: serde_json::to_string(&page).expect("serializable"),
                fetched_at: crate::state::now(),
                plan_key: old.and_then(|v| v.plan_key),
            };
            let upstream = Upstream { freshness: Freshness::Fetched, view, listing: OnceLock::from(Ok(listing)) };
            Ok(Gathered { upstream, fresh: true, error: None })
        }
        Err(e) => match old {
            Some(v) => {
                tracing::warn!("{e}; serving the view of {project} stored at {}", v.fetched_at);
                Ok(stored(v, Freshness::Cached, Some(e.to_string())))
            }
            None => Err(e.to_string()),
        },
    }
}

/// What a run will do for one project.
#[derive(Debug, Clone, Default)]
pub struct ProjectPlan {
    /// Files the index lists after this run (selected and stored or fetched).
    pub selected: Vec<String>,
    /// Selected files not yet in the store.
    pub fetch: Vec<UpstreamFile>,
    /// Names of the files handed to the fetch stage (filled by the build).
    pub fetched_names: Vec<String>,
    /// Selected files in the store but not in the state (a run was killed
    /// after storing them): re-hashed and adopted instead of refetched.
    pub adopt: Vec<UpstreamFile>,
    /// Selected files already stored and verified.
    pub keep: Vec<String>,
    /// Stored files whose upstream sha256 changed: (filename, mirrored, upstream).
    pub tampered: Vec<(String, Sha256, Sha256)>,
    /// Stored files that leave the index with this run.
    pub unlist: Vec<String>,
    /// The previous selection carried over: page and inputs unchanged.
    pub reused: bool,
    /// The hash of this project's selection inputs.
    pub key: String,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub projects: BTreeMap<ProjectName, ProjectPlan>,
    /// Stored files that leave the store with this run (past `keep_runs`).
    pub prune: Vec<(ProjectName, String)>,
    /// Projects that could not be planned (no usable listing).
    pub errors: Vec<String>,
}

impl Plan {
    pub fn fetch_count(&self) -> usize {
        self.projects.values().map(|p| p.fetch.len() + p.adopt.len()).sum()
    }
    pub fn fetch_bytes(&self) -> u64 {
        self.projects.values().flat_map(|p| p.fetch.iter().filter_map(|f| f.size)).sum()
    }
}

/// The hash of everything a project's selection depends on: its page, its
/// options, its requirement lines, and the airlock version (rules change).
pub fn plan_key(body_sha256: &str, opts: &crate::manifest::SelectOptions, lines: &[RequirementLine]) -> String {
    let mut text = format!("{}\n{body_sha256}\n{opts:?}\n", env!("CARGO_PKG_VERSION"));
    let mut reqs: Vec<String> =
        lines.iter().map(|l| format!("{}{}", if l.constraint { "-c " } else { "" }, l.requirement)).collect();
    reqs.sort();
    for r in reqs {
        text.push_str(&r);
        text.push('\n');
    }
    Sha256::of(text.as_bytes()).hex()
}

/// Select and diff. `run` is the run being planned. Stored artifacts that
/// left the selection `keep_runs` runs ago or more are pruned.
pub fn make(
    manifest: &Manifest,
    requested: &BTreeMap<ProjectName, Vec<RequirementLine>>,
    views: &Views,
    stored: &[Artifact],
    store: &Store,
    run: i64,
) -> Plan {
    let mut by_project: BTreeMap<&ProjectName, BTreeMap<&str, &Artifact>> = BTreeMap::new();
    for a in stored {
        by_project.entry(&a.project).or_default().insert(a.filename.as_str(), a);
    }
    let mut plan = Plan::default();
    for (project, lines) in requested {
        let Some(up) = views.projects.get(project) else {
            continue;
        };
        let opts = manifest.select.options_for(project);
        let key = plan_key(&up.view.body_sha256, &opts, lines);
        let have = by_project.get(project);
        if up.freshness != Freshness::Fetched && up.view.plan_key.as_deref() == Some(&key) {
            // Unchanged page, unchanged inputs: the previous selection stands.
            let keep: Vec<String> = have
                .map(|h| h.values().filter(|a| a.listed()).map(|a| a.filename.clone()).collect())
                .unwrap_or_default();
            let pp = ProjectPlan { selected: keep.clone(), keep, reused: true, key, ..ProjectPlan::default() };
            plan.projects.insert(project.clone(), pp);
            continue;
        }
        let listing = match up.listing() {
            Ok(l) => l,
            Err(e) => {
                plan.errors.push(e.to_string());
                continue;
            }
        };
        let refs: Vec<&RequirementLine> = lines.iter().collect();
        let mut pp = ProjectPlan { key, ..ProjectPlan::default() };
        for f in select::select(listing, &refs, &opts) {
            let name = f.filename.as_str();
            let in_store = store.path(project, name).is_file();
            match (have.and_then(|h| h.get(name)), in_store) {
                (Some(a), true) => {
                    if let Some(up) = f.sha256.filter(|up| *up != a.sha256) {
                        pp.tampered.push((name.to_string(), a.sha256, up));
                    }
                    pp.keep.push(name.to_string());
                }
                (None, true) => pp.adopt.push(f.clone()),
                _ => pp.fetch.push(f.clone()),
            }
            pp.selected.push(f.filename.to_string());
        }
        plan.projects.insert(project.clone(), pp);
    }
    // Projects that could not be planned keep their previous selection listed.
    let failed: BTreeSet<&ProjectName> = requested.keys().filter(|p| !plan.projects.contains_key(*p)).collect();
    let keep_runs = i64::from(manifest.mirror.keep_runs);
    for (project, files) in &by_project {
        let selected_now: BTreeSet<&str> =
            plan.projects.get(*project).map(|p| p.selected.iter().map(String::as_str).collect()).unwrap_or_default();
        let mut unlist = Vec::new();
        for (name, a) in files {
            if failed.contains(project) || selected_now.contains(name) {
                continue;
            }
            match a.unselected_run {
                // Leaving the index now: with keep_runs = 0 it leaves the store too.
                None => {
                    unlist.push((*name).to_string());
                    if keep_runs == 0 {
                        plan.prune.push(((*project).clone(), (*name).to_string()));
                    }
                }
                Some(u) if run - u >= keep_runs => plan.prune.push(((*project).clone(), (*name).to_string())),
                Some(_) => {}
            }
        }
        if !unlist.is_empty() {
            plan.projects.entry((*project).clone()).or_default().unlist.extend(unlist);
        }
    }
    plan
}
