//! Projects: the last upstream view of each, its serial, what it skipped,
//! its sdist-only versions and plan keys; and the upstream's serials.

use rusqlite::{OptionalExtension, params};

use super::db::{State, StateError, temp_projects};
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::upstream::listing::Skipped;

/// A project's versions some target installs only from their sdist, with
/// those targets.
pub type SdistOnly = Vec<(Version, Vec<String>)>;

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
    /// PEP 792: the status the page gives (`None`: active), kept in its
    /// own columns so a publish reads it without parsing pages.
    pub status: Option<crate::upstream::listing::ProjectStatus>,
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

impl State {
    pub(super) const VIEW_COLUMNS: &'static str = "page_url, etag, last_modified, body_sha256, page, fetched_at, plan_key, skipped, serial, status, status_reason";

    /// A project row selected as `project, VIEW_COLUMNS`.
    pub(super) fn view_from_row(project: ProjectName, r: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectView> {
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
            status: r.get::<_, Option<String>>(10)?.map(|s| crate::upstream::listing::ProjectStatus {
                status: crate::upstream::listing::Status::parse(&s),
                reason: r.get(11).ok().flatten(),
            }),
        })
    }

    /// Every project the upstream marks with a PEP 792 status other than
    /// active, by name.
    pub fn project_statuses(
        &self,
    ) -> Result<std::collections::BTreeMap<ProjectName, crate::upstream::listing::ProjectStatus>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT project, status, status_reason FROM projects WHERE status IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::BTreeMap::new();
        for row in rows {
            let (p, status, reason) = row.map_err(|e| self.err(e))?;
            let status = crate::upstream::listing::Status::parse(&status);
            if let (Ok(p), false) = (p.parse::<ProjectName>(), status == crate::upstream::listing::Status::Active) {
                out.insert(p, crate::upstream::listing::ProjectStatus { status, reason });
            }
        }
        Ok(out)
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
                "INSERT OR REPLACE INTO projects (project, {}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
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
                    v.serial,
                    v.status.as_ref().map(|s| s.status.as_str().to_string()),
                    v.status.as_ref().and_then(|s| s.reason.clone()),
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
            temp_projects(tx, "keep_views", requested)?;
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
}
