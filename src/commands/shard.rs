//! Sharded fetches: `airlock plan -o PLAN.json` writes every file a build
//! would fetch (with the sha256 and size it must have), and `airlock fetch
//! --plan PLAN.json --shard K/N` fetches and verifies shard K of N into the
//! store, so that a Kubernetes Indexed Job or a CI matrix does the fetching
//! and `airlock build --offline` then renders from what the store holds.
//!
//! A shard touches no state database and takes no run lock: it only adds
//! verified files to the store, each by an atomic rename, which any number
//! of shards may do at once. The build that follows hashes every file it
//! did not record itself again before listing it (the adopt stage), so a
//! shard can never publish anything unverified. Shards are balanced by
//! bytes, not by count: one huge wheel is a shard's whole share.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::exit::Exit;
use crate::manifest::Manifest;
use crate::pipeline::plan::{Decision, Plan};
use crate::store::Store;
use crate::store::fetch::{FetchJob, FetchOptions};
use crate::upstream::listing::{Offered, UpstreamFile};
use crate::util::hashing::Sha256;
use crate::util::ui::human_bytes;

pub const SCHEMA: &str = "airlock.plan/v1";

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: not a plan written by `airlock plan -o`: {error}")]
    Parse { path: String, error: serde_json::Error },
    #[error("{path}: plan schema {found:?}, expected {SCHEMA:?} (written by another airlock version?)")]
    Schema { path: String, found: String },
    #[error("{path}: file {index} ({filename:?}): {message}")]
    BadFile { path: String, index: usize, filename: String, message: String },
    #[error(
        "shard {0:?}: expected K/N with 0 <= K < N (or $JOB_COMPLETION_INDEX and $AIRLOCK_SHARDS), such as --shard 0/4"
    )]
    BadShard(String),
}

/// The command layer's view: a bad `--shard` is a usage error (exit 2).
impl From<ShardError> for crate::error::Error {
    fn from(e: ShardError) -> Self {
        match e {
            ShardError::BadShard(_) => crate::error::Error::Usage(e.to_string()),
            e => crate::error::Error::Failed(e.to_string()),
        }
    }
}

/// `PLAN.json`: the wire form of the files a plan fetches.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    pub schema: String,
    /// The upstream index the plan was made against (credentials removed).
    pub upstream: String,
    /// Sum of the declared sizes.
    pub bytes: u64,
    /// Sorted by project, then filename.
    pub files: Vec<PlannedFetch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedFetch {
    pub project: String,
    pub filename: String,
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// The upstream's PEP 740 provenance URL, when it offers one: the shard
    /// fetches and verifies it with the file (the build adopts an attested
    /// file only with its provenance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
}

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::BadShard(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// `--shard` if given, else `$JOB_COMPLETION_INDEX` of `$AIRLOCK_SHARDS`
    /// (a Kubernetes Indexed Job sets the first), else the whole plan.
    pub fn resolve(arg: Option<&str>) -> Result<Shard, ShardError> {
        if let Some(a) = arg {
            return a.parse();
        }
        let index = std::env::var("JOB_COMPLETION_INDEX").ok();
        let count = std::env::var("AIRLOCK_SHARDS").ok();
        match (index, count) {
            (None, None) => Ok(Shard { index: 0, count: 1 }),
            (k, n) => format!("{}/{}", k.as_deref().unwrap_or("0"), n.as_deref().unwrap_or("1")).parse(),
        }
    }
}

/// Which shard each file goes to: the largest first, each to the shard
/// with the fewest bytes so far (ties to the lowest index), so shards end
/// within one file's size of each other. Deterministic: every shard
/// computes the same assignment from the same plan.
pub fn assign(files: &[PlannedFetch], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| {
        let size = |i: usize| files[i].size.unwrap_or(0);
        size(b).cmp(&size(a)).then_with(|| files[a].filename.cmp(&files[b].filename))
    });
    let mut load = vec![0u64; count.max(1)];
    let mut out = vec![0; files.len()];
    for i in order {
        let (shard, _) = load.iter().enumerate().min_by_key(|(k, l)| (**l, *k)).expect("at least one shard");
        out[i] = shard;
        load[shard] += files[i].size.unwrap_or(0).max(1);
    }
    out
}

/// The plan's fetches in wire form.
pub fn plan_file(plan: &Plan, upstream: &Url) -> PlanFile {
    let files: Vec<PlannedFetch> = plan
        .files()
        .filter_map(|(project, p)| match &p.decision {
            Decision::Fetch(f) | Decision::Adopt(f) => Some(PlannedFetch {
                project: project.to_string(),
                filename: f.filename.to_string(),
                url: crate::util::redact::strip(&f.url).to_string(),
                sha256: f.sha256.map(|s| s.hex()),
                size: f.size,
                provenance: f.facts.provenance.clone(),
            }),
            _ => None,
        })
        .collect();
    PlanFile {
        schema: SCHEMA.to_string(),
        upstream: crate::util::redact::strip(upstream).to_string(),
        bytes: files.iter().filter_map(|f| f.size).sum(),
        files,
    }
}

/// Write `PLAN.json` atomically.
pub fn write(path: &Path, plan: &PlanFile) -> Result<(), ShardError> {
    let io = |error| ShardError::Io { path: path.display().to_string(), error };
    let mut json = serde_json::to_vec_pretty(plan).map_err(|e| io(e.into()))?;
    json.push(b'\n');
    crate::util::fsx::write_atomically(path, &json).map_err(io)
}

/// Read a plan and check every file in it as if it came from the upstream
/// (names, hashes, URLs): a plan file is input like any other.
pub fn read(path: &Path) -> Result<(PlanFile, Vec<FetchJob>), ShardError> {
    let shown = path.display().to_string();
    let bytes = fs_err::read(path).map_err(|error| ShardError::Io { path: shown.clone(), error })?;
    let plan: PlanFile =
        serde_json::from_slice(&bytes).map_err(|error| ShardError::Parse { path: shown.clone(), error })?;
    if plan.schema != SCHEMA {
        return Err(ShardError::Schema { path: shown, found: plan.schema });
    }
    let mut jobs = Vec::with_capacity(plan.files.len());
    for (index, f) in plan.files.iter().enumerate() {
        let bad =
            |message: String| ShardError::BadFile { path: shown.clone(), index, filename: f.filename.clone(), message };
        let project = ProjectName::from_str(&f.project).map_err(|e| bad(e.to_string()))?;
        let filename = DistFilename::parse(&f.filename, Some(&project)).map_err(|e| bad(e.to_string()))?;
        let url = Url::parse(&f.url).map_err(|e| bad(format!("bad URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(bad(format!("URL scheme {:?} is not fetched", url.scheme())));
        }
        let sha256 = f.sha256.as_deref().map(Sha256::from_str).transpose().map_err(|e| bad(e.to_string()))?;
        if let Some(p) = &f.provenance {
            let u = Url::parse(p).map_err(|e| bad(format!("bad provenance URL: {e}")))?;
            if !matches!(u.scheme(), "http" | "https" | "file") {
                return Err(bad(format!("provenance URL scheme {:?} is not fetched", u.scheme())));
            }
        }
        let facts = crate::dist::file::FileFacts { provenance: f.provenance.clone(), ..Default::default() };
        let file = UpstreamFile { filename, url, sha256, size: f.size, facts, metadata: Offered::No };
        jobs.push(FetchJob { project, file });
    }
    Ok((plan, jobs))
}

/// `airlock fetch --plan PLAN.json --shard K/N`: fetch and verify this
/// shard's files into the store. Files already there are skipped.
pub fn fetch(manifest: &Manifest, plan_path: &Path, shard: Shard) -> Result<Exit, crate::error::Error> {
    let m = &manifest.mirror;
    let (plan, jobs) = read(plan_path)?;
    let ours = assign(&plan.files, shard.count);
    let mut store = Store::for_mirror(m);
    // With an object-store store, files go there (from a local working
    // copy), and what it holds already is skipped; under one layout the
    // working copy lets each distribution go once it is up.
    let mut remote = crate::pipeline::remote::open(m, &manifest.publish)?;
    if let Some(r) = remote.as_mut() {
        r.list()?;
        if r.one_layout() {
            store.attach_bucket(r.held());
        }
    }
    let mine: Vec<FetchJob> = jobs.into_iter().zip(ours).filter(|(_, k)| *k == shard.index).map(|(j, _)| j).collect();
    let share: u64 = mine.iter().filter_map(|j| j.file.size).sum();
    // Files verified locally by an earlier attempt but never uploaded (it
    // was killed) go up without being fetched again.
    let (local, rest): (Vec<FetchJob>, Vec<FetchJob>) =
        mine.into_iter().partition(|j| store.path(&j.project, &j.file.filename).is_file());
    let stored: Vec<_> = local.into_iter().map(|j| (j.project, j.file.filename)).collect();
    let held = |j: &FetchJob| remote.as_ref().is_some_and(|r| r.holds(j.project.as_str(), j.file.filename.as_str()));
    let todo: Vec<FetchJob> = rest.into_iter().filter(|j| !held(j)).collect();
    tracing::info!(
        "shard {}/{}: {} file(s) to fetch of the plan's {} ({} of {} is this shard's share)",
        shard.index,
        shard.count,
        todo.len(),
        plan.files.len(),
        human_bytes(share),
        human_bytes(plan.bytes)
    );
    let client = crate::pipeline::connect(m, false)?.expect("online");
    // Shards share the store: each keeps its partial files apart, and
    // removes them however it ends.
    let scratch = format!("shard-{}-of-{}-{}", shard.index, shard.count, std::process::id());
    let store = store.with_tmp(&scratch);
    fs_err::create_dir_all(store.tmp_dir())?;
    let tmp = store.tmp_dir().to_path_buf();
    let _cleanup = crate::util::signal::Guard::cleanup(move || {
        let _ = std::fs::remove_dir_all(&tmp);
    });
    let opts = FetchOptions { jobs: m.jobs, allow_missing_hashes: m.allow_missing_hashes };
    // Each file's provenance is fetched, verified and kept beside it (the
    // publisher is judged by the build that adopts it: the shard has no pins).
    let root = crate::pipeline::provenance::trust_root(&manifest.policy)?;
    let verify = |job: &FetchJob, f: &crate::store::fetch::Fetched| {
        let root = root.as_ref()?;
        crate::pipeline::provenance::verify_one(root, &client, &store, (&job.project, &job.file), &f.sha256)
    };
    let results = crate::store::fetch::fetch_all_then(&client, &store, &todo, opts, &verify);
    let _ = fs_err::remove_dir_all(store.tmp_dir());
    crate::util::signal::check()?;
    let (mut fetched, mut bytes, mut failed) = (0u64, 0u64, 0u64);
    let mut verified = stored;
    for (job, (r, verdict)) in todo.iter().zip(&results) {
        match r {
            // Refused for its provenance (and removed from the store).
            Ok(_) if matches!(verdict, Some(crate::pipeline::provenance::Verdict::Refused(_))) => {
                failed += 1;
                if let Some(crate::pipeline::provenance::Verdict::Refused(d)) = verdict {
                    tracing::error!("failed: {d}");
                }
            }
            Ok(f) => {
                fetched += 1;
                bytes += f.size;
                verified.push((job.project.clone(), job.file.filename.clone()));
            }
            Err(e) => {
                failed += 1;
                tracing::error!("failed: {e}");
            }
        }
    }
    if let Some(r) = remote.as_mut() {
        let uploaded = r.upload(&store, &verified)?;
        for (p, f) in &verified {
            store.evict(p, f);
        }
        tracing::info!(
            "shard {}/{}: uploaded {uploaded} verified file(s) to the object store",
            shard.index,
            shard.count
        );
    }
    tracing::info!(
        "shard {}/{}: fetched {fetched} file(s) ({}), failed {failed}",
        shard.index,
        shard.count,
        human_bytes(bytes)
    );
    Ok(if failed > 0 { Exit::Failed } else { Exit::Success })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> PlannedFetch {
        PlannedFetch {
            project: "p".into(),
            filename: name.into(),
            url: String::new(),
            sha256: None,
            size: Some(size),
            provenance: None,
        }
    }

    #[test]
    fn shards_are_balanced_by_bytes() {
        let files = vec![file("a", 100), file("b", 10), file("c", 10), file("d", 10), file("e", 60), file("f", 40)];
        let got = assign(&files, 2);
        let load =
            |k: usize| files.iter().zip(&got).filter(|(_, s)| **s == k).map(|(f, _)| f.size.unwrap()).sum::<u64>();
        assert_eq!(load(0) + load(1), 230);
        assert!(load(0).abs_diff(load(1)) <= 10, "{got:?}");
        assert_eq!(assign(&files, 2), got, "deterministic");
    }

    #[test]
    fn shard_specs() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "0/0", "x/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
