//! Persistent state in SQLite (WAL): runs, artifacts, the last upstream view
//! of every project, tampering evidence, published tree listings and exports.
//!
//! The schema is versioned with `PRAGMA user_version`; each migration is one
//! SQL batch applied in a transaction, so a state directory from an older
//! airlock is upgraded in place and a newer one is refused.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::diagnostics::Tampering;
use crate::dist::Version;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::upstream::listing::Skipped;
use crate::util::hashing::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("state database {path}: {error}")]
    Sql { path: String, error: rusqlite::Error },
    #[error(
        "state database {path} has schema version {found}, newer than this airlock understands ({known}); upgrade airlock"
    )]
    TooNew { path: String, found: i64, known: i64 },
    #[error("state database {path}: corrupt row: {message}")]
    Corrupt { path: String, message: String },
}

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL DEFAULT 'running',
        pid INTEGER NOT NULL,
        added INTEGER NOT NULL DEFAULT 0,
        kept INTEGER NOT NULL DEFAULT 0,
        removed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE artifacts (
        project TEXT NOT NULL,
        filename TEXT NOT NULL,
        version TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        url TEXT NOT NULL,
        requires_python TEXT,
        yanked TEXT,
        upload_time TEXT,
        metadata_sha256 TEXT,
        metadata_size INTEGER,
        first_seen TEXT NOT NULL,
        last_verified TEXT NOT NULL,
        added_run INTEGER NOT NULL,
        selected_run INTEGER NOT NULL,
        PRIMARY KEY (project, filename)
    ) WITHOUT ROWID;
    CREATE INDEX artifacts_selected ON artifacts(selected_run);
    CREATE TABLE projects (
        project TEXT PRIMARY KEY,
        page_url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body_sha256 TEXT NOT NULL,
        page TEXT NOT NULL,
        fetched_at TEXT NOT NULL,
        plan_key TEXT
    ) WITHOUT ROWID;
    CREATE TABLE tampering (
        project TEXT NOT NULL,
        filename TEXT NOT NULL,
        mirrored_sha256 TEXT NOT NULL,
        upstream_sha256 TEXT NOT NULL,
        first_run INTEGER NOT NULL,
        last_run INTEGER NOT NULL,
        PRIMARY KEY (project, filename, upstream_sha256)
    ) WITHOUT ROWID;
    CREATE TABLE trees (
        run INTEGER PRIMARY KEY,
        listing BLOB NOT NULL
    );
    CREATE TABLE exports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run INTEGER NOT NULL,
        since_run INTEGER,
        created_at TEXT NOT NULL,
        file TEXT NOT NULL
    );
    "#,
    // 2: the key of the inputs each published tree was rendered from, so a
    // run whose tree would come out identical can leave the served one be.
    r#"
    ALTER TABLE trees ADD COLUMN key TEXT;
    "#,
    // 3: record when a file left the selection instead of bumping every
    // selected file on every run: a no-change run then writes nothing. A file
    // is listed while `unselected_run` is NULL. `inputs` is the cheap key of
    // what a tree depends on besides the selection.
    r#"
    ALTER TABLE artifacts ADD COLUMN unselected_run INTEGER;
    UPDATE artifacts SET unselected_run = selected_run + 1
        WHERE selected_run < (SELECT COALESCE(MAX(selected_run), 0) FROM artifacts);
    DROP INDEX IF EXISTS artifacts_selected;
    CREATE INDEX artifacts_unselected ON artifacts(unselected_run) WHERE unselected_run IS NOT NULL;
    ALTER TABLE trees ADD COLUMN inputs TEXT;
    ALTER TABLE trees ADD COLUMN exit INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE trees ADD COLUMN selection TEXT;
    "#,
    // 4: the files each project's page listed that airlock skipped, and why
    // (JSON), kept with the view so every run reports them, not only the
    // run that parsed the page.
    r#"
    ALTER TABLE projects ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';
    "#,
    // 5: core metadata read for resolution, by the sha256 of the file it
    // belongs to, so a rerun asks the upstream for nothing it already knows.
    r#"
    CREATE TABLE core_metadata (
        sha256 TEXT PRIMARY KEY,
        metadata BLOB NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: a counter bumped by every change of the artifacts or the selection:
    // what a published tree was rendered from, compared in O(1) by a
    // no-change run (it used to hash every row).
    r#"
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters VALUES ('selection', 0);
    "#,
    // 7: what each published tree changed (reports/changes.json), for the
    // Atom feed over the last runs.
    r#"
    CREATE TABLE changes (run INTEGER PRIMARY KEY, body TEXT NOT NULL);
    "#,
    // 8: PyPI's serials: each project's as last seen, and the upstream's
    // (NULL: it offers none) with when its pages were last all checked.
    r#"
    ALTER TABLE projects ADD COLUMN serial INTEGER;
    CREATE TABLE upstream_serials (upstream TEXT PRIMARY KEY, serial INTEGER, full_check TEXT NOT NULL) WITHOUT ROWID;
    "#,
    // 9: each target environment's last good resolution (JSON: project ->
    // versions), so an environment that stops resolving keeps what it
    // served instead of emptying the mirror.
    r#"
    CREATE TABLE resolutions (env TEXT PRIMARY KEY, pins TEXT NOT NULL, run INTEGER NOT NULL) WITHOUT ROWID;
    ALTER TABLE projects ADD COLUMN sdist_only TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE trees ADD COLUMN listed_count INTEGER;
    ALTER TABLE trees ADD COLUMN listed BLOB;
    "#,
];

/// A project's versions some target installs only from their sdist, with
/// those targets.
pub type SdistOnly = Vec<(Version, Vec<String>)>;

/// What one environment resolved to: every version of every project.
pub type Pins = std::collections::BTreeMap<ProjectName, std::collections::BTreeSet<Version>>;

/// Bump the selection counter inside a transaction that changed something.
fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'selection'", []).map(|_| ())
}

/// One mirrored artifact, as the state knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub project: ProjectName,
    pub filename: DistFilename,
    pub sha256: Sha256,
    pub size: u64,
    /// Upstream URL, credentials redacted.
    pub url: String,
    pub requires_python: Option<String>,
    pub yanked: Option<String>,
    pub upload_time: Option<String>,
    pub metadata: Option<(Sha256, u64)>,
    pub first_seen: String,
    pub last_verified: String,
    pub added_run: i64,
    /// The last run that planned this file selected.
    pub selected_run: i64,
    /// The run that took it out of the selection; `None` while it is listed.
    pub unselected_run: Option<i64>,
}

impl Artifact {
    /// Listed in the simple index.
    pub fn listed(&self) -> bool {
        self.unselected_run.is_none()
    }

    pub fn version(&self) -> &Version {
        self.filename.version()
    }
}

/// The last upstream view of a project.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectView {
    pub project: ProjectName,
    pub page_url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub body_sha256: String,
    /// The page in PEP 691 JSON form (shared: views are cloned between
    /// stages, and a large project's page is megabytes).
    pub page: std::sync::Arc<str>,
    pub fetched_at: String,
    pub plan_key: Option<String>,
    /// Files the page listed that airlock will not touch, and why.
    pub skipped: Vec<Skipped>,
    /// The upstream's serial of the project when this view was fetched.
    pub serial: Option<i64>,
}

/// What the state knows of an upstream's serials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSerial {
    /// The last serial every change up to which is in the stored views;
    /// `None`: the upstream offers no serials.
    pub serial: Option<i64>,
    /// When every page was last checked (RFC 3339).
    pub full_check: String,
}

/// What a published tree was rendered from, and the exit its audit gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeKeys {
    /// Every input, file by file.
    pub key: String,
    /// Every input but the selection.
    pub inputs: String,
    pub exit: i64,
    /// The selection the tree was rendered from.
    pub selection: String,
}

/// The files a published tree lists in its pages, as sorted 64-bit keys
/// of `project/filename` (see [`Listed::key`]): what the removal guard
/// compares the next tree with. Kept for the newest tree only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed(pub Vec<u64>);

impl Listed {
    /// The key of one listed file.
    pub fn key(project: &ProjectName, filename: &str) -> u64 {
        let mut h = crate::util::hashing::HashingWriter::new(std::io::sink());
        let _ = std::io::Write::write_all(&mut h, project.as_str().as_bytes());
        let _ = std::io::Write::write_all(&mut h, b"/");
        let _ = std::io::Write::write_all(&mut h, filename.as_bytes());
        let d = h.finish().1;
        u64::from_le_bytes(d.0[..8].try_into().unwrap_or([0; 8]))
    }

    fn encode(&self) -> Vec<u8> {
        let raw: Vec<u8> = self.0.iter().flat_map(|k| k.to_le_bytes()).collect();
        zstd::encode_all(&raw[..], 3).unwrap_or_default()
    }

    fn decode(blob: &[u8]) -> Option<Listed> {
        let limit = crate::util::bounded::limit(blob.len() as u64, 64, 64 << 20, u64::MAX);
        let raw = crate::util::bounded::decode_all(blob, limit).ok()?;
        Some(Listed(raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()))
    }

    /// How many of these are not in `newer` (both sorted).
    pub fn missing_from(&self, newer: &Listed) -> usize {
        let (mut i, mut j, mut missing) = (0, 0, 0);
        while i < self.0.len() {
            match newer.0.get(j) {
                Some(n) if *n < self.0[i] => j += 1,
                Some(n) if *n == self.0[i] => {
                    i += 1;
                    j += 1;
                }
                _ => {
                    missing += 1;
                    i += 1;
                }
            }
        }
        missing
    }
}

/// Counts recorded when a run ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub added: u64,
    pub kept: u64,
    pub removed: u64,
    pub failed: u64,
    pub bytes: u64,
}

pub struct State {
    conn: Connection,
    path: PathBuf,
    /// Opened by `plan`, which must write nothing.
    read_only: bool,
}

pub use crate::util::clock::now;

impl State {
    /// Open (creating and migrating) `<dir>/state.sqlite`.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        fs_err::create_dir_all(dir)?;
        let path = dir.join("state.sqlite");
        let conn =
            Connection::open(&path).map_err(|e| StateError::Sql { path: path.display().to_string(), error: e })?;
        let mut state = State { conn, path, read_only: false };
        state.setup()?;
        Ok(state)
    }

    /// Open an existing state without writing to it (`plan`).
    pub fn open_read_only(dir: &Path) -> Result<State, StateError> {
        let path = dir.join("state.sqlite");
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StateError::Sql { path: path.display().to_string(), error: e })?;
        let state = State { conn, path, read_only: true };
        let version: i64 = state.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| state.err(e))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StateError::TooNew {
                path: state.path.display().to_string(),
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        Ok(state)
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sql { path: self.path.display().to_string(), error: source }
    }

    /// Run `f` in one transaction, committed only if `f` succeeds, so a
    /// batch of writes lands whole or not at all.
    fn in_tx<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>) -> Result<T, StateError> {
        let path = &self.path;
        let sql_err = |error| StateError::Sql { path: path.display().to_string(), error };
        let tx = self.conn.transaction().map_err(sql_err)?;
        f(&tx).and_then(|out| tx.commit().map(|_| out)).map_err(sql_err)
    }

    fn setup(&mut self) -> Result<(), StateError> {
        self.conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")
            .map_err(|e| self.err(e))?;
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StateError::TooNew { path: self.path.display().to_string(), found: version, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            self.in_tx(|tx| {
                tx.execute_batch(sql)?;
                tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            })?;
        }
        Ok(())
    }

    // ------------------------------------------------------------- runs

    pub fn begin_run(&self, command: &str) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO runs (command, started_at, pid) VALUES (?1, ?2, ?3)",
                params![command, now(), std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&self, run: i64, outcome: &str, counts: &RunCounts, errors: &[String]) -> Result<(), StateError> {
        let errors = serde_json::to_string(errors).expect("strings serialize");
        self.conn
            .execute(
                "UPDATE runs SET finished_at=?2, outcome=?3, added=?4, kept=?5, removed=?6, failed=?7, bytes=?8, errors=?9 WHERE id=?1",
                params![
                    run,
                    now(),
                    outcome,
                    counts.added as i64,
                    counts.kept as i64,
                    counts.removed as i64,
                    counts.failed as i64,
                    counts.bytes as i64,
                    errors
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The database file.
    /// A consistent copy of the whole database at `dest` (for checkpoints).
    pub fn backup_to(&self, dest: &Path) -> Result<(), StateError> {
        let _ = std::fs::remove_file(dest);
        self.conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()]).map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record run `run` as interrupted through a connection of its own: a
    /// signal ended the process while the run's own connection was busy.
    pub fn record_interrupted(db: &Path, run: i64) {
        let Ok(conn) = Connection::open(db) else { return };
        let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
        let _ = conn.execute(
            "UPDATE runs SET finished_at=?2, outcome='interrupted', errors=?3 WHERE id=?1 AND outcome='running'",
            params![run, now(), r#"["interrupted by a signal"]"#],
        );
    }

    /// Runs a killed process left as `running` become `crashed`.
    pub fn mark_crashed_runs(&self) -> Result<usize, StateError> {
        self.conn.execute("UPDATE runs SET outcome='crashed' WHERE outcome='running'", []).map_err(|e| self.err(e))
    }

    /// The id the next run will get (plan shows what it would do).
    pub fn next_run_id(&self) -> Result<i64, StateError> {
        let max: Option<i64> =
            self.conn.query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(max.unwrap_or(0) + 1)
    }

    /// The newest run that published a tree.
    pub fn last_published_run(&self) -> Result<Option<i64>, StateError> {
        self.conn.query_row("SELECT MAX(run) FROM trees", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    // -------------------------------------------------------- artifacts

    fn artifact_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Artifact, String>> {
        let project: String = r.get(0)?;
        let filename: String = r.get(1)?;
        let sha: String = r.get(3)?;
        let meta_sha: Option<String> = r.get(9)?;
        let meta_size: Option<i64> = r.get(10)?;
        let row = format!("{project}/{filename}");
        let parsed = (|| -> Result<Artifact, String> {
            let project: ProjectName =
                project.parse().map_err(|e: crate::dist::names::InvalidNameError| e.to_string())?;
            Ok(Artifact {
                filename: DistFilename::parse(&filename, Some(&project)).map_err(|e| e.to_string())?,
                project,
                sha256: sha.parse().map_err(|e: crate::util::hashing::Sha256Error| e.to_string())?,
                size: u64::try_from(r.get::<_, i64>(4).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?,
                url: r.get(5).map_err(|e| e.to_string())?,
                requires_python: r.get(6).map_err(|e| e.to_string())?,
                yanked: r.get(7).map_err(|e| e.to_string())?,
                upload_time: r.get(8).map_err(|e| e.to_string())?,
                metadata: match (meta_sha, meta_size) {
                    (Some(s), Some(n)) => Some((
                        s.parse().map_err(|e: crate::util::hashing::Sha256Error| e.to_string())?,
                        u64::try_from(n).map_err(|e| e.to_string())?,
                    )),
                    _ => None,
                },
                first_seen: r.get(11).map_err(|e| e.to_string())?,
                last_verified: r.get(12).map_err(|e| e.to_string())?,
                added_run: r.get(13).map_err(|e| e.to_string())?,
                selected_run: r.get(14).map_err(|e| e.to_string())?,
                unselected_run: r.get(15).map_err(|e| e.to_string())?,
            })
        })();
        Ok(parsed.map_err(|e| format!("artifact {row}: {e}")))
    }

    const ARTIFACT_COLUMNS: &'static str = "project, filename, version, sha256, size, url, requires_python, yanked, upload_time, metadata_sha256, metadata_size, first_seen, last_verified, added_run, selected_run, unselected_run";

    fn query_artifacts(&self, where_clause: &str, args: impl rusqlite::Params) -> Result<Vec<Artifact>, StateError> {
        let mut out = Vec::new();
        self.each_artifact_where(where_clause, args, |a| out.push(a))?;
        Ok(out)
    }

    fn each_artifact_where(
        &self,
        where_clause: &str,
        args: impl rusqlite::Params,
        mut f: impl FnMut(Artifact),
    ) -> Result<(), StateError> {
        let sql = format!("SELECT {} FROM artifacts {where_clause} ORDER BY project, filename", Self::ARTIFACT_COLUMNS);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(args, Self::artifact_from_row).map_err(|e| self.err(e))?;
        for row in rows {
            let row = row.map_err(|e| self.err(e))?;
            f(row.map_err(|message| StateError::Corrupt { path: self.path.display().to_string(), message })?);
        }
        Ok(())
    }

    /// Every artifact in the store, sorted by project and filename.
    pub fn artifacts(&self) -> Result<Vec<Artifact>, StateError> {
        self.query_artifacts("", [])
    }

    /// Every artifact in the store, sorted by project and filename, one at
    /// a time: a large mirror's rows are never all in memory at once.
    pub fn each_artifact(&self, f: impl FnMut(Artifact)) -> Result<(), StateError> {
        self.each_artifact_where("", [], f)
    }

    /// How many files a tree of the state's artifacts holds at most: each
    /// artifact, and the `.metadata` of each that has one.
    pub fn tree_files(&self) -> Result<u64, StateError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) + COUNT(metadata_sha256) FROM artifacts", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    /// How many artifacts the state records, listed or not.
    pub fn artifact_count(&self) -> Result<u64, StateError> {
        let n: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM artifacts", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    #[cfg(test)]
    fn artifact(&self, project: &ProjectName, filename: &str) -> Result<Option<Artifact>, StateError> {
        Ok(self.query_artifacts("WHERE project = ?1 AND filename = ?2", [project.as_str(), filename])?.pop())
    }

    /// Insert or replace artifacts in one transaction.
    pub fn put_artifacts(&mut self, artifacts: &[Artifact]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let sql = format!(
                "INSERT OR REPLACE INTO artifacts ({}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
                Self::ARTIFACT_COLUMNS
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            for a in artifacts {
                stmt.execute(params![
                    a.project.as_str(),
                    a.filename.as_str(),
                    a.version().to_string(),
                    a.sha256.hex(),
                    a.size as i64,
                    a.url,
                    a.requires_python,
                    a.yanked,
                    a.upload_time,
                    a.metadata.map(|m| m.0.hex()),
                    a.metadata.map(|m| m.1 as i64),
                    a.first_seen,
                    a.last_verified,
                    a.added_run,
                    a.selected_run,
                    a.unselected_run
                ])?;
            }
            if !artifacts.is_empty() {
                bump(tx)?;
            }
            Ok(())
        })
    }

    /// Record a run's selection. `planned` projects were selected afresh:
    /// exactly `keep` of their files are listed from now on. Files of
    /// projects no longer `requested` (when given) leave the index. Every other project
    /// keeps its selection untouched, so a no-change run writes nothing.
    /// Returns how many files left the index.
    pub fn record_selection(
        &mut self,
        run: i64,
        keep: &[(ProjectName, String)],
        planned: &[ProjectName],
        requested: Option<&[ProjectName]>,
    ) -> Result<usize, StateError> {
        self.in_tx(|tx| {
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS sel_keep (project TEXT, filename TEXT, PRIMARY KEY (project, filename));
                 CREATE TEMP TABLE IF NOT EXISTS sel_planned (project TEXT PRIMARY KEY);
                 CREATE TEMP TABLE IF NOT EXISTS sel_requested (project TEXT PRIMARY KEY);
                 DELETE FROM sel_keep; DELETE FROM sel_planned; DELETE FROM sel_requested;",
            )?;
            {
                let mut put = tx.prepare_cached("INSERT OR IGNORE INTO sel_keep VALUES (?1, ?2)")?;
                for (p, f) in keep {
                    put.execute(params![p.as_str(), f])?;
                }
                let mut put = tx.prepare_cached("INSERT OR IGNORE INTO sel_planned VALUES (?1)")?;
                for p in planned {
                    put.execute([p.as_str()])?;
                }
                let mut put = tx.prepare_cached("INSERT OR IGNORE INTO sel_requested VALUES (?1)")?;
                for p in requested.unwrap_or_default() {
                    put.execute([p.as_str()])?;
                }
            }
            let kept = tx.execute(
                "UPDATE artifacts SET unselected_run = NULL, selected_run = ?1
                 WHERE (project, filename) IN (SELECT project, filename FROM sel_keep)
                   AND (unselected_run IS NOT NULL OR selected_run != ?1)",
                [run],
            )?;
            let mut left = tx.execute(
                "UPDATE artifacts SET unselected_run = ?1
                 WHERE unselected_run IS NULL
                   AND project IN (SELECT project FROM sel_planned)
                   AND (project, filename) NOT IN (SELECT project, filename FROM sel_keep)",
                [run],
            )?;
            if requested.is_some() {
                left += tx.execute(
                    "UPDATE artifacts SET unselected_run = ?1
                     WHERE unselected_run IS NULL AND project NOT IN (SELECT project FROM sel_requested)",
                    [run],
                )?;
            }
            tx.execute_batch("DELETE FROM sel_keep; DELETE FROM sel_planned; DELETE FROM sel_requested;")?;
            if kept + left > 0 {
                bump(tx)?;
            }
            Ok(left)
        })
    }

    /// How many files the index lists.
    pub fn listed_count(&self) -> Result<u64, StateError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM artifacts WHERE unselected_run IS NULL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    /// The selection counter: it changes with every change of the
    /// artifacts or the selection, so equal values mean the state shows the
    /// same selection (a killed run that recorded a new selection without
    /// publishing it shows as changed).
    pub fn selection_generation(&self) -> Result<String, StateError> {
        let n: i64 = self
            .conn
            .query_row("SELECT value FROM counters WHERE name = 'selection'", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(format!("generation {n}"))
    }

    /// The artifacts of some projects, by project, each sorted by filename.
    pub fn artifacts_of(&mut self, projects: &[ProjectName]) -> Result<Vec<Artifact>, StateError> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        self.in_tx(|tx| {
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS wanted (project TEXT PRIMARY KEY); DELETE FROM wanted;")?;
            let mut put = tx.prepare_cached("INSERT OR IGNORE INTO wanted VALUES (?1)")?;
            for p in projects {
                put.execute([p.as_str()])?;
            }
            Ok(())
        })?;
        let out = self.query_artifacts("WHERE project IN (SELECT project FROM wanted)", []);
        self.conn.execute_batch("DELETE FROM wanted;").map_err(|e| self.err(e))?;
        out
    }

    /// How many files each project lists.
    pub fn listed_counts(&self) -> Result<std::collections::HashMap<ProjectName, u64>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT project, COUNT(*) FROM artifacts WHERE unselected_run IS NULL GROUP BY project")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(|e| self.err(e))?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (p, n) = row.map_err(|e| self.err(e))?;
            if let Ok(p) = p.parse::<ProjectName>() {
                out.insert(p, n.max(0) as u64);
            }
        }
        Ok(out)
    }

    /// Files no longer listed whose grace period is over at run `run`.
    pub fn prunable(&self, run: i64, keep_runs: i64) -> Result<Vec<Artifact>, StateError> {
        self.query_artifacts("WHERE unselected_run IS NOT NULL AND ?1 - unselected_run >= ?2", [run, keep_runs])
    }

    /// Listed files of projects not in `projects`.
    pub fn listed_outside(&mut self, projects: &[ProjectName]) -> Result<Vec<Artifact>, StateError> {
        self.in_tx(|tx| {
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS inside (project TEXT PRIMARY KEY); DELETE FROM inside;")?;
            let mut put = tx.prepare_cached("INSERT OR IGNORE INTO inside VALUES (?1)")?;
            for p in projects {
                put.execute([p.as_str()])?;
            }
            Ok(())
        })?;
        let out =
            self.query_artifacts("WHERE unselected_run IS NULL AND project NOT IN (SELECT project FROM inside)", []);
        self.conn.execute_batch("DELETE FROM inside;").map_err(|e| self.err(e))?;
        out
    }

    pub fn touch_verified(&mut self, keys: &[(ProjectName, String)]) -> Result<(), StateError> {
        let stamp = now();
        self.in_tx(|tx| {
            let mut stmt =
                tx.prepare_cached("UPDATE artifacts SET last_verified = ?1 WHERE project = ?2 AND filename = ?3")?;
            for (p, f) in keys {
                stmt.execute(params![stamp, p.as_str(), f])?;
            }
            Ok(())
        })
    }

    pub fn delete_artifacts(&mut self, keys: &[(ProjectName, String)]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM artifacts WHERE project = ?1 AND filename = ?2")?;
            let mut n = 0;
            for (p, f) in keys {
                n += stmt.execute(params![p.as_str(), f])?;
            }
            if n > 0 {
                bump(tx)?;
            }
            Ok(())
        })
    }

    // --------------------------------------------------------- projects

    const VIEW_COLUMNS: &'static str =
        "page_url, etag, last_modified, body_sha256, page, fetched_at, plan_key, skipped, serial";

    /// A project row selected as `project, VIEW_COLUMNS`.
    fn view_from_row(project: ProjectName, r: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectView> {
        let skipped: String = r.get(8)?;
        Ok(ProjectView {
            project,
            page_url: r.get(1)?,
            etag: r.get(2)?,
            last_modified: r.get(3)?,
            body_sha256: r.get(4)?,
            page: r.get::<_, String>(5)?.into(),
            fetched_at: r.get(6)?,
            plan_key: r.get(7)?,
            // Only a report detail: an unreadable list is an empty one.
            skipped: serde_json::from_str(&skipped).unwrap_or_default(),
            serial: r.get(9)?,
        })
    }

    /// Every stored view.
    pub fn all_project_views(&self) -> Result<std::collections::HashMap<ProjectName, ProjectView>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT project, {} FROM projects", Self::VIEW_COLUMNS))
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::HashMap::new();
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let name: String = r.get(0).map_err(|e| self.err(e))?;
            let Ok(project) = name.parse::<ProjectName>() else { continue };
            out.insert(project.clone(), Self::view_from_row(project, r).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }

    /// The stored views of many projects in one query.
    pub fn project_views(
        &self,
        projects: &[ProjectName],
    ) -> Result<std::collections::HashMap<ProjectName, ProjectView>, StateError> {
        let wanted: std::collections::HashSet<&str> = projects.iter().map(|p| p.as_str()).collect();
        // Only the key range the names span is read: a batch of a large
        // mirror is a run of neighbouring names (SQLite compares text as
        // bytes, as `str` does).
        let (Some(first), Some(last)) = (wanted.iter().min(), wanted.iter().max()) else {
            return Ok(std::collections::HashMap::new());
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT project, {} FROM projects WHERE project BETWEEN ?1 AND ?2",
                Self::VIEW_COLUMNS
            ))
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::HashMap::with_capacity(projects.len());
        let mut rows = stmt.query([first, last]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let name: String = r.get(0).map_err(|e| self.err(e))?;
            if !wanted.contains(name.as_str()) {
                continue;
            }
            let project: ProjectName = name.parse().map_err(|e: crate::dist::names::InvalidNameError| {
                StateError::Corrupt { path: self.path.display().to_string(), message: format!("project view: {e}") }
            })?;
            let view = Self::view_from_row(project.clone(), r).map_err(|e| self.err(e))?;
            out.insert(project, view);
        }
        Ok(out)
    }

    /// What is known of `upstream`'s serials.
    pub fn upstream_serial(&self, upstream: &str) -> Result<Option<UpstreamSerial>, StateError> {
        self.conn
            .query_row("SELECT serial, full_check FROM upstream_serials WHERE upstream = ?1", [upstream], |r| {
                Ok(UpstreamSerial { serial: r.get(0)?, full_check: r.get(1)? })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn put_upstream_serial(&mut self, upstream: &str, s: &UpstreamSerial) -> Result<(), StateError> {
        self.in_tx(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO upstream_serials (upstream, serial, full_check) VALUES (?1, ?2, ?3)",
                params![upstream, s.serial, s.full_check],
            )
            .map(|_| ())
        })
    }

    pub fn put_project_views(&mut self, views: &[ProjectView]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let sql = format!(
                "INSERT OR REPLACE INTO projects (project, {}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                Self::VIEW_COLUMNS
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            for v in views {
                let skipped = serde_json::to_string(&v.skipped).unwrap_or_else(|_| "[]".into());
                stmt.execute(params![
                    v.project.as_str(),
                    v.page_url,
                    v.etag,
                    v.last_modified,
                    v.body_sha256,
                    v.page,
                    v.fetched_at,
                    v.plan_key,
                    skipped,
                    v.serial
                ])?;
            }
            Ok(())
        })
    }

    /// Every file the stored views skipped, by project.
    pub fn skipped(&self) -> Result<Vec<(ProjectName, Skipped)>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT project, skipped FROM projects WHERE skipped != '[]' ORDER BY project")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (project, skipped) = row.map_err(|e| self.err(e))?;
            let Ok(project) = project.parse::<ProjectName>() else { continue };
            let list: Vec<Skipped> = serde_json::from_str(&skipped).unwrap_or_default();
            out.extend(list.into_iter().map(|s| (project.clone(), s)));
        }
        Ok(out)
    }

    /// Forget the views of projects no longer requested: their files have
    /// left the index, and a view is only a cache.
    pub fn forget_views_except(&mut self, requested: &[ProjectName]) -> Result<usize, StateError> {
        let keep: std::collections::HashSet<&str> = requested.iter().map(|p| p.as_str()).collect();
        let mut stmt = self.conn.prepare_cached("SELECT project FROM projects").map_err(|e| self.err(e))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let mut stale = false;
        for name in names {
            stale |= !keep.contains(name.map_err(|e| self.err(e))?.as_str());
        }
        drop(stmt);
        if !stale {
            return Ok(0);
        }
        self.in_tx(|tx| {
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS keep_views (project TEXT PRIMARY KEY); DELETE FROM keep_views;",
            )?;
            {
                let mut put = tx.prepare_cached("INSERT OR IGNORE INTO keep_views VALUES (?1)")?;
                for p in requested {
                    put.execute([p.as_str()])?;
                }
            }
            let n = tx.execute("DELETE FROM projects WHERE project NOT IN (SELECT project FROM keep_views)", [])?;
            tx.execute_batch("DELETE FROM keep_views;")?;
            Ok(n)
        })
    }

    /// Record each planned project's versions that install only from an
    /// sdist on some target (version, environments), so that every run
    /// reports them, not only the one that planned them.
    pub fn set_sdist_only(&mut self, notes: &[(ProjectName, SdistOnly)]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut stmt = tx.prepare_cached("UPDATE projects SET sdist_only = ?2 WHERE project = ?1")?;
            for (p, list) in notes {
                let raw: Vec<(String, &Vec<String>)> = list.iter().map(|(v, e)| (v.to_string(), e)).collect();
                stmt.execute(params![p.as_str(), serde_json::to_string(&raw).unwrap_or_else(|_| "[]".into())])?;
            }
            Ok(())
        })
    }

    /// Every recorded sdist-only version: (project, version, environments).
    pub fn sdist_only(&self) -> Result<Vec<(ProjectName, Version, Vec<String>)>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT project, sdist_only FROM projects WHERE sdist_only != '[]' ORDER BY project")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (project, json) = row.map_err(|e| self.err(e))?;
            let Ok(project) = project.parse::<ProjectName>() else { continue };
            // Only a report detail: an unreadable list is an empty one.
            let list: Vec<(String, Vec<String>)> = serde_json::from_str(&json).unwrap_or_default();
            for (v, envs) in list {
                if let Ok(v) = v.parse::<Version>() {
                    out.push((project.clone(), v, envs));
                }
            }
        }
        Ok(out)
    }

    /// Record (or, with `None`, forget) each project's plan key.
    pub fn set_plan_keys(&mut self, keys: &[(ProjectName, Option<String>)]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut stmt = tx.prepare_cached("UPDATE projects SET plan_key = ?2 WHERE project = ?1")?;
            for (p, k) in keys {
                stmt.execute(params![p.as_str(), k])?;
            }
            Ok(())
        })
    }

    // ------------------------------------------------------ resolutions

    /// Every environment's last good resolution and the run that made it.
    pub fn resolutions(&self) -> Result<std::collections::HashMap<String, (Pins, i64)>, StateError> {
        let mut stmt = self.conn.prepare_cached("SELECT env, pins, run FROM resolutions").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (env, pins, run) = row.map_err(|e| self.err(e))?;
            let raw: std::collections::BTreeMap<String, Vec<String>> =
                serde_json::from_str(&pins).map_err(|e| StateError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!("resolution of {env}: {e}"),
                })?;
            let mut parsed = Pins::new();
            for (project, versions) in raw {
                let (Ok(project), versions) = (project.parse::<ProjectName>(), versions) else { continue };
                parsed.entry(project).or_default().extend(versions.iter().filter_map(|v| v.parse::<Version>().ok()));
            }
            out.insert(env, (parsed, run));
        }
        Ok(out)
    }

    /// Record environments that resolved in run `run`.
    pub fn put_resolutions(&mut self, run: i64, good: &[(String, Pins)]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut stmt =
                tx.prepare_cached("INSERT OR REPLACE INTO resolutions (env, pins, run) VALUES (?1, ?2, ?3)")?;
            for (env, pins) in good {
                let raw: std::collections::BTreeMap<&str, Vec<String>> =
                    pins.iter().map(|(p, vs)| (p.as_str(), vs.iter().map(ToString::to_string).collect())).collect();
                let json = serde_json::to_string(&raw).unwrap_or_default();
                stmt.execute(params![env, json, run])?;
            }
            Ok(())
        })
    }

    // -------------------------------------------------------- tampering

    /// Record evidence found by `run`: (project, filename, mirrored, upstream).
    pub fn record_tampering(
        &mut self,
        run: i64,
        t: &[(ProjectName, String, Sha256, Sha256)],
    ) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO tampering (project, filename, mirrored_sha256, upstream_sha256, first_run, last_run) VALUES (?1,?2,?3,?4,?5,?5)
                 ON CONFLICT(project, filename, upstream_sha256) DO UPDATE SET last_run = excluded.last_run",
            )?;
            for (project, filename, mirrored, upstream) in t {
                stmt.execute(params![project.as_str(), filename, mirrored.hex(), upstream.hex(), run])?;
            }
            Ok(())
        })
    }

    /// Every piece of tampering evidence ever recorded, sorted.
    pub fn tampering(&self) -> Result<Vec<Tampering>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT project, filename, mirrored_sha256, upstream_sha256, first_run, last_run FROM tampering ORDER BY project, filename, upstream_sha256")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (project, filename, mirrored, upstream, first_run, last_run) = row.map_err(|e| self.err(e))?;
            let corrupt = |message: String| StateError::Corrupt {
                path: self.path.display().to_string(),
                message: format!("tampering row {project}/{filename}: {message}"),
            };
            out.push(Tampering {
                project: project.parse().map_err(|e: crate::dist::names::InvalidNameError| corrupt(e.to_string()))?,
                mirrored: mirrored.parse().map_err(|e: crate::util::hashing::Sha256Error| corrupt(e.to_string()))?,
                upstream: upstream.parse().map_err(|e: crate::util::hashing::Sha256Error| corrupt(e.to_string()))?,
                filename,
                first_run,
                last_run,
            });
        }
        Ok(out)
    }

    // ------------------------------------------------------------ trees

    /// Store the published tree's listing (zstd JSON) and keys for `run`,
    /// keeping the newest `keep` listings plus any an export refers to.
    /// Record what run `run`'s tree changed (`changes.json`), keeping the
    /// last `keep` runs.
    pub fn put_changes(&self, run: i64, body: &str, keep: usize) -> Result<(), StateError> {
        self.conn
            .execute("INSERT OR REPLACE INTO changes (run, body) VALUES (?1, ?2)", params![run, body])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM changes WHERE run NOT IN (SELECT run FROM changes ORDER BY run DESC LIMIT ?1)",
                [keep as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The recorded changes of the last `limit` runs, newest first.
    pub fn recent_changes(&self, limit: usize) -> Result<Vec<(i64, String)>, StateError> {
        let mut stmt =
            self.conn.prepare("SELECT run, body FROM changes ORDER BY run DESC LIMIT ?1").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    pub fn put_tree(
        &self,
        run: i64,
        listing: &mut std::fs::File,
        keys: &TreeKeys,
        listed: &Listed,
        keep: usize,
    ) -> Result<(), StateError> {
        // The listing (megabytes for a large tree) goes in through blob I/O,
        // from its scratch file: never a copy of it in memory.
        use std::io::Seek;
        let len = listing.seek(std::io::SeekFrom::End(0))?;
        listing.rewind()?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO trees (run, listing, key, inputs, exit, selection, listed_count, listed) VALUES (?1, zeroblob(?2), ?3, ?4, ?5, ?6, ?7, ?8)",
                params![run, len as i64, keys.key, keys.inputs, keys.exit, keys.selection, listed.0.len() as i64, listed.encode()],
            )
            .map_err(|e| self.err(e))?;
        {
            let mut blob =
                self.conn.blob_open(rusqlite::MAIN_DB, "trees", "listing", run, false).map_err(|e| self.err(e))?;
            std::io::copy(&mut std::io::BufReader::new(listing), &mut blob)?;
        }
        self.conn.execute("UPDATE trees SET listed = NULL WHERE run != ?1", [run]).map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM trees WHERE run NOT IN (SELECT run FROM trees ORDER BY run DESC LIMIT ?1)
                 AND run NOT IN (SELECT run FROM exports)",
                [keep as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The keys the tree `run` published was rendered from.
    pub fn tree_keys(&self, run: i64) -> Result<Option<TreeKeys>, StateError> {
        self.conn
            .query_row("SELECT key, inputs, exit, selection FROM trees WHERE run = ?1", [run], |r| {
                Ok(TreeKeys {
                    key: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    inputs: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    exit: r.get(2)?,
                    selection: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// What the tree of `run` lists (`None`: a tree older than the guard).
    pub fn tree_listed(&self, run: i64) -> Result<Option<Listed>, StateError> {
        let blob: Option<Option<Vec<u8>>> = self
            .conn
            .query_row("SELECT listed FROM trees WHERE run = ?1", [run], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(blob.flatten().and_then(|b| Listed::decode(&b)))
    }

    pub fn tree(&self, run: i64) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .query_row("SELECT listing FROM trees WHERE run = ?1", [run], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    // ---------------------------------------------------- core metadata

    /// A second connection for the core-metadata cache, shareable across
    /// the threads that resolve environments in parallel.
    pub fn metadata_cache(&self) -> Result<MetadataCache, StateError> {
        let flags = if self.read_only {
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| self.err(e))?;
        conn.execute_batch("PRAGMA busy_timeout=5000;").map_err(|e| self.err(e))?;
        Ok(MetadataCache { conn: std::sync::Mutex::new(conn), path: self.path.clone(), read_only: self.read_only })
    }

    // ---------------------------------------------------------- exports

    pub fn record_export(&self, run: i64, since: Option<i64>, file: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO exports (run, since_run, created_at, file) VALUES (?1, ?2, ?3, ?4)",
                params![run, since, now(), file],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn last_export_run(&self) -> Result<Option<i64>, StateError> {
        self.conn.query_row("SELECT MAX(run) FROM exports", [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}

/// Core metadata by the sha256 of its file (see [`State::metadata_cache`]).
pub struct MetadataCache {
    conn: std::sync::Mutex<Connection>,
    path: PathBuf,
    read_only: bool,
}

impl MetadataCache {
    fn err(&self, error: rusqlite::Error) -> StateError {
        StateError::Sql { path: self.path.display().to_string(), error }
    }

    /// The user cache's copy of a file's metadata (shared by `plan`, which
    /// writes no state, and `build`: a plan then a build ask once).
    fn shared(sha256: &Sha256) -> Option<std::path::PathBuf> {
        let hex = sha256.hex();
        Some(crate::util::fsx::user_cache_dir()?.join("metadata").join(&hex[..2]).join(format!("{hex}.metadata")))
    }

    pub fn get(&self, sha256: &Sha256) -> Result<Option<Vec<u8>>, StateError> {
        let found: Option<Vec<u8>> = {
            let conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.query_row("SELECT metadata FROM core_metadata WHERE sha256 = ?1", [sha256.hex()], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?
        };
        if found.is_some() {
            return Ok(found);
        }
        // Bounded like an upstream's: a cache file is not trusted to be small.
        let cached = MetadataCache::shared(sha256).and_then(|p| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(p).ok()?, 16 << 20), &mut bytes)
                .ok()?;
            Some(bytes)
        });
        if let Some(bytes) = &cached {
            let _ = self.put_state(sha256, bytes);
        }
        Ok(cached)
    }

    /// Remember `metadata`: in the user cache always, and in the state
    /// unless it is read-only (`plan` writes no state).
    pub fn put(&self, sha256: &Sha256, metadata: &[u8]) -> Result<(), StateError> {
        if let Some(path) = MetadataCache::shared(sha256)
            && let Some(dir) = path.parent()
            && std::fs::create_dir_all(dir).is_ok()
            && let Err(e) = crate::util::fsx::write_atomically(&path, metadata)
        {
            tracing::debug!("cannot cache {}: {e}", path.display());
        }
        self.put_state(sha256, metadata)
    }

    fn put_state(&self, sha256: &Sha256, metadata: &[u8]) -> Result<(), StateError> {
        if self.read_only {
            return Ok(());
        }
        let conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.execute(
            "INSERT OR REPLACE INTO core_metadata (sha256, metadata) VALUES (?1, ?2)",
            params![sha256.hex(), metadata],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str, run: i64) -> Artifact {
        let project: ProjectName = "pkg".parse().unwrap();
        Artifact {
            filename: DistFilename::parse(name, Some(&project)).unwrap(),
            project,
            sha256: Sha256::of(name.as_bytes()),
            size: 3,
            url: "https://x.invalid/f".into(),
            requires_python: Some(">=3.8".into()),
            yanked: None,
            upload_time: None,
            metadata: Some((Sha256::of(b"m"), 1)),
            first_seen: now(),
            last_verified: now(),
            added_run: run,
            selected_run: run,
            unselected_run: None,
        }
    }

    #[test]
    fn round_trips_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = State::open(dir.path()).unwrap();
            let run = s.begin_run("build").unwrap();
            s.put_artifacts(&[artifact("pkg-1.0.tar.gz", run), artifact("pkg-1.0-py3-none-any.whl", run)]).unwrap();
            s.finish_run(run, "success", &RunCounts { added: 2, ..Default::default() }, &[]).unwrap();
        }
        let mut s = State::open(dir.path()).unwrap();
        let all = s.artifacts().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].filename.as_str(), "pkg-1.0-py3-none-any.whl", "sorted by filename");
        assert_eq!(all[1], artifact("pkg-1.0.tar.gz", 1).clone_with_times(&all[1]));
        assert_eq!(all[1].version().to_string(), "1.0", "the version comes typed from the filename");
        // Planned afresh at run 7 with only the wheel: the sdist leaves the index.
        let p = all[0].project.clone();
        let one = std::slice::from_ref(&p);
        let wheel = all[0].filename.to_string();
        let left = s.record_selection(7, &[(p.clone(), wheel.clone())], one, Some(one)).unwrap();
        assert_eq!(left, 1);
        assert_eq!(s.artifact(&p, &wheel).unwrap().unwrap().selected_run, 7);
        assert_eq!(s.artifact(&p, all[1].filename.as_str()).unwrap().unwrap().unselected_run, Some(7));
        // Not planned and still requested: untouched. No longer requested: out.
        assert_eq!(s.record_selection(8, &[], &[], Some(one)).unwrap(), 0);
        assert_eq!(s.record_selection(9, &[], &[], Some(&[])).unwrap(), 1);
        assert_eq!(s.artifact(&p, &wheel).unwrap().unwrap().unselected_run, Some(9));
        assert_eq!(s.next_run_id().unwrap(), 2);
    }

    #[test]
    fn a_row_that_does_not_parse_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(dir.path()).unwrap();
        s.put_artifacts(&[artifact("pkg-1.0.tar.gz", 1)]).unwrap();
        s.conn.execute("UPDATE artifacts SET filename = 'pkg-notaversion.tar.gz'", []).unwrap();
        let err = s.artifacts().unwrap_err().to_string();
        assert!(err.contains("pkg/pkg-notaversion.tar.gz") && err.contains("corrupt"), "{err}");
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("state.sqlite")).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        assert!(matches!(State::open(dir.path()), Err(StateError::TooNew { found: 99, .. })));
    }

    impl Artifact {
        fn clone_with_times(&self, other: &Artifact) -> Artifact {
            Artifact {
                first_seen: other.first_seen.clone(),
                last_verified: other.last_verified.clone(),
                ..self.clone()
            }
        }
    }
}
