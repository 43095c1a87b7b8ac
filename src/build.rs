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
use crate::fetch::{self, FetchJob, FetchOptions, Fetched};
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
    }
}

fn artifact_of(f: &Fetched, run: i64) -> Artifact {
    artifact_row(&f.file, &f.project, f.sha256, f.size, f.metadata, run)
}

/// Every stored artifact as the tree shows it: listed if selected this run.
/// Artifacts whose store file has gone are left out and returned apart.
pub fn site_files(
    artifacts: &[Artifact],
    store: &Store,
    run: i64,
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
            listed: a.selected_run == run,
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
    for r in fetch::fetch_all(client, store, jobs, opts) {
        match r {
            Ok(f) => ok.push(artifact_of(&f, run)),
            Err(e) => errs.push(e.to_string()),
        }
    }
    (ok, errs)
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

pub fn build(manifest: &Manifest, opts: &BuildOptions) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
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
    let mut views = plan::gather(client.as_ref(), &state, &projects, jobs)?;
    state.put_project_views(&views.updated)?;
    let mut failures = views.errors.clone();
    let mut arts = state.artifacts()?;
    let mut fetched: Vec<Artifact> = Vec::new();
    let fetch_opts = FetchOptions { jobs, allow_missing_hashes: m.allow_missing_hashes };

    // Stage: plan, adopting what an interrupted run stored, and following
    // dependencies (which needs the selected wheels fetched).
    let wants_deps = |p: &ProjectName| manifest.select.options_for(p).dependencies;
    let mut plan: Plan = loop {
        let mut plan = plan::make(manifest, &requested, &views, &arts, &store, run, published);
        if opts.offline {
            for (project, pp) in &mut plan.projects {
                for f in pp.fetch.drain(..) {
                    tracing::warn!("{project}: {} is not stored; offline, it is left out", f.filename);
                    pp.selected.retain(|s| s.as_str() != f.filename.as_str());
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
                fetched.extend(ok.iter().cloned());
                record(&mut state, &mut arts, ok)?;
                failures.extend(errs);
                plan::make(manifest, &requested, &views, &arts, &store, run, published)
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

    // Stage: fetch and verify.
    let jobs_list: Vec<FetchJob> = plan
        .projects
        .iter()
        .flat_map(|(p, pp)| pp.fetch.iter().map(|f| FetchJob { project: p.clone(), file: f.clone() }))
        .collect();
    if let Some(c) = &client {
        let (ok, errs) = fetch_round(c, &store, &jobs_list, fetch_opts, run);
        fetched.extend(ok.iter().cloned());
        record(&mut state, &mut arts, ok)?;
        failures.extend(errs);
    }
    let bytes: u64 = fetched.iter().map(|a| a.size).sum();

    // Stage: record the selection. What failed to fetch is not selected (it
    // is not stored), and its project is planned again next run. Projects
    // not planned (upstream failed) keep what the served tree lists, so a
    // flaky upstream never empties a page.
    let in_store: BTreeSet<(&ProjectName, &str)> = arts.iter().map(|a| (&a.project, a.filename.as_str())).collect();
    let mut explicit: Vec<(ProjectName, String)> = Vec::new();
    let mut carry: Vec<ProjectName> = requested.keys().filter(|p| !plan.projects.contains_key(*p)).cloned().collect();
    let mut keys: Vec<(ProjectName, Option<String>)> = Vec::new();
    for (project, pp) in plan.projects.iter_mut() {
        if pp.reused {
            carry.push(project.clone());
            continue;
        }
        let unfetched = pp.fetch.iter().any(|f| !in_store.contains(&(project, f.filename.as_str())));
        let now_stored: Vec<String> = pp
            .fetch
            .drain(..)
            .map(|f| f.filename.to_string())
            .filter(|f| in_store.contains(&(project, f.as_str())))
            .collect();
        pp.keep.extend(now_stored);
        explicit.extend(pp.keep.iter().map(|f| (project.clone(), f.clone())));
        if requested.contains_key(project) {
            keys.push((project.clone(), (!unfetched).then(|| pp.key.clone())));
        }
    }
    if let Some(p) = published {
        state.carry_selection(run, p, &carry)?;
    }
    state.mark_selected(run, &explicit)?;
    state.set_plan_keys(&keys)?;
    let arts = state.artifacts()?;
    let selected = arts.iter().filter(|a| a.selected_run == run).count();

    let mut summary = Summary {
        added: fetched.len() as u64,
        kept: selected.saturating_sub(fetched.len()) as u64,
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
    let (tree, audit, changed) = audit_and_publish(
        manifest, &mut state, &arts, &store, &target, &templates, run, published, &pruned, &loaded, false,
    )?;
    summary.published = changed;

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
    let exit = if failures.is_empty() { audit.exit() } else { Exit::Failed };
    report_breaches(&audit);
    state.finish_run(run, outcome_name(exit), &counts(&summary), &failures)?;
    Ok(BuildOutcome { run, summary, failures, tree: Some(tree), exit })
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
fn tree_key(files: &[SiteFile], audit: &Audit, templates: &Templates, manifest: &Manifest) -> String {
    let mut text = format!(
        "{}\n{}\n{}\n{}\n",
        env!("CARGO_PKG_VERSION"),
        templates.digest(),
        manifest.mirror.name,
        redact::url(&manifest.mirror.upstream)
    );
    for f in files {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{:?}\t{:?}\t{:?}\t{:?}\n",
            f.project, f.filename, f.sha256, f.size, f.listed, f.metadata, f.requires_python, f.yanked, f.upload_time
        ));
    }
    let mut report = crate::report::json::report(audit);
    report.generated_at = String::new();
    text.push_str(&serde_json::to_string(&report).expect("serializable"));
    Sha256::of(text.as_bytes()).hex()
}

/// The stages every publishing command shares: inventory of the store, the
/// security join, rendering of the index and reports into a staged tree, the
/// atomic swap, and the tree listing for exports and verify. Returns the
/// served tree, the audit, and whether a new tree was published.
#[allow(clippy::too_many_arguments)]
fn audit_and_publish(
    manifest: &Manifest,
    state: &mut State,
    arts: &[Artifact],
    store: &Store,
    target: &Target,
    templates: &Templates,
    run: i64,
    published: Option<i64>,
    pruned: &BTreeSet<(ProjectName, String)>,
    loaded: &LoadedSnapshot,
    force: bool,
) -> Result<(PathBuf, Audit, bool), Error> {
    let m = &manifest.mirror;
    let (mut files, missing) = site_files(arts, store, run, pruned);
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
        loaded,
        &manifest.policy,
        generated_at,
        &m.name,
        Some(redact::url(&m.upstream)),
        state.tampering()?,
    );
    // Blocked versions leave the index and the tree; the store keeps them,
    // so a policy change needs no refetch.
    let blocked = audit.blocked();
    files.retain(|f| !blocked.contains(&(f.project.clone(), f.version.to_string())));
    for (p, v) in &blocked {
        tracing::warn!("blocked by policy: {p} {v} is left out of the index");
    }
    let key = tree_key(&files, &audit, templates, manifest);
    if !force
        && let (Some(p), Some(current)) = (published, target.current())
        && current.is_dir()
        && state.tree_key(p)?.as_deref() == Some(key.as_str())
    {
        tracing::info!("nothing changed since run {p}: its tree stays published");
        return Ok((current, audit, false));
    }
    let info = SiteInfo { name: m.name.clone(), upstream: Some(redact::url(&m.upstream)), generated_at };
    let staged = target.stage(&format!("{run:06}"))?;
    let mut entries = render::render_site(&files, &info, Some(&audit.landing()), templates, staged.dir())?;
    entries.extend(crate::report::write_all(&audit, templates, staged.dir())?);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    crate::fault::point("before-publish");
    let tree = staged.commit()?;
    crate::fault::point("after-publish");
    state.put_tree(run, &encode_listing(&entries), &key, 8)?;
    Ok((tree, audit, true))
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
    let all: Vec<ProjectName> =
        state.artifacts()?.into_iter().map(|a| a.project).collect::<BTreeSet<_>>().into_iter().collect();
    let kept = state.carry_selection(run, published, &all)?;
    let arts = state.artifacts()?;
    let (tree, audit, changed) = audit_and_publish(
        manifest,
        &mut state,
        &arts,
        &store,
        &target,
        &templates,
        run,
        Some(published),
        &BTreeSet::new(),
        &loaded,
        force,
    )?;
    let exit = audit.exit();
    report_breaches(&audit);
    let summary = Summary { kept: kept as u64, published: changed, elapsed: started.elapsed(), ..Summary::default() };
    state.finish_run(run, outcome_name(exit), &counts(&summary), &[])?;
    Ok(BuildOutcome { run, summary, failures: Vec::new(), tree: Some(tree), exit })
}
