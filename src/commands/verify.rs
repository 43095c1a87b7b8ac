//! `airlock verify`: re-hash every file of the published tree, in parallel,
//! against the listing the state recorded when the tree was published (and
//! every artifact against its state row); report missing, corrupt and
//! unexpected files; and every PEP 740 `.provenance` verified again,
//! offline, against the file beside it. `--repair` refetches (or re-extracts) what is wrong
//! into the store, republishes the tree atomically, and verifies again.

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rayon::prelude::*;

use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::error::Error;
use crate::exit::Exit;
use crate::manifest::Manifest;
use crate::pipeline;
use crate::run::{Command, ServedTree, Session};
use crate::store::fetch::{self, FetchJob, FetchOptions};
use crate::store::state::{Artifact, State};
use crate::tree::TreeEntry;
use crate::util::hashing::{Sha256, hash_file};
use crate::util::ui::{Progress, human_bytes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        path: String,
    },
    Corrupt {
        path: String,
        expected: Sha256,
        computed: Sha256,
        size: u64,
        expected_size: u64,
    },
    Unexpected {
        path: String,
    },
    /// The listing and the state disagree about an artifact (should not happen).
    Disagrees {
        path: String,
        listing: Sha256,
        state: Sha256,
    },
    /// A `.provenance` that hashes as listed but no longer verifies (the
    /// trusted root changed, or the tree was rewritten consistently).
    Provenance {
        path: String,
        message: String,
    },
}

impl Problem {
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Missing { .. } => "missing",
            Problem::Corrupt { .. } => "corrupt",
            Problem::Unexpected { .. } => "unexpected",
            Problem::Disagrees { .. } => "disagreeing",
            Problem::Provenance { .. } => "provenance",
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Problem::Missing { path }
            | Problem::Corrupt { path, .. }
            | Problem::Unexpected { path }
            | Problem::Disagrees { path, .. }
            | Problem::Provenance { path, .. } => path,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { path } => write!(f, "missing     {path}"),
            Problem::Corrupt { path, expected, computed, size, expected_size } => write!(
                f,
                "corrupt     {path}: expected sha256 {expected} ({expected_size} bytes), computed {computed} ({size} bytes)"
            ),
            Problem::Unexpected { path } => write!(f, "unexpected  {path}"),
            Problem::Disagrees { path, listing, state } => {
                write!(f, "disagrees   {path}: the tree listing says {listing}, the state {state}")
            }
            Problem::Provenance { path, message } => write!(f, "provenance  {path}: {message}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub run: RunId,
    pub files: usize,
    pub bytes: u64,
    /// One layout: packages checked in the bucket (by its listing: present
    /// at the listed size), not re-hashed here; each was verified before
    /// its upload.
    pub in_bucket: usize,
    pub problems: Vec<Problem>,
    pub seconds: f64,
}

/// Check the served tree against its recorded listing.
pub fn check(
    state: &State,
    served: &ServedTree,
    trust: Option<&crate::provenance::TrustRoot>,
    bucket: Option<&crate::store::Held>,
) -> Result<Report, Error> {
    let started = Instant::now();
    let (root, run, listing) = (served.root.as_path(), served.run, &served.listing);
    let expected: BTreeMap<&str, &TreeEntry> = listing.iter().map(|e| (e.path.as_str(), e)).collect();

    let mut problems = Vec::new();
    let state_rows: BTreeMap<(String, String), Sha256> =
        state.artifacts()?.into_iter().map(|a| ((a.project.to_string(), a.filename.to_string()), a.sha256)).collect();
    for e in listing {
        let parts: Vec<&str> = e.path.split('/').collect();
        if let ["packages", project, filename] = parts.as_slice()
            && let Some(sha) = state_rows.get(&(project.to_string(), filename.to_string()))
            && *sha != e.sha256
        {
            problems.push(Problem::Disagrees { path: e.path.clone(), listing: e.sha256, state: *sha });
        }
    }

    let mut present = BTreeSet::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| Error::Io(e.into()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else { continue };
        let rel = rel.to_string_lossy().replace('\\', "/");
        if !entry.file_type().is_file() || !expected.contains_key(rel.as_str()) {
            problems.push(Problem::Unexpected { path: rel });
            continue;
        }
        present.insert(rel);
    }
    let mut in_bucket = 0;
    let held = bucket.map(|b| b.read().unwrap_or_else(std::sync::PoisonError::into_inner));
    for e in listing {
        if present.contains(&e.path) {
            continue;
        }
        let sized = |h: &std::collections::HashMap<String, u64>| {
            e.path.strip_prefix("packages/").and_then(|rel| h.get(rel)) == Some(&e.size)
        };
        if held.as_deref().is_some_and(sized) {
            in_bucket += 1;
        } else {
            problems.push(Problem::Missing { path: e.path.clone() });
        }
    }
    drop(held);

    // Largest first keeps the threads busy to the end; results are sorted after.
    let mut work: Vec<&TreeEntry> = listing.iter().filter(|e| present.contains(&e.path)).collect();
    work.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let total: u64 = work.iter().map(|e| e.size).sum();
    let progress = Progress::bytes("verify", total);
    let hashed: Vec<Result<Option<Problem>, std::io::Error>> = work
        .par_iter()
        .map(|e| {
            let (computed, size) = hash_file(&root.join(&e.path))?;
            progress.inc(size);
            Ok((computed != e.sha256 || size != e.size).then(|| Problem::Corrupt {
                path: e.path.clone(),
                expected: e.sha256,
                computed,
                size,
                expected_size: e.size,
            }))
        })
        .collect();
    progress.finish();
    for h in hashed {
        problems.extend(h?);
    }
    if let Some(trust) = trust {
        let hashed_clean: BTreeSet<&str> = problems.iter().map(Problem::path).collect();
        let hashed_clean: Vec<&TreeEntry> =
            work.iter().copied().filter(|e| !hashed_clean.contains(e.path.as_str())).collect();
        let failed = crate::tree::provenance_failures(root, &hashed_clean, &expected, trust);
        problems.extend(failed.into_iter().map(|(path, message)| Problem::Provenance { path, message }));
    }
    problems.sort_by(|a, b| a.path().cmp(b.path()).then_with(|| a.to_string().cmp(&b.to_string())));
    Ok(Report { run, files: work.len(), bytes: total, in_bucket, problems, seconds: started.elapsed().as_secs_f64() })
}

fn print(report: &Report) {
    for p in &report.problems {
        println!("{p}");
    }
    let rate = if report.seconds > 0.0 { report.bytes as f64 / report.seconds } else { 0.0 };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &report.problems {
        *counts.entry(p.kind()).or_default() += 1;
    }
    let problems = if counts.is_empty() {
        "all good".to_string()
    } else {
        counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
    };
    println!(
        "verify: run {}'s tree, {} files, {} in {:.2}s ({}/s): {problems}",
        report.run,
        report.files,
        human_bytes(report.bytes),
        report.seconds,
        human_bytes(rate as u64)
    );
    if report.in_bucket > 0 {
        println!(
            "verify: {} package(s) in the bucket (one layout) are there at their listed size; each was verified before its upload",
            report.in_bucket
        );
    }
}

/// One layout: what the bucket holds, listed once (the packages are there,
/// not in the tree).
fn bucket(manifest: &Manifest) -> Result<Option<crate::store::Held>, Error> {
    let Some(mut r) = crate::pipeline::remote::open(&manifest.mirror, &manifest.publish)?.filter(|r| r.one_layout())
    else {
        return Ok(None);
    };
    r.list()?;
    Ok(Some(r.held().0))
}

/// `airlock verify [--repair]`.
pub fn verify(manifest: &Manifest, repair: bool) -> Result<Exit, Error> {
    let m = &manifest.mirror;
    let trust = crate::pipeline::provenance::trust_root(&manifest.policy)?;
    let bucket = bucket(manifest)?;
    let report = {
        let mut session = Session::open(m, &m.output, Command::Verify)?;
        let served = session.served()?;
        let report = check(&session.state, &served, trust.as_ref(), bucket.as_ref())?;
        // Every artifact whose tree copy hashed clean is freshly verified.
        let bad: BTreeSet<&str> = report.problems.iter().map(Problem::path).collect();
        let good: Vec<(ProjectName, DistFilename)> = session
            .state
            .artifacts()?
            .into_iter()
            .filter(|a| !bad.contains(format!("packages/{}/{}", a.project, a.filename).as_str()))
            .map(|a| (a.project, a.filename))
            .collect();
        session.state.touch_verified(&good)?;
        report
    };
    print(&report);
    if report.problems.is_empty() {
        return Ok(Exit::Success);
    }
    if !repair {
        println!("run `airlock verify --repair` to refetch or relink what is wrong");
        return Ok(Exit::Failed);
    }
    let unrepaired = repair_store(manifest, &report)?;
    // Pages, reports and links are rebuilt by publishing a fresh tree.
    pipeline::republish(manifest, Command::Repair, true)?;
    let after = {
        let session = Session::open(m, &m.output, Command::Verify)?;
        check(&session.state, &session.served()?, trust.as_ref(), bucket.as_ref())?
    };
    print(&after);
    for u in &unrepaired {
        tracing::error!("{u}");
    }
    Ok(if after.problems.is_empty() && unrepaired.is_empty() { Exit::Success } else { Exit::Failed })
}

/// What to do about one damaged artifact.
enum Fix<'a> {
    Refetch(Box<FetchJob>),
    Reextract(&'a Artifact),
}

/// Decide how to repair each problem of the report.
fn fixes<'a>(
    store: &crate::store::Store,
    arts: &'a BTreeMap<(String, String), Artifact>,
    report: &Report,
) -> (Vec<Fix<'a>>, Vec<String>) {
    let mut fixes = Vec::new();
    let mut unrepaired = Vec::new();
    for p in &report.problems {
        let parts: Vec<&str> = p.path().split('/').collect();
        let ["packages", project, filename] = parts.as_slice() else { continue };
        let (filename, is_metadata) = match filename.strip_suffix(".metadata") {
            Some(wheel) => (wheel, true),
            None => (*filename, false),
        };
        let Some(a) = arts.get(&(project.to_string(), filename.to_string())) else { continue };
        // The store copy may be intact (the tree held a copy, not a link).
        let store_ok =
            hash_file(&store.path(&a.project, &a.filename)).is_ok_and(|(sha, size)| sha == a.sha256 && size == a.size);
        if store_ok && is_metadata {
            fixes.push(Fix::Reextract(a));
        } else if !store_ok {
            match pipeline::repair::upstream_file(a) {
                Ok(file) => fixes.push(Fix::Refetch(Box::new(FetchJob { project: a.project.clone(), file }))),
                Err(e) => unrepaired.push(format!("cannot repair {}: {e}", p.path())),
            }
        }
    }
    (fixes, unrepaired)
}

/// Bring every artifact the report names back into the store, verified.
/// Returns what could not be repaired.
fn repair_store(manifest: &Manifest, report: &Report) -> Result<Vec<String>, Error> {
    let m = &manifest.mirror;
    let mut session = Session::open(m, &m.output, Command::Repair)?;
    session.store.prepare()?;
    let arts: BTreeMap<(String, String), Artifact> =
        session.state.artifacts()?.into_iter().map(|a| ((a.project.to_string(), a.filename.to_string()), a)).collect();
    let (fixes, mut unrepaired) = fixes(&session.store, &arts, report);
    let mut refetch: Vec<FetchJob> = Vec::new();
    let mut reextract: Vec<&Artifact> = Vec::new();
    for f in fixes {
        match f {
            Fix::Refetch(job) => refetch.push(*job),
            Fix::Reextract(a) => reextract.push(a),
        }
    }
    refetch.sort_by(|a, b| a.file.filename.as_str().cmp(b.file.filename.as_str()));
    refetch.dedup_by(|a, b| a.file.filename.as_str() == b.file.filename.as_str());
    if !refetch.is_empty() {
        tracing::info!("refetching {} artifact(s) into the store", refetch.len());
        let client = pipeline::connect(m, false)?.ok_or_else(|| Error::Failed("no upstream client".into()))?;
        // Replace the damaged store file (a new inode): the tree's hard link
        // to the old one must not keep the damage.
        for job in &refetch {
            let _ = std::fs::remove_file(session.store.path(&job.project, &job.file.filename));
        }
        let opts = FetchOptions { jobs: m.jobs, allow_missing_hashes: false };
        let results = fetch::fetch_all(&client, &session.store, &refetch, opts);
        let mut touched = Vec::new();
        for (job, r) in refetch.iter().zip(results) {
            match r {
                Ok(_) => touched.push((job.project.clone(), job.file.filename.clone())),
                Err(e) => unrepaired.push(format!("cannot repair: {e}")),
            }
        }
        session.state.touch_verified(&touched)?;
    }
    for a in reextract {
        if let DistFilename::Wheel(w) = &a.filename {
            let _ = std::fs::remove_file(session.store.metadata_path(&a.project, &a.filename));
            if session.store.extract_metadata(&a.project, w) != a.metadata {
                unrepaired.push(format!(
                    "cannot repair {}.metadata: the wheel's METADATA differs from the recorded one",
                    a.filename
                ));
            }
        }
    }
    Ok(unrepaired)
}
