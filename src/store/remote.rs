//! An object-store store (`[mirror] store = "s3://bucket/prefix"`): the
//! object store is where the mirror lives, so that a runner that starts empty (a CI job, a
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

//!
//! It speaks to any `object_store::ObjectStore` (the pipeline connects it:
//! S3 today, through `publish::s3::connect`), and says what went wrong as a
//! `RemoteError` naming the object.

use crate::util::run_id::RunId;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::Store;
use super::state::{State, StateError};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::util::hashing::{Sha256, hash_file};

/// What went wrong with the object store, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{name}: {source}")]
    Object {
        name: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{name}: {source}")]
    Transfer {
        name: String,
        #[source]
        source: Transfer,
    },
    #[error(
        "{name}: another runner holds the store: {holder} since {since} (the lease expires at {expires}; delete the object if that runner is gone)"
    )]
    Leased { name: String, holder: String, since: String, expires: String },
    #[error("{name}: another runner took the expired lease first ({source})")]
    LeaseLost {
        name: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{name}: not a usable state checkpoint: {source}")]
    BadCheckpoint {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name}: another runner checkpointed run {theirs} since this run started from run {ours}; not overwriting it (rerun to continue from it)"
    )]
    Newer { name: String, theirs: i64, ours: i64 },
    #[error(
        "{name}: another runner checkpointed the state since this run started from run {ours}; not overwriting it (rerun to continue from it)"
    )]
    Raced { name: String, ours: i64 },
    #[error("{count} upload(s) to the store failed:\n{list}")]
    Uploads { count: usize, list: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    State(#[from] StateError),
}

/// One transfer's failure, said after the object's name.
#[derive(Debug, thiserror::Error)]
pub enum Transfer {
    #[error(transparent)]
    Object(#[from] object_store::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("sha256 mismatch: expected {expected}, computed {computed}")]
    Mismatch { expected: Sha256, computed: Sha256 },
    #[error("larger than {0}: refused")]
    TooLarge(String),
}

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
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    rt: tokio::runtime::Runtime,
    jobs: usize,
    /// What it holds, by `project/filename`: size (listed once per run,
    /// shared with the local store under one layout).
    held: super::Held,
    vouched: super::Vouched,
    /// One layout: the files live under the keys the tree publishes
    /// (`packages/<project>/<file>`, `.metadata` and `.provenance` beside),
    /// not under `<project>/<file>`.
    one_layout: bool,
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

impl RemoteStore {
    /// The object store at `s3://bucket/prefix`, connected by the caller;
    /// `jobs` transfers at a time.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        bucket: String,
        prefix: String,
        (jobs, one_layout): (usize, bool),
    ) -> Result<RemoteStore, RemoteError> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(RemoteStore {
            store,
            bucket,
            prefix,
            rt,
            jobs,
            held: super::Held::default(),
            vouched: super::Vouched::default(),
            one_layout,
            generation: 0,
            checkpoint_version: None,
            leased: false,
        })
    }

    fn key(&self, rel: &str) -> ObjectPath {
        ObjectPath::from(if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) })
    }

    fn name(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(rel))
    }

    /// Where the file `project/filename` (or a file beside it) lives.
    fn file_key(&self, rel: &str) -> ObjectPath {
        if self.one_layout { self.key(&format!("packages/{rel}")) } else { self.key(rel) }
    }

    fn file_name(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.file_key(rel))
    }

    /// Whether the files live under their published keys (one layout).
    pub fn one_layout(&self) -> bool {
        self.one_layout
    }

    /// What it holds, shared: the local store asks it under one layout.
    pub fn held(&self) -> (super::Held, super::Vouched) {
        (self.held.clone(), self.vouched.clone())
    }

    fn held_map(&self) -> std::sync::RwLockReadGuard<'_, std::collections::HashMap<String, u64>> {
        self.held.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Take the lease: the lock across machines, so that two runners never
    /// build on one store at once. Created only if absent (a conditional
    /// write); an expired lease (its holder was killed) is taken over by a
    /// conditional update, so two runners cannot both take it.
    pub fn lease(&mut self, command: &str) -> Result<(), RemoteError> {
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
                Err(source) => return Err(RemoteError::Object { name: name.clone(), source }),
            }
            let current =
                self.store.get(&key).await.map_err(|source| RemoteError::Object { name: name.clone(), source })?;
            let version = UpdateVersion { e_tag: current.meta.e_tag.clone(), version: current.meta.version.clone() };
            let held: Option<Lease> = serde_json::from_slice(&current.bytes().await.unwrap_or_default()).ok();
            let expired =
                held.as_ref().and_then(|l| l.expires_at.parse::<jiff::Timestamp>().ok()).is_none_or(|t| t < now);
            if !expired {
                let l = held.expect("a lease that has not expired was read");
                return Err(RemoteError::Leased {
                    name: name.clone(),
                    holder: l.holder,
                    since: l.acquired_at,
                    expires: l.expires_at,
                });
            }
            tracing::warn!("taking over the expired lease {name}");
            self.store
                .put_opts(&key, PutPayload::from(body), put(PutMode::Update(version)))
                .await
                .map(|_| ())
                .map_err(|source| RemoteError::LeaseLost { name: name.clone(), source })
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
    pub fn restore_state(&mut self, state_dir: &Path) -> Result<bool, RemoteError> {
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
                        let chunk = chunk?;
                        written += chunk.len() as u64;
                        if written > MAX_CHECKPOINT {
                            return Err(Transfer::TooLarge(crate::util::ui::human_bytes(MAX_CHECKPOINT)));
                        }
                        std::io::Write::write_all(&mut file, &chunk)?;
                    }
                    Ok(Some((generation, version)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(Transfer::Object(e)),
            }
        });
        let (generation, version) = match got.map_err(|source| RemoteError::Transfer { name: name.clone(), source })? {
            Some(found) => found,
            None => return Ok(false),
        };
        self.generation = generation.and_then(|g| g.parse().ok()).unwrap_or(0);
        self.checkpoint_version = Some(version);
        if local {
            return Ok(false);
        }
        restore_checkpoint(compressed.path(), &state_dir.join("state.sqlite"))
            .map_err(|source| RemoteError::BadCheckpoint { name: name.clone(), source })?;
        tracing::info!("restored the state of run {} from {name}", self.generation);
        Ok(true)
    }

    /// List what the object store holds (once per run).
    pub fn list(&mut self) -> Result<(), RemoteError> {
        // Under one layout only `packages/` is the store's: the pages and
        // reports beside it are the publish's.
        let under = if self.one_layout { self.key("packages").to_string() } else { self.prefix.clone() };
        let prefix = if under.is_empty() { None } else { Some(ObjectPath::from(under.as_str())) };
        let strip = if under.is_empty() { String::new() } else { format!("{under}/") };
        let held: Result<std::collections::HashMap<String, u64>, object_store::Error> = self.rt.block_on(async {
            let mut out = std::collections::HashMap::new();
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
        let held =
            held.map_err(|source| RemoteError::Object { name: format!("s3://{}/{under}", self.bucket), source })?;
        *self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner) = held;
        Ok(())
    }

    /// Whether the object store holds `project/filename` (after [`list`]).
    ///
    /// [`list`]: RemoteStore::list
    pub fn holds(&self, project: &str, filename: &str) -> bool {
        self.held_map().contains_key(&format!("{project}/{filename}"))
    }

    /// Checkpoint `state` (a consistent copy) as generation `generation`.
    pub fn checkpoint_state(&self, state: &State, generation: RunId) -> Result<(), RemoteError> {
        let scratch = tempfile::tempdir()?;
        let copy = scratch.path().join("state.sqlite");
        state.backup_to(&copy)?;
        self.checkpoint(&copy, generation)
    }

    /// The size the object store holds `project/filename` at, if it does
    /// (after [`list`]).
    ///
    /// [`list`]: RemoteStore::list
    pub fn held_size(&self, project: &ProjectName, filename: &DistFilename) -> Option<u64> {
        self.held_map().get(&format!("{project}/{filename}")).copied()
    }

    /// One layout, restore files without downloading them: each
    /// `(project, filename, the sha256 the upstream declares)` the bucket
    /// holds is vouched for when the sha256 its upload recorded (object
    /// metadata, written only after verification) is that one; what lies
    /// beside it (`.metadata`, `.provenance`) comes down, and adopt records
    /// the file from there. Returns the ones vouched for.
    pub fn vouch(
        &self,
        store: &Store,
        files: &[(ProjectName, DistFilename, Sha256)],
    ) -> HashSet<(ProjectName, DistFilename)> {
        let recorded: Vec<Option<Sha256>> = self.rt.block_on(async {
            futures::stream::iter(files)
                .map(|(p, f, _)| async move {
                    let head = object_store::GetOptions { head: true, ..object_store::GetOptions::default() };
                    let r = self.store.get_opts(&self.file_key(&format!("{p}/{f}")), head).await.ok()?;
                    r.attributes.get(&Attribute::Metadata("sha256".into()))?.parse::<Sha256>().ok()
                })
                .buffered(self.jobs)
                .collect()
                .await
        });
        let good: Vec<&(ProjectName, DistFilename, Sha256)> =
            files.iter().zip(recorded).filter(|(f, r)| *r == Some(f.2)).map(|(f, _)| f).collect();
        let mut todo = Vec::new();
        {
            let held = self.held_map();
            for (p, f, _) in &good {
                for (rel, dest) in [
                    (format!("{p}/{f}.metadata"), store.metadata_path(p, f)),
                    (format!("{p}/{f}.provenance"), store.provenance_path(p, f)),
                ] {
                    if held.contains_key(&rel) && !dest.is_file() {
                        todo.push((rel, dest, None));
                    }
                }
            }
        }
        let arrived = self.downloaded(store, todo, "");
        let mut out = HashSet::new();
        let mut vouched = self.vouched.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (p, f, sha) in good {
            let rel = format!("{p}/{f}");
            // A wheel without its `.metadata` here is downloaded whole instead.
            let beside = !matches!(f, DistFilename::Wheel(_))
                || arrived.contains(&format!("{rel}.metadata"))
                || store.metadata_path(p, f).is_file();
            if let (true, Some(size)) = (beside, self.held_size(p, f)) {
                vouched.insert(rel, (*sha, size));
                out.insert((p.clone(), f.clone()));
            }
        }
        out
    }

    /// Restore files: each `(project, filename, expected sha256)` downloaded
    /// into the local store, verified; returns the ones that arrived. A
    /// failure is logged, followed by `then` (what happens instead).
    pub fn restore(
        &self,
        store: &Store,
        files: &[(ProjectName, DistFilename, Option<Sha256>)],
        then: &str,
    ) -> HashSet<(ProjectName, DistFilename)> {
        let mut todo: Vec<(String, PathBuf, Option<Sha256>)> =
            files.iter().map(|(p, f, sha)| (format!("{p}/{f}"), store.path(p, f), *sha)).collect();
        // A file's PEP 740 provenance comes with it; it is verified against
        // the file by whoever adopts or serves it (it has no sha of its own).
        todo.extend(
            files
                .iter()
                .map(|(p, f, _)| (format!("{p}/{f}.provenance"), store.provenance_path(p, f), None))
                .filter(|(rel, _, _)| self.held_map().contains_key(rel)),
        );
        let arrived = self.downloaded(store, todo, then);
        files
            .iter()
            .filter(|(p, f, _)| arrived.contains(&format!("{p}/{f}")))
            .map(|(p, f, _)| (p.clone(), f.clone()))
            .collect()
    }

    /// Stage: restore recorded files. Files the state records (carried
    /// over from a restored checkpoint) but the local store lacks come from
    /// the object store, checked against the sha256 the state recorded
    /// (each `(project, filename, sha256, the .metadata's sha256)`).
    /// Returns how many; a file that cannot be restored is left to the
    /// render stage, which names it.
    pub fn restore_recorded(
        &self,
        store: &Store,
        files: &[(ProjectName, DistFilename, Sha256, Option<Sha256>)],
    ) -> u64 {
        if self.one_layout {
            return self.restore_beside(store, files);
        }
        let todo: Vec<(ProjectName, DistFilename, Option<Sha256>)> = files
            .iter()
            .filter(|(p, f, _, _)| !store.path(p, f).is_file() && self.held_size(p, f).is_some())
            .map(|(p, f, sha, _)| (p.clone(), f.clone(), Some(*sha)))
            .collect();
        let restored = self.restore(store, &todo, "");
        // A wheel's PEP 658 metadata lives beside it; it is its own
        // METADATA, so it is extracted again rather than stored twice.
        for (project, filename) in &restored {
            if let DistFilename::Wheel(w) = filename {
                store.extract_metadata(project, w);
            }
        }
        restored.len() as u64
    }

    /// One layout: the working copy gets what pages are rendered from, not
    /// the distributions: each recorded wheel's `.metadata` (checked
    /// against the sha256 the state recorded) and each `.provenance`
    /// (verified again by the caller). A wheel whose `.metadata` the bucket
    /// lacks comes down whole to extract it again, and leaves once its
    /// `.metadata` is up.
    fn restore_beside(&self, store: &Store, files: &[(ProjectName, DistFilename, Sha256, Option<Sha256>)]) -> u64 {
        let mut todo = Vec::new();
        let mut whole = Vec::new();
        {
            let held = self.held_map();
            for (p, f, sha, metadata) in files {
                let rel = format!("{p}/{f}");
                if let (Some(m), DistFilename::Wheel(_)) = (metadata, f)
                    && !store.metadata_path(p, f).is_file()
                {
                    if held.contains_key(&format!("{rel}.metadata")) {
                        todo.push((format!("{rel}.metadata"), store.metadata_path(p, f), Some(*m)));
                    } else if held.contains_key(&rel) && !store.path(p, f).is_file() {
                        // `restore` brings its provenance along.
                        whole.push((p.clone(), f.clone(), Some(*sha)));
                        continue;
                    }
                }
                let provenance = format!("{rel}.provenance");
                if held.contains_key(&provenance) && !store.provenance_path(p, f).is_file() {
                    todo.push((provenance, store.provenance_path(p, f), None));
                }
            }
        }
        let beside = self.downloaded(store, todo, "").len();
        let restored = self.restore(store, &whole, "");
        for (project, filename) in &restored {
            if let DistFilename::Wheel(w) = filename {
                store.extract_metadata(project, w);
            }
        }
        (beside + restored.len()) as u64
    }

    /// Download `todo` (`(key, destination, expected sha256)`), `jobs` at a
    /// time, and return what arrived; each failure is logged,
    /// its message followed by `then` (what happens instead).
    fn downloaded(&self, store: &Store, todo: Vec<(String, PathBuf, Option<Sha256>)>, then: &str) -> BTreeSet<String> {
        self.download_all(store, todo)
            .into_iter()
            .filter_map(|((rel, _), r)| match r {
                Ok(()) => Some(rel),
                Err(e) => {
                    tracing::warn!("{}: {e}{then}", self.file_name(&rel));
                    None
                }
            })
            .collect()
    }

    fn download_all(
        &self,
        store: &Store,
        todo: Vec<(String, PathBuf, Option<Sha256>)>,
    ) -> Vec<((String, PathBuf), Result<(), Transfer>)> {
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

    async fn download(&self, rel: &str, dest: &Path, tmp: &Path, sha256: Option<Sha256>) -> Result<(), Transfer> {
        let file = self.download_temp(rel, tmp, sha256).await?;
        // persist makes `dest`'s directory if it is missing.
        Ok(crate::util::fsx::persist(file, dest)?)
    }

    /// The object of `rel` downloaded into a scratch file in `tmp`, hashed
    /// as it streams, and refused unless its sha256 is `sha256`.
    async fn download_temp(
        &self,
        rel: &str,
        tmp: &Path,
        sha256: Option<Sha256>,
    ) -> Result<tempfile::NamedTempFile, Transfer> {
        let r = self.store.get(&self.file_key(rel)).await?;
        let mut stream = r.into_stream();
        let file = tempfile::Builder::new().suffix(".part").tempfile_in(tmp)?;
        let mut writer = crate::util::hashing::HashingWriter::new(file);
        while let Some(chunk) = stream.next().await {
            std::io::Write::write_all(&mut writer, &chunk?)?;
        }
        let (file, computed, _) = writer.finish();
        if let Some(expected) = sha256.filter(|e| *e != computed) {
            return Err(Transfer::Mismatch { expected, computed });
        }
        Ok(file)
    }

    /// One layout: the package `packages/<rel>` of a tree, downloaded into
    /// a scratch file in `tmp` and checked against the sha256 the tree
    /// lists (an export streams the packages the tree does not hold).
    pub fn package(&self, rel: &str, tmp: &Path, sha256: Sha256) -> Result<tempfile::NamedTempFile, RemoteError> {
        self.rt
            .block_on(self.download_temp(rel, tmp, Some(sha256)))
            .map_err(|source| RemoteError::Transfer { name: self.file_name(rel), source })
    }

    /// Stage: upload. Every stored, verified file the object store lacks
    /// goes up. Returns how many.
    pub fn upload(&mut self, store: &Store, files: &[(ProjectName, DistFilename)]) -> Result<u64, RemoteError> {
        let one_layout = self.one_layout;
        let todo: Vec<(String, PathBuf)> = {
            let held = self.held_map();
            files
                .iter()
                .flat_map(|(project, filename)| {
                    let rel = format!("{project}/{filename}");
                    let provenance = (format!("{rel}.provenance"), store.provenance_path(project, filename));
                    // Under one layout the `.metadata` goes up with its
                    // file, under the key the tree publishes it at: an
                    // empty runner renders from it, and the publish finds
                    // it there (elsewhere it is extracted again).
                    let metadata = (format!("{rel}.metadata"), store.metadata_path(project, filename));
                    let metadata = (one_layout && matches!(filename, DistFilename::Wheel(_))).then_some(metadata);
                    [Some((rel, store.path(project, filename))), Some(provenance), metadata].into_iter().flatten()
                })
                .filter(|(rel, path)| !held.contains_key(rel) && path.is_file())
                .collect()
        };
        let this = &*self;
        let results: Vec<(String, Result<u64, Transfer>)> = this.rt.block_on(async {
            futures::stream::iter(todo)
                .map(|(rel, path)| async move {
                    crate::util::fault::point("upload");
                    let r = async {
                        let (sha256, size) = hash_file(&path)?;
                        let attrs = super::object::attributes(&rel, &sha256);
                        super::object::put_file(&*this.store, &this.file_key(&rel), &path, size, attrs).await?;
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
                    self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(rel, size);
                    uploaded += 1;
                }
                Err(e) => errors.push(format!("  {}: {e}", self.file_name(&rel))),
            }
        }
        if !errors.is_empty() {
            errors.sort();
            return Err(RemoteError::Uploads { count: errors.len(), list: errors.join("\n") });
        }
        Ok(uploaded)
    }

    /// Stage: checkpoint the state as run `run` left it. Refused if another
    /// runner checkpointed a newer generation since this run started.
    pub fn checkpoint(&self, state_copy: &Path, run: RunId) -> Result<(), RemoteError> {
        let key = self.key(CHECKPOINT);
        let name = self.name(CHECKPOINT);
        let sqlite = fs_err::read(state_copy)?;
        let bytes = zstd::encode_all(&sqlite[..], 9)?;
        self.rt.block_on(async {
            let current = match self.store.get(&key).await {
                Ok(r) => {
                    r.attributes.get(&Attribute::Metadata("generation".into())).and_then(|v| v.parse::<i64>().ok())
                }
                Err(object_store::Error::NotFound { .. }) => None,
                Err(source) => return Err(RemoteError::Object { name: name.clone(), source }),
            };
            if let Some(theirs) = current.filter(|g| *g > self.generation) {
                return Err(RemoteError::Newer { name: name.clone(), theirs, ours: self.generation });
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
                    Err(RemoteError::Raced { name: name.clone(), ours: self.generation })
                }
                Err(source) => Err(RemoteError::Object { name: name.clone(), source }),
            }
        })?;
        tracing::info!("checkpointed the state of run {run} to {name}");
        Ok(())
    }
}
