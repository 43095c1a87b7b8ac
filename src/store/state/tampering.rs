//! Tampering: evidence that a file's bytes changed upstream.

use rusqlite::params;

use super::db::{State, StateError};
use crate::diagnostics::Tampering;
use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;
use crate::util::run_id::RunId;

impl State {
    /// Record evidence found by `run`: (project, filename, mirrored, upstream).
    pub fn record_tampering(
        &mut self,
        run: RunId,
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
                first_run: RunId(first_run),
                last_run: RunId(last_run),
            });
        }
        Ok(out)
    }
}
