//! The advisory snapshot a run audits with, judged against the policy:
//! audited, stale (older than `max_age_days`) or unaudited (missing or
//! unreadable). With `require_advisories`, anything but audited is an error
//! (exit 4) before anything changes; otherwise a loud warning and a banner
//! on every report.

use crate::advisories::{Snapshot, snapshot::SnapshotError};
use crate::manifest::{Advisories, Policy};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("advisory data required by [policy] require_advisories: {0}")]
    Required(String),
}

/// How much the audit can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A snapshot within `max_age_days`.
    Audited,
    /// A snapshot older than `max_age_days`.
    Stale,
    /// No usable snapshot: every version shows no advisories because none were checked.
    Unaudited,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    pub path: String,
    pub sources: Vec<String>,
    pub built_at: String,
    pub advisories: usize,
    pub sha256: String,
    pub age_days: Option<i64>,
}

/// The snapshot a run audits with, and what is wrong with it if anything.
pub struct LoadedSnapshot {
    pub snapshot: Option<std::sync::Arc<Snapshot>>,
    pub info: Option<SnapshotInfo>,
    pub status: Status,
    /// Shown at the top of every report when the audit is not trustworthy.
    pub banner: Option<String>,
}

/// Open the manifest's snapshot and judge it against the policy. With
/// `require_advisories`, a missing, unreadable or stale snapshot is an error
/// (exit 4); otherwise it is a loud warning and a banner.
pub fn load_snapshot(
    advisories: &Advisories,
    policy: &Policy,
    now: jiff::Timestamp,
) -> Result<LoadedSnapshot, AuditError> {
    let path = &advisories.snapshot;
    let max_age = i64::from(advisories.max_age_days);
    let problem = |why: String| -> Result<LoadedSnapshot, AuditError> {
        if policy.require_advisories {
            return Err(AuditError::Required(why));
        }
        tracing::warn!("UNAUDITED: {why}; reports say so, and no version is checked");
        Ok(LoadedSnapshot {
            snapshot: None,
            info: None,
            status: Status::Unaudited,
            banner: Some(format!("UNAUDITED: {why}. No version was checked against advisories.")),
        })
    };
    let snapshot = match Snapshot::open(path) {
        Ok(s) => s,
        Err(SnapshotError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return problem(format!(
                "no advisory snapshot at {} (create it with `airlock advisories update`)",
                path.display()
            ));
        }
        Err(e) => return problem(e.to_string()),
    };
    let age = snapshot.age_days(now);
    let info = SnapshotInfo {
        path: path.display().to_string(),
        sources: snapshot.meta.sources.iter().map(|s| s.location.clone()).collect(),
        built_at: snapshot.meta.built_at.clone(),
        advisories: snapshot.advisories.len(),
        sha256: snapshot.sha256.hex(),
        age_days: age,
    };
    let stale = age.is_none_or(|a| a > max_age);
    if stale {
        let why = format!(
            "the advisory snapshot {} was built {} ({}), older than max_age_days = {max_age}",
            path.display(),
            info.built_at,
            age.map_or("age unknown".into(), |a| format!("{a} day(s) ago"))
        );
        if policy.require_advisories {
            return Err(AuditError::Required(why));
        }
        tracing::warn!("STALE: {why}");
        return Ok(LoadedSnapshot {
            snapshot: Some(std::sync::Arc::new(snapshot)),
            info: Some(info),
            status: Status::Stale,
            banner: Some(format!("STALE: {why}. Advisories published since are not reflected.")),
        });
    }
    Ok(LoadedSnapshot {
        snapshot: Some(std::sync::Arc::new(snapshot)),
        info: Some(info),
        status: Status::Audited,
        banner: None,
    })
}
