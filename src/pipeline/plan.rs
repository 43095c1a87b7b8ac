//! Stage: the plan. Apply each project's selection to its listing and diff
//! it against what the state records, giving every file one typed decision.
//! Touches nothing, so `airlock plan` shows exactly what a build would do.
//!
//! Incremental by design: a project whose page is unchanged and whose
//! selection inputs are unchanged (its plan key) is not re-planned; its
//! previous selection carries over without its page being parsed.

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet};

use super::views::{Freshness, Requested, Views};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::manifest::requirements::RequirementLine;
use crate::manifest::{Select, SelectOptions};
use crate::select::locked::{Hashed, Locked, Named};
use crate::store::Store;
use crate::store::state::{Artifact, State, StateError};
use crate::upstream::listing::UpstreamFile;
use crate::util::hashing::Sha256;

/// What happens to one file in this run. Later stages refine it: the adopt
/// and fetch stages turn every `Adopt` and `Fetch` into `Keep` or `Drop`.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Stored, verified and recorded: listed after this run.
    Keep,
    /// Selected and not stored: fetch and verify it.
    Fetch(Box<UpstreamFile>),
    /// Selected, in the store but not in the state (a run was killed after
    /// storing it): hash it again and adopt it instead of refetching.
    Adopt(Box<UpstreamFile>),
    /// Stored and no longer selected: leaves the index with this run.
    Unlist,
    /// Selected but not brought in (the fetch failed, or offline): not
    /// listed, and its project is planned afresh next run.
    Drop,
}

#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub filename: DistFilename,
    pub decision: Decision,
}

/// What a run will do for one project.
#[derive(Debug, Clone)]
pub struct ProjectPlan {
    pub project: ProjectName,
    /// The hash of this project's selection inputs.
    pub key: String,
    /// The previous selection carried over: page and inputs unchanged.
    pub reused: bool,
    /// Planned from a listing (false: the project was only unlisted, or its
    /// listing failed and its selection stands).
    pub planned: bool,
    pub files: Vec<PlannedFile>,
    /// Stored files whose upstream sha256 changed: (filename, mirrored, upstream).
    pub tampered: Vec<(String, Sha256, Sha256)>,
    /// Something asked for is not there (a locked file refused or missing):
    /// plan the project again next run.
    pub incomplete: bool,
    /// Files a carried-over project keeps listed (not read one by one).
    pub carried: u64,
    /// A lock line names a file the upstream does not offer (possible
    /// tampering): the project keeps what it served.
    pub refused_lock: bool,
    /// Selected versions some target installs only from their sdist
    /// (without resolution: resolution says it per environment).
    pub sdist_only: Vec<(crate::dist::Version, Vec<String>)>,
}

impl ProjectPlan {
    fn new(project: &ProjectName, key: String) -> ProjectPlan {
        ProjectPlan {
            project: project.clone(),
            key,
            reused: false,
            planned: false,
            files: Vec::new(),
            tampered: Vec::new(),
            incomplete: false,
            carried: 0,
            refused_lock: false,
            sdist_only: Vec::new(),
        }
    }

    /// Files with this decision.
    pub fn with<'a>(&'a self, f: impl Fn(&Decision) -> bool + 'a) -> impl Iterator<Item = &'a PlannedFile> + 'a {
        self.files.iter().filter(move |p| f(&p.decision))
    }

    /// Files listed after this run, carried over or selected.
    pub fn selected(&self) -> u64 {
        self.carried
            + self.with(|d| matches!(d, Decision::Keep | Decision::Fetch(_) | Decision::Adopt(_))).count() as u64
    }

    /// Every selected file was brought in: the plan key may be recorded.
    pub fn complete(&self) -> bool {
        !self.incomplete
            && !self
                .files
                .iter()
                .any(|f| matches!(f.decision, Decision::Drop | Decision::Fetch(_) | Decision::Adopt(_)))
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    /// The run being planned.
    pub run: RunId,
    /// Sorted by project.
    pub projects: Vec<ProjectPlan>,
    /// Stored files that leave the store with this run (past `keep_runs`).
    pub prune: Vec<(ProjectName, DistFilename)>,
}

impl Plan {
    pub fn files(&self) -> impl Iterator<Item = (&ProjectName, &PlannedFile)> {
        self.projects.iter().flat_map(|p| p.files.iter().map(move |f| (&p.project, f)))
    }

    pub fn count(&self, f: impl Fn(&Decision) -> bool) -> usize {
        self.files().filter(|(_, p)| f(&p.decision)).count()
    }

    /// Bytes the fetch stage will download, as far as the upstream declared sizes.
    pub fn fetch_bytes(&self) -> u64 {
        self.files()
            .filter_map(|(_, p)| match &p.decision {
                Decision::Fetch(f) => f.size,
                _ => None,
            })
            .sum()
    }
}

/// The hash of everything a project's selection depends on: its page, its
/// options, its requirement lines, and the airlock version (rules change).
pub fn plan_key(
    body_sha256: &str,
    opts: &SelectOptions,
    lines: &[RequirementLine],
    locked: Option<&BTreeMap<String, Named>>,
    hashed: Option<&Vec<Hashed>>,
    installed: Option<&BTreeMap<crate::dist::Version, BTreeSet<String>>>,
    gate: &str,
) -> String {
    // Written out field by field (no `Debug` of foreign types, whose
    // format may change under a dependency bump and replan every project).
    let mut text = format!("{}\n{body_sha256}\n{}\n", env!("CARGO_PKG_VERSION"), opts.key_line());
    // Only when set, so a manifest without a gate keeps its keys.
    if !gate.is_empty() {
        text.push_str(gate);
        text.push('\n');
    }
    for (filename, named) in locked.into_iter().flatten() {
        text.push_str(&format!("locked {filename} {} {}\n", named.sha256, named.lockfile));
    }
    for h in hashed.into_iter().flatten() {
        let hashes: Vec<String> = h.hashes.iter().map(ToString::to_string).collect();
        text.push_str(&format!("hashed {} {} {}\n", h.version, hashes.join(","), h.lockfile));
    }
    for (v, envs) in installed.into_iter().flatten() {
        text.push_str(&format!("installed {v}: {}\n", envs.iter().cloned().collect::<Vec<_>>().join(" ")));
    }
    let mut reqs: Vec<String> =
        lines.iter().map(|l| format!("{}{}", if l.constraint { "-c " } else { "" }, l.requirement)).collect();
    reqs.sort();
    for r in reqs {
        text.push_str(&r);
        text.push('\n');
    }
    Sha256::of(text.as_bytes()).hex()
}

/// What of the admission gate and of `upstream_removed` a project's
/// selection depends on, as one line (empty when neither applies).
fn gate_key(inputs: &PlanInputs<'_>, project: &ProjectName, opts: &SelectOptions) -> String {
    let mut out = String::new();
    if opts.gated() {
        out.push_str(&format!(
            "gate min_age={}s freeze={}",
            opts.min_age.as_secs(),
            opts.freeze.map_or("-".to_string(), |f| f.to_string())
        ));
    }
    let pins = inputs.provenance.map(|c| c.pins().key(project));
    if let Some(k) = &pins {
        out.push_str(k);
    }
    if opts.gated() || pins.is_some() {
        for a in inputs.select.admit.iter().filter(|a| &a.project == project) {
            out.push_str(&format!(" admit={}@{}", a.version, a.expires));
        }
    }
    if inputs.upstream_removed == crate::manifest::UpstreamRemoved::Keep {
        out.push_str(" upstream_removed=keep");
    }
    out
}

/// What planning needs besides the views.
pub struct PlanInputs<'a> {
    /// The manifest's selection.
    pub select: &'a Select,
    /// The projects resolution pinned (`resolve::Pinned`).
    pub pinned: &'a super::resolve::Pinned,
    /// What the manifest's lock files name.
    pub locked: &'a Locked,
    /// Every `-c` constraint, by the project it names (a project the
    /// dependency closure adds is constrained too).
    pub constraints: &'a Requested,
    pub keep_runs: u32,
    /// To tell files a killed run stored (adopt) from files never fetched.
    pub store: Store,
    pub run: RunId,
    /// Which stored views the upstream's changelog says are current (for
    /// projects the dependency closure adds).
    pub since: &'a super::serials::Since,
    /// The run's admission gate, for the listings of projects the closure adds.
    pub gate: Option<&'a super::views::Gatekeeper>,
    /// `[policy] upstream_removed`: what the upstream no longer offers does.
    pub upstream_removed: crate::manifest::UpstreamRemoved,
    /// The provenance check of files the closure fetches.
    pub provenance: Option<&'a super::provenance::Check>,
    /// Under `malicious = "block"`, the snapshot whose malicious-package
    /// records keep a release out before anything of it is fetched.
    pub refuse: Option<Refuse<'a>>,
    /// `files = "installed"`: the environments that install each version
    /// (resolution's and the locks'), and those environments; a version
    /// they name keeps only the wheel each of them would pick.
    pub installed: Option<(&'a crate::select::locked::InstalledBy, &'a [crate::select::env::TargetEnv])>,
}

impl PlanInputs<'_> {
    /// A project's options: the manifest's, except that a project
    /// resolution pinned keeps every pinned version and follows no
    /// dependencies of its own (the resolution did).
    pub fn options_for(&self, project: &ProjectName) -> SelectOptions {
        let mut o = self.select.options_for(project);
        if self.pinned.contains(project) {
            o.latest = 0;
            o.dependencies = crate::manifest::Dependencies::Off;
        }
        o
    }
}

/// Malicious releases and files, refused at the plan: their files are
/// known from the page (names and declared sha256), so the decision is
/// made before a byte of them is downloaded.
#[derive(Clone, Copy)]
pub struct Refuse<'a> {
    pub snapshot: &'a crate::advisories::Snapshot,
    pub policy: &'a crate::manifest::Policy,
}

impl Refuse<'_> {
    /// The malicious records (not ignored) that name this release.
    fn release(&self, project: &ProjectName, version: &crate::dist::Version) -> Vec<String> {
        let today = crate::util::clock::output_time().to_zoned(jiff::tz::TimeZone::UTC).date();
        self.snapshot
            .check_version(project.as_str(), version)
            .iter()
            .filter(|x| x.malicious)
            .map(|x| crate::audit::finding(self.snapshot, x, self.policy, today))
            .filter(|x| x.ignored.is_none())
            .map(|x| x.id)
            .collect()
    }

    /// Leave the malicious releases and files of a planned project out of
    /// it, saying so once per release (or per file named by its sha256).
    fn apply(&self, pp: &mut ProjectPlan, listing: &crate::upstream::listing::Listing, diags: &mut Diagnostics) {
        let mut releases: BTreeMap<crate::dist::Version, Vec<String>> = BTreeMap::new();
        let mut files = Vec::new();
        pp.files.retain(|p| {
            let Some(f) = listing.files.iter().find(|f| f.filename == p.filename) else { return true };
            let version = f.filename.version();
            let ids = releases.get(version).cloned().unwrap_or_else(|| self.release(&pp.project, version));
            if !ids.is_empty() {
                releases.insert(version.clone(), ids);
                return false;
            }
            let Some(sha) = f.sha256 else { return true };
            let mut by_hash: Vec<String> = self.snapshot.malicious_file(&sha).map(|a| a.id.clone()).collect();
            if by_hash.is_empty() {
                return true;
            }
            by_hash.sort();
            by_hash.dedup();
            files.push(Diagnostic::MaliciousFile {
                project: pp.project.clone(),
                filename: f.filename.to_string(),
                sha256: sha.hex(),
                advisories: by_hash,
                refused: true,
            });
            false
        });
        // Planned afresh every run while it refuses something: its
        // diagnostics (and the reports) stay whatever else the page does.
        pp.incomplete |= !releases.is_empty() || !files.is_empty();
        for (version, mut advisories) in releases {
            advisories.sort();
            advisories.dedup();
            diags.push(Diagnostic::Blocked { project: pp.project.clone(), version, advisories, malicious: true });
        }
        diags.extend(files);
    }
}

/// Select and diff every requested project, then decide what leaves the
/// index and the store. Only projects planned afresh have their stored
/// artifacts read: a project whose page and inputs are unchanged is carried
/// over by its count, so a no-change run reads no artifact.
pub fn make(
    inputs: &PlanInputs<'_>,
    requested: &Requested,
    views: &Views,
    state: &mut State,
    diags: &mut Diagnostics,
) -> Result<Plan, StateError> {
    let counts = state.listed_counts()?;
    let mut plan = make_batch(inputs, requested, views, state, &counts, diags)?;
    unrequested(&mut plan, state, requested, i64::from(inputs.keep_runs))?;
    Ok(plan)
}

/// Listed files per project, as the state records them before the run.
pub type ListedCounts = std::collections::HashMap<ProjectName, u64>;

/// The plan of one batch of requested projects: [`make`] without what
/// leaves the index or the store outside the batch (a streamed build
/// records every batch, then asks the state what to prune:
/// [`prunable_after_record`]). `counts` is read once per run.
pub fn make_batch(
    inputs: &PlanInputs<'_>,
    requested: &Requested,
    views: &Views,
    state: &mut State,
    counts: &ListedCounts,
    diags: &mut Diagnostics,
) -> Result<Plan, StateError> {
    let mut keys: BTreeMap<&ProjectName, String> = BTreeMap::new();
    let mut fresh: Vec<ProjectName> = Vec::new();
    for (project, lines) in requested {
        let Some(up) = views.projects.get(project) else { continue };
        let opts = inputs.options_for(project);
        let key = plan_key(
            &up.view.body_sha256,
            &opts,
            lines,
            inputs.locked.files.get(project),
            inputs.locked.hashed.get(project),
            inputs.installed.and_then(|(by, _)| by.get(project)),
            &gate_key(inputs, project, &opts),
        );
        if up.freshness == Freshness::Fetched || up.view.plan_key.as_deref() != Some(&key) {
            fresh.push(project.clone());
        }
        keys.insert(project, key);
    }
    let stored = state.artifacts_of(&fresh)?;
    let fresh: BTreeSet<ProjectName> = fresh.into_iter().collect();
    let mut by_project: BTreeMap<&ProjectName, BTreeMap<&str, &Artifact>> = BTreeMap::new();
    for a in &stored {
        by_project.entry(&a.project).or_default().insert(a.filename.as_str(), a);
    }
    let mut plan = Plan { run: inputs.run, projects: Vec::new(), prune: Vec::new() };
    let keep_runs = i64::from(inputs.keep_runs);
    for (project, key) in keys {
        let lines = requested.get(project).map(Vec::as_slice).unwrap_or_default();
        let have = by_project.get(project);
        // Whether the gate held something back, and whether every file that
        // leaves the tree is withdrawn: then an empty selection is explained,
        // and must not keep what was served.
        let (mut held, mut withdrew) = (false, false);
        let pp = if !fresh.contains(project) {
            carried_over(project, key, counts.get(project).copied().unwrap_or(0))
        } else {
            let Some(mut pp) = plan_project(inputs, project, key, lines, views, have, diags) else { continue };
            let selected: BTreeSet<String> = pp.files.iter().map(|f| f.filename.to_string()).collect();
            let unselected: Vec<&Artifact> = have
                .into_iter()
                .flat_map(|h| h.values())
                .filter(|a| !selected.contains(a.filename.as_str()))
                .copied()
                .collect();
            let up = views.projects.get(project);
            withdrew = up.is_some_and(|up| withdraw(inputs, up, &mut pp, &unselected, diags));
            let decided: BTreeSet<String> = pp.files.iter().map(|f| f.filename.to_string()).collect();
            for a in unselected.into_iter().filter(|a| !decided.contains(a.filename.as_str())) {
                leave(&mut pp, &mut plan.prune, a, keep_runs);
            }
            held = up.and_then(|u| u.judgement()).is_some_and(|j| !j.held.is_empty());
            pp
        };
        let mut pp = pp;
        let served = counts.get(project).copied().unwrap_or(0);
        if pp.refused_lock {
            pp = stands(pp, served, &mut plan.prune);
        }
        if !lines.is_empty() && pp.selected() == 0 && (withdrew || held) {
            // Held or withdrawn, said as such: the project serves nothing.
        } else if !lines.is_empty() && pp.selected() == 0 {
            if served > 0 {
                // Fail closed: a requirement nothing meets (a typo, a
                // platform the project never built for) keeps what the
                // project served; only dropping it from the manifest
                // removes it.
                pp = stands(pp, served, &mut plan.prune);
            }
            let lines = lines.iter().filter(|l| !l.constraint).map(|l| format!("{}: `{}`", l.origin, l.requirement));
            diags.push(Diagnostic::SelectsNothing { project: project.clone(), lines: lines.collect(), kept: served });
        }
        plan.projects.push(pp);
    }
    Ok(plan)
}

/// What leaves the store with this run, once every batch's selection is
/// recorded: files unlisted at least `keep_runs` runs ago (this run's
/// included when `keep_runs = 0`), except those of a requested project
/// whose listing failed this run (its selection stands). The state knows
/// the whole selection by then, so no batch's plan needs to be kept.
pub fn prunable_after_record(
    state: &State,
    run: RunId,
    keep_runs: u32,
    failed: &BTreeSet<ProjectName>,
) -> Result<Vec<(ProjectName, DistFilename)>, StateError> {
    let failed: BTreeSet<&ProjectName> = failed.iter().collect();
    prunes(state, run, i64::from(keep_runs), &failed, &BTreeSet::new(), Vec::new())
}

/// The one computation of what leaves the store: the state's files past
/// their grace period at `run`, less those of `failed` projects and those
/// `kept` (a plan that selects them again), plus `also` (files a plan
/// unlists with `keep_runs = 0`), sorted and without repeats. The build
/// asks after recording (`kept` and `also` are then in the state); `airlock
/// plan` asks before, with what its plan keeps and unlists.
fn prunes(
    state: &State,
    run: RunId,
    keep_runs: i64,
    failed: &BTreeSet<&ProjectName>,
    kept: &BTreeSet<(&ProjectName, &str)>,
    mut also: Vec<(ProjectName, DistFilename)>,
) -> Result<Vec<(ProjectName, DistFilename)>, StateError> {
    let mut prune: Vec<(ProjectName, DistFilename)> = state
        .prunable(run, keep_runs)?
        .into_iter()
        .filter(|a| !failed.contains(&a.project) && !kept.contains(&(&a.project, a.filename.as_str())))
        .map(|a| (a.project, a.filename))
        .collect();
    prune.append(&mut also);
    Ok(sorted_once(prune))
}

/// Files leaving the store, sorted, each once.
fn sorted_once(mut prune: Vec<(ProjectName, DistFilename)>) -> Vec<(ProjectName, DistFilename)> {
    prune.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
    prune.dedup_by(|a, b| a.0 == b.0 && a.1.as_str() == b.1.as_str());
    prune
}

/// What the gate held and let in early, said once per release.
fn gate_diagnostics(project: &ProjectName, j: &crate::select::admission::Judgement, diags: &mut Diagnostics) {
    for h in &j.held {
        diags.push(Diagnostic::Held {
            project: project.clone(),
            version: h.version.clone(),
            reason: h.reason,
            due: h.due,
            expired: h.expired.as_ref().map(|a| (a.reason.clone(), a.expires)),
            note: h.note.clone(),
        });
    }
    for a in &j.admitted {
        diags.push(Diagnostic::Admitted {
            project: project.clone(),
            version: a.version.clone(),
            reason: a.reason.clone(),
            expires: a.expires,
        });
    }
}

/// Plan one project afresh from its listing (`None`: the listing is unusable).
fn plan_project(
    inputs: &PlanInputs<'_>,
    project: &ProjectName,
    key: String,
    lines: &[RequirementLine],
    views: &Views,
    have: Option<&BTreeMap<&str, &Artifact>>,
    diags: &mut Diagnostics,
) -> Option<ProjectPlan> {
    let up = views.projects.get(project)?;
    let listing = match up.listing() {
        Ok(l) => l,
        Err(e) => {
            diags.push(Diagnostic::PlanFailed { project: project.clone(), message: e.to_string() });
            return None;
        }
    };
    if let Some(j) = up.judgement() {
        gate_diagnostics(project, j, diags);
    }
    let opts = inputs.options_for(project);
    let lock = LockedFor { files: inputs.locked.files.get(project), hashed: inputs.locked.hashed.get(project) };
    let pp = select_project(project, key, listing, lines, &opts, have, &inputs.store);
    let mut pp = with_locked(pp, listing, &lock, have, &inputs.store, diags);
    // Judged again every run while the gate holds or admits early: a
    // release falls due, an entry expires, with no change to the page.
    pp.incomplete |= up.judgement().is_some();
    if let Some((by, envs)) = inputs.installed
        && let Some(versions) = by.get(project)
    {
        installed_only(&mut pp, listing, (versions, envs), opts.sdists);
    }
    if let Some(r) = &inputs.refuse {
        r.apply(&mut pp, listing, diags);
    }
    // Resolution names sdist-only choices per environment itself.
    if opts.tags.platforms.is_some() && lines.iter().all(|l| l.origin != crate::pipeline::resolve::ORIGIN) {
        pp.sdist_only = sdist_only(&pp, listing, &opts);
        for (version, envs) in &pp.sdist_only {
            diags.push(Diagnostic::SdistOnly {
                project: project.clone(),
                version: version.clone(),
                envs: envs.clone(),
            });
        }
    }
    Some(pp)
}

/// Stored files of a project that the upstream no longer offers (gone from
/// its page, the page answering 404 or 410, the project quarantined) or
/// that the gate's freeze holds: withdrawn from the tree, never pruned in
/// the same run (their bytes stay for forensics), each said once; or kept,
/// under `upstream_removed = "keep"`. Returns whether every unselected
/// file that was listed is withdrawn (and one was).
fn withdraw(
    inputs: &PlanInputs<'_>,
    up: &super::views::Upstream,
    pp: &mut ProjectPlan,
    unselected: &[&Artifact],
    diags: &mut Diagnostics,
) -> bool {
    use crate::diagnostics::Withdrawal;
    let Ok(offered) = up.offered() else { return false };
    let quarantined = crate::upstream::listing::ProjectStatus::quarantined(offered.status.as_ref());
    let frozen = |a: &Artifact| {
        up.judgement().is_some_and(|j| {
            j.held
                .iter()
                .any(|h| &h.version == a.filename.version() && h.reason == crate::select::admission::HoldReason::Frozen)
        })
    };
    let mut out: Vec<(&Artifact, Withdrawal)> = Vec::new();
    let listed: Vec<&&Artifact> = unselected.iter().filter(|a| a.unselected_run.is_none()).collect();
    for a in &listed {
        let reason = if quarantined {
            Withdrawal::Quarantined
        } else if !offered.files.iter().any(|f| f.filename == a.filename) {
            Withdrawal::RemovedUpstream
        } else if frozen(a) {
            Withdrawal::Frozen
        } else {
            continue;
        };
        if inputs.upstream_removed == crate::manifest::UpstreamRemoved::Keep && reason != Withdrawal::Frozen {
            pp.files.push(PlannedFile { filename: a.filename.clone(), decision: Decision::Keep });
            continue;
        }
        pp.files.push(PlannedFile { filename: a.filename.clone(), decision: Decision::Unlist });
        out.push((a, reason));
    }
    let whole = !out.is_empty() && out.len() == listed.len() && (quarantined || offered.files.is_empty());
    if whole {
        let reason = out[0].1;
        diags.push(Diagnostic::Withdrawn { project: pp.project.clone(), version: None, filename: None, reason });
    } else {
        for (a, reason) in &out {
            diags.push(Diagnostic::Withdrawn {
                project: pp.project.clone(),
                version: Some(a.filename.version().clone()),
                filename: Some(a.filename.to_string()),
                reason: *reason,
            });
        }
    }
    !out.is_empty() && out.len() == listed.len()
}

/// Files of projects no longer requested leave the index; and every file
/// past its grace period leaves the store, unless its project's listing
/// failed this run (its selection stands) or the plan selects it again.
pub fn unrequested(
    plan: &mut Plan,
    state: &mut State,
    requested: &Requested,
    keep_runs: i64,
) -> Result<(), StateError> {
    let mut tally = Leaving::new(state, plan.run, keep_runs)?;
    tally.see(plan);
    let rest = tally.finish(state, requested.keys(), std::mem::take(&mut plan.prune))?;
    plan.projects.extend(rest.projects);
    plan.projects.sort_by(|a, b| a.project.cmp(&b.project));
    plan.prune = rest.prune;
    Ok(())
}

/// [`unrequested`] for a plan made batch by batch (`airlock plan` of a
/// whole index): what may leave the store is read first, each batch's plan
/// is seen as it comes and dropped, and only the projects planned and the
/// files still leaving are kept in between, never the plans.
pub struct Leaving {
    run: RunId,
    keep_runs: i64,
    /// Past their grace period, less what a plan seen so far selects
    /// again, by project (a batch's files are looked up without a copy).
    prunable: BTreeMap<ProjectName, BTreeMap<String, DistFilename>>,
    planned: std::collections::HashSet<ProjectName>,
}

impl Leaving {
    pub fn new(state: &State, run: RunId, keep_runs: i64) -> Result<Leaving, StateError> {
        let mut prunable: BTreeMap<ProjectName, BTreeMap<String, DistFilename>> = BTreeMap::new();
        for a in state.prunable(run, keep_runs)? {
            prunable.entry(a.project).or_default().insert(a.filename.as_str().to_string(), a.filename);
        }
        Ok(Leaving { run, keep_runs, prunable, planned: Default::default() })
    }

    /// One batch's plan: its projects were planned, and what it selects
    /// again stays in the store.
    pub fn see(&mut self, plan: &Plan) {
        for pp in &plan.projects {
            self.planned.insert(pp.project.clone());
            let Some(leaving) = self.prunable.get_mut(&pp.project) else { continue };
            for f in pp.files.iter().filter(|f| !matches!(f.decision, Decision::Unlist)) {
                leaving.remove(f.filename.as_str());
            }
        }
    }

    /// The projects no longer requested (their files leave the index) and
    /// what leaves the store: the prunable files but those of requested
    /// projects that no batch planned (their listing failed), plus `also`
    /// (files a plan unlists with `keep_runs = 0`), sorted and without repeats.
    pub fn finish<'r>(
        self,
        state: &mut State,
        requested: impl Iterator<Item = &'r ProjectName>,
        mut also: Vec<(ProjectName, DistFilename)>,
    ) -> Result<Plan, StateError> {
        let names: Vec<ProjectName> = requested.cloned().collect();
        let mut by_project: BTreeMap<ProjectName, ProjectPlan> = BTreeMap::new();
        for a in state.listed_outside(&names)? {
            let pp = by_project.entry(a.project.clone()).or_insert_with(|| ProjectPlan::new(&a.project, String::new()));
            leave(pp, &mut also, &a, self.keep_runs);
        }
        let failed: BTreeSet<&ProjectName> = names.iter().filter(|p| !self.planned.contains(*p)).collect();
        let mut prune: Vec<(ProjectName, DistFilename)> = (self.prunable.into_iter())
            .filter(|(p, _)| !failed.contains(p))
            .flat_map(|(p, files)| files.into_values().map(move |f| (p.clone(), f)))
            .collect();
        prune.append(&mut also);
        Ok(Plan { run: self.run, projects: by_project.into_values().collect(), prune: sorted_once(prune) })
    }
}

/// A stored file the selection no longer has: it leaves the index now, and
/// the store `keep_runs` runs later (at once with `keep_runs = 0`; files
/// unlisted earlier are pruned by [`unrequested`]).
fn leave(pp: &mut ProjectPlan, prune: &mut Vec<(ProjectName, DistFilename)>, a: &Artifact, keep_runs: i64) {
    if a.unselected_run.is_none() {
        pp.files.push(PlannedFile { filename: a.filename.clone(), decision: Decision::Unlist });
        if keep_runs == 0 {
            prune.push((a.project.clone(), a.filename.clone()));
        }
    }
}

/// `files = "installed"`: of each version some environments install, keep
/// the wheel each of them would pick (`dist::tags::rank`, as pip and uv
/// rank tags; Requires-Python must admit the environment's Python), and
/// the sdist when sdists are mirrored; a version no environment is named
/// for keeps every selected file.
fn installed_only(
    pp: &mut ProjectPlan,
    listing: &crate::upstream::listing::Listing,
    (versions, envs): (&BTreeMap<crate::dist::Version, BTreeSet<String>>, &[crate::select::env::TargetEnv]),
    sdists: bool,
) {
    let file_of = |name: &DistFilename| listing.files.iter().find(|u| u.filename == *name);
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for (version, names) in versions {
        let of_version: Vec<&UpstreamFile> =
            pp.files.iter().filter(|f| f.filename.version() == version).filter_map(|f| file_of(&f.filename)).collect();
        for env in envs.iter().filter(|e| names.contains(&e.name())) {
            let python = env.python_version();
            let best = of_version
                .iter()
                .filter_map(|f| match &f.filename {
                    DistFilename::Wheel(w) => {
                        let fits = f.facts.admits_python(&python);
                        let rank = crate::dist::tags::rank(env.python, &env.platform, w).filter(|_| fits)?;
                        Some((rank, f.filename.as_str()))
                    }
                    DistFilename::Sdist(_) => None,
                })
                .min();
            if let Some((_, name)) = best {
                keep.insert(name.to_string());
            }
        }
        if sdists || !keep.iter().any(|k| of_version.iter().any(|f| f.filename.as_str() == k)) {
            keep.extend(of_version.iter().filter(|f| !f.filename.is_wheel()).map(|f| f.filename.to_string()));
        }
    }
    pp.files.retain(|f| !versions.contains_key(f.filename.version()) || keep.contains(f.filename.as_str()));
}

/// The selected versions some target environment gets no wheel of while
/// their sdist is selected: pip would build them on install there.
fn sdist_only(
    pp: &ProjectPlan,
    listing: &crate::upstream::listing::Listing,
    opts: &SelectOptions,
) -> Vec<(crate::dist::Version, Vec<String>)> {
    let envs = crate::select::env::targets(&opts.tags);
    let mut by_version: BTreeMap<&crate::dist::Version, Vec<&UpstreamFile>> = BTreeMap::new();
    for f in &pp.files {
        if let Some(u) = listing.files.iter().find(|u| u.filename == f.filename) {
            by_version.entry(u.filename.version()).or_default().push(u);
        }
    }
    let mut out = Vec::new();
    for (version, files) in by_version {
        if !files.iter().any(|f| !f.filename.is_wheel()) {
            continue;
        }
        let missing: Vec<String> = envs
            .iter()
            .filter(|env| {
                let tags = env.tags();
                let python = env.python_version();
                !files.iter().any(|f| match &f.filename {
                    DistFilename::Wheel(w) => tags.matches(w) && f.facts.admits_python(&python),
                    DistFilename::Sdist(_) => false,
                })
            })
            .map(|env| env.name())
            .collect();
        if !missing.is_empty() {
            out.push((version.clone(), missing));
        }
    }
    out
}

/// A project whose selection stands as recorded (its `served` files stay
/// listed, nothing of it is fetched or unlisted) although it was planned:
/// the plan is not recorded, so the next run plans it again.
fn stands(pp: ProjectPlan, served: u64, prune: &mut Vec<(ProjectName, DistFilename)>) -> ProjectPlan {
    prune.retain(|(p, _)| *p != pp.project);
    let mut out = carried_over(&pp.project, String::new(), served);
    out.reused = false;
    out.planned = false;
    out.tampered = pp.tampered;
    out
}

/// Unchanged page, unchanged inputs: the previous selection stands, its
/// files untouched and unread.
fn carried_over(project: &ProjectName, key: String, listed: u64) -> ProjectPlan {
    let mut pp = ProjectPlan::new(project, key);
    pp.reused = true;
    pp.planned = true;
    pp.carried = listed;
    pp
}

/// What the lock files name of one project.
struct LockedFor<'a> {
    files: Option<&'a BTreeMap<String, Named>>,
    hashed: Option<&'a Vec<Hashed>>,
}

/// The decision for a selected upstream file.
fn decide(
    f: UpstreamFile,
    pp: &mut ProjectPlan,
    have: Option<&BTreeMap<&str, &Artifact>>,
    store: &Store,
) -> PlannedFile {
    let filename = f.filename.clone();
    let name = filename.as_str();
    let recorded = have.and_then(|h| h.get(name));
    // One layout: a recorded file the bucket holds is kept without a local
    // copy; one the state does not record is adopted only from here (the
    // restore-files stage brings a bucket's copy down to be hashed).
    let in_store =
        store.path(&pp.project, &filename).is_file() || recorded.is_some() && store.bucket_holds(&pp.project, name);
    let decision = match (recorded, in_store) {
        (Some(a), true) => {
            if let Some(up) = f.sha256.filter(|up| *up != a.sha256) {
                pp.tampered.push((name.to_string(), a.sha256, up));
            }
            Decision::Keep
        }
        (None, true) => Decision::Adopt(Box::new(f)),
        // Recorded, gone from the store: fetched again as it was recorded,
        // never as the upstream now declares it (other bytes are
        // tampering, refused by the fetch's check).
        (Some(a), false) => {
            if let Some(up) = f.sha256.filter(|up| *up != a.sha256) {
                pp.tampered.push((name.to_string(), a.sha256, up));
            }
            Decision::Fetch(Box::new(UpstreamFile { sha256: Some(a.sha256), size: Some(a.size), ..f }))
        }
        (None, false) => Decision::Fetch(Box::new(f)),
    };
    PlannedFile { filename, decision }
}

/// Add the files lock files name: exactly those, each only if the upstream
/// declares the sha256 the lock does (anything else is refused as possible
/// tampering). Files named by `--hash` alone are the version's files with
/// one of the hashes.
fn with_locked(
    mut pp: ProjectPlan,
    listing: &crate::upstream::listing::Listing,
    lock: &LockedFor<'_>,
    have: Option<&BTreeMap<&str, &Artifact>>,
    store: &Store,
    diags: &mut Diagnostics,
) -> ProjectPlan {
    let project = pp.project.clone();
    let mut chosen: Vec<UpstreamFile> = Vec::new();
    for (filename, named) in lock.files.into_iter().flatten() {
        let found = listing.files.iter().find(|f| f.filename.as_str() == filename);
        pp.incomplete |= found.is_none_or(|f| f.sha256.is_some_and(|up| up != named.sha256));
        match found {
            None => diags.push(Diagnostic::LockMissing {
                project: project.clone(),
                what: filename.clone(),
                lockfile: named.lockfile.clone(),
            }),
            Some(f) if f.sha256.is_some_and(|up| up != named.sha256) => diags.push(Diagnostic::LockMismatch {
                project: project.clone(),
                filename: filename.clone(),
                lock: named.sha256,
                upstream: f.sha256.unwrap_or(named.sha256),
                lockfile: named.lockfile.clone(),
            }),
            Some(f) => chosen.push(f.clone()),
        }
    }
    for h in lock.hashed.into_iter().flatten() {
        let of_version: Vec<&UpstreamFile> =
            listing.files.iter().filter(|f| f.filename.version() == &h.version).collect();
        if of_version.is_empty() {
            pp.incomplete = true;
            diags.push(Diagnostic::LockMissing {
                project: project.clone(),
                what: format!("{project}=={} (with {} hash(es))", h.version, h.hashes.len()),
                lockfile: h.lockfile.clone(),
            });
            continue;
        }
        // Every hash must name a file the upstream offers: pip accepts a
        // file matching any one, so a hash naming nothing is a file that
        // was swapped, or a line that was edited.
        let unknown: Vec<&Sha256> =
            h.hashes.iter().filter(|want| !of_version.iter().any(|f| f.sha256.as_ref() == Some(*want))).collect();
        if !unknown.is_empty() {
            pp.refused_lock = true;
            for sha256 in unknown {
                diags.push(Diagnostic::LockUnknownHash {
                    project: project.clone(),
                    version: h.version.clone(),
                    sha256: *sha256,
                    lockfile: h.lockfile.clone(),
                });
            }
            continue;
        }
        chosen.extend(of_version.into_iter().filter(|f| f.sha256.is_some_and(|s| h.hashes.contains(&s))).cloned());
    }
    if chosen.is_empty() {
        return pp;
    }
    for f in chosen {
        if !pp.files.iter().any(|p| p.filename == f.filename) {
            let planned = decide(f, &mut pp, have, store);
            pp.files.push(planned);
        }
    }
    pp.files.sort_by(|a, b| {
        a.filename.version().cmp(b.filename.version()).then_with(|| a.filename.as_str().cmp(b.filename.as_str()))
    });
    pp
}

/// Apply the selection to a listing and decide each selected file.
fn select_project(
    project: &ProjectName,
    key: String,
    listing: &crate::upstream::listing::Listing,
    lines: &[RequirementLine],
    opts: &SelectOptions,
    have: Option<&BTreeMap<&str, &Artifact>>,
    store: &Store,
) -> ProjectPlan {
    let mut pp = ProjectPlan::new(project, key);
    pp.planned = true;
    let refs: Vec<&RequirementLine> = lines.iter().collect();
    for f in crate::select::select(listing, &refs, opts) {
        let planned = decide(f, &mut pp, have, store);
        pp.files.push(planned);
    }
    pp
}
