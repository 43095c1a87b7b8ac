//! `airlock build`: the pipeline, as a flat list of stages.
//!
//! lock → state → upstream views → plan → fetch and verify → record →
//! inventory → render → publish → prune → finish. Each stage takes and returns
//! plain values; nothing is published unless every earlier stage completed,
//! and a failed file only removes itself from the result.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
                metadata_source: a
                    .metadata
                    .map(|_| store.metadata_path(&a.project, &a.filename)),
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

pub fn build(manifest: &Manifest, opts: &BuildOptions) -> Result<BuildOutcome, Error> {
    let started = Instant::now();
    let m = &manifest.mirror;
    let output = opts.out.clone().unwrap_or_else(|| m.output.clone());
    let jobs = opts.jobs.unwrap_or(m.jobs);
    let templates = Templates::new(m.templates.as_deref())?;
    let target = Target::new(&output)?;

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
    let client = if opts.offline {
        None
    } else {
        Some(client_for(manifest)?)
    };
    let requested = plan::requested(manifest);
    let projects: Vec<ProjectName> = requested.keys().cloned().collect();
    tracing::info!(
        "run {run}: {} project(s) from {}{}",
        projects.len(),
        redact::url(&m.upstream),
        if opts.offline {
            " (offline: stored views only)"
        } else {
            ""
        }
    );
    let views = plan::gather(client.as_ref(), &state, &projects, jobs)?;
    state.put_project_views(&views.updated)?;
    for (project, s) in &views.skipped {
        tracing::warn!("{project}: skipping {:?}: {}", s.filename, s.reason);
    }
    let mut failures = views.errors.clone();

    // Stage: plan.
    let stored = state.artifacts()?;
    let mut plan: Plan = plan::make(
        manifest, &requested, &views, &stored, &store, run, published,
    );
    let tampered: Vec<_> = plan
        .projects
        .iter()
        .flat_map(|(p, pp)| {
            pp.tampered
                .iter()
                .map(move |(f, m, u)| (p.clone(), f.clone(), *m, *u))
        })
        .collect();
    for (p, f, mirrored, upstream) in &tampered {
        tracing::error!(
            "POSSIBLE TAMPERING: {p}/{f}: upstream now declares sha256 {upstream}, but {mirrored} was mirrored; keeping the mirrored file and refusing the new one"
        );
    }
    state.record_tampering(run, &tampered)?;

    // Stage: fetch and verify.
    let mut jobs_list = Vec::new();
    for (project, pp) in &mut plan.projects {
        if opts.offline {
            for f in pp.fetch.drain(..) {
                tracing::warn!(
                    "{project}: {} is not stored; offline, it is left out",
                    f.filename
                );
                pp.selected.retain(|s| s.filename != f.filename);
            }
        }
        jobs_list.extend(pp.fetch.iter().map(|f| FetchJob {
            project: project.clone(),
            file: f.clone(),
        }));
    }
    let results = match &client {
        Some(c) => fetch::fetch_all(
            c,
            &store,
            &jobs_list,
            FetchOptions {
                jobs,
                allow_missing_hashes: m.allow_missing_hashes,
            },
        ),
        None => Vec::new(),
    };
    let mut fetched = Vec::new();
    for r in results {
        match r {
            Ok(f) => fetched.push(artifact_of(&f, run)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let bytes: u64 = fetched.iter().map(|a| a.size).sum();
    state.put_artifacts(&fetched)?;

    // Stage: record the selection. A project whose upstream failed keeps
    // what the served tree lists, so a flaky upstream never empties a page.
    let mut selected: Vec<(ProjectName, String)> = plan
        .projects
        .iter()
        .flat_map(|(p, pp)| pp.keep.iter().map(move |f| (p.clone(), f.clone())))
        .collect();
    for a in &stored {
        if requested.contains_key(&a.project)
            && !views.listings.contains_key(&a.project)
            && published.is_some_and(|p| a.selected_run >= p)
        {
            selected.push((a.project.clone(), a.filename.clone()));
        }
    }
    state.mark_selected(run, &selected)?;

    // Stage: inventory, render, publish.
    let pruned: BTreeSet<(ProjectName, String)> = plan.prune.iter().cloned().collect();
    let artifacts = state.artifacts()?;
    let files = site_files(&artifacts, &store, run, &pruned);
    let info = SiteInfo {
        name: m.name.clone(),
        upstream: Some(redact::url(&m.upstream)),
        generated_at: crate::clock::output_time(),
    };
    let staged = target.stage(&format!("{run:06}"))?;
    let entries = render::render_site(&files, &info, None, &templates, staged.dir())?;
    crate::fault::point("before-publish");
    let tree = staged.commit()?;
    state.put_tree(run, &encode_listing(&entries), 8)?;

    // Stage: prune (after the swap: the previous tree keeps its hard links).
    for (p, f) in &plan.prune {
        for path in [store.path(p, f), store.metadata_path(p, f)] {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot prune {}: {e}", path.display());
                }
            }
        }
    }
    state.delete_artifacts(&plan.prune)?;

    let summary = Summary {
        added: fetched.len() as u64,
        kept: selected.len() as u64,
        unlisted: plan.projects.values().map(|p| p.unlist.len() as u64).sum(),
        pruned: plan.prune.len() as u64,
        failed: failures.len() as u64,
        bytes,
        tampered: tampered.len() as u64,
        elapsed: started.elapsed(),
    };
    let exit = if failures.is_empty() {
        Exit::Success
    } else {
        Exit::Failed
    };
    state.finish_run(
        run,
        if exit == Exit::Success {
            "success"
        } else {
            "failed"
        },
        &RunCounts {
            added: summary.added,
            kept: summary.kept,
            removed: summary.unlisted,
            failed: summary.failed,
            bytes: summary.bytes,
        },
        &failures,
    )?;
    Ok(BuildOutcome {
        run,
        summary,
        failures,
        tree,
        exit,
    })
}
