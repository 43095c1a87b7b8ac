//! Runs: each command that writes records itself as one.

use std::path::Path;

use rusqlite::{Connection, params};

use super::db::{State, StateError};
use crate::util::clock::now;
use crate::util::run_id::RunId;

/// Counts recorded when a run ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub added: u64,
    pub kept: u64,
    pub removed: u64,
    pub failed: u64,
    pub bytes: u64,
}

impl State {
    pub fn begin_run(&self, command: &str) -> Result<RunId, StateError> {
        self.conn
            .execute(
                "INSERT INTO runs (command, started_at, pid) VALUES (?1, ?2, ?3)",
                params![command, now(), std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(RunId(self.conn.last_insert_rowid()))
    }

    pub fn finish_run(
        &self,
        run: RunId,
        outcome: &str,
        counts: &RunCounts,
        errors: &[String],
    ) -> Result<(), StateError> {
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
    pub fn record_interrupted(db: &Path, run: RunId) {
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
    pub fn next_run_id(&self) -> Result<RunId, StateError> {
        let max: Option<i64> =
            self.conn.query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        Ok(RunId(max.unwrap_or(0) + 1))
    }

    /// The newest run that published a tree.
    pub fn last_published_run(&self) -> Result<Option<RunId>, StateError> {
        self.conn.query_row("SELECT MAX(run) FROM trees", [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}
