//! `airlock build` and `airlock audit`: the pipeline, as a flat list of
//! named stages, each a function of its own module taking and returning
//! plain values:
//!
//! ```text
//! load advisories → Session::begin → connect → wanted (targets, locks,
//!   requested) → since (the upstream's changelog)
//!   → for each batch of projects: gather views → resolve (per
//!     environment) → expand (dependency closure) → plan → adopt → fetch
//!     → record → settle (one layout: up to the bucket)
//!   → record the rest (projects no longer requested)
//!   → publish (inventory → audit → installability → changes → render → swap)
//!   → prune → finish
//! ```
//!
//! A batch's pages, plan and fetch rows are dropped before the next batch
//! starts, and publish streams the state's rows, so a run's memory follows
//! the batch size, not the size of the mirror.
//!
//! Nothing is published unless every earlier stage completed; a run with
//! failures publishes what verified, each failed file keeping what was
//! served for it (unless `publish_partial = false`, or past `max_failures`);
//! a run whose tree would come out identical leaves it be. Every stage adds
//! what it has to say to one typed diagnostics stream.

pub mod admission;
pub mod closure;
pub mod fetch;
pub mod installable;
pub mod plan;
pub mod provenance;
pub mod publish;
pub mod record;
pub mod remote;
pub mod repair;
pub mod resolve;
pub mod serials;
pub mod views;

use crate::util::run_id::RunId;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audit::{LoadedSnapshot, MirrorInfo, load_snapshot};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::dist::names::ProjectName;
use crate::error::Error;
use crate::exit::Exit;
use crate::index::Templates;
use crate::manifest::{Manifest, Mirror, Select};
use crate::run::{Command, Run, Session};
use crate::select::env::{self, TargetEnv};
use crate::select::locked::{self, Locked};
use crate::store::fetch::FetchOptions;
use crate::store::state::RunCounts;
use crate::upstream::{Client, ClientConfig};
use crate::util::ui::human_bytes;
use crate::util::{redact, signal};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub offline: bool,
    /// `--allow-removals`: publish whatever the run unlists.
    pub allow_removals: bool,
    pub jobs: Option<usize>,
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub added: u64,
    pub kept: u64,
    pub unlisted: u64,
    pub pruned: u64,
    pub failed: u64,
    pub bytes: u64,
    pub tampered: u64,
    pub published: bool,
    pub elapsed: Duration,
    /// What the run asked the upstream (none offline).
    pub upstream: Option<crate::upstream::Traffic>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "added {}, kept {}, removed {} (pruned {}), failed {}, fetched {}, {:.1}s",
            self.added,
            self.kept,
            self.unlisted,
            self.pruned,
            self.failed,
            human_bytes(self.bytes),
            self.elapsed.as_secs_f64()
        )?;
        if self.tampered > 0 {
            write!(f, ", {} POSSIBLE TAMPERING", self.tampered)?;
        }
        if !self.published {
            write!(f, "; the served tree is unchanged")?;
        }
        Ok(())
    }
}

impl Summary {
    fn counts(&self) -> RunCounts {
        RunCounts { added: self.added, kept: self.kept, removed: self.unlisted, failed: self.failed, bytes: self.bytes }
    }
}

#[derive(Debug)]
pub struct BuildOutcome {
    pub run: RunId,
    pub summary: Summary,
    /// Everything the run had to say, sorted.
    pub diagnostics: Vec<Diagnostic>,
    pub exit: Exit,
    /// What the audit found, when it ran (not on a run that changed nothing).
    pub findings: Option<crate::audit::Findings>,
}

impl BuildOutcome {
    pub fn failures(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.fails_run())
    }
}

/// Stage: connect. The upstream client, or none offline.
pub fn connect(mirror: &Mirror, offline: bool) -> Result<Option<Client>, Error> {
    if offline {
        return Ok(None);
    }
    let cfg = ClientConfig { index: mirror.upstream.clone(), retries: mirror.retries, timeout: mirror.timeout };
    Ok(Some(Client::new(&cfg)?))
}

/// What the manifest asks for, worked out once: the target environments,
/// what lock files name there, and the requirement lines by project.
pub struct Wanted {
    pub envs: Vec<TargetEnv>,
    pub locked: Locked,
    pub requested: views::Requested,
    /// Every `-c` constraint, by the project it names, requested or not.
    pub constraints: views::Requested,
}

/// Stage: wanted.
pub fn wanted(select: &Select) -> Wanted {
    let envs = env::targets(&select.defaults.tags);
    let locked = locked::locked(select, &envs);
    let requested = views::requested(select, &locked);
    let constraints = views::constraints(select);
    Wanted { envs, locked, requested, constraints }
}

fn publishing<'a>(
    manifest: &'a Manifest,
    wanted: &'a Wanted,
    loaded: &'a LoadedSnapshot,
    templates: &'a Templates,
    (force, always_join, allow_removals): (bool, bool, bool),
    (repair, upstream_missing): (Option<&'a repair::Repairer<'a>>, &'a UpstreamMissing),
) -> publish::Publishing<'a> {
    publish::Publishing {
        mirror: MirrorInfo {
            name: manifest.mirror.name.clone(),
            upstream: Some(redact::url(&manifest.mirror.upstream)),
        },
        policy: &manifest.policy,
        check: installable::CheckInputs {
            select: &manifest.select,
            requested: &wanted.requested,
            locked: &wanted.locked,
            constraints: &wanted.constraints,
            upstream_missing,
            envs: &wanted.envs,
            jobs: manifest.mirror.jobs,
        },
        loaded,
        snapshot_file: Some(manifest.advisories.snapshot.as_path()),
        templates,
        force,
        always_join,
        max_removed: manifest.mirror.max_removed,
        allow_removals,
        repair,
        index_url: manifest.mirror.base_url.as_ref().and_then(|u| u.join("simple/").ok()).map(|u| u.to_string()),
        base_url: manifest.mirror.base_url.clone(),
        project_pages: manifest.mirror.project_pages,
    }
}

/// `[mirror] files`: with `"installed"` (the default under resolution or
/// lock files) the environments that install each version, from the
/// resolution and the locks; `None` keeps every compatible file.
pub(crate) fn installed_by(
    manifest: &Manifest,
    want: &Wanted,
    resolved: &resolve::Resolved,
) -> Option<crate::select::locked::InstalledBy> {
    let claims = !want.locked.is_empty()
        || want
            .requested
            .keys()
            .any(|p| manifest.select.options_for(p).dependencies == crate::manifest::Dependencies::Resolve);
    let files = manifest.mirror.files.unwrap_or(if claims {
        crate::manifest::Files::Installed
    } else {
        crate::manifest::Files::Compatible
    });
    if files != crate::manifest::Files::Installed {
        return None;
    }
    let mut out = resolved.installed.clone();
    for (p, versions) in &want.locked.installed {
        for (v, envs) in versions {
            out.entry(p.clone()).or_default().entry(v.clone()).or_default().extend(envs.iter().cloned());
        }
    }
    Some(out)
}

/// What the plan refuses before fetching: malicious releases, under
/// `malicious = "block"` with a snapshot.
pub(crate) fn refuse<'a>(policy: &'a crate::manifest::Policy, loaded: &'a LoadedSnapshot) -> Option<plan::Refuse<'a>> {
    let snapshot = loaded.snapshot.as_ref().filter(|_| policy.malicious == crate::manifest::Malicious::Block)?;
    Some(plan::Refuse { snapshot, policy })
}

/// Why resolution found projects unusable, by (environment, project).
type UpstreamMissing = std::collections::BTreeMap<(String, ProjectName), crate::select::installable::Reason>;

/// Stage: finish. Record how the run ended and what it said, and
/// checkpoint the state into an object-store store.
fn finish(
    run: Run,
    (mut summary, findings): (Summary, Option<crate::audit::Findings>),
    diags: &Diagnostics,
    (started, exit): (Instant, Exit),
    remote: Option<&remote::RemoteStore>,
) -> Result<BuildOutcome, Error> {
    summary.elapsed = started.elapsed();
    summary.failed = diags.failures().count() as u64;
    let errors: Vec<String> = diags.failures().map(ToString::to_string).collect();
    let id = run.id;
    run.finish_then(exit.outcome(), &summary.counts(), &errors, |state| {
        let Some(remote) = remote else { return Ok(()) };
        remote.checkpoint_state(state, id).map_err(|e| crate::run::RunError::Checkpoint(e.to_string()))
    })?;
    Ok(BuildOutcome { run: id, summary, diagnostics: diags.sorted(), exit, findings })
}

/// Requested projects per batch of the streamed stages (views → plan →
/// adopt → fetch → record). A run holds one batch's pages, plan and fetch
/// rows at a time, never the whole mirror's, so its memory does not grow
/// with the mirror; what carries from batch to batch is per project (the
/// requirement lines, listed counts), never per file. `AIRLOCK_BATCH`
/// overrides it (the tests use tiny batches).
const BATCH_PROJECTS: usize = 1000;

fn batch_size() -> usize {
    std::env::var("AIRLOCK_BATCH").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(BATCH_PROJECTS)
}

/// The requested projects' names in batches, in name order (a batch's
/// requirement lines are cloned only when its turn comes). Resolution and
/// the dependency closure read every project's listing together, so a
/// manifest that uses either is planned as one batch.
pub(crate) fn batches(select: &Select, requested: &views::Requested) -> Vec<Vec<ProjectName>> {
    let whole = requested.keys().any(|p| select.options_for(p).dependencies != crate::manifest::Dependencies::Off);
    let size = if whole { requested.len().max(1) } else { batch_size() };
    let names: Vec<&ProjectName> = requested.keys().collect();
    names.chunks(size).map(|c| c.iter().map(|p| (*p).clone()).collect()).collect()
}

/// What every stage of one build reads, worked out once when the run
/// begins: the build context. Each stage takes the context and the run
/// (whose state and store it writes), never a tuple of loose values.
pub(crate) struct Build<'a> {
    manifest: &'a Manifest,
    loaded: &'a LoadedSnapshot,
    client: Option<Client>,
    since: serials::Since,
    pub(crate) want: Wanted,
    /// Listed files per project before the run (read once).
    counts: plan::ListedCounts,
    /// The admission gate, when some project is held back by anything.
    gate: Option<views::Gatekeeper>,
    /// The PEP 740 check (none under `provenance = "off"`).
    provenance: Option<provenance::Check>,
    jobs: usize,
    pub(crate) diags: Diagnostics,
}

/// Where the planning stages run: in a build's run, or in `airlock plan`
/// (a state it may not write but for the views `plan -o` keeps, and the
/// store and run id the build would use).
pub(crate) enum Scope<'r> {
    Build(&'r mut Run),
    Plan {
        state: &'r mut crate::store::state::State,
        store: crate::store::Store,
        id: RunId,
        keep_views: bool,
        /// Scratch space (plan creates nothing in the mirror's directories).
        tmp: PathBuf,
    },
}

impl Scope<'_> {
    fn state(&mut self) -> &mut crate::store::state::State {
        match self {
            Scope::Build(run) => &mut run.state,
            Scope::Plan { state, .. } => state,
        }
    }

    fn store(&self) -> crate::store::Store {
        match self {
            Scope::Build(run) => run.store.clone(),
            Scope::Plan { store, .. } => store.clone(),
        }
    }

    fn id(&self) -> RunId {
        match self {
            Scope::Build(run) => run.id,
            Scope::Plan { id, .. } => *id,
        }
    }

    fn keeps_views(&self) -> bool {
        matches!(self, Scope::Build(_) | Scope::Plan { keep_views: true, .. })
    }

    fn tmp(&self) -> PathBuf {
        match self {
            Scope::Build(run) => run.store.tmp_dir().to_path_buf(),
            Scope::Plan { tmp, .. } => tmp.clone(),
        }
    }
}

impl<'a> Build<'a> {
    /// Stages connect, wanted, since and admission.
    fn begin(
        run: &Run,
        manifest: &'a Manifest,
        opts: &BuildOptions,
        loaded: &'a LoadedSnapshot,
    ) -> Result<Build<'a>, Error> {
        let build = Build::new(&run.state, manifest, (opts.offline, opts.jobs), loaded)?;
        announce(run.id, build.want.requested.len(), &manifest.mirror.upstream, opts.offline);
        Ok(build)
    }

    /// The context from a state: `build`'s run's, or the one `airlock plan`
    /// reads (so plan and build start from the same values by construction).
    pub(crate) fn new(
        state: &crate::store::state::State,
        manifest: &'a Manifest,
        (offline, jobs): (bool, Option<usize>),
        loaded: &'a LoadedSnapshot,
    ) -> Result<Build<'a>, Error> {
        let m = &manifest.mirror;
        let client = connect(m, offline)?;
        let want = wanted(&manifest.select);
        let since = serials::since(client.as_ref(), state)?;
        let counts = state.listed_counts()?;
        let jobs = jobs.unwrap_or(m.jobs);
        let provenance = provenance::Check::new(&manifest.policy, &manifest.select, state)?;
        let gate = admission::gatekeeper(manifest, loaded, provenance.as_ref().map(provenance::Check::pins));
        let diags = Diagnostics::default();
        Ok(Build { manifest, loaded, client, since, want, counts, gate, provenance, jobs, diags })
    }

    fn fetch_options(&self) -> FetchOptions {
        FetchOptions { jobs: self.jobs, allow_missing_hashes: self.manifest.mirror.allow_missing_hashes }
    }

    /// The stages up to one batch's plan: views, resolution, the closure, the plan.
    fn plan_batch(
        &mut self,
        run: &mut Run,
        batch: views::Requested,
    ) -> Result<(plan::Plan, views::Requested, resolve::Resolved), Error> {
        self.plan_stages(Scope::Build(run), batch)
    }

    /// The stages up to a plan, for `build` (which records views and
    /// resolutions, and fetches the closure's wheels) or for `airlock plan`
    /// (which writes nothing but, with `-o`, the views it planned from).
    pub(crate) fn plan_stages(
        &mut self,
        mut scope: Scope<'_>,
        batch: views::Requested,
    ) -> Result<(plan::Plan, views::Requested, resolve::Resolved), Error> {
        let (manifest, client, jobs, gate) = (self.manifest, self.client.as_ref(), self.jobs, self.gate.as_ref());
        let (since, want, diags) = (&self.since, &self.want, &mut self.diags);
        let mut sw = crate::util::ui::Stopwatch::start();
        let names: Vec<_> = batch.keys().cloned().collect();
        let mut views = views::gather(client, scope.state(), &names, jobs, since, diags)?;
        if scope.keeps_views() {
            scope.state().put_project_views(&std::mem::take(&mut views.updated))?;
        }
        views.set_gate(gate);
        sw.lap("upstream views");
        signal::check()?;
        let tmp = scope.tmp();
        let select = &manifest.select;
        let cx =
            resolve::ResolveInputs { select, constraints: &want.constraints, client, jobs, tmp: &tmp, since, gate };
        let (requested, pinned, views, resolved) = resolve::resolve(scope.state(), &cx, batch, views, diags)?;
        if scope.keeps_views() {
            scope.state().put_project_views(&views.updated)?;
        }
        let id = scope.id();
        if let Scope::Build(run) = &mut scope {
            run.state.put_resolutions(id, &resolved.good)?;
        }
        sw.lap("resolve");
        signal::check()?;
        let installed = installed_by(manifest, want, &resolved);
        let inputs = plan::PlanInputs {
            select,
            pinned: &pinned,
            locked: &want.locked,
            constraints: &want.constraints,
            keep_runs: manifest.mirror.keep_runs,
            store: scope.store(),
            run: id,
            since,
            gate,
            upstream_removed: manifest.policy.upstream_removed,
            provenance: self.provenance.as_ref(),
            refuse: refuse(&manifest.policy, self.loaded),
            installed: installed.as_ref().map(|i| (i, want.envs.as_slice())),
        };
        let fetch_opts = FetchOptions { jobs, allow_missing_hashes: manifest.mirror.allow_missing_hashes };
        // The closure needs the selected wheels: only a build fetches them.
        let (requested, views) = match &mut scope {
            Scope::Build(run) => closure::expand(run, client, &inputs, requested, views, fetch_opts, diags)?,
            Scope::Plan { .. } => (requested, views),
        };
        let plan = plan::make_batch(&inputs, &requested, &views, scope.state(), &self.counts, diags)?;
        sw.lap("plan");
        Ok((plan, requested, resolved))
    }

    /// Every batch, views to record; what they added up to and every
    /// requested name (only the names carry over from batch to batch:
    /// resolution and the closure may add projects to the request).
    fn batches(
        &mut self,
        run: &mut Run,
        mut remote: Option<&mut remote::RemoteStore>,
    ) -> Result<(Batched, BTreeSet<ProjectName>), Error> {
        let mut sw = crate::util::ui::Stopwatch::start();
        let mut done = Batched::default();
        let mut requested: BTreeSet<ProjectName> = BTreeSet::new();
        // The batches' names are cut up front; each batch's lines are cloned
        // when its turn comes (its stages borrow the whole context).
        for names in batches(&self.manifest.select, &self.want.requested) {
            let batch: views::Requested =
                names.into_iter().filter_map(|p| self.want.requested.get(&p).map(|l| (p, l.clone()))).collect();
            let (plan, batch, resolved) = self.plan_batch(run, batch)?;
            signal::check()?;
            let expected = (self.fetch_options(), &resolved.metadata, self.provenance.as_ref());
            let (plan, fetched, fetches) =
                fetch_batch(run, self.client.as_ref(), plan, expected, remote.as_deref_mut(), &mut self.diags)?;
            sw.lap("fetch");
            signal::check()?;
            done.add(&plan, &batch, fetched, fetches);
            done.note_missing(&resolved);
            done.unlisted += record::record(run, &plan, &batch)?;
            if let Some(r) = remote.as_deref_mut().filter(|r| r.one_layout()) {
                settle(run, r, &plan)?;
            }
            requested.extend(batch.into_keys());
            drop(plan);
            crate::util::mem::release();
            sw.lap("record");
        }
        done.unlisted += record::unrequested(run, &requested)?;
        record::withdrawn(run, &self.diags)?;
        record::gate(run, &self.diags)?;
        // Only a run whose pages all came through moves the serial forward.
        let pages_failed =
            self.diags.iter().any(|d| matches!(d, Diagnostic::UpstreamFailed { .. } | Diagnostic::PlanFailed { .. }));
        self.since.finish(&mut run.state, pages_failed)?;
        Ok((done, requested))
    }
}

pub fn build(manifest: &Manifest, opts: &BuildOptions) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
    let m = &manifest.mirror;
    let output = opts.out.clone().unwrap_or_else(|| m.output.clone());
    let templates = Templates::new(m.templates.as_deref())?;
    let loaded = load_snapshot(&manifest.advisories, &manifest.policy, crate::util::clock::output_time())?;
    // An object-store store: a runner without a local state continues
    // from the state checkpointed there (offline too: `--offline` keeps
    // away from the upstream, not from the mirror's own store).
    let mut remote = remote::open(m, &manifest.publish)?;
    if let Some(r) = remote.as_mut() {
        r.lease("airlock build")?;
        r.restore_state(&m.state)?;
    }
    let mut run = Session::open(m, &output, Command::Build)?.begin()?;
    // An error ends the run recorded as failed, naming the error.
    match build_stages(&mut run, manifest, opts, (&templates, &loaded), remote.as_mut()) {
        Ok((summary, findings, diags, exit)) => {
            finish(run, (summary, findings), &diags, (started, exit), remote.as_ref())
        }
        Err(e) => Err(run.abort(e)),
    }
}

/// The run's first line: what it mirrors from where.
fn announce(run: RunId, projects: usize, upstream: &url::Url, offline: bool) {
    let offline = if offline { " (offline: stored views only)" } else { "" };
    tracing::info!("run {run}: {projects} project(s) from {}{offline}", redact::url(upstream));
}

/// Every stage of `build` between `Session::begin` and `finish`, with a
/// safe point for signals between stages.
fn build_stages(
    run: &mut Run,
    manifest: &Manifest,
    opts: &BuildOptions,
    (templates, loaded): (&Templates, &LoadedSnapshot),
    mut remote: Option<&mut remote::RemoteStore>,
) -> Result<(Summary, Option<crate::audit::Findings>, Diagnostics, Exit), Error> {
    let mut sw = crate::util::ui::Stopwatch::start();
    let m = &manifest.mirror;
    let mut b = Build::begin(run, manifest, opts, loaded)?;
    if let Some(r) = remote.as_deref_mut() {
        r.list()?;
        if r.one_layout() {
            run.store.attach_bucket(r.held());
            restore_beside(run, r, b.provenance.as_ref(), &mut b.diags)?;
        }
    }
    let (done, requested) = b.batches(run, remote.as_deref_mut())?;
    let Build { client, since, want, jobs, mut diags, provenance, .. } = b;
    let traffic = |files: u64| client.as_ref().map(|c| upstream_line(c, &since, files));
    let repairer = repair::Repairer::new(client.as_ref(), run.target.current(), jobs);
    if let Some(r) = remote.as_deref_mut() {
        sync_remote(run, r, &requested, (&repairer, provenance.as_ref(), &mut diags))?;
        sw.lap("object store");
    }
    let failed = requested.iter().filter(|p| !done.planned.contains(*p)).cloned().collect();
    let prune = plan::prunable_after_record(&run.state, run.id, m.keep_runs, &failed)?;
    let work = want.requested.len() as u64 + done.fetches;
    let mut summary = done.summary(run.state.listed_count()?);
    if let Some(why) = withhold(m, &diags, work) {
        summary.upstream = traffic(done.fetched.files);
        tracing::error!("{why}");
        return Ok((summary, None, diags, Exit::Failed));
    }
    record::pruning(&prune, &mut diags);
    summary.pruned = record::prune_rows(run, &prune)?;
    let flags = (false, false, opts.allow_removals);
    let publishing = publishing(manifest, &want, loaded, templates, flags, (Some(&repairer), &done.missing));
    let published = publish::publish(run, &publishing, &mut diags)?;
    summary.published = published.changed;
    summary.upstream = traffic(done.fetched.files);
    let restored = repairer.restored.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let (Some(r), false) = (remote, restored.is_empty()) {
        r.upload(&run.store, &restored)?;
        evict(&run.store, &restored);
    }
    // Only once a tree without them is served: a refused or withheld
    // tree may still be what serves them (their rows are adopted again).
    if published.changed {
        record::prune_files(run, &prune);
    }
    // A failed run outranks a policy breach: the mirror is incomplete.
    let exit = if diags.failed() || published.exit == Exit::Failed { Exit::Failed } else { published.exit };
    Ok((summary, published.findings, diags, exit))
}

/// What the batches of a run added up to.
#[derive(Default)]
struct Batched {
    fetched: fetch::Fetched,
    /// Files planned for fetching (the run's work, for `max_failures` as a percentage).
    fetches: u64,
    unlisted: u64,
    tampered: u64,
    /// Requested projects planned from a listing (the others' listings failed).
    planned: BTreeSet<ProjectName>,
    /// What resolution found unusable where (for the installability check).
    missing: UpstreamMissing,
}

impl Batched {
    /// The run's summary so far, the state listing `listed` files.
    fn summary(&self, listed: u64) -> Summary {
        Summary {
            added: self.fetched.files,
            kept: listed.saturating_sub(self.fetched.files),
            unlisted: self.unlisted,
            bytes: self.fetched.bytes,
            tampered: self.tampered,
            ..Summary::default()
        }
    }

    /// Projects an environment needs that upstream does not have, for the
    /// reports' "did you mean".
    fn note_missing(&mut self, resolved: &resolve::Resolved) {
        for (env, outcome) in &resolved.envs {
            if let crate::select::resolve::Outcome::Unsatisfiable(u) = outcome {
                for (p, m) in &u.missing {
                    self.missing.insert((env.name(), p.clone()), (*m).into());
                }
            }
        }
    }

    fn add(&mut self, plan: &plan::Plan, requested: &views::Requested, fetched: fetch::Fetched, fetches: u64) {
        self.fetched.files += fetched.files;
        self.fetched.bytes += fetched.bytes;
        self.fetches += fetches;
        self.tampered += plan.projects.iter().map(|p| p.tampered.len() as u64).sum::<u64>();
        self.planned.extend(
            plan.projects.iter().filter(|p| p.planned && requested.contains_key(&p.project)).map(|p| p.project.clone()),
        );
    }
}

/// Stages adopt, restore files (object-store store) and fetch, for one
/// batch; also how many files the plan fetches (the run's work).
fn fetch_batch(
    run: &mut Run,
    client: Option<&Client>,
    plan: plan::Plan,
    (opts, expected, provenance): (FetchOptions, &fetch::Expected, Option<&provenance::Check>),
    remote: Option<&mut remote::RemoteStore>,
    diags: &mut Diagnostics,
) -> Result<(plan::Plan, fetch::Fetched, u64), Error> {
    let mut plan = fetch::adopt(run, plan, (opts.allow_missing_hashes, provenance), diags)?;
    if let Some(r) = remote {
        let restored = remote::restore_files(r, &mut plan, &run.store);
        if restored > 0 {
            tracing::info!("{restored} file(s) from the object store instead of the upstream");
            plan = fetch::adopt(run, plan, (opts.allow_missing_hashes, provenance), diags)?;
        }
    }
    let fetches = plan.count(|d| matches!(d, plan::Decision::Fetch(_))) as u64;
    let (plan, fetched) = fetch::fetch(run, client, plan, opts, (expected, provenance), diags)?;
    Ok((plan, fetched, fetches))
}

/// Stage: object store. Files the state records that the working copy
/// lacks come from the object store, else (a file gone from the bucket)
/// from the served tree or the upstream, verified; verified files the
/// object store lacks go up, so it is whole again after every run. Under
/// one layout the distributions stay in the bucket: only what is beside
/// them comes down, and what went up leaves the working copy.
fn sync_remote(
    run: &mut Run,
    r: &mut remote::RemoteStore,
    requested: &BTreeSet<ProjectName>,
    (repairer, check, diags): (&repair::Repairer<'_>, Option<&provenance::Check>, &mut Diagnostics),
) -> Result<(), Error> {
    let names: Vec<_> = requested.iter().cloned().collect();
    let artifacts = run.state.artifacts_of(&names)?;
    let restored = recorded_from(run, r, &artifacts, check, diags);
    let gone: Vec<_> = artifacts.iter().filter(|a| !run.store.holds(&a.project, &a.filename)).cloned().collect();
    if !gone.is_empty() {
        diags.extend(repairer.restore(&run.store, &gone));
    }
    let pairs: Vec<_> = artifacts.into_iter().map(|a| (a.project, a.filename)).collect();
    let uploaded = r.upload(&run.store, &pairs)?;
    evict(&run.store, &pairs);
    tracing::info!("object store: {restored} recorded file(s) restored from it, {uploaded} verified file(s) uploaded");
    Ok(())
}

/// Recorded files the working copy lacks, from the object store (under
/// one layout, only what is beside them); provenance that came down is
/// verified again once here (only that: a nightly run verifies nothing).
fn recorded_from(
    run: &Run,
    r: &remote::RemoteStore,
    artifacts: &[crate::store::state::Artifact],
    check: Option<&provenance::Check>,
    diags: &mut Diagnostics,
) -> u64 {
    let lacking: Vec<&crate::store::state::Artifact> = artifacts
        .iter()
        .filter(|a| a.facts.provenance.is_some() && !run.store.provenance_path(&a.project, &a.filename).is_file())
        .collect();
    let files: Vec<_> = artifacts
        .iter()
        .map(|a| (a.project.clone(), a.filename.clone(), a.sha256, a.metadata.map(|(sha, _)| sha)))
        .collect();
    let restored = r.restore_recorded(&run.store, &files);
    if let Some(check) = check {
        diags.extend(provenance::verify_restored(check.root(), &run.store, &lacking));
    }
    restored
}

/// One layout, before the first batch: what pages and the dependency
/// closure read beside each recorded file (`.metadata`, `.provenance`)
/// comes down from the bucket, so an empty runner plans and renders as the
/// runner before it did.
fn restore_beside(
    run: &Run,
    r: &remote::RemoteStore,
    check: Option<&provenance::Check>,
    diags: &mut Diagnostics,
) -> Result<(), Error> {
    let mut artifacts = Vec::new();
    run.state.each_artifact(|a| artifacts.push(a))?;
    let restored = recorded_from(run, r, &artifacts, check, diags);
    if restored > 0 {
        tracing::info!("object store: {restored} file(s) beside the packages restored from it");
    }
    Ok(())
}

/// One layout, after each batch: its verified files (and what is beside
/// them) go up, right after their verification, and the distributions
/// leave the working copy, so a runner's disk holds one batch's downloads
/// at most.
fn settle(run: &Run, r: &mut remote::RemoteStore, plan: &plan::Plan) -> Result<(), Error> {
    let kept: Vec<_> = plan
        .projects
        .iter()
        .flat_map(|pp| {
            pp.with(|d| matches!(d, plan::Decision::Keep)).map(move |f| (pp.project.clone(), f.filename.clone()))
        })
        .filter(|(p, f)| run.store.path(p, f).is_file())
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let uploaded = r.upload(&run.store, &kept)?;
    evict(&run.store, &kept);
    tracing::debug!("object store: {uploaded} verified file(s) uploaded");
    Ok(())
}

/// One layout: drop the working copies of distributions the bucket holds.
fn evict(store: &crate::store::Store, files: &[(ProjectName, crate::dist::filename::DistFilename)]) {
    if store.in_bucket() {
        for (p, f) in files {
            store.evict(p, f);
        }
    }
}

/// The run's upstream traffic in one line (and why a rerun cannot be one
/// request, when it cannot); the figures go to the summary's JSON fields.
fn upstream_line(client: &Client, since: &serials::Since, files: u64) -> crate::upstream::Traffic {
    let t = client.traffic();
    let validators = match (t.validated, t.unvalidated) {
        (_, 0) => String::new(),
        (0, _) => ", no ETags: every page is downloaded whole each run".to_string(),
        (_, n) => format!(", {n} page(s) without ETags"),
    };
    tracing::info!(
        upstream_requests = t.requests,
        not_modified = t.not_modified,
        upstream_bytes = t.bytes,
        "upstream: {} page(s) ({} x 304), {files} file(s), {} in {} request(s); {}{validators}",
        t.pages,
        t.not_modified,
        human_bytes(t.bytes),
        t.requests,
        since.describe()
    );
    t
}

/// Why a run with failures publishes nothing, if it does not: by default
/// what verified is published (one bad file must not freeze the mirror),
/// unless `publish_partial = false` or the failures pass `max_failures`.
fn withhold(m: &Mirror, diags: &Diagnostics, work: u64) -> Option<String> {
    let failed = diags.failures().count() as u64;
    if failed == 0 {
        return None;
    }
    if !m.publish_partial {
        return Some(
            "the run failed: the served tree is left as it was (`publish_partial = false` in [mirror])".to_string(),
        );
    }
    let max = m.max_failures?;
    max.exceeded(failed, work).then(|| {
        format!(
            "the run failed {failed} of {work} project page(s) and file(s), more than `max_failures = {max}`: \
             the served tree is left as it was"
        )
    })
}

/// `airlock audit`: re-join what is published with the (new) snapshot and
/// re-render the reports and the index. Fetches nothing.
pub fn audit(manifest: &Manifest) -> Result<BuildOutcome, Error> {
    republish(manifest, Command::Audit, false)
}

/// Re-render and publish the current selection from the store: `audit`, and
/// `verify --repair` (forced: the store changed under equal hashes).
pub fn republish(manifest: &Manifest, command: Command, force: bool) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
    let m = &manifest.mirror;
    let loaded = load_snapshot(&manifest.advisories, &manifest.policy, crate::util::clock::output_time())?;
    let templates = Templates::new(m.templates.as_deref())?;
    let session = Session::open(m, &m.output, command)?;
    if session.state.last_published_run()?.is_none() {
        return Err(Error::Failed(format!(
            "nothing to {command}: {} has no published tree yet (run `airlock build`)",
            m.state.display()
        )));
    }
    let mut run = session.begin()?;
    let mut diags = Diagnostics::default();
    // What the last build's gate held: the reports say it alike.
    diags.extend(record::gate_diagnostics(&run.state)?);
    let want = wanted(&manifest.select);
    // `audit` always joins: its findings are what it prints.
    // Fetches nothing: a gone file comes back only from the served tree.
    let missing = UpstreamMissing::new();
    let repairer = repair::Repairer::new(None, run.target.current(), m.jobs);
    let publishing = publishing(
        manifest,
        &want,
        &loaded,
        &templates,
        (force, command == Command::Audit, false),
        (Some(&repairer), &missing),
    );
    type Stages = (Summary, Option<crate::audit::Findings>, Exit);
    let stages = |run: &mut Run, diags: &mut Diagnostics| -> Result<Stages, Error> {
        let summary = Summary { kept: run.state.listed_count()?, ..Summary::default() };
        let published = publish::publish(run, &publishing, diags)?;
        Ok((Summary { published: published.changed, ..summary }, published.findings, published.exit))
    };
    match stages(&mut run, &mut diags) {
        Ok((summary, findings, exit)) => finish(run, (summary, findings), &diags, (started, exit), None),
        Err(e) => Err(run.abort(e)),
    }
}
