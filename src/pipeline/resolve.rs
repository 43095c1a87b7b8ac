//! Stage: resolve (`dependencies = "resolve"`, which `true` means). For
//! every target environment, what pip or uv would install for the
//! requested requirements, resolved against the upstream; the union of the
//! resolutions becomes exact pins, which the plan stage then selects like
//! any requirement. `latest = N` widens each top-level requirement to its
//! newest N versions, each resolved.
//!
//! Resolutions run in parallel (one environment, or one widened variant,
//! per task) over one shared index of listings and metadata, and are merged
//! in environment order, so the result does not depend on thread timing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use pubgrub::Ranges;
use rayon::prelude::*;
use uv_pep508::{Requirement, VersionOrUrl};

use super::views::{self, Requested, Views};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::dist::Version;
use crate::dist::metadata::CoreMetadata;
use crate::dist::names::ProjectName;
use crate::manifest::requirements::RequirementLine;
use crate::manifest::{Dependencies, Select};
use crate::select::env::{self, TargetEnv};
use crate::select::resolve::{self, Index, Outcome, Request};
use crate::store::metadata::Fetcher;
use crate::store::state::{Pins, ProjectView, State, StateError};
use crate::upstream::Client;
use crate::upstream::listing::UpstreamFile;
use crate::util::hashing::Sha256;

/// A value computed once, by whichever thread asks first.
pub(crate) type Once<T> = Arc<OnceLock<Result<T, String>>>;
type Listing = Arc<Vec<UpstreamFile>>;
/// Core metadata and the sha256 of its bytes.
type Parsed = (Arc<CoreMetadata>, Sha256);
/// A file of a project: (project, filename).
pub(crate) type FileKey = (ProjectName, String);

/// Listings and metadata from the upstream, fetched once each, shared by
/// every resolution of the run.
struct UpstreamIndex<'a> {
    client: Option<&'a Client>,
    since: &'a super::serials::Since,
    gate: Option<&'a views::Gatekeeper>,
    fetcher: Fetcher<'a>,
    /// Stored views not yet used: the validators of conditional requests.
    stored: Mutex<HashMap<ProjectName, ProjectView>>,
    listings: Mutex<HashMap<ProjectName, Once<Listing>>>,
    metadata: Mutex<HashMap<FileKey, Once<Parsed>>>,
    /// Every project gathered, for the plan stage.
    gathered: Mutex<Views>,
    diagnostics: Mutex<Vec<Diagnostic>>,
}

fn once<K: std::hash::Hash + Eq + Clone, T>(map: &Mutex<HashMap<K, Once<T>>>, key: &K) -> Once<T> {
    map.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default().clone()
}

impl UpstreamIndex<'_> {
    fn gather(&self, project: &ProjectName) -> Result<Arc<Vec<UpstreamFile>>, String> {
        let old = self.stored.lock().unwrap_or_else(PoisonError::into_inner).remove(project);
        match views::gather_one(self.client, project, old, self.since) {
            Ok(mut g) => {
                g.upstream.set_gate(self.gate);
                let files = g.upstream.listing().map(|l| l.files.clone()).map_err(str::to_string);
                let mut views = self.gathered.lock().unwrap_or_else(PoisonError::into_inner);
                if g.store {
                    views.updated.push(g.upstream.view.clone());
                }
                views.projects.insert(project.clone(), g.upstream);
                self.diagnostics.lock().unwrap_or_else(PoisonError::into_inner).extend(g.error);
                files
            }
            Err(d) => {
                let message = d.to_string();
                self.diagnostics.lock().unwrap_or_else(PoisonError::into_inner).push(d);
                Err(message)
            }
        }
    }

    fn metadata_sha(&self, project: &ProjectName, filename: &str) -> Option<Sha256> {
        let slot = once(&self.metadata, &(project.clone(), filename.to_string()));
        slot.get().and_then(|r| r.as_ref().ok()).map(|(_, sha)| *sha)
    }
}

impl Index for UpstreamIndex<'_> {
    fn files(&self, project: &ProjectName) -> Result<Arc<Vec<UpstreamFile>>, String> {
        once(&self.listings, project).get_or_init(|| self.gather(project)).clone()
    }

    fn metadata(&self, project: &ProjectName, file: &UpstreamFile) -> Result<Arc<CoreMetadata>, String> {
        let slot = once(&self.metadata, &(project.clone(), file.filename.to_string()));
        let got = slot.get_or_init(|| {
            let started = std::time::Instant::now();
            let (bytes, source) = self.fetcher.fetch(file).map_err(|e| e.to_string())?;
            tracing::debug!("{}: metadata from {source:?} in {:.2?}", file.filename, started.elapsed());
            let parsed = CoreMetadata::parse(&bytes);
            if !file.filename.is_wheel() {
                tracing::warn!(
                    "{project}: resolving with {}'s PKG-INFO: an sdist's dependencies may differ once it is built",
                    file.filename
                );
            }
            for bad in &parsed.invalid {
                tracing::warn!("{project} ({}): ignoring unparseable Requires-Dist {bad:?}", file.filename);
            }
            Ok((Arc::new(parsed), Sha256::of(&bytes)))
        });
        got.as_ref().map(|(m, _)| m.clone()).map_err(Clone::clone)
    }
}

/// What the resolve stage found.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Each target environment and what resolving it gave (unwidened).
    pub envs: Vec<(TargetEnv, Outcome)>,
    /// Every version some resolution installs.
    pub pins: BTreeMap<ProjectName, BTreeSet<Version>>,
    /// The metadata each pinned file was resolved with, by (project, filename):
    /// a wheel whose verified METADATA differs fails.
    pub metadata: BTreeMap<(ProjectName, String), Sha256>,
    /// Environments that resolved, with what they install (the state
    /// keeps it as their last good resolution).
    pub good: Vec<(String, Pins)>,
    /// Environments that did not resolve and keep their last good
    /// resolution instead, with the run that made it.
    pub kept: BTreeMap<String, i64>,
    /// The environments that install each pinned version (good and kept).
    pub installed: crate::select::locked::InstalledBy,
}

/// The requirements one environment resolves: the lines of projects that
/// follow their dependencies (markers evaluated there), and every `-c`
/// constraint as a range, whichever project it names.
fn roots(
    requested: &Requested,
    constraints: &Requested,
    select: &Select,
    env: &TargetEnv,
) -> (Vec<Requirement>, BTreeMap<ProjectName, Ranges<Version>>) {
    let mut roots = Vec::new();
    for (project, lines) in requested {
        if select.options_for(project).dependencies != Dependencies::Resolve {
            continue;
        }
        for l in lines.iter().filter(|l| !l.constraint && l.requirement.marker.evaluate(&env.markers, &[])) {
            roots.push(l.requirement.clone());
        }
    }
    (roots, views::constraint_ranges(constraints, &env.markers))
}

/// One resolution to run: an environment, and maybe one top-level project
/// pinned to one of its newest versions (`latest` widening).
struct Task {
    env: usize,
    pin: Option<(ProjectName, Version)>,
}

/// The widened variants of an environment: for each top-level project, its
/// newest `latest` installable versions (all with 0) but the one the plain
/// resolution chose.
fn widen(
    index: &dyn Index,
    select: &Select,
    env: &TargetEnv,
    env_i: usize,
    roots: &[Requirement],
    base: &Outcome,
) -> Vec<Task> {
    let mut ranges: BTreeMap<ProjectName, Ranges<Version>> = BTreeMap::new();
    for r in roots {
        let range = match &r.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) => Ranges::from(s.clone()),
            _ => Ranges::full(),
        };
        let slot = ranges.entry(ProjectName::from(&r.name)).or_insert_with(Ranges::full);
        *slot = slot.intersection(&range);
    }
    let chosen = |p: &ProjectName| match base {
        Outcome::Resolved(r) => r.pins.get(p).cloned(),
        _ => None,
    };
    let mut tasks = Vec::new();
    for (project, range) in ranges {
        let latest = select.options_for(&project).latest;
        if latest == 1 {
            continue;
        }
        let Ok(versions) = resolve::installable_versions(index, env, select, &project, &range) else { continue };
        let take = if latest == 0 { versions.len() } else { latest };
        for v in versions.into_iter().take(take).filter(|v| Some(v) != chosen(&project).as_ref()) {
            tasks.push(Task { env: env_i, pin: Some((project.clone(), v)) });
        }
    }
    tasks
}

fn run_task(
    index: &dyn Index,
    inputs: &ResolveInputs<'_>,
    envs: &[TargetEnv],
    requested: &Requested,
    t: &Task,
) -> Outcome {
    let (select, env) = (inputs.select, &envs[t.env]);
    let (roots, mut constraints) = roots(requested, inputs.constraints, select, env);
    if let Some((p, v)) = &t.pin {
        let slot = constraints.entry(p.clone()).or_insert_with(Ranges::full);
        *slot = slot.intersection(&Ranges::singleton(v.clone()));
    }
    resolve::resolve(index, &Request { env, select, roots: &roots, constraints: &constraints, follow_all: false })
}

/// Top-level `==` pins no environment can install.
fn unusable_pins(index: &dyn Index, select: &Select, envs: &[TargetEnv], requested: &Requested) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (project, lines) in requested {
        if select.options_for(project).dependencies != Dependencies::Resolve {
            continue;
        }
        for l in lines.iter().filter(|l| !l.constraint) {
            let Some(VersionOrUrl::VersionSpecifier(s)) = &l.requirement.version_or_url else { continue };
            let pinned =
                s.iter().any(|s| matches!(s.operator(), uv_pep440::Operator::Equal | uv_pep440::Operator::ExactEqual));
            if !pinned {
                continue;
            }
            let range = Ranges::from(s.clone());
            let usable = envs.iter().any(|env| {
                resolve::installable_versions(index, env, select, project, &range).is_ok_and(|v| !v.is_empty())
            });
            if !usable {
                let line = format!("{}: `{}`", l.origin, l.requirement);
                out.push(Diagnostic::PinUnusable { project: project.clone(), line });
            }
        }
    }
    out
}

/// The warnings resolution owes the operator: environments it cannot
/// satisfy (and what they keep serving instead), and versions only an
/// sdist serves.
fn warnings(resolved: &Resolved, requested: &Requested, fatal: bool, diags: &mut Diagnostics) {
    let mut sdist_only: BTreeMap<(ProjectName, Version), Vec<String>> = BTreeMap::new();
    for (env, outcome) in &resolved.envs {
        let name = env.name();
        let keeps = match resolved.kept.get(&name) {
            Some(run) => format!("it keeps its last good resolution (run {run}): what it served stays served"),
            None => "nothing is mirrored for it until it does".to_string(),
        };
        let (project, why) = match outcome {
            Outcome::Resolved(r) => {
                for (p, v) in r.sdist_only() {
                    sdist_only.entry((p.clone(), v.clone())).or_default().push(name.clone());
                }
                continue;
            }
            Outcome::Unsatisfiable(u) => {
                tracing::debug!("{name}: the solver's derivation:\n{}", u.detail.trim());
                (u.missing.keys().next().or_else(|| requested.keys().next()).cloned(), u.explanation.trim().to_string())
            }
            Outcome::Failed(e) => (requested.keys().next().cloned(), e.clone()),
        };
        if let Some(project) = project {
            let message = format!("{name}: the requirements do not resolve: {why}; {keeps}");
            diags.push(Diagnostic::Unresolved { env: name, project, message, fatal });
        }
    }
    for ((project, version), envs) in sdist_only {
        diags.push(Diagnostic::SdistOnly { project, version, envs });
    }
}

/// The request the plan stage selects from: the pins replace the lines of
/// every project they name, and those projects take all their pinned
/// versions (`latest = 0`) without following dependencies again.
fn pinned_request(
    requested: Requested,
    select: &Select,
    pins: &BTreeMap<ProjectName, BTreeSet<Version>>,
) -> (Requested, Pinned) {
    let mut out: Requested = requested
        .into_iter()
        .filter(|(p, _)| select.options_for(p).dependencies != Dependencies::Resolve && !pins.contains_key(p))
        .collect();
    for (project, versions) in pins {
        let lines = out.entry(project.clone()).or_default();
        for v in versions {
            lines.push(RequirementLine { requirement: pin(project, v), origin: ORIGIN.into(), constraint: false });
        }
    }
    (out, pins.keys().cloned().collect())
}

/// The projects whose versions are the resolver's pins: their requirement
/// lines are `==` pins, every pinned version is kept (`latest` does not
/// apply) and their dependencies are the resolution's, not followed again
/// (`PlanInputs::options_for`).
pub type Pinned = BTreeSet<ProjectName>;

/// `project==v`, built from the pin itself: nothing to parse, nothing to
/// lose to a version that prints differently than it parses.
fn pin(project: &ProjectName, v: &Version) -> Requirement {
    let exact = uv_pep440::VersionSpecifier::equals_version(v.clone());
    Requirement {
        name: project.package_name().clone(),
        extras: Box::new([]),
        version_or_url: Some(VersionOrUrl::VersionSpecifier(uv_pep440::VersionSpecifiers::from(exact))),
        marker: uv_pep508::MarkerTree::TRUE,
        origin: None,
    }
}

/// The origin of the requirement lines resolution writes.
pub const ORIGIN: &str = "resolution";

/// What the stage needs besides the request.
pub struct ResolveInputs<'a> {
    pub select: &'a Select,
    /// Every `-c` constraint, by the project it names.
    pub constraints: &'a Requested,
    pub client: Option<&'a Client>,
    pub jobs: usize,
    /// For downloads that stand in for metadata.
    pub tmp: &'a std::path::Path,
    /// Which stored views the upstream's changelog says are current.
    pub since: &'a super::serials::Since,
    /// The run's admission gate, for the listings resolution reads.
    pub gate: Option<&'a views::Gatekeeper>,
}

/// Stage: resolve every target environment. Returns the request the plan
/// stage selects from (pins in place of resolved lines), the derived
/// selection options, every view gathered, and what was resolved.
pub fn resolve(
    state: &State,
    inputs: &ResolveInputs<'_>,
    requested: Requested,
    views: Views,
    diags: &mut Diagnostics,
) -> Result<(Requested, Pinned, Views, Resolved), StateError> {
    let select = inputs.select;
    if !requested.keys().any(|p| select.options_for(p).dependencies == Dependencies::Resolve) {
        return Ok((requested, Pinned::new(), views, Resolved::default()));
    }
    let cache = state.metadata_cache()?;
    let stored = state.all_project_views()?;
    let index = UpstreamIndex {
        client: inputs.client,
        since: inputs.since,
        gate: inputs.gate,
        fetcher: Fetcher { client: inputs.client, cache: &cache, tmp: inputs.tmp },
        stored: Mutex::new(stored),
        listings: Mutex::default(),
        metadata: Mutex::default(),
        gathered: Mutex::new(Views::default()),
        diagnostics: Mutex::default(),
    };
    seed(&index, views);
    let envs = env::targets(&select.defaults.tags);
    let mut resolved = Resolved::default();
    // Parallel over environments, then over widened variants; collected in
    // task order, so the merge below is deterministic.
    let progress = crate::util::ui::Progress::count("resolve", envs.len() as u64);
    let base: Vec<Outcome> = crate::util::with_pool(inputs.jobs, || {
        (0..envs.len())
            .into_par_iter()
            .map(|i| {
                let o = run_task(&index, inputs, &envs, &requested, &Task { env: i, pin: None });
                progress.inc(1);
                o
            })
            .collect()
    });
    progress.finish();
    let tasks: Vec<Task> = envs
        .iter()
        .enumerate()
        .flat_map(|(i, env)| {
            widen(&index, select, env, i, &roots(&requested, inputs.constraints, select, env).0, &base[i])
        })
        .collect();
    let progress = crate::util::ui::Progress::count("widen", tasks.len() as u64);
    let widened: Vec<Outcome> = crate::util::with_pool(inputs.jobs, || {
        tasks
            .par_iter()
            .map(|t| {
                let o = run_task(&index, inputs, &envs, &requested, t);
                progress.inc(1);
                o
            })
            .collect()
    });
    progress.finish();
    for outcome in base.iter().chain(&widened) {
        let Outcome::Resolved(r) = outcome else { continue };
        for (p, v) in &r.pins {
            resolved.pins.entry(p.clone()).or_default().insert(v.clone());
        }
        for (p, f) in &r.used {
            if let Some(sha) = index.metadata_sha(p, f.filename.as_str()) {
                resolved.metadata.insert((p.clone(), f.filename.to_string()), sha);
            }
        }
    }
    let unusable = unusable_pins(&index, select, &envs, &requested);
    per_environment(&mut resolved, &envs, (&base, &tasks, &widened), &state.resolutions()?);
    resolved.envs = envs.into_iter().zip(base).collect();
    let mut gathered = index.gathered.into_inner().unwrap_or_else(PoisonError::into_inner);
    gathered.updated.sort_by(|a, b| a.project.cmp(&b.project));
    let mut found = index.diagnostics.into_inner().unwrap_or_else(PoisonError::into_inner);
    views::suggest(inputs.client, &mut found);
    found.sort();
    diags.extend(found);
    let fatal = select.installable == crate::manifest::Installable::Fail;
    warnings(&resolved, &requested, fatal, diags);
    diags.extend(unusable);
    log(&resolved);
    let (requested, pinned) = pinned_request(requested, select, &resolved.pins);
    Ok((requested, pinned, gathered, resolved))
}

/// Each environment's pins: its own (plain and widened) when it resolved,
/// its last good resolution when it did not, so that a conflict, a misspelt
/// or a vanished project never empties what the environment served.
fn per_environment(
    resolved: &mut Resolved,
    envs: &[TargetEnv],
    (base, tasks, widened): (&[Outcome], &[Task], &[Outcome]),
    last_good: &HashMap<String, (Pins, i64)>,
) {
    let mut installed = |p: &ProjectName, v: &Version, name: &str| {
        resolved.installed.entry(p.clone()).or_default().entry(v.clone()).or_default().insert(name.to_string());
    };
    let mut good = Vec::new();
    for (i, env) in envs.iter().enumerate() {
        let name = env.name();
        if !matches!(base[i], Outcome::Resolved(_)) {
            if let Some((pins, run)) = last_good.get(&name) {
                for (p, vs) in pins {
                    resolved.pins.entry(p.clone()).or_default().extend(vs.iter().cloned());
                    vs.iter().for_each(|v| installed(p, v, &name));
                }
                resolved.kept.insert(name, *run);
            }
            continue;
        }
        let mut pins = Pins::new();
        let own = tasks.iter().zip(widened).filter(|(t, _)| t.env == i).map(|(_, o)| o);
        for outcome in std::iter::once(&base[i]).chain(own) {
            if let Outcome::Resolved(r) = outcome {
                for (p, v) in &r.pins {
                    pins.entry(p.clone()).or_default().insert(v.clone());
                }
            }
        }
        for (p, vs) in &pins {
            vs.iter().for_each(|v| installed(p, v, &name));
        }
        good.push((name, pins));
    }
    resolved.good = good;
}

/// The views the run already gathered answer first.
fn seed(index: &UpstreamIndex<'_>, views: Views) {
    // Their fresh views are already stored.
    let mut gathered = index.gathered.lock().unwrap_or_else(PoisonError::into_inner);
    for (project, up) in views.projects {
        let files: Result<Arc<Vec<UpstreamFile>>, String> =
            up.listing().map(|l| l.files.clone()).map_err(str::to_string);
        let slot = once(&index.listings, &project);
        let _ = slot.set(files);
        gathered.projects.insert(project, up);
    }
}

fn log(resolved: &Resolved) {
    for (env, outcome) in &resolved.envs {
        // An environment that does not resolve is said, with why, by the stage's diagnostics.
        if let Outcome::Resolved(r) = outcome {
            tracing::info!("{}: resolved {} project(s)", env.name(), r.pins.len());
        }
    }
    let versions: usize = resolved.pins.values().map(BTreeSet::len).sum();
    tracing::info!("resolution: {} project(s), {versions} version(s) in all", resolved.pins.len());
}
