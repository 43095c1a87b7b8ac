//! `airlock build` and `airlock audit`: the pipeline, as a flat list of stages.
//!
//! advisories → lock → state → upstream views → plan (adopt, dependency
//! closure) → fetch and verify → record the selection → audit → render →
//! publish → prune → finish. Each stage takes and returns plain values.
//! Nothing is published unless every earlier stage completed; a run with
//! failures leaves the served tree as it was (unless `publish_partial`); a
//! run whose tree would come out identical leaves it be.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audit::{Audit, LoadedSnapshot};
use crate::error::{Error, Exit};
use crate::fetch::{self, FetchJob, FetchOptions};
use crate::filename::DistFilename;
use crate::hashing::{Sha256, hash_file};
use crate::listing::UpstreamFile;
use crate::manifest::Manifest;
use crate::names::ProjectName;
use crate::plan::{self, Plan};
use crate::publish::Target;
use crate::redact;
use crate::render::{self, SiteFile, SiteInfo, TreeEntry};
use crate::state::{Artifact, RunCounts, State};
use crate::store::Store;
use crate::templates::Templates;
use crate::ui::human_bytes;
use crate::upstream::{Client, ClientConfig};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub offline: bool,
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

#[derive(Debug)]
pub struct BuildOutcome {
    pub run: i64,
    pub summary: Summary,
    pub failures: Vec<String>,
    /// The tree served after the run (`None` before the first publish).
    pub tree: Option<PathBuf>,
    pub exit: Exit,
}

pub fn client_for(manifest: &Manifest) -> Result<Client, Error> {
    Ok(Client::new(&ClientConfig {
        index: manifest.mirror.upstream.clone(),
        retries: manifest.mirror.retries,
        timeout: manifest.mirror.timeout,
    })?)
}

/// A verified file's state row.
fn artifact_row(
    file: &UpstreamFile,
    project: &ProjectName,
    sha256: Sha256,
    size: u64,
    metadata: Option<(Sha256, u64)>,
    run: i64,
) -> Artifact {
    let now = crate::state::now();
    Artifact {
        project: project.clone(),
        filename: file.filename.to_string(),
        version: file.filename.version().to_string(),
        sha256,
        size,
        url: redact::strip(&file.url).to_string(),
        requires_python: file.requires_python.clone(),
        yanked: file.yanked.clone(),
        upload_time: file.upload_time.map(|t| t.to_string()),
        metadata,
        first_seen: now.clone(),
        last_verified: now,
        added_run: run,
        selected_run: run,
        unselected_run: None,
    }
}

/// Every stored artifact as the tree shows it: listed while selected.
/// Artifacts whose store file has gone are left out and returned apart.
pub fn site_files(
    artifacts: &[Artifact],
    store: &Store,
    hidden: &BTreeSet<(ProjectName, String)>,
) -> (Vec<SiteFile>, Vec<(ProjectName, String)>) {
    let mut missing = Vec::new();
    let mut files = Vec::with_capacity(artifacts.len());
    for a in artifacts.iter().filter(|a| !hidden.contains(&(a.project.clone(), a.filename.clone()))) {
        let Ok(version) = a.version.parse() else { continue };
        let source = store.path(&a.project, &a.filename);
        if !source.is_file() {
            missing.push((a.project.clone(), a.filename.clone()));
            continue;
        }
        files.push(SiteFile {
            project: a.project.clone(),
            filename: a.filename.clone(),
            version,
            sha256: a.sha256,
            size: a.size,
            requires_python: a.requires_python.clone(),
            yanked: a.yanked.clone(),
            upload_time: a.upload_time.clone(),
            metadata: a.metadata,
            source,
            metadata_source: a.metadata.map(|_| store.metadata_path(&a.project, &a.filename)),
            listed: a.listed(),
        });
    }
    (files, missing)
}

/// Compress a tree listing for the state (exports and verify read these).
pub fn encode_listing(entries: &[TreeEntry]) -> Vec<u8> {
    let json = serde_json::to_vec(entries).expect("serializable");
    zstd::encode_all(&json[..], 3).expect("in-memory compression")
}

pub fn decode_listing(blob: &[u8]) -> Option<Vec<TreeEntry>> {
    let json = zstd::decode_all(blob).ok()?;
    serde_json::from_slice(&json).ok()
}

/// Fetch a batch and split the outcomes into state rows and messages.
fn fetch_round(
    client: &Client,
    store: &Store,
    jobs: &[FetchJob],
    opts: FetchOptions,
    run: i64,
) -> (Vec<Artifact>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for (job, r) in jobs.iter().zip(fetch::fetch_all(client, store, jobs, opts)) {
        match r {
            Ok(f) => ok.push(artifact_row(&job.file, &job.project, f.sha256, f.size, f.metadata, run)),
            Err(e) => errs.push(e.to_string()),
        }
    }
    (ok, errs)
}

/// Running totals of what a run fetched (the rows themselves go to the state).
#[derive(Default)]
struct Fetch {
    files: usize,
    bytes: u64,
}

impl Fetch {
    fn add(&mut self, rows: &[Artifact]) {
        self.files += rows.len();
        self.bytes += rows.iter().map(|a| a.size).sum::<u64>();
    }
}

/// Files a killed run left in the store without recording them: hash them
/// again, adopt the ones that match what the upstream declares, and send the
/// rest back to be fetched.
fn adopt(store: &Store, plan: &mut Plan, allow_missing_hashes: bool, run: i64) -> Vec<Artifact> {
    use rayon::prelude::*;
    let mut adopted = Vec::new();
    for (project, pp) in plan.projects.iter_mut() {
        let candidates = std::mem::take(&mut pp.adopt);
        let checked: Vec<(UpstreamFile, Option<Artifact>)> = candidates
            .into_par_iter()
            .map(|f| {
                let path = store.path(project, f.filename.as_str());
                let ok = hash_file(&path).ok().filter(|(sha, size)| {
                    f.sha256.map_or(allow_missing_hashes, |want| want == *sha)
                        && f.size.is_none_or(|want| want == *size)
                });
                let row = ok.map(|(sha, size)| {
                    let metadata = match &f.filename {
                        DistFilename::Wheel(w) => fetch::extract_metadata(store, project, w, &path),
                        DistFilename::Sdist(_) => None,
                    };
                    artifact_row(&f, project, sha, size, metadata, run)
                });
                (f, row)
            })
            .collect();
        for (f, row) in checked {
            match row {
                Some(a) => {
                    tracing::info!(
                        "adopted {} from the store (stored by an interrupted run, verified again)",
                        f.filename
                    );
                    pp.keep.push(a.filename.clone());
                    adopted.push(a);
                }
                None => {
                    let _ = std::fs::remove_file(store.path(project, f.filename.as_str()));
                    pp.fetch.push(f);
                }
            }
        }
    }
    adopted
}

/// Add rows to the state and to the in-memory inventory.
fn record(state: &mut State, arts: &mut Vec<Artifact>, rows: Vec<Artifact>) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    state.put_artifacts(&rows)?;
    let new: BTreeSet<(ProjectName, String)> = rows.iter().map(|a| (a.project.clone(), a.filename.clone())).collect();
    arts.retain(|a| !new.contains(&(a.project.clone(), a.filename.clone())));
    arts.extend(rows);
    arts.sort_by(|a, b| a.project.cmp(&b.project).then_with(|| a.filename.cmp(&b.filename)));
    Ok(())
}

/// Stage timings for `-v`: where a run spends its time.
struct Stopwatch(Instant);

impl Stopwatch {
    fn lap(&mut self, stage: &str) {
        tracing::debug!("stage {stage}: {:.3}s", self.0.elapsed().as_secs_f64());
        self.0 = Instant::now();
    }
}

pub fn build(manifest: &Manifest, opts: &BuildOptions) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
    let mut sw = Stopwatch(started);
    let m = &manifest.mirror;
    let output = opts.out.clone().unwrap_or_else(|| m.output.clone());
    let jobs = opts.jobs.unwrap_or(m.jobs);
    let templates = Templates::new(m.templates.as_deref())?;
    let target = Target::new(&output)?;
    // Stage: advisory data. Required and unusable fails before anything changes.
    let loaded = crate::audit::load_snapshot(manifest, crate::clock::output_time())?;

    // Stage: exclusive state.
    let _lock = crate::lock::RunLock::acquire(&m.state, "build")?;
    let mut state = State::open(&m.state)?;
    if state.mark_crashed_runs()? > 0 {
        tracing::warn!("a previous run did not finish; this run completes its work");
    }
    let store = Store::new(&m.state);
    let partial = store.prepare()?;
    if partial > 0 {
        tracing::info!("removed {partial} partial download(s) left by an interrupted run");
    }
    let run = state.begin_run("build")?;
    let published = state.last_published_run()?;
    tracing::debug!(
        "state {}, store {}, output {}, served run {}",
        state.path().display(),
        store.root().display(),
        output.display(),
        published.map_or("none".into(), |p| p.to_string())
    );

    // Stage: upstream views.
    let client = if opts.offline { None } else { Some(client_for(manifest)?) };
    let mut requested = plan::requested(manifest);
    let projects: Vec<ProjectName> = requested.keys().cloned().collect();
    tracing::info!(
        "run {run}: {} project(s) from {}{}",
        projects.len(),
        redact::url(&m.upstream),
        if opts.offline { " (offline: stored views only)" } else { "" }
    );
    sw.lap("setup");
    let mut views = plan::gather(client.as_ref(), &state, &projects, jobs)?;
    state.put_project_views(&views.updated)?;
    let mut failures = views.errors.clone();
    sw.lap("upstream views");
    let mut arts = state.artifacts()?;
    sw.lap("load state");
    let mut fetched = Fetch::default();
    let fetch_opts = FetchOptions { jobs, allow_missing_hashes: m.allow_missing_hashes };

    // Stage: plan, adopting what an interrupted run stored, and following
    // dependencies (which needs the selected wheels fetched).
    let wants_deps = |p: &ProjectName| manifest.select.options_for(p).dependencies;
    let mut plan: Plan = loop {
        let mut plan = plan::make(manifest, &requested, &views, &arts, &store, run);
        if opts.offline {
            for (project, pp) in &mut plan.projects {
                for f in pp.fetch.drain(..) {
                    tracing::warn!("{project}: {} is not stored; offline, it is left out", f.filename);
                    pp.selected.retain(|s| s != f.filename.as_str());
                }
            }
        }
        let adopted = adopt(&store, &mut plan, m.allow_missing_hashes, run);
        record(&mut state, &mut arts, adopted)?;
        if !plan.projects.keys().any(wants_deps) {
            break plan;
        }
        let wheels: Vec<FetchJob> = plan
            .projects
            .iter()
            .filter(|(p, _)| wants_deps(p))
            .flat_map(|(p, pp)| {
                pp.fetch
                    .iter()
                    .filter(|f| f.filename.is_wheel())
                    .map(|f| FetchJob { project: p.clone(), file: f.clone() })
            })
            .collect();
        let plan = match (&client, wheels.is_empty()) {
            (Some(c), false) => {
                let (ok, errs) = fetch_round(c, &store, &wheels, fetch_opts, run);
                fetched.add(&ok);
                record(&mut state, &mut arts, ok)?;
                failures.extend(errs);
                plan::make(manifest, &requested, &views, &arts, &store, run)
            }
            _ => plan,
        };
        let new = crate::deps::discover(manifest, &plan, &requested, &store);
        if new.is_empty() {
            break plan;
        }
        let fresh: Vec<ProjectName> = new.keys().filter(|p| !views.projects.contains_key(*p)).cloned().collect();
        tracing::info!(
            "dependencies add {} requirement(s), {} new project(s)",
            new.values().map(Vec::len).sum::<usize>(),
            fresh.len()
        );
        for (p, lines) in new {
            requested.entry(p).or_default().extend(lines);
        }
        let more = plan::gather(client.as_ref(), &state, &fresh, jobs)?;
        state.put_project_views(&more.updated)?;
        failures.extend(more.errors);
        views.projects.extend(more.projects);
    };
    sw.lap("plan");
    failures.extend(plan.errors.iter().cloned());
    for (project, pp) in &plan.projects {
        if pp.reused {
            tracing::debug!("{project}: page and inputs unchanged; {} file(s) carried over", pp.keep.len());
        } else {
            tracing::debug!(
                "{project}: {} selected, {} to fetch, {} kept",
                pp.selected.len(),
                pp.fetch.len(),
                pp.keep.len()
            );
        }
    }
    for (project, up) in &views.projects {
        for s in up.skipped() {
            tracing::warn!("{project}: skipping {:?}: {}", s.filename, s.reason);
        }
    }
    let tampered: Vec<_> = plan
        .projects
        .iter()
        .flat_map(|(p, pp)| pp.tampered.iter().map(move |(f, m, u)| (p.clone(), f.clone(), *m, *u)))
        .collect();
    for (p, f, mirrored, upstream) in &tampered {
        tracing::error!(
            "POSSIBLE TAMPERING: {p}/{f}: upstream now declares sha256 {upstream}, but {mirrored} was mirrored; keeping the mirrored file and refusing the new one"
        );
    }
    state.record_tampering(run, &tampered)?;

    // The listings are done with: only the plan is needed from here on.
    drop(views);

    // Stage: fetch and verify. Files move out of the plan into the jobs;
    // the plan keeps their names to tell what arrived.
    let mut jobs_list: Vec<FetchJob> = Vec::new();
    for (p, pp) in plan.projects.iter_mut() {
        pp.fetched_names = pp.fetch.iter().map(|f| f.filename.to_string()).collect();
        jobs_list.extend(std::mem::take(&mut pp.fetch).into_iter().map(|file| FetchJob { project: p.clone(), file }));
    }
    if let Some(c) = &client {
        let (ok, errs) = fetch_round(c, &store, &jobs_list, fetch_opts, run);
        fetched.add(&ok);
        record(&mut state, &mut arts, ok)?;
        failures.extend(errs);
    }
    drop(jobs_list);
    let bytes = fetched.bytes;
    sw.lap("fetch");

    // Stage: record the selection. What failed to fetch is not selected (it
    // is not stored), and its project is planned again next run. Projects
    // not planned (upstream failed) and projects carried over keep their
    // selection as it is, so a flaky upstream never empties a page.
    let in_store: BTreeSet<(&ProjectName, &str)> = arts.iter().map(|a| (&a.project, a.filename.as_str())).collect();
    let mut explicit: Vec<(ProjectName, String)> = Vec::new();
    let mut planned: Vec<ProjectName> = Vec::new();
    let mut keys: Vec<(ProjectName, Option<String>)> = Vec::new();
    for (project, pp) in plan.projects.iter_mut() {
        if pp.reused || !requested.contains_key(project) {
            continue;
        }
        let unfetched = pp.fetched_names.iter().any(|f| !in_store.contains(&(project, f.as_str())));
        let now_stored: Vec<String> =
            pp.fetched_names.drain(..).filter(|f| in_store.contains(&(project, f.as_str()))).collect();
        pp.keep.extend(now_stored);
        explicit.extend(pp.keep.iter().map(|f| (project.clone(), f.clone())));
        planned.push(project.clone());
        keys.push((project.clone(), (!unfetched).then(|| pp.key.clone())));
    }
    let requested_names: Vec<ProjectName> = requested.keys().cloned().collect();
    let left = state.record_selection(run, &explicit, &planned, &requested_names)?;
    state.set_plan_keys(&keys)?;
    // Only a changed selection needs the inventory read again.
    let arts = if !planned.is_empty() || left > 0 {
        drop(arts);
        state.artifacts()?
    } else {
        arts
    };
    let selected = arts.iter().filter(|a| a.listed()).count();
    sw.lap("record selection");

    let mut summary = Summary {
        added: fetched.files as u64,
        kept: selected.saturating_sub(fetched.files) as u64,
        unlisted: plan.projects.values().map(|p| p.unlist.len() as u64).sum(),
        failed: failures.len() as u64,
        bytes,
        tampered: tampered.len() as u64,
        ..Summary::default()
    };
    if !failures.is_empty() && !m.publish_partial {
        tracing::error!(
            "the run failed: the served tree is left as it was (set `publish_partial = true` in [mirror] to publish what verified)"
        );
        summary.elapsed = started.elapsed();
        state.finish_run(run, "failed", &counts(&summary), &failures)?;
        return Ok(BuildOutcome { run, summary, failures, tree: target.current(), exit: Exit::Failed });
    }

    // Stage: audit, render, publish.
    let pruned: BTreeSet<(ProjectName, String)> = plan.prune.iter().cloned().collect();
    let published_tree = audit_and_publish(
        manifest,
        &mut state,
        &arts,
        &store,
        &target,
        &templates,
        Publishing { run, published, pruned: &pruned, loaded: &loaded, force: false },
    )?;
    summary.published = published_tree.changed;
    sw.lap("audit, render, publish");

    // Stage: prune. State first, then files: a kill in between leaves only
    // orphan files, which a later selection adopts or nothing lists.
    state.delete_artifacts(&plan.prune)?;
    for (p, f) in &plan.prune {
        for path in [store.path(p, f), store.metadata_path(p, f)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot prune {}: {e}", path.display());
            }
        }
    }
    summary.pruned = plan.prune.len() as u64;
    summary.elapsed = started.elapsed();
    // A failed run outranks a policy breach: the mirror is incomplete.
    let exit = if failures.is_empty() { published_tree.exit } else { Exit::Failed };
    state.finish_run(run, outcome_name(exit), &counts(&summary), &failures)?;
    Ok(BuildOutcome { run, summary, failures, tree: Some(published_tree.tree), exit })
}

fn counts(s: &Summary) -> RunCounts {
    RunCounts { added: s.added, kept: s.kept, removed: s.unlisted, failed: s.failed, bytes: s.bytes }
}

fn outcome_name(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "success",
        Exit::Failed => "failed",
        Exit::Policy => "policy",
        Exit::Advisories => "advisories",
    }
}

fn report_breaches(audit: &Audit) {
    for (v, f) in audit.breaches() {
        tracing::error!(
            "policy: {} {} has {} ({}{}) at or above fail_on = {}",
            v.project,
            v.version,
            f.id,
            f.severity,
            if f.effective != f.severity { format!(", ranked {}", f.effective) } else { String::new() },
            audit.policy.fail_on
        );
    }
}

/// The key of everything a tree is rendered from, but the clock: equal keys
/// give equal trees (up to `generated_at`), so the served one can stay.
fn tree_key(files: &[SiteFile], audit: &Audit, inputs: &str) -> String {
    use std::io::Write;
    // Streamed into the hasher: no copy of a large mirror's inventory in memory.
    let mut h = crate::hashing::HashingWriter::new(std::io::sink());
    let _ = writeln!(h, "{inputs}");
    for f in files {
        let _ = writeln!(
            h,
            "{}\t{}\t{}\t{}\t{}\t{:?}\t{:?}\t{:?}\t{:?}",
            f.project, f.filename, f.sha256, f.size, f.listed, f.metadata, f.requires_python, f.yanked, f.upload_time
        );
    }
    let mut report = crate::report::json::report(audit);
    report.generated_at = String::new();
    serde_json::to_writer(&mut h, &report).expect("serializable");
    h.finish().1.hex()
}

/// The key of every input of a tree but the selection: the snapshot, the
/// policy (and which ignores have expired today), templates, naming and
/// tampering. With an unchanged selection, equal inputs mean an equal tree,
/// decided without reading the store.
fn inputs_key(
    manifest: &Manifest,
    loaded: &LoadedSnapshot,
    templates: &Templates,
    tampering: &[crate::state::Tampering],
) -> String {
    let today = crate::clock::output_time().to_zoned(jiff::tz::TimeZone::UTC).date();
    let expired: Vec<bool> = manifest.policy.ignore.iter().map(|i| i.expires.is_some_and(|e| e < today)).collect();
    let text = format!(
        "{}\n{}\n{}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n",
        env!("CARGO_PKG_VERSION"),
        templates.digest(),
        manifest.mirror.name,
        redact::url(&manifest.mirror.upstream),
        manifest.policy,
        expired,
        loaded.status,
        loaded.banner,
        loaded.info.as_ref().map(|i| &i.sha256),
        tampering,
    );
    Sha256::of(text.as_bytes()).hex()
}

/// A fingerprint of the selection a tree shows: every stored file (but the
/// pruned), its digest and whether it is listed. Cheap next to rendering, and
/// it is what tells a served tree from the state after a run was killed
/// between recording its selection and publishing it.
fn selection_fingerprint(arts: &[Artifact], pruned: &BTreeSet<(ProjectName, String)>) -> String {
    use std::io::Write;
    let mut h = crate::hashing::HashingWriter::new(std::io::sink());
    for a in arts {
        if !pruned.is_empty() && pruned.contains(&(a.project.clone(), a.filename.clone())) {
            continue;
        }
        let _ = writeln!(h, "{}/{}\t{}\t{}", a.project, a.filename, a.sha256, a.listed());
    }
    h.finish().1.hex()
}

/// How a publishing run goes about it.
struct Publishing<'a> {
    run: i64,
    /// The run whose tree is served now.
    published: Option<i64>,
    pruned: &'a BTreeSet<(ProjectName, String)>,
    loaded: &'a LoadedSnapshot,
    /// Publish even if nothing seems changed (`verify --repair`).
    force: bool,
}

/// What publishing left served.
struct Published {
    tree: PathBuf,
    /// A new tree was published.
    changed: bool,
    /// The audit's verdict (0 or 3).
    exit: Exit,
}

fn exit_of(code: i64) -> Exit {
    if code == Exit::Policy as i64 { Exit::Policy } else { Exit::Success }
}

/// The stages every publishing command shares: inventory of the store, the
/// security join, rendering of the index and reports into a staged tree, the
/// atomic swap, and the tree listing for exports and verify. A run whose tree
/// would come out identical leaves the served one be.
fn audit_and_publish(
    manifest: &Manifest,
    state: &mut State,
    arts: &[Artifact],
    store: &Store,
    target: &Target,
    templates: &Templates,
    p: Publishing<'_>,
) -> Result<Published, Error> {
    let m = &manifest.mirror;
    let mut sw = Stopwatch(Instant::now());
    let tampering = state.tampering()?;
    let inputs = inputs_key(manifest, p.loaded, templates, &tampering);
    let selection = selection_fingerprint(arts, p.pruned);
    let served = match (p.published, target.current()) {
        (Some(run), Some(dir)) if dir.is_dir() => state.tree_keys(run)?.map(|k| (run, dir, k)),
        _ => None,
    };
    // Fast path: same selection, same inputs: nothing to join or render.
    if let Some((run, dir, keys)) = &served
        && !p.force
        && keys.selection == selection
        && keys.inputs == inputs
    {
        tracing::info!("nothing changed since run {run}: its tree stays published");
        if keys.exit == Exit::Policy as i64 {
            tracing::error!("policy breach, unchanged since run {run}: see its reports/security.html");
        }
        return Ok(Published { tree: dir.clone(), changed: false, exit: exit_of(keys.exit) });
    }
    let (mut files, missing) = site_files(arts, store, p.pruned);
    sw.lap("inventory");
    if !missing.is_empty() {
        // Plan these projects in full next run: it refetches what is gone.
        let projects: BTreeSet<ProjectName> = missing.iter().map(|(p, _)| p.clone()).collect();
        for (p, f) in &missing {
            tracing::error!("{p}/{f} is recorded but gone from the store; `airlock verify --repair` restores it");
        }
        state.set_plan_keys(&projects.into_iter().map(|p| (p, None)).collect::<Vec<_>>())?;
    }
    let generated_at = crate::clock::output_time();
    let audit = Audit::join(
        &crate::audit::mirrored_versions(&files),
        p.loaded,
        &manifest.policy,
        generated_at,
        &m.name,
        Some(redact::url(&m.upstream)),
        tampering,
    );
    sw.lap("security join");
    report_breaches(&audit);
    let exit = audit.exit();
    // Blocked versions leave the index and the tree; the store keeps them,
    // so a policy change needs no refetch.
    let blocked = audit.blocked();
    files.retain(|f| !blocked.contains(&(f.project.clone(), f.version.to_string())));
    for (p, v) in &blocked {
        tracing::warn!("blocked by policy: {p} {v} is left out of the index");
    }
    let key = tree_key(&files, &audit, &inputs);
    sw.lap("tree key");
    if let Some((run, dir, keys)) = &served
        && !p.force
        && keys.key == key
    {
        tracing::info!("nothing changed since run {run}: its tree stays published");
        return Ok(Published { tree: dir.clone(), changed: false, exit });
    }
    let info = SiteInfo { name: m.name.clone(), upstream: Some(redact::url(&m.upstream)), generated_at };
    let staged = target.stage(&format!("{:06}", p.run))?;
    let mut entries = render::render_site(&files, &info, Some(&audit.landing()), templates, staged.dir())?;
    entries.extend(crate::report::write_all(&audit, templates, staged.dir())?);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    crate::fault::point("before-publish");
    let tree = staged.commit()?;
    crate::fault::point("after-publish");
    let keys = crate::state::TreeKeys { key, inputs, exit: exit as i64, selection };
    state.put_tree(p.run, &encode_listing(&entries), &keys, 8)?;
    sw.lap("render and publish");
    Ok(Published { tree, changed: true, exit })
}

/// The tree being served, with what the state recorded about it, held under
/// the run lock so no build swaps it away meanwhile.
pub struct ServedTree {
    pub lock: crate::lock::RunLock,
    pub state: State,
    pub run: i64,
    pub root: PathBuf,
    pub listing: Vec<TreeEntry>,
}

/// Open the served tree for a command that reads it (export, publish).
pub fn served_tree(manifest: &Manifest, command: &str) -> Result<ServedTree, Error> {
    let m = &manifest.mirror;
    let target = Target::new(&m.output)?;
    let lock = crate::lock::RunLock::acquire(&m.state, command)?;
    let state = State::open(&m.state)?;
    let run = state.last_published_run()?.ok_or_else(|| {
        Error::Failed(format!("nothing to {command}: no tree has been published yet (run `airlock build`)"))
    })?;
    let root = target.current().filter(|p| p.is_dir()).ok_or_else(|| {
        Error::Failed(format!("{} is not a published tree (run `airlock build`)", m.output.display()))
    })?;
    let listing = state
        .tree(run)?
        .and_then(|b| decode_listing(&b))
        .ok_or_else(|| Error::Failed(format!("the state holds no readable listing of run {run}'s tree")))?;
    Ok(ServedTree { lock, state, run, root, listing })
}

/// `airlock audit`: re-join what is published with the (new) snapshot and
/// re-render the reports and the index. Fetches nothing.
pub fn audit(manifest: &Manifest) -> Result<BuildOutcome, Error> {
    republish(manifest, "audit", false)
}

/// Re-render and publish the current selection from the store: `audit`, and
/// `verify --repair` (forced: the store changed under equal hashes).
pub fn republish(manifest: &Manifest, command: &str, force: bool) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
    let m = &manifest.mirror;
    let loaded = crate::audit::load_snapshot(manifest, crate::clock::output_time())?;
    let templates = Templates::new(m.templates.as_deref())?;
    let target = Target::new(&m.output)?;
    let _lock = crate::lock::RunLock::acquire(&m.state, command)?;
    let mut state = State::open(&m.state)?;
    let Some(published) = state.last_published_run()? else {
        return Err(Error::Failed(format!(
            "nothing to {command}: {} has no published tree yet (run `airlock build`)",
            m.state.display()
        )));
    };
    let store = Store::new(&m.state);
    let run = state.begin_run(command)?;
    let arts = state.artifacts()?;
    let kept = arts.iter().filter(|a| a.listed()).count();
    let published_tree = audit_and_publish(
        manifest,
        &mut state,
        &arts,
        &store,
        &target,
        &templates,
        Publishing { run, published: Some(published), pruned: &BTreeSet::new(), loaded: &loaded, force },
    )?;
    let exit = published_tree.exit;
    let summary = Summary {
        kept: kept as u64,
        published: published_tree.changed,
        elapsed: started.elapsed(),
        ..Summary::default()
    };
    state.finish_run(run, outcome_name(exit), &counts(&summary), &[])?;
    Ok(BuildOutcome { run, summary, failures: Vec::new(), tree: Some(published_tree.tree), exit })
}
