//! `airlock build`: the pipeline, as a flat list of stages.
//!
//! lock → state → upstream views → plan → fetch and verify → record →
//! inventory → render → publish → prune → finish. Each stage takes and returns
//! plain values; nothing is published unless every earlier stage completed,
//! and a failed file only removes itself from the result.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::audit::{Audit, LoadedSnapshot};
use crate::error::{Error, Exit};
use crate::fetch::{self, FetchJob, FetchOptions, Fetched};
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
        Ok(())
    }
}

#[derive(Debug)]
pub struct BuildOutcome {
    pub run: i64,
    pub summary: Summary,
    pub failures: Vec<String>,
    pub tree: PathBuf,
    pub exit: Exit,
}

pub fn client_for(manifest: &Manifest) -> Result<Client, Error> {
    Ok(Client::new(&ClientConfig {
        index: manifest.mirror.upstream.clone(),
        retries: manifest.mirror.retries,
        timeout: manifest.mirror.timeout,
    })?)
}

/// Turn a fetched file into its state row.
fn artifact_of(f: &Fetched, run: i64) -> Artifact {
    let now = crate::state::now();
    Artifact {
        project: f.project.clone(),
        filename: f.file.filename.to_string(),
        version: f.file.filename.version().to_string(),
        sha256: f.sha256,
        size: f.size,
        url: redact::url(&f.file.url),
        requires_python: f.file.requires_python.clone(),
        yanked: f.file.yanked.clone(),
        upload_time: f.file.upload_time.map(|t| t.to_string()),
        metadata: f.metadata,
        first_seen: now.clone(),
        last_verified: now,
        added_run: run,
        selected_run: run,
    }
}

/// Every stored artifact as the tree shows it: listed if selected this run.
pub fn site_files(
    artifacts: &[Artifact],
    store: &Store,
    run: i64,
    hidden: &BTreeSet<(ProjectName, String)>,
) -> Vec<SiteFile> {
    artifacts
        .iter()
        .filter(|a| !hidden.contains(&(a.project.clone(), a.filename.clone())))
        .filter_map(|a| {
            let version = a.version.parse().ok()?;
            Some(SiteFile {
                project: a.project.clone(),
                filename: a.filename.clone(),
                version,
                sha256: a.sha256,
                size: a.size,
                requires_python: a.requires_python.clone(),
                yanked: a.yanked.clone(),
                upload_time: a.upload_time.clone(),
                metadata: a.metadata,
                source: store.path(&a.project, &a.filename),
                metadata_source: a.metadata.map(|_| store.metadata_path(&a.project, &a.filename)),
                listed: a.selected_run == run,
            })
        })
        .collect()
}

/// Compress a tree listing for the state (exports diff these).
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

    // Stage: upstream views.
    let client = if opts.offline { None } else { Some(client_for(manifest)?) };
    let requested = plan::requested(manifest);
    let projects: Vec<ProjectName> = requested.keys().cloned().collect();
    tracing::info!(
        "run {run}: {} project(s) from {}{}",
        projects.len(),
        redact::url(&m.upstream),
        if opts.offline { " (offline: stored views only)" } else { "" }
    );
    let views = plan::gather(client.as_ref(), &state, &projects, jobs)?;
    state.put_project_views(&views.updated)?;
    for (project, s) in &views.skipped {
        tracing::warn!("{project}: skipping {:?}: {}", s.filename, s.reason);
    }
    let mut failures = views.errors.clone();

    // Stage: plan (with the dependency closure, which needs fetched wheels).
    let mut requested = requested;
    let mut views = views;
    let fetch_opts = FetchOptions { jobs, allow_missing_hashes: m.allow_missing_hashes };
    let mut fetched: Vec<Artifact> = Vec::new();
    let make_plan = |state: &State, requested: &_, views: &_| -> Result<Plan, Error> {
        let stored = state.artifacts()?;
        let mut plan = plan::make(manifest, requested, views, &stored, &store, run, published);
        if opts.offline {
            for (project, pp) in &mut plan.projects {
                for f in pp.fetch.drain(..) {
                    tracing::warn!("{project}: {} is not stored; offline, it is left out", f.filename);
                    pp.selected.retain(|s| s.filename != f.filename);
                }
            }
        }
        Ok(plan)
    };
    let wants_deps = |p: &ProjectName| manifest.select.options_for(p).dependencies;
    let mut plan: Plan = loop {
        let plan = make_plan(&state, &requested, &views)?;
        if !plan.projects.keys().any(wants_deps) {
            break plan;
        }
        // Wheels whose metadata the closure needs are fetched now, verified
        // like any other; the final plan then finds them stored.
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
                state.put_artifacts(&ok)?;
                fetched.extend(ok);
                failures.extend(errs);
                make_plan(&state, &requested, &views)?
            }
            _ => plan,
        };
        let new = crate::deps::discover(manifest, &plan, &requested, &store);
        if new.is_empty() {
            break plan;
        }
        let fresh: Vec<ProjectName> = new.keys().filter(|p| !views.listings.contains_key(*p)).cloned().collect();
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
        views.listings.extend(more.listings);
    };
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
        state.put_artifacts(&ok)?;
        fetched.extend(ok);
        failures.extend(errs);
    }
    let stored = state.artifacts()?;
    let in_store: BTreeSet<(&ProjectName, &str)> = stored.iter().map(|a| (&a.project, a.filename.as_str())).collect();
    for (project, pp) in plan.projects.iter_mut() {
        // What failed to fetch is not selected: it is not in the store.
        let now_stored: Vec<String> = pp
            .fetch
            .drain(..)
            .map(|f| f.filename.to_string())
            .filter(|f| in_store.contains(&(project, f.as_str())))
            .collect();
        pp.keep.extend(now_stored);
    }
    let bytes: u64 = fetched.iter().map(|a| a.size).sum();

    // Stage: record the selection. A project whose upstream failed keeps
    // what the served tree lists, so a flaky upstream never empties a page.
    let mut selected: Vec<(ProjectName, String)> =
        plan.projects.iter().flat_map(|(p, pp)| pp.keep.iter().map(move |f| (p.clone(), f.clone()))).collect();
    for a in &stored {
        if requested.contains_key(&a.project)
            && !views.listings.contains_key(&a.project)
            && published.is_some_and(|p| a.selected_run >= p)
        {
            selected.push((a.project.clone(), a.filename.clone()));
        }
    }
    state.mark_selected(run, &selected)?;

    // Stage: audit, render, publish.
    let pruned: BTreeSet<(ProjectName, String)> = plan.prune.iter().cloned().collect();
    let (tree, audit) = audit_and_publish(manifest, &state, &store, &target, &templates, run, &pruned, &loaded)?;
    // Stage: prune (after the swap: the previous tree keeps its hard links).
    for (p, f) in &plan.prune {
        for path in [store.path(p, f), store.metadata_path(p, f)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot prune {}: {e}", path.display());
            }
        }
    }
    state.delete_artifacts(&plan.prune)?;

    let summary = Summary {
        added: fetched.len() as u64,
        kept: selected.len().saturating_sub(fetched.len()) as u64,
        unlisted: plan.projects.values().map(|p| p.unlist.len() as u64).sum(),
        pruned: plan.prune.len() as u64,
        failed: failures.len() as u64,
        bytes,
        tampered: tampered.len() as u64,
        elapsed: started.elapsed(),
    };
    // A failed run outranks a policy breach: the mirror is incomplete.
    let exit = if failures.is_empty() { audit.exit() } else { Exit::Failed };
    report_breaches(&audit);
    state.finish_run(
        run,
        outcome_name(exit),
        &RunCounts {
            added: summary.added,
            kept: summary.kept,
            removed: summary.unlisted,
            failed: summary.failed,
            bytes: summary.bytes,
        },
        &failures,
    )?;
    Ok(BuildOutcome { run, summary, failures, tree, exit })
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
    let breaches = audit.breaches();
    if breaches.is_empty() {
        return;
    }
    for (v, f) in &breaches {
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

/// The stages every publishing command shares: inventory of the store, the
/// security join, rendering of the index and reports into a staged tree, the
/// atomic swap, and the tree listing for exports.
#[allow(clippy::too_many_arguments)]
fn audit_and_publish(
    manifest: &Manifest,
    state: &State,
    store: &Store,
    target: &Target,
    templates: &Templates,
    run: i64,
    pruned: &BTreeSet<(ProjectName, String)>,
    loaded: &LoadedSnapshot,
) -> Result<(PathBuf, Audit), Error> {
    let m = &manifest.mirror;
    let artifacts = state.artifacts()?;
    let mut files = site_files(&artifacts, store, run, pruned);
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
    let info = SiteInfo { name: m.name.clone(), upstream: Some(redact::url(&m.upstream)), generated_at };
    let staged = target.stage(&format!("{run:06}"))?;
    let mut entries = render::render_site(&files, &info, Some(&audit.landing()), templates, staged.dir())?;
    entries.extend(crate::report::write_all(&audit, templates, staged.dir())?);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    crate::fault::point("before-publish");
    let tree = staged.commit()?;
    state.put_tree(run, &encode_listing(&entries), 8)?;
    Ok((tree, audit))
}

/// `airlock audit`: re-join what is published with the (new) snapshot and
/// re-render the reports and the index. Fetches nothing.
pub fn audit(manifest: &Manifest) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
    let m = &manifest.mirror;
    let loaded = crate::audit::load_snapshot(manifest, crate::clock::output_time())?;
    let templates = Templates::new(m.templates.as_deref())?;
    let target = Target::new(&m.output)?;
    let _lock = crate::lock::RunLock::acquire(&m.state, "audit")?;
    let state = State::open(&m.state)?;
    let Some(published) = state.last_published_run()? else {
        return Err(Error::Failed(format!(
            "nothing to audit: {} has no published tree yet (run `airlock build`)",
            m.state.display()
        )));
    };
    let store = Store::new(&m.state);
    let mut state = state;
    let run = state.begin_run("audit")?;
    let keys: Vec<(ProjectName, String)> = state
        .artifacts()?
        .into_iter()
        .filter(|a| a.selected_run >= published)
        .map(|a| (a.project, a.filename))
        .collect();
    state.mark_selected(run, &keys)?;
    let (tree, audit) =
        audit_and_publish(manifest, &state, &store, &target, &templates, run, &BTreeSet::new(), &loaded)?;
    let exit = audit.exit();
    report_breaches(&audit);
    let summary = Summary { kept: keys.len() as u64, elapsed: started.elapsed(), ..Summary::default() };
    state.finish_run(run, outcome_name(exit), &RunCounts { kept: summary.kept, ..RunCounts::default() }, &[])?;
    Ok(BuildOutcome { run, summary, failures: Vec::new(), tree, exit })
}
