//! Resolutions: each target environment's last good resolution.

use rusqlite::params;

use super::db::{State, StateError};
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::util::run_id::RunId;

/// What one environment resolved to: every version of every project.
pub type Pins = std::collections::BTreeMap<ProjectName, std::collections::BTreeSet<Version>>;

impl State {
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
    pub fn put_resolutions(&mut self, run: RunId, good: &[(String, Pins)]) -> Result<(), StateError> {
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
}
