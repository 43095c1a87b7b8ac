//! The admission gate's last word: what the last build held back and let
//! in early, so that `airlock audit` (which plans nothing) reports the same
//! holds with the same due times.

use rusqlite::params;

use super::db::{State, StateError};

/// One held or early-admitted release, as text columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRow {
    pub project: String,
    pub version: String,
    /// `held` or `admitted`.
    pub kind: String,
    /// Why it is held (`young`, ...), or why it was let in.
    pub reason: String,
    /// When a held release is due (RFC 3339).
    pub due: Option<String>,
    /// An admit entry's last day.
    pub expires: Option<String>,
    /// An expired admit entry's reason (a held release).
    pub entry: Option<String>,
    /// What the hold found (publishers, files without provenance).
    pub note: Option<String>,
}

impl State {
    /// Replace what the gate said with this build's word.
    pub fn put_gate(&mut self, rows: &[GateRow]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            tx.execute("DELETE FROM gate", [])?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO gate (project, version, kind, reason, due, expires, entry, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in rows {
                put.execute(params![r.project, r.version, r.kind, r.reason, r.due, r.expires, r.entry, r.note])?;
            }
            Ok(())
        })
    }

    /// What the last build's gate said, sorted.
    pub fn gate(&self) -> Result<Vec<GateRow>, StateError> {
        self.rows(
            "SELECT project, version, kind, reason, due, expires, entry, note FROM gate ORDER BY project, version, kind",
            [],
            |r| {
                Ok(GateRow {
                    project: r.get(0)?,
                    version: r.get(1)?,
                    kind: r.get(2)?,
                    reason: r.get(3)?,
                    due: r.get(4)?,
                    expires: r.get(5)?,
                    entry: r.get(6)?,
                    note: r.get(7)?,
                })
            },
        )
    }
}
