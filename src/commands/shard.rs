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

use std::io::{Seek, Write};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::exit::Exit;
use crate::manifest::Manifest;
use crate::pipeline::plan::{Decision, Plan, PlannedFile};
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

/// What a plan fetches, in wire form.
fn planned(project: &ProjectName, f: &PlannedFile) -> Option<PlannedFetch> {
    match &f.decision {
        Decision::Fetch(u) | Decision::Adopt(u) => Some(PlannedFetch {
            project: project.to_string(),
            filename: u.filename.to_string(),
            url: crate::util::redact::strip(&u.url).to_string(),
            sha256: u.sha256.map(|s| s.hex()),
            size: u.size,
            provenance: u.facts.provenance.clone(),
        }),
        _ => None,
    }
}

/// `PLAN.json` written batch by batch: the files go to a temporary file as
/// each batch is planned, and [`PlanWriter::finish`] writes the header
/// (whose `bytes` sums them) and the files into the plan, atomically. A
/// plan of every PyPI file is never in memory; the bytes are those of
/// `serde_json::to_vec_pretty` of the whole [`PlanFile`] (tested).
pub struct PlanWriter {
    path: std::path::PathBuf,
    upstream: String,
    files: std::io::BufWriter<tempfile::NamedTempFile>,
    count: usize,
    bytes: u64,
}

impl PlanWriter {
    pub fn create(path: &Path, upstream: &Url) -> Result<PlanWriter, ShardError> {
        let io = |error| ShardError::Io { path: path.display().to_string(), error };
        let files = std::io::BufWriter::new(crate::util::fsx::temp_beside(path).map_err(io)?);
        let upstream = crate::util::redact::strip(upstream).to_string();
        Ok(PlanWriter { path: path.to_path_buf(), upstream, files, count: 0, bytes: 0 })
    }

    /// Append a batch's fetches (batches come in project order).
    pub fn add(&mut self, plan: &Plan) -> Result<(), ShardError> {
        for f in plan.files().filter_map(|(p, f)| planned(p, f)) {
            self.push(&f).map_err(|error| ShardError::Io { path: self.path.display().to_string(), error })?;
        }
        Ok(())
    }

    /// One file, as the pretty printer indents an element of `files`.
    fn push(&mut self, f: &PlannedFetch) -> std::io::Result<()> {
        self.bytes += f.size.unwrap_or(0);
        let pretty = serde_json::to_string_pretty(f).map_err(std::io::Error::other)?;
        self.files.write_all(if self.count == 0 { b"\n" } else { b",\n" })?;
        for (i, line) in pretty.lines().enumerate() {
            self.files.write_all(if i == 0 { b"    " } else { b"\n    " })?;
            self.files.write_all(line.as_bytes())?;
        }
        self.count += 1;
        Ok(())
    }

    /// Write the plan; how many files it names and their declared bytes.
    pub fn finish(self) -> Result<(usize, u64), ShardError> {
        let shown = self.path.display().to_string();
        let io = |error| ShardError::Io { path: shown.clone(), error };
        let mut files = self.files.into_inner().map_err(|e| io(e.into_error()))?;
        files.as_file_mut().flush().map_err(io)?;
        files.as_file_mut().seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        let mut out = crate::util::fsx::temp_beside(&self.path).map_err(io)?;
        {
            let mut w = std::io::BufWriter::new(out.as_file_mut());
            let upstream = serde_json::to_string(&self.upstream).map_err(|e| io(std::io::Error::other(e)))?;
            write!(
                w,
                "{{\n  \"schema\": \"{SCHEMA}\",\n  \"upstream\": {upstream},\n  \"bytes\": {},\n  \"files\": [",
                self.bytes
            )
            .map_err(io)?;
            std::io::copy(files.as_file_mut(), &mut w).map_err(io)?;
            w.write_all(if self.count == 0 { b"]\n}\n" } else { b"\n  ]\n}\n" }).map_err(io)?;
            w.flush().map_err(io)?;
        }
        crate::util::fsx::persist(out, &self.path).map_err(io)?;
        Ok((self.count, self.bytes))
    }
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
    fn a_plan_written_batch_by_batch_is_the_whole_plan_pretty_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let upstream = Url::parse("https://user:secret@pypi.example/simple/").unwrap();
        let mut odd = file("we\"ird\\name-1.0.tar.gz", 7);
        (odd.sha256, odd.provenance) = (Some("ab".repeat(32)), Some("https://x/p".into()));
        for files in [vec![], vec![file("a-1.0.tar.gz", 3)], vec![file("a-1.0.tar.gz", 3), odd, file("b-2.whl", 0)]] {
            let mut w = PlanWriter::create(&path, &upstream).unwrap();
            for f in &files {
                w.push(f).unwrap();
            }
            let bytes = files.iter().filter_map(|f| f.size).sum();
            assert_eq!(w.finish().unwrap(), (files.len(), bytes));
            let whole = PlanFile {
                schema: SCHEMA.into(),
                upstream: "https://pypi.example/simple/".into(),
                bytes,
                files: files.clone(),
            };
            let mut want = serde_json::to_vec_pretty(&whole).unwrap();
            want.push(b'\n');
            assert_eq!(String::from_utf8(std::fs::read(&path).unwrap()).unwrap(), String::from_utf8(want).unwrap());
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }

    #[test]
    fn shard_specs() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        for bad in ["4/4", "0/0", "x/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
