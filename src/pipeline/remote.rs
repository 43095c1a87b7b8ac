//! Stages for `[mirror] store = "s3://bucket/prefix"`: the object store is
//! where the mirror lives, so that a runner that starts empty (a CI job, a
//! pod) continues from it. The local store under `state` is the working
//! copy every tree is linked from.
//!
//! - restore the state (before the session opens it): the checkpoint
//!   `<prefix>/.airlock/state.sqlite.zst`, when there is no local state;
//! - restore files: every file the plan would fetch from the upstream that
//!   the object store holds comes from there instead, verified against the
//!   sha256 and size the upstream declares (then hashed again by adopt);
//! - upload: every verified file the object store lacks goes up, only
//!   after its verification (so no object under a final key is ever
//!   unverified); large ones in parts, memory bounded;
//! - checkpoint the state at the end of the run, refused if another runner
//!   checkpointed since this run restored (its generation is newer);
//! - a lease object (`.airlock/lease`, a conditional create, with an
//!   expiry) is the lock across machines for the runs that write the state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::plan::{Decision, Plan};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::error::Error;
use crate::manifest::{Mirror, Publish};
use crate::publish::s3;
use crate::store::Store;
use crate::tree::TreeEntry;
use crate::util::hashing::{Sha256, hash_file};

const CHECKPOINT: &str = ".airlock/state.sqlite.zst";
const LEASE: &str = ".airlock/lease";
/// How long a lease holds without its holder releasing it (a runner killed
/// outright): `AIRLOCK_LEASE_HOURS`, default 12.
const LEASE_HOURS: u64 = 12;

/// A checkpoint is at most this large compressed.
const MAX_CHECKPOINT: u64 = 16 * 1024 * 1024 * 1024;

/// Decompress a downloaded checkpoint into `dest`, streamed and bounded
/// (`bounded::RATIO` times its size, at least `bounded::FLOOR`), refusing
/// anything that does not start as an SQLite database.
fn restore_checkpoint(compressed: &Path, dest: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let size = fs_err::metadata(compressed)?.len();
    let limit = crate::util::bounded::limit(size, crate::util::bounded::RATIO, crate::util::bounded::FLOOR, u64::MAX);
    let decoder = zstd::stream::Decoder::new(fs_err::File::open(compressed)?)?;
    let mut reader = crate::util::bounded::Bounded::new(decoder, limit);
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut out = tempfile::Builder::new().suffix(".part").tempfile_in(dir)?;
    let mut head = [0u8; 16];
    reader.read_exact(&mut head)?;
    if &head != b"SQLite format 3\0" {
        return Err(std::io::Error::other("it does not decompress to an SQLite database"));
    }
    out.write_all(&head)?;
    std::io::copy(&mut reader, &mut std::io::BufWriter::new(out.as_file_mut()))?;
    crate::util::fsx::persist(out, dest)
}

/// The lease object's content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Lease {
    holder: String,
    acquired_at: String,
    expires_at: String,
}

/// The object store holding a mirror's artifacts and its state checkpoint.
pub struct RemoteStore {
    store: AmazonS3,
    bucket: String,
    prefix: String,
    rt: tokio::runtime::Runtime,
    jobs: usize,
    /// What it holds, by `project/filename`: size (listed once per run).
    held: BTreeMap<String, u64>,
    /// The checkpoint generation (run id) this run started from, and its
    /// object version: the checkpoint is replaced only if it is still that
    /// one (a conditional write), or created only if there was none.
    generation: i64,
    checkpoint_version: Option<UpdateVersion>,
    /// This runner holds the lease (and releases it when done).
    leased: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown host".into())
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        self.release();
    }
}

fn failed(what: impl std::fmt::Display) -> Error {
    Error::Failed(what.to_string())
}

impl RemoteStore {
    /// The object store of `[mirror] store`, if it is one. Its endpoint,
    /// region and credentials are those of `[publish]` and `AWS_*`.
    pub fn open(m: &Mirror, cfg: &Publish) -> Result<Option<RemoteStore>, Error> {
        let Some(url) = &m.store_url else { return Ok(None) };
        let (bucket, prefix) = s3::parse_url(url).map_err(|e| failed(format!("[mirror] store: {e}")))?;
        let (store, _, _) = s3::connect(cfg, &bucket, true).map_err(|e| failed(format!("[mirror] store: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(Some(RemoteStore {
            store,
            bucket,
            prefix,
            rt,
            jobs: m.jobs,
            held: BTreeMap::new(),
            generation: 0,
            checkpoint_version: None,
            leased: false,
        }))
    }

    fn key(&self, rel: &str) -> ObjectPath {
        ObjectPath::from(if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) })
    }

    fn name(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(rel))
    }

    /// Take the lease: the lock across machines, so that two runners never
    /// build on one store at once. Created only if absent (a conditional
    /// write); an expired lease (its holder was killed) is taken over by a
    /// conditional update, so two runners cannot both take it.
    pub fn lease(&mut self, command: &str) -> Result<(), Error> {
        let key = self.key(LEASE);
        let name = self.name(LEASE);
        let hours = std::env::var("AIRLOCK_LEASE_HOURS").ok().and_then(|h| h.parse().ok()).unwrap_or(LEASE_HOURS);
        let now = jiff::Timestamp::now();
        let lease = Lease {
            holder: format!("{command} (pid {} on {})", std::process::id(), hostname()),
            acquired_at: now.to_string(),
            expires_at: (now + jiff::SignedDuration::from_hours(hours as i64)).to_string(),
        };
        let body = serde_json::to_vec(&lease).unwrap_or_default();
        let put = |mode: PutMode| PutOptions { mode, ..PutOptions::default() };
        self.rt.block_on(async {
            match self.store.put_opts(&key, PutPayload::from(body.clone()), put(PutMode::Create)).await {
                Ok(_) => return Ok(()),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(failed(format!("{name}: {e}"))),
            }
            let current = self.store.get(&key).await.map_err(|e| failed(format!("{name}: {e}")))?;
            let version = UpdateVersion { e_tag: current.meta.e_tag.clone(), version: current.meta.version.clone() };
            let held: Option<Lease> = serde_json::from_slice(&current.bytes().await.unwrap_or_default()).ok();
            let expired = held.as_ref().and_then(|l| l.expires_at.parse::<jiff::Timestamp>().ok()).is_none_or(|t| t < now);
            if !expired {
                let l = held.expect("a lease that has not expired was read");
                return Err(failed(format!(
                    "{name}: another runner holds the store: {} since {} (the lease expires at {}; delete the object if that runner is gone)",
                    l.holder, l.acquired_at, l.expires_at
                )));
            }
            tracing::warn!("taking over the expired lease {name}");
            self.store
                .put_opts(&key, PutPayload::from(body), put(PutMode::Update(version)))
                .await
                .map(|_| ())
                .map_err(|e| failed(format!("{name}: another runner took the expired lease first ({e})")))
        })?;
        self.leased = true;
        Ok(())
    }

    /// Give the lease back (at the end of the run, however it ended).
    pub fn release(&mut self) {
        if std::mem::take(&mut self.leased) {
            let key = self.key(LEASE);
            if let Err(e) = self.rt.block_on(self.store.delete(&key)) {
                tracing::warn!("{}: cannot release the lease: {e}", self.name(LEASE));
            }
        }
    }

    /// Stage: restore the state, when there is none locally. Returns
    /// whether a checkpoint was restored.
    pub fn restore_state(&mut self, state_dir: &Path) -> Result<bool, Error> {
        let key = self.key(CHECKPOINT);
        let name = self.name(CHECKPOINT);
        let local = state_dir.join("state.sqlite").exists();
        fs_err::create_dir_all(state_dir)?;
        // Streamed to disk and decompressed from there, each bounded: the
        // checkpoint is bytes from a bucket, so a bomb must fail by name,
        // not exhaust memory.
        let compressed = tempfile::Builder::new().suffix(".zst.part").tempfile_in(state_dir)?;
        let got = self.rt.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => {
                    let generation = r.attributes.get(&Attribute::Metadata("generation".into())).map(|v| v.to_string());
                    let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
                    if local {
                        return Ok(Some((generation, version)));
                    }
                    let mut stream = r.into_stream();
                    let mut file = compressed.as_file();
                    let mut written = 0u64;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(|e| e.to_string())?;
                        written += chunk.len() as u64;
                        if written > MAX_CHECKPOINT {
                            return Err(format!(
                                "larger than {}: refused",
                                crate::util::ui::human_bytes(MAX_CHECKPOINT)
                            ));
                        }
                        std::io::Write::write_all(&mut file, &chunk).map_err(|e| e.to_string())?;
                    }
                    Ok(Some((generation, version)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        });
        let (generation, version) = match got.map_err(|e| failed(format!("{name}: {e}")))? {
            Some(found) => found,
            None => return Ok(false),
        };
        self.generation = generation.and_then(|g| g.parse().ok()).unwrap_or(0);
        self.checkpoint_version = Some(version);
        if local {
            return Ok(false);
        }
        restore_checkpoint(compressed.path(), &state_dir.join("state.sqlite"))
            .map_err(|e| failed(format!("{name}: not a usable state checkpoint: {e}")))?;
        tracing::info!("restored the state of run {} from {name}", self.generation);
        Ok(true)
    }

    /// List what the object store holds (once per run).
    pub fn list(&mut self) -> Result<(), Error> {
        let prefix = if self.prefix.is_empty() { None } else { Some(ObjectPath::from(self.prefix.as_str())) };
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let held: Result<BTreeMap<String, u64>, object_store::Error> = self.rt.block_on(async {
            let mut out = BTreeMap::new();
            let mut listing = self.store.list(prefix.as_ref());
            while let Some(meta) = listing.next().await {
                let meta = meta?;
                let full = meta.location.to_string();
                let rel = full.strip_prefix(&strip).unwrap_or(&full);
                if !rel.starts_with(".airlock/") {
                    out.insert(rel.to_string(), meta.size);
                }
            }
            Ok(out)
        });
        self.held = held.map_err(|e| failed(format!("s3://{}/{}: {e}", self.bucket, self.prefix)))?;
        Ok(())
    }

    /// Whether the object store holds `project/filename` (after [`list`]).
    ///
    /// [`list`]: RemoteStore::list
    pub fn holds(&self, project: &str, filename: &str) -> bool {
        self.held.contains_key(&format!("{project}/{filename}"))
    }

    /// Checkpoint `state` (a consistent copy) as generation `generation`.
    pub fn checkpoint_state(&self, state: &crate::store::state::State, generation: i64) -> Result<(), Error> {
        let scratch = tempfile::tempdir()?;
        let copy = scratch.path().join("state.sqlite");
        state.backup_to(&copy)?;
        self.checkpoint(&copy, generation)
    }

    /// Stage: restore files. Every file to fetch that the object store
    /// holds is downloaded from it into the local store, verified against
    /// what the upstream declares, and handed to adopt (which hashes it
    /// again). Returns how many came from the object store.
    pub fn restore_files(&self, plan: &mut Plan, store: &Store) -> Result<u64, Error> {
        let mut wanted = Vec::new();
        for pp in &plan.projects {
            for f in &pp.files {
                if let Decision::Fetch(u) = &f.decision {
                    let rel = format!("{}/{}", pp.project, f.filename);
                    if self.held.get(&rel).is_some_and(|size| u.size.is_none_or(|s| s == *size)) {
                        wanted.push((rel, store.path(&pp.project, f.filename.as_str()), u.sha256));
                    }
                }
            }
        }
        let ok = self.downloaded(store, wanted, "; fetching it from the upstream instead");
        let mut restored = 0;
        for pp in &mut plan.projects {
            for f in &mut pp.files {
                if let Decision::Fetch(u) = &f.decision
                    && ok.contains(&format!("{}/{}", pp.project, f.filename))
                {
                    f.decision = Decision::Adopt(u.clone());
                    restored += 1;
                }
            }
        }
        Ok(restored)
    }

    /// Stage: restore recorded files. Files the state records (carried
    /// over from a restored checkpoint) but the local store lacks come from
    /// the object store, checked against the sha256 the state recorded.
    /// Returns how many; a file that cannot be restored is left to the
    /// render stage, which names it.
    pub fn restore_recorded(&self, store: &Store, files: &[(ProjectName, DistFilename, Sha256)]) -> u64 {
        let todo: Vec<(String, PathBuf, Option<Sha256>)> = files
            .iter()
            .map(|(p, f, sha)| (format!("{p}/{f}"), store.path(p, f.as_str()), Some(*sha)))
            .filter(|(rel, dest, _)| !dest.is_file() && self.held.contains_key(rel))
            .collect();
        let restored = self.downloaded(store, todo, "");
        // A wheel's PEP 658 metadata lives beside it; it is its own
        // METADATA, so it is extracted again rather than stored twice.
        for (project, filename, _) in files.iter().filter(|(p, f, _)| restored.contains(&format!("{p}/{f}"))) {
            if let DistFilename::Wheel(w) = filename {
                store.extract_metadata(project, w);
            }
        }
        restored.len() as u64
    }

    /// Download `(key, destination, expected sha256)` from the object store
    /// into the local store, `jobs` at a time. Results come back with their
    /// key and destination.
    /// Download `todo` and return what arrived; each failure is logged,
    /// its message followed by `then` (what happens instead).
    fn downloaded(&self, store: &Store, todo: Vec<(String, PathBuf, Option<Sha256>)>, then: &str) -> BTreeSet<String> {
        self.download_all(store, todo)
            .into_iter()
            .filter_map(|((rel, _), r)| match r {
                Ok(()) => Some(rel),
                Err(e) => {
                    tracing::warn!("{}: {e}{then}", self.name(&rel));
                    None
                }
            })
            .collect()
    }

    fn download_all(
        &self,
        store: &Store,
        todo: Vec<(String, PathBuf, Option<Sha256>)>,
    ) -> Vec<((String, PathBuf), Result<(), String>)> {
        self.rt.block_on(async {
            futures::stream::iter(todo)
                .map(|(rel, dest, sha256)| async move {
                    let r = self.download(&rel, &dest, store.tmp_dir(), sha256).await;
                    ((rel, dest), r)
                })
                .buffer_unordered(self.jobs)
                .collect()
                .await
        })
    }

    async fn download(&self, rel: &str, dest: &Path, tmp: &Path, sha256: Option<Sha256>) -> Result<(), String> {
        let r = self.store.get(&self.key(rel)).await.map_err(|e| e.to_string())?;
        let mut stream = r.into_stream();
        let file = tempfile::Builder::new().suffix(".part").tempfile_in(tmp).map_err(|e| e.to_string())?;
        let mut writer = crate::util::hashing::HashingWriter::new(file);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut writer, &chunk).map_err(|e| e.to_string())?;
        }
        let (file, computed, _) = writer.finish();
        if let Some(expected) = sha256.filter(|e| *e != computed) {
            return Err(format!("sha256 mismatch: expected {expected}, computed {computed}"));
        }
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        crate::util::fsx::persist(file, dest).map_err(|e| e.to_string())
    }

    /// Stage: upload. Every stored, verified file the object store lacks
    /// goes up. Returns how many.
    pub fn upload(&mut self, store: &Store, files: &[(ProjectName, DistFilename)]) -> Result<u64, Error> {
        let todo: Vec<(String, PathBuf)> = files
            .iter()
            .map(|(project, filename)| (format!("{project}/{filename}"), store.path(project, filename.as_str())))
            .filter(|(rel, path)| !self.held.contains_key(rel) && path.is_file())
            .collect();
        let this = &*self;
        let results: Vec<(String, Result<u64, String>)> = this.rt.block_on(async {
            futures::stream::iter(todo)
                .map(|(rel, path)| async move {
                    crate::util::fault::point("upload");
                    let r = async {
                        let (sha256, size) = hash_file(&path).map_err(|e| e.to_string())?;
                        let entry = TreeEntry { path: rel.clone(), sha256, size };
                        s3::upload(&this.store, &this.key(&rel), &path, &entry).await.map_err(|e| e.to_string())?;
                        Ok(size)
                    }
                    .await;
                    (rel, r)
                })
                .buffer_unordered(this.jobs)
                .collect()
                .await
        });
        let mut errors = Vec::new();
        let mut uploaded = 0;
        for (rel, r) in results {
            match r {
                Ok(size) => {
                    self.held.insert(rel, size);
                    uploaded += 1;
                }
                Err(e) => errors.push(format!("  {}: {e}", self.name(&rel))),
            }
        }
        if !errors.is_empty() {
            errors.sort();
            return Err(failed(format!("{} upload(s) to the store failed:\n{}", errors.len(), errors.join("\n"))));
        }
        Ok(uploaded)
    }

    /// Stage: checkpoint the state as run `run` left it. Refused if another
    /// runner checkpointed a newer generation since this run started.
    pub fn checkpoint(&self, state_copy: &Path, run: i64) -> Result<(), Error> {
        let key = self.key(CHECKPOINT);
        let name = self.name(CHECKPOINT);
        let sqlite = fs_err::read(state_copy)?;
        let bytes = zstd::encode_all(&sqlite[..], 9)?;
        self.rt.block_on(async {
            let current = match self.store.get(&key).await {
                Ok(r) => r.attributes.get(&Attribute::Metadata("generation".into())).and_then(|v| v.parse::<i64>().ok()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(failed(format!("{name}: {e}"))),
            };
            if current.is_some_and(|g| g > self.generation) {
                return Err(failed(format!(
                    "{name}: another runner checkpointed run {} since this run started from run {}; not overwriting it (rerun to continue from it)",
                    current.unwrap_or_default(),
                    self.generation
                )));
            }
            let mut attrs = Attributes::new();
            attrs.insert(Attribute::ContentType, "application/zstd".into());
            attrs.insert(Attribute::Metadata("generation".into()), run.to_string().into());
            let mode = match &self.checkpoint_version {
                Some(v) => PutMode::Update(v.clone()),
                None => PutMode::Create,
            };
            let opts = PutOptions { attributes: attrs, mode, ..PutOptions::default() };
            match self.store.put_opts(&key, PutPayload::from(bytes), opts).await {
                Ok(_) => Ok(()),
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    Err(failed(format!(
                        "{name}: another runner checkpointed the state since this run started from run {}; not overwriting it (rerun to continue from it)",
                        self.generation
                    )))
                }
                Err(e) => Err(failed(format!("{name}: {e}"))),
            }
        })?;
        tracing::info!("checkpointed the state of run {run} to {name}");
        Ok(())
    }
}
