//! PEP 740 publishers: each project's pin (its first verified publisher,
//! or the one an admit entry let in last) and the verified publisher of
//! every attested file, served or held (`held`: the pin refused it), so a
//! rerun holds what it found without asking the upstream again, and the
//! reports name who published each served file.

use std::collections::BTreeMap;

use rusqlite::params;

use super::db::{State, StateError};
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::provenance::{Publisher, PublisherRecord};
use crate::util::hashing::Sha256;
use crate::util::run_id::RunId;

/// One attested file's verified publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedRow {
    pub project: ProjectName,
    pub filename: String,
    pub sha256: Sha256,
    pub publisher: Publisher,
    /// The project's pin refused it: the file is not served.
    pub held: bool,
}

fn to_json(p: &Publisher) -> String {
    serde_json::to_string(&p.record()).unwrap_or_default()
}

fn from_json(text: &str) -> Option<Publisher> {
    serde_json::from_str::<PublisherRecord>(text).ok().map(|r| Publisher::from_record(&r))
}

impl State {
    /// Record each project's pin: the publisher and the release it came with.
    pub fn put_publisher_pins(
        &mut self,
        run: RunId,
        pins: &[(ProjectName, Publisher, Version)],
    ) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO publishers (project, publisher, version, run) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (project, p, v) in pins {
                put.execute(params![project.as_str(), to_json(p), v.to_string(), run])?;
            }
            Ok(())
        })
    }

    /// Every recorded pin (rows an older or newer airlock wrote that do not
    /// parse are left out: the project is then pinned afresh).
    pub fn publisher_pins(&self) -> Result<BTreeMap<ProjectName, Publisher>, StateError> {
        let rows = self.rows("SELECT project, publisher FROM publishers", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        Ok(rows.into_iter().filter_map(|(p, j)| Some((p.parse().ok()?, from_json(&j)?))).collect())
    }

    /// Record attested files (replacing what an earlier run found for them).
    pub fn put_attested(&mut self, rows: &[AttestedRow]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO attested (project, filename, sha256, publisher, held) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for a in rows {
                put.execute(params![a.project.as_str(), a.filename, a.sha256.hex(), to_json(&a.publisher), a.held])?;
            }
            Ok(())
        })
    }

    /// Attested files, sorted; only the held ones with `held_only`.
    pub fn attested(&self, held_only: bool) -> Result<Vec<AttestedRow>, StateError> {
        let rows = self.rows(
            "SELECT project, filename, sha256, publisher, held FROM attested WHERE held >= ?1 ORDER BY project, filename",
            [i64::from(held_only)],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, filename, sha, j, held)| {
                Some(AttestedRow {
                    project: p.parse().ok()?,
                    filename,
                    sha256: sha.parse().ok()?,
                    publisher: from_json(&j)?,
                    held,
                })
            })
            .collect())
    }
}
