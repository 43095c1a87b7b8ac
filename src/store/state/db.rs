//! The state database itself: opening, migrating, transactions, errors.
//!
//! The schema is versioned with `PRAGMA user_version`; each migration is one
//! SQL batch applied in a transaction, so a state directory from an older
//! airlock is upgraded in place and a newer one is refused. The tables are
//! read and written by the sibling files, one per table family.

use std::path::{Path, PathBuf};

use crate::dist::names::ProjectName;
use rusqlite::Connection;

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

pub(super) const MIGRATIONS: &[&str] = &[
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
    // 10: files withdrawn from the tree because the upstream no longer
    // offers them (or quarantined them, or the freeze holds them): why and
    // since when; never pruned, their bytes kept for forensics.
    r#"
    ALTER TABLE artifacts ADD COLUMN withdrawn TEXT;
    ALTER TABLE artifacts ADD COLUMN withdrawn_at TEXT;
    ALTER TABLE projects ADD COLUMN status TEXT;
    ALTER TABLE projects ADD COLUMN status_reason TEXT;
    ALTER TABLE artifacts ADD COLUMN provenance_url TEXT;
    CREATE TABLE gate (project TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL,
                       due TEXT, expires TEXT, entry TEXT, PRIMARY KEY (project, version, kind)) WITHOUT ROWID;
    "#,
    // 11: PEP 740 publishers: each project's pin (the first verified
    // publisher, or the last one admitted), and the verified publisher of
    // every attested file (served or held), as JSON records.
    r#"
    CREATE TABLE publishers (project TEXT PRIMARY KEY, publisher TEXT NOT NULL, version TEXT NOT NULL,
                             run INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE attested (project TEXT NOT NULL, filename TEXT NOT NULL, sha256 TEXT NOT NULL,
                           publisher TEXT NOT NULL, held INTEGER NOT NULL DEFAULT 0,
                           PRIMARY KEY (project, filename)) WITHOUT ROWID;
    ALTER TABLE gate ADD COLUMN note TEXT;
    "#,
];

/// Bump the selection counter inside a transaction that changed something.
/// Fill the temporary one-column table `table` with `projects` (created on
/// first use, emptied first): the set a statement joins against, where an
/// `IN (...)` list would meet SQLite's cap on bound parameters.
pub(super) fn temp_projects<'p>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    projects: impl IntoIterator<Item = &'p ProjectName>,
) -> rusqlite::Result<()> {
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {table} (project TEXT PRIMARY KEY); DELETE FROM {table};"
    ))?;
    let mut put = tx.prepare_cached(&format!("INSERT OR IGNORE INTO {table} VALUES (?1)"))?;
    for p in projects {
        put.execute([p.as_str()])?;
    }
    Ok(())
}

pub(super) fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute("UPDATE counters SET value = value + 1 WHERE name = 'selection'", []).map(|_| ())
}

pub struct State {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    /// Opened by `plan`, which must write nothing.
    pub(super) read_only: bool,
    /// A state older than this airlock, read through a migrated copy that
    /// lives here (the real one is left for the next build to migrate).
    _copy: Option<tempfile::TempDir>,
}

impl State {
    /// Open (creating and migrating) `<dir>/state.sqlite`.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        fs_err::create_dir_all(dir)?;
        let path = dir.join("state.sqlite");
        let conn =
            Connection::open(&path).map_err(|e| StateError::Sql { path: path.display().to_string(), error: e })?;
        let mut state = State { conn, path, read_only: false, _copy: None };
        state.setup()?;
        Ok(state)
    }

    /// Open an existing state without writing to it (`plan`).
    pub fn open_read_only(dir: &Path) -> Result<State, StateError> {
        let path = dir.join("state.sqlite");
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StateError::Sql { path: path.display().to_string(), error: e })?;
        let state = State { conn, path, read_only: true, _copy: None };
        let version: i64 = state.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| state.err(e))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StateError::TooNew {
                path: state.path.display().to_string(),
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        if version < MIGRATIONS.len() as i64 {
            // Plan must not migrate the real state, and cannot read tables
            // it lacks: a migrated copy stands in.
            let copy = tempfile::tempdir()?;
            state.backup_to(&copy.path().join("state.sqlite"))?;
            let mut migrated = State::open(copy.path())?;
            migrated.read_only = true;
            migrated._copy = Some(copy);
            return Ok(migrated);
        }
        Ok(state)
    }

    pub(super) fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sql { path: self.path.display().to_string(), error: source }
    }

    /// Every row `sql` gives for `params`, each read by `row`: the one
    /// prepare/query/collect shape of the readers, with errors naming the state.
    pub(super) fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StateError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params, row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Run `f` in one transaction, committed only if `f` succeeds, so a
    /// batch of writes lands whole or not at all.
    pub(super) fn in_tx<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let path = &self.path;
        let sql_err = |error| StateError::Sql { path: path.display().to_string(), error };
        let tx = self.conn.transaction().map_err(sql_err)?;
        f(&tx).and_then(|out| tx.commit().map(|_| out)).map_err(sql_err)
    }

    pub(super) fn setup(&mut self) -> Result<(), StateError> {
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
}
