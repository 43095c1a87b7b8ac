//! The security join and the policy.
//!
//! Every mirrored (project, version) is checked against the advisory
//! snapshot, in parallel, and sorted (projects by name, versions by PEP 440,
//! advisories by id) so equal inputs give equal reports. One [`Audit`] value
//! then feeds the simple index (blocking), every report and the exit code,
//! so they can never disagree.

use std::collections::{BTreeMap, BTreeSet};

use pep440_rs::Version;
use rayon::prelude::*;

use crate::advisories::{Snapshot, snapshot::SnapshotError};
use crate::error::Exit;
use crate::manifest::{Ignore, Manifest, Policy};
use crate::names::ProjectName;
use crate::severity::Severity;
use crate::state::Tampering;

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
    pub snapshot: Option<Snapshot>,
    pub info: Option<SnapshotInfo>,
    pub status: Status,
    /// Shown at the top of every report when the audit is not trustworthy.
    pub banner: Option<String>,
}

/// Open the manifest's snapshot and judge it against the policy. With
/// `require_advisories`, a missing, unreadable or stale snapshot is an error
/// (exit 4); otherwise it is a loud warning and a banner.
pub fn load_snapshot(manifest: &Manifest, now: jiff::Timestamp) -> Result<LoadedSnapshot, AuditError> {
    let path = &manifest.advisories.snapshot;
    let max_age = i64::from(manifest.advisories.max_age_days);
    let problem = |why: String| -> Result<LoadedSnapshot, AuditError> {
        if manifest.policy.require_advisories {
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
        if manifest.policy.require_advisories {
            return Err(AuditError::Required(why));
        }
        tracing::warn!("STALE: {why}");
        return Ok(LoadedSnapshot {
            snapshot: Some(snapshot),
            info: Some(info),
            status: Status::Stale,
            banner: Some(format!("STALE: {why}. Advisories published since are not reflected.")),
        });
    }
    Ok(LoadedSnapshot { snapshot: Some(snapshot), info: Some(info), status: Status::Audited, banner: None })
}

/// An ignore as it applied to a finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IgnoreUse {
    pub reason: String,
    pub expires: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditFinding {
    pub advisory: usize,
    pub id: String,
    pub aliases: Vec<String>,
    /// The advisory's own rating (`unknown` without a CVSS vector).
    pub severity: Severity,
    /// The rating the policy compares: `unknown` ranks as `policy.unknown_severity`.
    pub effective: Severity,
    pub score: Option<f64>,
    pub fixed_in: Vec<String>,
    pub summary: String,
    pub ignored: Option<IgnoreUse>,
}

#[derive(Debug, Clone)]
pub struct AuditedVersion {
    pub project: ProjectName,
    pub version: String,
    pub files: Vec<String>,
    pub findings: Vec<AuditFinding>,
    pub blocked: bool,
}

impl AuditedVersion {
    /// Findings the policy counts (not ignored).
    pub fn active(&self) -> impl Iterator<Item = &AuditFinding> {
        self.findings.iter().filter(|f| f.ignored.is_none())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IgnoreStatus {
    pub id: String,
    pub reason: String,
    pub expires: Option<String>,
    pub expired: bool,
    /// Findings it applied to (0 when expired: it no longer applies).
    pub applied: usize,
}

/// The text of an advisory, for the HTML details and SARIF rules.
#[derive(Debug, Clone)]
pub struct AdvisoryText {
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub details: String,
    pub published: Option<String>,
    pub modified: Option<String>,
    pub severity: Severity,
    pub score: Option<f64>,
    pub vector: Option<String>,
    pub references: Vec<(Option<String>, String)>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub projects: usize,
    pub versions: usize,
    pub files: usize,
    pub vulnerable_versions: usize,
    pub blocked_versions: usize,
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub unknown: usize,
    pub ignored: usize,
}

pub struct Audit {
    pub generated_at: jiff::Timestamp,
    pub mirror_name: String,
    pub upstream: Option<String>,
    pub status: Status,
    pub banner: Option<String>,
    pub snapshot: Option<SnapshotInfo>,
    pub policy: Policy,
    pub versions: Vec<AuditedVersion>,
    /// Every advisory some finding refers to, by the finding's id.
    pub advisories: BTreeMap<String, AdvisoryText>,
    pub ignores: Vec<IgnoreStatus>,
    pub tampering: Vec<Tampering>,
}

/// A mirrored version to audit: project, version, its files.
pub type Mirrored = (ProjectName, String, Vec<String>);

fn ignore_applies<'a>(
    ignores: &'a [Ignore],
    today: jiff::civil::Date,
    id: &str,
    aliases: &[String],
) -> Option<&'a Ignore> {
    ignores.iter().filter(|i| i.expires.is_none_or(|e| e >= today)).find(|i| i.id == id || aliases.contains(&i.id))
}

impl Audit {
    /// Join every mirrored version with the snapshot and apply the policy.
    pub fn join(
        mirrored: &[Mirrored],
        loaded: &LoadedSnapshot,
        policy: &Policy,
        generated_at: jiff::Timestamp,
        mirror_name: &str,
        upstream: Option<String>,
        tampering: Vec<Tampering>,
    ) -> Audit {
        let today = generated_at.to_zoned(jiff::tz::TimeZone::UTC).date();
        let unknown_as = policy.unknown_severity;
        // Parallel over versions; the sort below fixes the order.
        let mut versions: Vec<(Option<Version>, AuditedVersion)> = mirrored
            .par_iter()
            .map(|(project, version, files)| {
                let findings = match &loaded.snapshot {
                    None => Vec::new(),
                    Some(s) => s
                        .check(project.as_str(), version)
                        .iter()
                        .map(|f| {
                            let id = s.id(f).to_string();
                            let aliases: Vec<String> = s.aliases(f).map(str::to_string).collect();
                            let ignored = ignore_applies(&policy.ignore, today, &id, &aliases).map(|i| IgnoreUse {
                                reason: i.reason.clone(),
                                expires: i.expires.map(|d| d.to_string()),
                            });
                            AuditFinding {
                                advisory: f.best,
                                effective: if f.severity == Severity::Unknown { unknown_as } else { f.severity },
                                severity: f.severity,
                                score: f.score,
                                fixed_in: f.fixed_in.iter().map(ToString::to_string).collect(),
                                summary: s.summary(f).to_string(),
                                id,
                                aliases,
                                ignored,
                            }
                        })
                        .collect(),
                };
                let blocked = findings.iter().any(|f| f.ignored.is_none() && policy.block.triggered_by(f.effective));
                let mut files = files.clone();
                files.sort();
                (
                    version.parse::<Version>().ok(),
                    AuditedVersion { project: project.clone(), version: version.clone(), files, findings, blocked },
                )
            })
            .collect();
        versions.sort_by(|(va, a), (vb, b)| {
            a.project.cmp(&b.project).then_with(|| va.cmp(vb)).then_with(|| a.version.cmp(&b.version))
        });
        let versions: Vec<AuditedVersion> = versions.into_iter().map(|(_, v)| v).collect();

        let mut advisories = BTreeMap::new();
        if let Some(s) = &loaded.snapshot {
            for f in versions.iter().flat_map(|v| v.findings.iter()) {
                advisories.entry(f.id.clone()).or_insert_with(|| {
                    let a = &s.advisories[f.advisory];
                    AdvisoryText {
                        id: a.id.clone(),
                        aliases: f.aliases.clone(),
                        summary: f.summary.clone(),
                        details: a.details.clone(),
                        published: a.published.clone(),
                        modified: a.modified.clone(),
                        severity: f.severity,
                        score: f.score,
                        vector: a.vector.clone(),
                        references: a.references.clone(),
                    }
                });
            }
        }
        let ignores = policy
            .ignore
            .iter()
            .map(|i| {
                let expired = i.expires.is_some_and(|e| e < today);
                let applied = versions
                    .iter()
                    .flat_map(|v| v.findings.iter())
                    .filter(|f| !expired && (f.id == i.id || f.aliases.contains(&i.id)))
                    .count();
                if expired {
                    tracing::warn!(
                        "the ignore of {} expired on {}; it no longer applies",
                        i.id,
                        i.expires.map(|d| d.to_string()).unwrap_or_default()
                    );
                }
                IgnoreStatus {
                    id: i.id.clone(),
                    reason: i.reason.clone(),
                    expires: i.expires.map(|d| d.to_string()),
                    expired,
                    applied,
                }
            })
            .collect();
        Audit {
            generated_at,
            mirror_name: mirror_name.to_string(),
            upstream,
            status: loaded.status,
            banner: loaded.banner.clone(),
            snapshot: loaded.info.clone(),
            policy: policy.clone(),
            versions,
            advisories,
            ignores,
            tampering,
        }
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            projects: self.versions.iter().map(|v| &v.project).collect::<BTreeSet<_>>().len(),
            versions: self.versions.len(),
            files: self.versions.iter().map(|v| v.files.len()).sum(),
            ..Counts::default()
        };
        for v in &self.versions {
            c.vulnerable_versions += usize::from(v.active().next().is_some());
            c.blocked_versions += usize::from(v.blocked);
            for f in &v.findings {
                if f.ignored.is_some() {
                    c.ignored += 1;
                    continue;
                }
                match f.severity {
                    Severity::Critical => c.critical += 1,
                    Severity::High => c.high += 1,
                    Severity::Medium => c.medium += 1,
                    Severity::Low => c.low += 1,
                    Severity::Unknown => c.unknown += 1,
                }
            }
        }
        c
    }

    /// Findings at or above `fail_on` that no ignore covers.
    pub fn breaches(&self) -> Vec<(&AuditedVersion, &AuditFinding)> {
        self.versions
            .iter()
            .flat_map(|v| v.active().filter(|f| self.policy.fail_on.triggered_by(f.effective)).map(move |f| (v, f)))
            .collect()
    }

    /// Versions the policy leaves out of the index.
    pub fn blocked(&self) -> BTreeSet<(ProjectName, String)> {
        self.versions.iter().filter(|v| v.blocked).map(|v| (v.project.clone(), v.version.clone())).collect()
    }

    pub fn exit(&self) -> Exit {
        if self.breaches().is_empty() { Exit::Success } else { Exit::Policy }
    }

    /// What the landing page shows.
    pub fn landing(&self) -> crate::render::SecuritySummary {
        let mut marks: BTreeMap<ProjectName, Vec<crate::render::VulnMark>> = BTreeMap::new();
        for v in &self.versions {
            let active: Vec<&AuditFinding> = v.active().collect();
            if active.is_empty() && !v.blocked {
                continue;
            }
            marks.entry(v.project.clone()).or_default().push(crate::render::VulnMark {
                version: v.version.clone(),
                severity: active.iter().map(|f| f.severity).max().unwrap_or(Severity::Unknown),
                advisories: active.len(),
                blocked: v.blocked,
            });
        }
        let counts = self.counts();
        crate::render::SecuritySummary {
            banner: self.banner.clone(),
            vulnerable_versions: counts.vulnerable_versions,
            blocked_versions: counts.blocked_versions,
            snapshot: match &self.snapshot {
                Some(s) => format!(
                    "{} advisories, built {}{}",
                    s.advisories,
                    s.built_at,
                    s.age_days.map(|d| format!(" ({d} day(s) before this build)")).unwrap_or_default()
                ),
                None => "none".into(),
            },
            marks,
        }
    }
}

/// Mirrored versions from site files: listed files grouped by version.
pub fn mirrored_versions(files: &[crate::render::SiteFile]) -> Vec<Mirrored> {
    let mut by: BTreeMap<(ProjectName, String), Vec<String>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.listed) {
        by.entry((f.project.clone(), f.version.to_string())).or_default().push(f.filename.clone());
    }
    by.into_iter().map(|((p, v), fs)| (p, v, fs)).collect()
}
