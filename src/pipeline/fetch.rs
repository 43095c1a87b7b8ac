//! Stages: adopt and fetch. Every `Adopt` and `Fetch` decision of the plan
//! becomes `Keep` (the file is in the store, verified, and recorded in the
//! state) or `Drop` (it is not, and a diagnostic says why).

use crate::util::run_id::RunId;
use std::collections::BTreeMap;

use rayon::prelude::*;

use super::plan::{Decision, Plan};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::run::Run;
use crate::store::Store;
use crate::store::fetch::{self, FetchJob, FetchOptions};
use crate::store::state::{Artifact, StateError};
use crate::upstream::Client;
use crate::upstream::listing::UpstreamFile;
use crate::util::hashing::{Sha256, hash_file};
use crate::util::redact;

/// What the fetch stage brought in.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fetched {
    pub files: u64,
    pub bytes: u64,
}

/// A verified file's state row.
pub fn artifact_row(
    file: &UpstreamFile,
    project: &ProjectName,
    sha256: Sha256,
    size: u64,
    metadata: Option<(Sha256, u64)>,
    run: RunId,
) -> Artifact {
    let now = crate::util::clock::now();
    Artifact {
        project: project.clone(),
        filename: file.filename.clone(),
        sha256,
        size,
        url: redact::strip(&file.url).to_string(),
        facts: file.facts.clone(),
        metadata,
        first_seen: now.clone(),
        last_verified: now,
        added_run: run,
        selected_run: run,
        unselected_run: None,
    }
}

/// Hash a stored, unrecorded file again; its row if it is what the
/// upstream declares, with the verdict on the provenance stored beside it
/// (a file whose upstream offers provenance is adopted only with it).
fn readopt(
    store: &Store,
    project: &ProjectName,
    f: &UpstreamFile,
    (allow_missing, provenance): (bool, Option<&super::provenance::Check>),
    run: RunId,
) -> Option<(Artifact, Option<super::provenance::Verdict>)> {
    let (sha, size) = match hash_file(&store.path(project, &f.filename)) {
        Ok(found) => found,
        // One layout: only in the bucket, vouched for by the sha256 its
        // upload recorded (restore files held it against the upstream's).
        Err(_) => store.vouched(project, &f.filename)?,
    };
    let matches = f.sha256.map_or(allow_missing, |want| want == sha) && f.size.is_none_or(|want| want == size);
    if !matches {
        return None;
    }
    let verdict = match provenance.and_then(|c| super::provenance::verify_stored(c.root(), store, (project, f), &sha)) {
        Some(None) => return None,
        v => v.flatten(),
    };
    let metadata = match &f.filename {
        DistFilename::Wheel(w) => store.metadata_of(project, w),
        DistFilename::Sdist(_) => None,
    };
    Some((artifact_row(f, project, sha, size, metadata, run), verdict))
}

/// The provenance verdicts on files just verified (fetched or adopted):
/// decided against the pins, recorded in the state, said; the files that
/// leave (refused or held).
fn settle(
    run: &mut Run,
    check: &super::provenance::Check,
    id: RunId,
    verdicts: Vec<(&ProjectName, &UpstreamFile, Sha256, Option<super::provenance::Verdict>)>,
    diags: &mut Diagnostics,
) -> Result<std::collections::BTreeSet<(ProjectName, String)>, StateError> {
    let checked = super::provenance::decide(check, &run.store, verdicts);
    run.state.put_attested(&checked.attested)?;
    run.state.put_publisher_pins(id, &checked.pins)?;
    diags.extend(checked.diags);
    Ok(checked.gone)
}

/// Stage: adopt. Files in the store the state does not record (a killed
/// run's, or a shard's from `airlock fetch`) are hashed again; those that match what the upstream declares are
/// recorded and kept, the rest are removed and fetched.
pub fn adopt(
    run: &mut Run,
    mut plan: Plan,
    (allow_missing_hashes, provenance): (bool, Option<&super::provenance::Check>),
    diags: &mut Diagnostics,
) -> Result<Plan, StateError> {
    let store = &run.store;
    let mut rows = Vec::new();
    // What was adopted, and the verdict on each one's provenance.
    let (mut adopted, mut verdicts) = (Vec::new(), Vec::new());
    for pp in plan.projects.iter_mut().filter(|pp| pp.files.iter().any(|f| matches!(f.decision, Decision::Adopt(_)))) {
        let project = pp.project.clone();
        // Parallel over files; results come back in plan order.
        let checked: Vec<Option<(Artifact, Option<super::provenance::Verdict>)>> = pp
            .files
            .par_iter()
            .map(|p| match &p.decision {
                Decision::Adopt(f) => readopt(store, &project, f, (allow_missing_hashes, provenance), plan.run),
                _ => None,
            })
            .collect();
        for (p, row) in pp.files.iter_mut().zip(checked) {
            let Decision::Adopt(f) = &p.decision else { continue };
            p.decision = match row {
                Some((a, verdict)) => {
                    adopted.push((project.clone(), f.clone(), a.sha256));
                    verdicts.push(verdict);
                    tracing::info!(
                        "adopted {} from the store (stored by a shard or an interrupted run; verified again)",
                        a.filename
                    );
                    rows.push(a);
                    Decision::Keep
                }
                None => {
                    let _ = std::fs::remove_file(store.path(&project, &f.filename));
                    Decision::Fetch(f.clone())
                }
            };
        }
    }
    if let Some(check) = provenance {
        let verdicts = adopted.iter().zip(verdicts).map(|((p, f, sha), v)| (p, f.as_ref(), *sha, v)).collect();
        let gone = settle(run, check, plan.run, verdicts, diags)?;
        rows.retain(|a| !gone.contains(&(a.project.clone(), a.filename.to_string())));
        for pp in &mut plan.projects {
            for p in &mut pp.files {
                if gone.contains(&(pp.project.clone(), p.filename.to_string())) {
                    p.decision = Decision::Drop;
                }
            }
        }
    }
    run.state.put_artifacts(&rows)?;
    Ok(plan)
}

/// The METADATA each wheel was resolved with, by (project, filename).
pub type Expected = BTreeMap<(ProjectName, String), Sha256>;

/// A fetched wheel whose verified METADATA is not what resolution used
/// fails: the resolution would not hold for what the mirror serves.
fn metadata_differs(job: &FetchJob, got: Option<(Sha256, u64)>, expected: &Expected) -> Option<String> {
    if !job.file.filename.is_wheel() {
        return None;
    }
    let want = expected.get(&(job.project.clone(), job.file.filename.to_string()))?;
    let got = got.map(|(sha, _)| sha);
    (got != Some(*want)).then(|| {
        format!(
            "{}: its METADATA (sha256 {}) differs from the metadata resolution used (sha256 {want}); refused",
            job.file.filename,
            got.map_or_else(|| "none".to_string(), |s| s.hex())
        )
    })
}

/// Stage: fetch and verify every `Fetch` in parallel, recording each
/// verified file. Without a client (offline) nothing is fetched: the files
/// are dropped with a warning.
pub fn fetch(
    run: &mut Run,
    client: Option<&Client>,
    mut plan: Plan,
    opts: FetchOptions,
    (expected, provenance): (&Expected, Option<&super::provenance::Check>),
    diags: &mut Diagnostics,
) -> Result<(Plan, Fetched), StateError> {
    let mut jobs = Vec::new();
    for pp in &mut plan.projects {
        for p in &mut pp.files {
            if let Decision::Fetch(_) = p.decision {
                let Decision::Fetch(file) = std::mem::replace(&mut p.decision, Decision::Drop) else { continue };
                jobs.push(FetchJob { project: pp.project.clone(), file: *file });
            }
        }
    }
    let Some(client) = client else {
        for job in jobs {
            diags.push(Diagnostic::NotStored { project: job.project, filename: job.file.filename.to_string() });
        }
        return Ok((plan, Fetched::default()));
    };
    // PEP 740 provenance is fetched and verified in the worker that
    // verified the file, under the other transfers' I/O.
    let store = &run.store;
    let verify = |job: &FetchJob, f: &fetch::Fetched| {
        provenance
            .and_then(|c| super::provenance::verify_one(c.root(), client, store, (&job.project, &job.file), &f.sha256))
    };
    let results = fetch::fetch_all_then(client, &run.store, &jobs, opts, &verify);
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    let mut fetched = Fetched::default();
    for (job, (r, verdict)) in jobs.iter().zip(results) {
        let r = r.map_err(|e| e.to_string()).and_then(|f| match metadata_differs(job, f.metadata, expected) {
            Some(message) => {
                run.store.remove(&job.project, &job.file.filename);
                tracing::error!("{message}");
                Err(message)
            }
            None => Ok(f),
        });
        match r {
            Ok(f) => {
                fetched.files += 1;
                fetched.bytes += f.size;
                verdicts.push((&job.project, &job.file, f.sha256, verdict));
                rows.push(artifact_row(&job.file, &job.project, f.sha256, f.size, f.metadata, plan.run));
            }
            // Already logged by the fetcher as it happened.
            Err(message) => diags.push_quiet(Diagnostic::FetchFailed {
                project: job.project.clone(),
                filename: job.file.filename.to_string(),
                message,
            }),
        }
    }
    if jobs.is_empty() {
        return Ok((plan, fetched));
    }
    if let Some(check) = provenance {
        let gone = settle(run, check, plan.run, verdicts, diags)?;
        rows.retain(|a| !gone.contains(&(a.project.clone(), a.filename.to_string())));
        fetched.files -= gone.len() as u64;
    }
    run.state.put_artifacts(&rows)?;
    let arrived: std::collections::BTreeSet<(&ProjectName, &str)> =
        rows.iter().map(|a| (&a.project, a.filename.as_str())).collect();
    for pp in &mut plan.projects {
        for p in &mut pp.files {
            if matches!(p.decision, Decision::Drop) && arrived.contains(&(&pp.project, p.filename.as_str())) {
                p.decision = Decision::Keep;
            }
        }
    }
    Ok((plan, fetched))
}
