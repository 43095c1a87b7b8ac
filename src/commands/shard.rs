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

/// `PLAN.json` whole: the wire form of the files a plan fetches. Neither
/// side holds it: [`PlanWriter`] writes its bytes batch by batch (a test
/// holds them to this struct's pretty JSON) and [`read_shard`] streams it.
#[cfg(test)]
#[derive(Debug, Serialize)]
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

/// Which shard each file goes to, given each file's declared size in plan
/// order: the largest first (ties in plan order), each to the shard with
/// the fewest bytes so far (ties to the lowest index), so shards end within
/// one file's size of each other. Deterministic: every shard computes the
/// same assignment from the same plan. Sizes alone, not the files: a plan
/// of every PyPI file is ten million entries.
pub fn assign(sizes: &[u64], count: usize) -> Vec<usize> {
    use std::cmp::Reverse;
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    // Keys are unique (the index breaks ties): an unstable sort is as deterministic.
    order.sort_unstable_by_key(|&i| (Reverse(sizes[i]), i));
    // The least loaded shard on top, the lowest index among equals. Only
    // the first `sizes.len()` shards can get a file (each empty shard is
    // the least loaded), so a shard count far above the files costs nothing.
    let mut load: std::collections::BinaryHeap<Reverse<(u64, usize)>> =
        (0..count.clamp(1, sizes.len().max(1))).map(|k| Reverse((0, k))).collect();
    let mut out = vec![0; sizes.len()];
    for i in order {
        let Some(Reverse((bytes, shard))) = load.pop() else { break };
        out[i] = shard;
        load.push(Reverse((bytes + sizes[i].max(1), shard)));
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

/// What a plan says besides its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanHeader {
    /// The upstream index the plan was made against.
    pub upstream: String,
    /// Sum of the declared sizes, as the plan states it.
    pub bytes: u64,
    /// How many files it names.
    pub files: usize,
}

/// One pass over a plan, streamed: each file in order goes to `each` with
/// its index, and none is kept here, so reading a plan of every PyPI file
/// costs what `each` keeps, not the plan's size. The header is checked
/// once the plan is read (its keys may come in any order).
fn stream(
    path: &Path,
    mut each: impl FnMut(usize, PlannedFetch) -> Result<(), ShardError>,
) -> Result<PlanHeader, ShardError> {
    use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
    let shown = path.display().to_string();
    let file = fs_err::File::open(path).map_err(|error| ShardError::Io { path: shown.clone(), error })?;

    /// The plan object: its header fields, and `files` handed on one by one.
    struct Plan<'a, F> {
        each: &'a mut F,
        /// The first error `each` returned, which stops the parse.
        failed: &'a mut Option<ShardError>,
    }
    /// The `files` array.
    struct Files<'a, F> {
        each: &'a mut F,
        failed: &'a mut Option<ShardError>,
    }
    impl<'de, F: FnMut(usize, PlannedFetch) -> Result<(), ShardError>> Visitor<'de> for Files<'_, F> {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of files")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut index = 0;
            while let Some(file) = seq.next_element::<PlannedFetch>()? {
                if let Err(e) = (self.each)(index, file) {
                    *self.failed = Some(e);
                    return Err(A::Error::custom("stopped"));
                }
                index += 1;
            }
            Ok(index)
        }
    }
    impl<'de, F: FnMut(usize, PlannedFetch) -> Result<(), ShardError>> DeserializeSeed<'de> for Files<'_, F> {
        type Value = usize;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_seq(self)
        }
    }
    type Header = (Option<String>, Option<String>, Option<u64>, Option<usize>);
    impl<'de, F: FnMut(usize, PlannedFetch) -> Result<(), ShardError>> Visitor<'de> for Plan<'_, F> {
        type Value = Header;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a plan object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
            let mut header: Header = (None, None, None, None);
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "schema" => header.0 = Some(map.next_value()?),
                    "upstream" => header.1 = Some(map.next_value()?),
                    "bytes" => header.2 = Some(map.next_value()?),
                    "files" if header.3.is_some() => return Err(A::Error::duplicate_field("files")),
                    "files" => {
                        let files = Files { each: &mut *self.each, failed: &mut *self.failed };
                        header.3 = Some(map.next_value_seed(files)?);
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(header)
        }
    }
    impl<'de, F: FnMut(usize, PlannedFetch) -> Result<(), ShardError>> DeserializeSeed<'de> for Plan<'_, F> {
        type Value = Header;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Header, D::Error> {
            d.deserialize_map(self)
        }
    }

    let mut failed = None;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let parsed = Plan { each: &mut each, failed: &mut failed }.deserialize(&mut de).and_then(|h| de.end().map(|_| h));
    if let Some(e) = failed {
        return Err(e);
    }
    let parse = |error| ShardError::Parse { path: shown.clone(), error };
    let missing = |field| parse(serde_json::Error::missing_field(field));
    let (schema, upstream, bytes, files) = parsed.map_err(parse)?;
    let schema = schema.ok_or_else(|| missing("schema"))?;
    if schema != SCHEMA {
        return Err(ShardError::Schema { path: shown, found: schema });
    }
    Ok(PlanHeader {
        upstream: upstream.ok_or_else(|| missing("upstream"))?,
        bytes: bytes.ok_or_else(|| missing("bytes"))?,
        files: files.ok_or_else(|| missing("files"))?,
    })
}

/// A plan's file checked as if it came from the upstream (names, hashes,
/// URLs): a plan file is input like any other.
fn job(path: &Path, index: usize, f: PlannedFetch) -> Result<FetchJob, ShardError> {
    let bad = |message: String| ShardError::BadFile {
        path: path.display().to_string(),
        index,
        filename: f.filename.clone(),
        message,
    };
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
    let facts = crate::dist::file::FileFacts { provenance: f.provenance, ..Default::default() };
    let file = UpstreamFile { filename, url, sha256, size: f.size, facts, metadata: Offered::No };
    Ok(FetchJob { project, file })
}

/// Read shard `shard` of a plan: every file in it is checked (one bad file
/// fails every shard, as it fails the build), but only this shard's are
/// kept. Two streamed passes: the first checks every file and keeps its
/// size (eight bytes a file) for the assignment, the second keeps this
/// shard's files, so a runner's memory is its share of the plan, not the
/// plan.
pub fn read_shard(path: &Path, shard: Shard) -> Result<(PlanHeader, Vec<FetchJob>), ShardError> {
    let mut sizes = Vec::new();
    let header = stream(path, |index, f| {
        sizes.push(f.size.unwrap_or(0));
        job(path, index, f).map(drop)
    })?;
    let ours = assign(&sizes, shard.count);
    drop(sizes);
    let mut jobs = Vec::with_capacity(ours.iter().filter(|k| **k == shard.index).count());
    let again = stream(path, |index, f| {
        if ours.get(index) == Some(&shard.index) {
            jobs.push(job(path, index, f)?);
        }
        Ok(())
    })?;
    // The plan changed between the passes (another writer): fail closed.
    if again != header {
        let error = std::io::Error::other("the plan changed while it was being read");
        return Err(ShardError::Io { path: path.display().to_string(), error });
    }
    Ok((header, jobs))
}

/// `airlock fetch --plan PLAN.json --shard K/N`: fetch and verify this
/// shard's files into the store. Files already there are skipped.
pub fn fetch(manifest: &Manifest, plan_path: &Path, shard: Shard) -> Result<Exit, crate::error::Error> {
    let m = &manifest.mirror;
    let (plan, mine) = read_shard(plan_path, shard)?;
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
        plan.files,
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
        let sizes = [100, 10, 10, 10, 60, 40];
        let got = assign(&sizes, 2);
        let load = |k: usize| sizes.iter().zip(&got).filter(|(_, s)| **s == k).map(|(b, _)| b).sum::<u64>();
        assert_eq!(load(0) + load(1), 230);
        assert!(load(0).abs_diff(load(1)) <= 10, "{got:?}");
        assert_eq!(assign(&sizes, 2), got, "deterministic");
        // Largest first, to the emptiest shard, ties to the lower shard and in plan order.
        assert_eq!(got, [0, 0, 1, 0, 1, 1]);
        assert_eq!(assign(&[5, 5, 5], 5), [0, 1, 2], "more shards than files");
        assert_eq!(assign(&[5, 9], usize::MAX), [1, 0], "a shard count far above the files");
    }

    fn write_plan(dir: &Path, files: &[PlannedFetch]) -> std::path::PathBuf {
        let path = dir.join("plan.json");
        let mut w = PlanWriter::create(&path, &Url::parse("https://pypi.example/simple/").unwrap()).unwrap();
        for f in files {
            w.push(f).unwrap();
        }
        w.finish().unwrap();
        path
    }

    fn real(name: &str, size: u64) -> PlannedFetch {
        PlannedFetch { url: format!("https://files.example/{name}"), ..file(name, size) }
    }

    #[test]
    fn every_file_is_in_exactly_one_shard() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PlannedFetch> = (0..40).map(|i| real(&format!("p-1.{i}.tar.gz"), (i * 7919) % 97)).collect();
        let path = write_plan(dir.path(), &files);
        let mut seen = Vec::new();
        for index in 0..3 {
            let (header, jobs) = read_shard(&path, Shard { index, count: 3 }).unwrap();
            assert_eq!((header.files, header.bytes), (40, files.iter().filter_map(|f| f.size).sum()));
            seen.extend(jobs.into_iter().map(|j| j.file.filename.to_string()));
        }
        seen.sort();
        let mut want: Vec<String> = files.iter().map(|f| f.filename.clone()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_bad_file_fails_every_shard_and_a_bad_plan_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            real("p-1.0.tar.gz", 10),
            PlannedFetch { url: "ftp://x/p-2.0.tar.gz".into(), ..real("p-2.0.tar.gz", 1) },
        ];
        let path = write_plan(dir.path(), &files);
        for index in 0..2 {
            let e = read_shard(&path, Shard { index, count: 2 }).unwrap_err();
            assert!(matches!(&e, ShardError::BadFile { index: 1, .. }), "{e}");
            assert!(e.to_string().contains("\"ftp\" is not fetched"), "{e}");
        }
        let one = Shard { index: 0, count: 1 };
        for (text, want) in [
            ("{\"schema\": \"airlock.plan/v0\", \"upstream\": \"u\", \"bytes\": 0, \"files\": []}", "plan schema"),
            ("{\"schema\": \"airlock.plan/v1\", \"upstream\": \"u\", \"files\": []}", "missing field `bytes`"),
            (
                "{\"schema\": \"airlock.plan/v1\", \"upstream\": \"u\", \"bytes\": 0, \"files\": [], \"files\": []}",
                "duplicate field",
            ),
            ("{\"schema\": \"airlock.plan/v1\", \"upstream\": \"u\", \"bytes\": 0, \"files\": []} x", "trailing"),
            ("[1, 2]", "not a plan"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = read_shard(&path, one).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("plan.json"), "{text}: {e}");
        }
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
