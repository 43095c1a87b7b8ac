//! Artifacts: every verified file the mirror holds, its facts, and the
//! runs that selected and unselected it.

use rusqlite::params;

use super::db::{State, StateError, bump, temp_projects};
use crate::dist::Version;
use crate::dist::file::{FileFacts, RequiresPython, Yanked};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::util::clock::now;
use crate::util::hashing::Sha256;
use crate::util::run_id::RunId;

/// An artifact row that does not parse: the state was written by
/// something else, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("artifact {row}: {source}")]
pub struct BadRow {
    row: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// One withdrawn file: (project, filename, why, since).
pub type WithdrawnRow = (ProjectName, String, String, String);

/// One mirrored artifact, as the state knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub project: ProjectName,
    pub filename: DistFilename,
    pub sha256: Sha256,
    pub size: u64,
    /// Upstream URL, credentials redacted.
    pub url: String,
    pub facts: FileFacts,
    pub metadata: Option<(Sha256, u64)>,
    pub first_seen: String,
    pub last_verified: String,
    pub added_run: RunId,
    /// The last run that planned this file selected.
    pub selected_run: RunId,
    /// The run that took it out of the selection; `None` while it is listed.
    pub unselected_run: Option<RunId>,
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

impl State {
    pub(super) fn artifact_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Artifact, BadRow>> {
        let project: String = r.get(0)?;
        let filename: String = r.get(1)?;
        let sha: String = r.get(3)?;
        let meta_sha: Option<String> = r.get(9)?;
        let meta_size: Option<i64> = r.get(10)?;
        let row = format!("{project}/{filename}");
        let parsed = (|| -> Result<Artifact, Box<dyn std::error::Error + Send + Sync>> {
            let project: ProjectName = project.parse()?;
            Ok(Artifact {
                filename: DistFilename::parse(&filename, Some(&project))?,
                project,
                sha256: sha.parse()?,
                size: u64::try_from(r.get::<_, i64>(4)?)?,
                url: r.get(5)?,
                facts: FileFacts {
                    requires_python: r.get::<_, Option<String>>(6)?.map(RequiresPython::new),
                    yanked: Yanked::from_reason(r.get::<_, Option<String>>(7)?),
                    upload_time: match r.get::<_, Option<String>>(8)? {
                        None => None,
                        Some(t) => Some(t.parse().map_err(|e| format!("upload_time {t:?}: {e}"))?),
                    },
                    provenance: r.get(16)?,
                },
                metadata: match (meta_sha, meta_size) {
                    (Some(s), Some(n)) => Some((s.parse()?, u64::try_from(n)?)),
                    _ => None,
                },
                first_seen: r.get(11)?,
                last_verified: r.get(12)?,
                added_run: r.get(13)?,
                selected_run: r.get(14)?,
                unselected_run: r.get(15)?,
            })
        })();
        Ok(parsed.map_err(|source| BadRow { row, source }))
    }

    pub(super) const ARTIFACT_COLUMNS: &'static str = "project, filename, version, sha256, size, url, requires_python, yanked, upload_time, metadata_sha256, metadata_size, first_seen, last_verified, added_run, selected_run, unselected_run, provenance_url";

    pub(super) fn query_artifacts(
        &self,
        where_clause: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<Artifact>, StateError> {
        let mut out = Vec::new();
        self.each_artifact_where(where_clause, args, |a| out.push(a))?;
        Ok(out)
    }

    pub(super) fn each_artifact_where(
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
            f(row.map_err(|e| StateError::Corrupt { path: self.path.display().to_string(), message: e.to_string() })?);
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

    /// Every artifact that may be in a tree (not withdrawn), sorted by
    /// project and filename, one at a time.
    pub fn each_served_artifact(&self, f: impl FnMut(Artifact)) -> Result<(), StateError> {
        self.each_artifact_where("WHERE withdrawn IS NULL", [], f)
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
    pub(super) fn artifact(&self, project: &ProjectName, filename: &str) -> Result<Option<Artifact>, StateError> {
        Ok(self.query_artifacts("WHERE project = ?1 AND filename = ?2", [project.as_str(), filename])?.pop())
    }

    /// Insert or replace artifacts in one transaction.
    pub fn put_artifacts(&mut self, artifacts: &[Artifact]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let sql = format!(
                "INSERT OR REPLACE INTO artifacts ({}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)",
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
                    a.facts.requires_python.as_ref().map(RequiresPython::as_str),
                    a.facts.yanked.reason(),
                    a.facts.upload_time.map(|t| t.to_string()),
                    a.metadata.map(|m| m.0.hex()),
                    a.metadata.map(|m| m.1 as i64),
                    a.first_seen,
                    a.last_verified,
                    a.added_run,
                    a.selected_run,
                    a.unselected_run,
                    a.facts.provenance,
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
        run: RunId,
        keep: &[(ProjectName, DistFilename)],
        planned: &[ProjectName],
        requested: Option<&[ProjectName]>,
    ) -> Result<usize, StateError> {
        self.in_tx(|tx| {
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS sel_keep (project TEXT, filename TEXT, PRIMARY KEY (project, filename));
                 DELETE FROM sel_keep;",
            )?;
            temp_projects(tx, "sel_planned", planned)?;
            temp_projects(tx, "sel_requested", requested.unwrap_or_default())?;
            {
                let mut put = tx.prepare_cached("INSERT OR IGNORE INTO sel_keep VALUES (?1, ?2)")?;
                for (p, f) in keep {
                    put.execute(params![p.as_str(), f.as_str()])?;
                }
            }
            let kept = tx.execute(
                "UPDATE artifacts SET unselected_run = NULL, selected_run = ?1, withdrawn = NULL, withdrawn_at = NULL
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
        self.in_tx(|tx| temp_projects(tx, "wanted", projects))?;
        let out = self.query_artifacts("WHERE project IN (SELECT project FROM wanted)", []);
        self.conn.execute_batch("DELETE FROM wanted;").map_err(|e| self.err(e))?;
        out
    }

    /// Mark files that left the tree in this run as withdrawn (`filename`
    /// `None`: every file of the project that left in run `run`), with why
    /// and when; they are never pruned.
    pub fn mark_withdrawn(
        &mut self,
        run: RunId,
        at: &str,
        files: &[(ProjectName, Option<String>, &str)],
    ) -> Result<(), StateError> {
        if files.is_empty() {
            return Ok(());
        }
        self.in_tx(|tx| {
            let mut one = tx.prepare_cached(
                "UPDATE artifacts SET withdrawn = ?3, withdrawn_at = ?4
                 WHERE project = ?1 AND filename = ?2 AND unselected_run = ?5 AND withdrawn IS NULL",
            )?;
            let mut all = tx.prepare_cached(
                "UPDATE artifacts SET withdrawn = ?2, withdrawn_at = ?3
                 WHERE project = ?1 AND unselected_run = ?4 AND withdrawn IS NULL",
            )?;
            for (p, f, why) in files {
                match f {
                    Some(f) => one.execute(params![p.as_str(), f, why, at, run])?,
                    None => all.execute(params![p.as_str(), why, at, run])?,
                };
            }
            Ok(())
        })
    }

    /// Every withdrawn file not listed again: (project, filename, why, since),
    /// sorted.
    pub fn withdrawn(&self) -> Result<Vec<WithdrawnRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT project, filename, withdrawn, withdrawn_at FROM artifacts
                 WHERE withdrawn IS NOT NULL AND unselected_run IS NOT NULL ORDER BY project, filename",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (p, f, why, at) = row.map_err(|e| self.err(e))?;
            if let Ok(p) = p.parse::<ProjectName>() {
                out.push((p, f, why, at.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// The versions a project lists (its listed files' versions).
    pub fn listed_versions_of(
        &self,
        project: &ProjectName,
    ) -> Result<std::collections::BTreeSet<crate::dist::Version>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT filename FROM artifacts WHERE project = ?1 AND unselected_run IS NULL")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([project.as_str()], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let mut out = std::collections::BTreeSet::new();
        for row in rows {
            let f = row.map_err(|e| self.err(e))?;
            if let Ok(f) = crate::dist::filename::DistFilename::parse(&f, Some(project)) {
                out.insert(f.version().clone());
            }
        }
        Ok(out)
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
    pub fn prunable(&self, run: RunId, keep_runs: i64) -> Result<Vec<Artifact>, StateError> {
        self.query_artifacts(
            "WHERE unselected_run IS NOT NULL AND withdrawn IS NULL AND ?1 - unselected_run >= ?2",
            rusqlite::params![run, keep_runs],
        )
    }

    /// Listed files of projects not in `projects`.
    pub fn listed_outside(&mut self, projects: &[ProjectName]) -> Result<Vec<Artifact>, StateError> {
        self.in_tx(|tx| temp_projects(tx, "inside", projects))?;
        let out =
            self.query_artifacts("WHERE unselected_run IS NULL AND project NOT IN (SELECT project FROM inside)", []);
        self.conn.execute_batch("DELETE FROM inside;").map_err(|e| self.err(e))?;
        out
    }

    pub fn touch_verified(&mut self, keys: &[(ProjectName, DistFilename)]) -> Result<(), StateError> {
        let stamp = now();
        self.in_tx(|tx| {
            let mut stmt =
                tx.prepare_cached("UPDATE artifacts SET last_verified = ?1 WHERE project = ?2 AND filename = ?3")?;
            for (p, f) in keys {
                stmt.execute(params![stamp, p.as_str(), f.as_str()])?;
            }
            Ok(())
        })
    }

    pub fn delete_artifacts(&mut self, keys: &[(ProjectName, DistFilename)]) -> Result<(), StateError> {
        self.in_tx(|tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM artifacts WHERE project = ?1 AND filename = ?2")?;
            let mut n = 0;
            for (p, f) in keys {
                n += stmt.execute(params![p.as_str(), f.as_str()])?;
            }
            if n > 0 {
                bump(tx)?;
            }
            Ok(())
        })
    }
}
