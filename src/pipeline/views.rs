//! Stage: the upstream views. What the manifest asks for (`requested`), and
//! each project's listing, fetched in parallel with conditional requests or,
//! offline, recalled from the state (`gather`).
//!
//! A page that comes back unchanged (304, or the same bytes) is not parsed:
//! its listing is only parsed when a later stage needs it, and the plan
//! stage does not for a project whose inputs are unchanged too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rayon::prelude::*;
use url::Url;

use super::serials::Since;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::dist::names::ProjectName;
use crate::manifest::Select;
use crate::manifest::requirements::RequirementLine;
use crate::select::admission::Judgement;
use crate::select::env;
use crate::select::locked::Locked;
use crate::store::state::{ProjectView, State, StateError};
use crate::upstream::listing::{Listing, ProjectStatus};
use crate::upstream::{Client, Page, wire};
use crate::util::ui::Progress;

impl Views {
    /// Put the run's admission gate in front of every listing.
    pub fn set_gate(&mut self, gate: Option<&Gatekeeper>) {
        if let Some(g) = gate {
            self.projects.values_mut().for_each(|up| up.set_gate(Some(g)));
        }
    }
}

/// The requirement lines naming each requested project, constraints included.
pub type Requested = BTreeMap<ProjectName, Vec<RequirementLine>>;

/// Where a project's listing came from this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Fetched and changed (or first seen).
    Fetched,
    /// The upstream answered "not modified", or sent the same bytes.
    Unchanged,
    /// From the state only (`--offline`, or upstream failed: see diagnostics).
    Cached,
}

/// The admission gate as the views apply it: one project's judgement
/// from its whole listing (`select::admission::judge` with the run's clock,
/// admit entries and security bypass).
pub type Gatekeeper = std::sync::Arc<dyn Fn(&ProjectName, &Listing) -> Judgement + Send + Sync>;

/// One project's upstream, as gathered.
pub struct Upstream {
    pub freshness: Freshness,
    /// The view in force: newly fetched or stored.
    pub view: ProjectView,
    /// The listing as the upstream offers it.
    listing: OnceLock<Result<Listing, String>>,
    /// The run's admission gate, when one is in force.
    gate: Option<Gatekeeper>,
    /// The listing past the gate, and the gate's judgement of it.
    gated: OnceLock<Result<(Listing, Judgement), String>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("freshness", &self.freshness).field("view", &self.view).finish_non_exhaustive()
    }
}

impl Upstream {
    /// The listing past the admission gate (held releases are not in it),
    /// parsed from the view on first use: every later stage (resolution,
    /// the closure, the plan) sees only what may enter.
    pub fn listing(&self) -> Result<&Listing, &str> {
        match self.gated() {
            Ok((l, _)) => Ok(l),
            Err(e) => Err(e),
        }
    }

    /// What the gate held or let in early, once the listing was read.
    pub fn judgement(&self) -> Option<&Judgement> {
        self.gated.get().and_then(|r| r.as_ref().ok()).map(|(_, j)| j).filter(|j| !j.is_empty())
    }

    /// Every file the upstream offers, held ones included.
    pub fn offered(&self) -> Result<&Listing, &str> {
        match self.listing.get_or_init(|| view_listing(&self.view)) {
            Ok(l) => Ok(l),
            Err(e) => Err(e),
        }
    }

    fn gated(&self) -> &Result<(Listing, Judgement), String> {
        self.gated.get_or_init(|| {
            let raw = self.offered().map_err(str::to_string)?;
            // A quarantined project is offered with no files (PEP 792).
            if ProjectStatus::quarantined(raw.status.as_ref()) {
                return Ok((Listing { files: Default::default(), status: raw.status.clone() }, Judgement::default()));
            }
            Ok(match &self.gate {
                Some(g) => {
                    let j = g(&self.view.project, raw);
                    (j.filter(raw), j)
                }
                None => (raw.clone(), Judgement::default()),
            })
        })
    }

    /// Put the run's gate in front of this listing (before it is read).
    pub fn set_gate(&mut self, gate: Option<&Gatekeeper>) {
        self.gate = gate.cloned();
        self.gated = OnceLock::new();
    }

    fn new(freshness: Freshness, view: ProjectView, listing: OnceLock<Result<Listing, String>>) -> Upstream {
        Upstream { freshness, view, listing, gate: None, gated: OnceLock::new() }
    }
}

#[derive(Debug, Default)]
pub struct Views {
    pub projects: BTreeMap<ProjectName, Upstream>,
    /// Views fetched afresh, for the state (`plan` keeps them to itself).
    pub updated: Vec<ProjectView>,
}

/// The projects a manifest asks for (markers evaluated against its targets),
/// each with the requirement lines naming it, constraints included, and
/// every project a lock file names (possibly with no line).
pub fn requested(select: &Select, locked: &Locked) -> Requested {
    let mut out: Requested = BTreeMap::new();
    // Environments depend only on the targets, which few projects override.
    let mut envs: Vec<(crate::dist::tags::TagFilter, Vec<uv_pep508::MarkerEnvironment>)> = Vec::new();
    for line in &select.requirements {
        let project = ProjectName::from(&line.requirement.name);
        let applies = line.requirement.marker.is_true() || {
            let tags = select.options_for(&project).tags;
            let i = match envs.iter().position(|(t, _)| *t == tags) {
                Some(i) => i,
                None => {
                    let e = env::environments(&tags);
                    envs.push((tags, e));
                    envs.len() - 1
                }
            };
            env::applies(&line.requirement, &envs[i].1, &[])
        };
        if applies {
            out.entry(project).or_default().push(line.clone());
        }
    }
    out.retain(|_, lines| lines.iter().any(|l| !l.constraint));
    for p in locked.projects() {
        out.entry(p.clone()).or_default();
    }
    out
}

/// Every `-c` constraint line that applies to one of the targets, by the
/// project it constrains, requested or not: pip and uv apply a constraint
/// wherever its project appears in a resolution, so a transitive pin
/// binds too.
pub fn constraints(select: &Select) -> Requested {
    let mut out: Requested = BTreeMap::new();
    for line in select.requirements.iter().filter(|l| l.constraint) {
        let project = ProjectName::from(&line.requirement.name);
        let tags = select.options_for(&project).tags;
        if line.requirement.marker.is_true() || env::applies(&line.requirement, &env::environments(&tags), &[]) {
            out.entry(project).or_default().push(line.clone());
        }
    }
    out
}

/// The constraints that hold in one environment, as version ranges.
pub fn constraint_ranges(
    constraints: &Requested,
    markers: &uv_pep508::MarkerEnvironment,
) -> BTreeMap<ProjectName, pubgrub::Ranges<crate::dist::Version>> {
    let mut out: BTreeMap<ProjectName, pubgrub::Ranges<crate::dist::Version>> = BTreeMap::new();
    for (project, lines) in constraints {
        for l in lines.iter().filter(|l| l.requirement.marker.evaluate(markers, &[])) {
            if let Some(uv_pep508::VersionOrUrl::VersionSpecifier(s)) = &l.requirement.version_or_url {
                let slot = out.entry(project.clone()).or_insert_with(pubgrub::Ranges::full);
                *slot = slot.intersection(&pubgrub::Ranges::from(s.clone()));
            }
        }
    }
    out
}

fn view_listing(view: &ProjectView) -> Result<Listing, String> {
    let page: wire::ProjectPage =
        serde_json::from_str(&view.page).map_err(|e| format!("{}: stored view is corrupt: {e}", view.project))?;
    let url = Url::parse(&view.page_url).map_err(|e| format!("{}: stored view URL is corrupt: {e}", view.project))?;
    Ok(Listing::from_wire(&page, &url, &view.project).0)
}

/// Fetch (or, offline, recall) the listing of every project, in parallel.
/// Upstream failures become diagnostics.
pub fn gather(
    client: Option<&Client>,
    state: &State,
    projects: &[ProjectName],
    jobs: usize,
    since: &Since,
    diags: &mut Diagnostics,
) -> Result<Views, StateError> {
    let mut all = state.project_views(projects)?;
    let stored: Vec<Option<ProjectView>> = projects.iter().map(|p| all.remove(p)).collect();
    let progress = Progress::count("index", projects.len() as u64);
    // A listing is a round trip: more of them in flight than transfers
    // (offline, the recall is local).
    let in_flight = client.map_or(jobs, |c| c.requests_in_flight(jobs));
    let results: Vec<(ProjectName, Result<Gathered, Diagnostic>)> = crate::util::with_pool(in_flight, || {
        projects
            .par_iter()
            .zip(stored.into_par_iter())
            .map(|(project, old)| {
                let r = gather_one(client, project, old, since);
                progress.inc(1);
                (project.clone(), r)
            })
            .collect()
    });
    progress.finish();
    let mut results = results;
    let mut missing: Vec<Diagnostic> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .filter(|d| matches!(d, Diagnostic::NotUpstream { .. }))
        .cloned()
        .collect();
    suggest(client, &mut missing);
    for (_, r) in &mut results {
        if let Err(d @ Diagnostic::NotUpstream { .. }) = r
            && let Some(s) = missing.iter().find(|m| m.project() == d.project())
        {
            *d = s.clone();
        }
    }
    let mut views = Views::default();
    let mut skipped: Vec<String> = Vec::new();
    // `results` is in `projects` order (sorted), so the output is deterministic.
    for (project, r) in results {
        match r {
            Ok(g) => {
                if g.store {
                    views.updated.push(g.upstream.view.clone());
                }
                diags.extend(g.error);
                if g.fresh {
                    // Reported by every publish from the state; counted here,
                    // as found (an old project lists dozens of such files).
                    for s in &g.upstream.view.skipped {
                        tracing::debug!("{project}: skipping {:?}: {}", s.filename, s.reason);
                        skipped.push(format!("{project}/{}", s.filename));
                    }
                }
                views.projects.insert(project, g.upstream);
            }
            Err(d) => diags.push(d),
        }
    }
    if !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().take(3).map(String::as_str).collect();
        tracing::warn!(
            "skipping {} upstream file(s) that are not distributions airlock mirrors or do not parse ({}{}); -v lists them, the reports keep them",
            skipped.len(),
            shown.join(", "),
            if skipped.len() > 3 { ", ..." } else { "" }
        );
    }
    Ok(views)
}

/// The root page is read at most this far for suggestions (PyPI's lists
/// about 700,000 names in about 40 MiB).
const MAX_ROOT_BYTES: u64 = 256 * 1024 * 1024;

/// Fill in "did you mean" for projects the upstream does not have, from
/// its root page (read once, only when one is missing).
pub fn suggest(client: Option<&Client>, found: &mut [Diagnostic]) {
    let Some(client) = client else { return };
    if !found.iter().any(|d| matches!(d, Diagnostic::NotUpstream { .. })) {
        return;
    }
    let names = match client.project_names(MAX_ROOT_BYTES) {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!("no suggestions for missing projects: {e}");
            return;
        }
    };
    let known: Vec<ProjectName> = names.iter().filter_map(|n| n.parse().ok()).collect();
    for d in found.iter_mut() {
        let Diagnostic::NotUpstream { project, suggestions, .. } = d else { continue };
        let wanted = project.as_str();
        let mut near: Vec<(usize, &str)> = known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(wanted, k.as_str()), k.as_str()))
            .filter(|(d, k)| *d > 0 && *d <= 2.max(wanted.len().min(k.len()) / 4))
            .collect();
        near.sort();
        near.dedup_by(|a, b| a.1 == b.1);
        *suggestions = near.into_iter().take(3).map(|(_, k)| k.to_string()).collect();
    }
}

/// The page hash a stored view carries when the upstream answered 404 or
/// 410 for a project it used to offer (no real page hashes to it).
pub const GONE: &str = "gone: the upstream answers 404 or 410";

/// The upstream no longer offers a project it used to (404 or 410): a page
/// with no files stands for it, so its files are withdrawn (or kept, by
/// `upstream_removed`) like files gone from a page. An outage (5xx, a
/// timeout, a refused connection) keeps the stored view instead.
fn gone(project: &ProjectName, v: ProjectView) -> Gathered {
    if v.body_sha256 == GONE {
        return stored(v, Freshness::Unchanged, None);
    }
    let page = wire::ProjectPage {
        meta: wire::Meta::default(),
        name: project.to_string(),
        files: Vec::new(),
        versions: None,
        project_status: None,
    };
    let view = ProjectView {
        etag: None,
        last_modified: None,
        body_sha256: GONE.to_string(),
        page: serde_json::to_string(&page).unwrap_or_default().into(),
        fetched_at: crate::util::clock::now(),
        skipped: Vec::new(),
        status: None,
        ..v
    };
    let listing = OnceLock::from(Ok(Listing { files: Default::default(), status: None }));
    Gathered { upstream: Upstream::new(Freshness::Fetched, view, listing), fresh: true, store: true, error: None }
}

/// One project's upstream and how it was obtained.
pub struct Gathered {
    pub upstream: Upstream,
    /// The page is new (parsed from this fetch).
    pub fresh: bool,
    /// The view must be stored (new, or new validators for the same page).
    pub store: bool,
    /// The upstream failed and the stored view stands in.
    pub error: Option<Diagnostic>,
}

fn stored(view: ProjectView, freshness: Freshness, error: Option<Diagnostic>) -> Gathered {
    Gathered { upstream: Upstream::new(freshness, view, OnceLock::new()), fresh: false, store: false, error }
}

/// Whether a stored page URL is the page the client asks for (a redirect
/// to the normalized name, or a `file://` index's page file, lands elsewhere).
fn same_page(stored: &str, client: &Client, project: &ProjectName) -> bool {
    let asked = client.page_url(project);
    Url::parse(stored).is_ok_and(|s| {
        s.scheme() == asked.scheme()
            && s.host_str() == asked.host_str()
            && s.port_or_known_default() == asked.port_or_known_default()
            && s.path().starts_with(asked.path())
    })
}

/// Fetch one project's page (conditionally, against its stored view `old`),
/// or, offline or when the upstream's changelog says it is unchanged
/// (`since`), recall the stored view.
pub fn gather_one(
    client: Option<&Client>,
    project: &ProjectName,
    old: Option<ProjectView>,
    since: &Since,
) -> Result<Gathered, Diagnostic> {
    let old = match old {
        Some(v) if since.unchanged(project, Some(&v)) => return Ok(stored(v, Freshness::Unchanged, None)),
        old => old,
    };
    let failed = |message: String, kept: bool| Diagnostic::UpstreamFailed { project: project.clone(), message, kept };
    // A view fetched from another upstream (the manifest's `upstream`
    // changed) is asked for afresh: its validators and URLs are the old one's.
    let old = match (old, client) {
        (Some(v), Some(c)) if v.page_url != c.page_url(project).as_str() && !same_page(&v.page_url, c, project) => {
            Some(ProjectView { etag: None, last_modified: None, body_sha256: String::new(), ..v })
        }
        (old, _) => old,
    };
    let Some(client) = client else {
        return match old {
            Some(v) => Ok(stored(v, Freshness::Cached, None)),
            None => Err(failed(format!("{project}: no stored upstream view (run once online first)"), false)),
        };
    };
    let previous = old
        .as_ref()
        .map(|v| crate::upstream::Validators { etag: v.etag.clone(), last_modified: v.last_modified.clone() });
    match client.project_page(project, previous.as_ref()) {
        Ok(Page::NotModified) => match old {
            Some(v) => Ok(stored(v, Freshness::Unchanged, None)),
            // Validators only come from a stored view; a 304 without one is the server's mistake.
            None => Err(failed(format!("{project}: the upstream answered 304 to an unconditional request"), false)),
        },
        Ok(Page::Fresh(fetched)) => {
            let body_sha256 = fetched.body_sha256.hex();
            if let Some(v) = old.as_ref().filter(|v| v.body_sha256 == body_sha256) {
                // The same page: nothing to plan again, but what the
                // upstream now says about it (an ETag a proxy used to strip,
                // a new serial) is learned, or every later run would ask
                // unconditionally.
                let learned = ProjectView {
                    etag: fetched.validators.etag.clone(),
                    last_modified: fetched.validators.last_modified.clone(),
                    serial: fetched.serial.or(v.serial),
                    ..v.clone()
                };
                if learned != *v {
                    let mut g = stored(learned, Freshness::Unchanged, None);
                    g.store = true;
                    return Ok(g);
                }
                return Ok(stored(v.clone(), Freshness::Unchanged, None));
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
                page: serde_json::to_string(&page).unwrap_or_default().into(),
                fetched_at: crate::util::clock::now(),
                plan_key: old.and_then(|v| v.plan_key),
                skipped,
                serial: fetched.serial,
                status: listing.status.clone(),
            };
            let upstream = Upstream::new(Freshness::Fetched, view, OnceLock::from(Ok(listing)));
            Ok(Gathered { upstream, fresh: true, store: true, error: None })
        }
        Err(e) => match old {
            Some(v) if matches!(e, crate::upstream::UpstreamError::NotFound { .. }) => Ok(gone(project, v)),
            Some(v) => Ok(stored(v, Freshness::Cached, Some(failed(e.to_string(), true)))),
            None if matches!(e, crate::upstream::UpstreamError::NotFound { .. }) => Err(Diagnostic::NotUpstream {
                project: project.clone(),
                message: e.to_string(),
                suggestions: Vec::new(),
            }),
            None => Err(failed(e.to_string(), false)),
        },
    }
}
