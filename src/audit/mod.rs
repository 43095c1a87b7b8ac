//! The security join and the policy.
//!
//! Every mirrored (project, version) is checked against the advisory
//! snapshot, in parallel, and sorted (projects by name, versions by PEP 440,
//! advisories by id) so equal inputs give equal reports. One [`Audit`] value
//! then feeds the simple index (blocking), every report and the exit code,
//! so they can never disagree.

pub mod load;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

pub use self::load::{AuditError, LoadedSnapshot, SnapshotInfo, Status, load_snapshot};
use crate::advisories::severity::Severity;
use crate::diagnostics::{Diagnostic, Tampering};
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::exit::Exit;
use crate::manifest::{Ignore, Policy};

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
    /// A malicious-package record (OSV `MAL-...`, or from the
    /// malicious-packages feed): they carry no CVSS, so a severity policy
    /// alone would rank them "unknown"; they rank above critical.
    pub malicious: bool,
}

#[derive(Debug, Clone)]
pub struct AuditedVersion {
    pub project: ProjectName,
    pub version: Version,
    /// Its files' names (a large mirror holds one row per version: names,
    /// not parsed filenames).
    pub files: Vec<Box<str>>,
    pub findings: Vec<AuditFinding>,
    pub blocked: bool,
    /// The lowest version above this one that none of its advisories
    /// affect, from the snapshot (vulnerable versions only; `None` when no
    /// fix is known).
    pub upgrade_to: Option<Version>,
    /// Whether `upgrade_to` is in the mirror.
    pub upgrade_mirrored: bool,
}

/// The lowest version above `version` that none of `findings` affect: each
/// candidate is a version an advisory names as fixed, checked against the
/// snapshot in ascending order (a fix of one advisory may still be affected
/// by another).
fn upgrade_to(
    s: &crate::advisories::Snapshot,
    project: &ProjectName,
    version: &Version,
    findings: &[crate::advisories::snapshot::Finding],
) -> Option<Version> {
    let ids: BTreeSet<&str> = findings.iter().map(|f| s.id(f)).collect();
    let mut candidates: Vec<&Version> =
        findings.iter().flat_map(|f| f.fixed_in.iter()).filter(|c| *c > version).collect();
    candidates.sort();
    candidates.dedup();
    candidates
        .into_iter()
        .find(|c| s.check_version(project.as_str(), c).iter().all(|f| !ids.contains(s.id(f))))
        .cloned()
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

impl AdvisoryText {
    /// The text of the advisory a finding is reported under.
    pub(crate) fn of(s: &crate::advisories::Snapshot, f: &AuditFinding) -> AdvisoryText {
        let a = s.text(f.advisory);
        AdvisoryText {
            id: s.advisories[f.advisory].id.clone(),
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
    }
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

/// The audit in a few lines, for the log.
#[derive(Debug, Clone)]
pub struct Findings {
    /// Unaudited: nothing was checked.
    pub status: Status,
    pub counts: Counts,
    /// Findings at or above `fail_on`, one line each.
    pub breaches: Vec<String>,
    pub fail_on: crate::advisories::severity::Threshold,
    /// Every vulnerable version, worst first.
    pub top: Vec<TopFinding>,
}

#[derive(Debug, Clone)]
pub struct TopFinding {
    pub project: ProjectName,
    pub version: Version,
    /// A malicious release: above any severity.
    pub malicious: bool,
    /// The worst rating as the policy ranks it (`unknown` as
    /// `unknown_severity`), as every report ranks it.
    pub worst: Severity,
    /// The worst came from an advisory without a rating.
    pub worst_unrated: bool,
    pub ids: Vec<String>,
    pub blocked: bool,
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

/// A mirrored version to audit, with its files.
#[derive(Debug, Clone)]
pub struct Mirrored {
    pub project: ProjectName,
    pub version: Version,
    pub files: Vec<Box<str>>,
}

/// What the reports say about the mirror itself.
#[derive(Debug, Clone)]
pub struct MirrorInfo {
    pub name: String,
    pub upstream: Option<String>,
}

/// The ignore (by id or alias, not yet expired on `today`) that covers a finding.
pub(crate) fn ignore_applies<'a>(
    ignores: &'a [Ignore],
    today: jiff::civil::Date,
    id: &str,
    aliases: &[String],
) -> Option<&'a Ignore> {
    ignores.iter().filter(|i| i.expires.is_none_or(|e| e >= today)).find(|i| i.id == id || aliases.contains(&i.id))
}

/// One finding of the snapshot as the audit sees it: ids, the ignore that
/// applies, the rating the policy compares, the malicious mark.
pub(crate) fn finding(
    s: &crate::advisories::Snapshot,
    f: &crate::advisories::snapshot::Finding,
    policy: &Policy,
    today: jiff::civil::Date,
) -> AuditFinding {
    let id = s.id(f).to_string();
    let aliases: Vec<String> = s.aliases(f).map(str::to_string).collect();
    let ignored = ignore_applies(&policy.ignore, today, &id, &aliases)
        .map(|i| IgnoreUse { reason: i.reason.clone(), expires: i.expires.map(|d| d.to_string()) });
    AuditFinding {
        malicious: f.malicious,
        advisory: f.best,
        effective: if f.severity == Severity::Unknown { policy.unknown_severity } else { f.severity },
        severity: f.severity,
        score: f.score,
        fixed_in: f.fixed_in.iter().map(ToString::to_string).collect(),
        summary: s.summary(f).to_string(),
        id,
        aliases,
        ignored,
    }
}

impl Audit {
    /// Join every mirrored version with the snapshot and apply the policy.
    pub fn join(
        mirrored: Vec<Mirrored>,
        loaded: &LoadedSnapshot,
        policy: &Policy,
        generated_at: jiff::Timestamp,
        mirror: &MirrorInfo,
        tampering: Vec<Tampering>,
    ) -> Audit {
        let today = generated_at.to_zoned(jiff::tz::TimeZone::UTC).date();
        // Owned keys (reference-counted, cheap): the versions move into the
        // audit below, their file lists with them, never copied.
        let mirrored_set: std::collections::HashSet<(ProjectName, Version)> =
            mirrored.iter().map(|m| (m.project.clone(), m.version.clone())).collect();
        if let Some(s) = loaded.snapshot.as_ref().filter(|_| mirrored.len() >= crate::advisories::snapshot::PRELOAD_AT)
        {
            s.preload();
        }
        // Parallel over versions; the sort below fixes the order.
        let mut versions: Vec<AuditedVersion> = mirrored
            .into_par_iter()
            .map(|Mirrored { project, version, mut files }| {
                let raw = loaded.snapshot.as_ref().map(|s| s.check_version(project.as_str(), &version));
                let upgrade = match (&loaded.snapshot, &raw) {
                    (Some(s), Some(r)) if !r.is_empty() => upgrade_to(s, &project, &version, r),
                    _ => None,
                };
                let upgrade_mirrored =
                    upgrade.as_ref().is_some_and(|u| mirrored_set.contains(&(project.clone(), u.clone())));
                let findings = match (&loaded.snapshot, &raw) {
                    (Some(s), Some(raw)) => raw.iter().map(|f| finding(s, f, policy, today)).collect(),
                    _ => Vec::new(),
                };
                // Malicious releases are blocked whatever `block` says; an
                // ignore (a person's reasoned decision) still applies.
                let blocked = findings.iter().any(|f| {
                    f.ignored.is_none()
                        && (policy.block.triggered_by(f.effective)
                            || (f.malicious && policy.malicious == crate::manifest::Malicious::Block))
                });
                files.sort();
                AuditedVersion { project, version, files, findings, blocked, upgrade_to: upgrade, upgrade_mirrored }
            })
            .collect();
        versions.sort_by(|a, b| a.project.cmp(&b.project).then_with(|| a.version.cmp(&b.version)));

        let mut advisories = BTreeMap::new();
        if let Some(s) = &loaded.snapshot {
            for f in versions.iter().flat_map(|v| v.findings.iter()) {
                advisories.entry(f.id.clone()).or_insert_with(|| AdvisoryText::of(s, f));
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
            mirror_name: mirror.name.clone(),
            upstream: mirror.upstream.clone(),
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

    /// Findings at or above `fail_on` that no ignore covers, of versions
    /// the tree serves: a blocked version is listed, not a breach (the
    /// policy kept it out).
    pub fn breaches(&self) -> Vec<(&AuditedVersion, &AuditFinding)> {
        self.versions
            .iter()
            .filter(|v| !v.blocked)
            .flat_map(|v| v.active().filter(|f| self.policy.fail_on.triggered_by(f.effective)).map(move |f| (v, f)))
            .collect()
    }

    /// Versions the policy leaves out of the index.
    pub fn blocked(&self) -> BTreeSet<(ProjectName, Version)> {
        self.versions.iter().filter(|v| v.blocked).map(|v| (v.project.clone(), v.version.clone())).collect()
    }

    /// A diagnostic for every blocked version.
    pub fn blocked_diagnostics(&self) -> impl Iterator<Item = Diagnostic> + '_ {
        self.versions.iter().filter(|v| v.blocked).map(|v| Diagnostic::Blocked {
            project: v.project.clone(),
            version: v.version.clone(),
            advisories: v.active().map(|f| f.id.clone()).collect(),
            malicious: v.active().any(|f| f.malicious),
        })
    }

    pub fn exit(&self) -> Exit {
        if self.breaches().is_empty() { Exit::Success } else { Exit::Policy }
    }

    /// What a run's log says about the audit: the counts, and the worst
    /// versions first.
    pub fn findings(&self) -> Findings {
        let mut top: Vec<TopFinding> = self
            .versions
            .iter()
            .filter_map(|v| {
                let active: Vec<&AuditFinding> = v.active().collect();
                let worst = active.iter().max_by_key(|f| (f.effective, f.severity))?;
                Some(TopFinding {
                    project: v.project.clone(),
                    version: v.version.clone(),
                    malicious: active.iter().any(|f| f.malicious),
                    worst: worst.effective,
                    worst_unrated: worst.severity == Severity::Unknown,
                    ids: active.iter().map(|f| f.id.clone()).collect(),
                    blocked: v.blocked,
                })
            })
            .collect();
        // Malicious, then worst first; then by name and version, so the
        // lines are stable.
        top.sort_by(|a, b| {
            (b.malicious, b.worst)
                .cmp(&(a.malicious, a.worst))
                .then_with(|| (&a.project, &a.version).cmp(&(&b.project, &b.version)))
        });
        Findings {
            status: self.status,
            counts: self.counts(),
            breaches: self
                .breaches()
                .iter()
                .map(|(v, f)| {
                    let ranked =
                        if f.effective != f.severity { format!(", ranked {}", f.effective) } else { String::new() };
                    format!(
                        "{} {} has {} ({}{ranked}) at or above fail_on = {}",
                        v.project, v.version, f.id, f.severity, self.policy.fail_on
                    )
                })
                .collect(),
            fail_on: self.policy.fail_on,
            top,
        }
    }

    /// What the landing page shows.
    pub fn landing(&self) -> crate::index::SecuritySummary {
        let mut marks: BTreeMap<ProjectName, Vec<crate::index::VulnMark>> = BTreeMap::new();
        for v in &self.versions {
            let active: Vec<&AuditFinding> = v.active().collect();
            if active.is_empty() && !v.blocked {
                continue;
            }
            marks.entry(v.project.clone()).or_default().push(crate::index::VulnMark {
                href: format!(
                    "reports/security.html#{}",
                    crate::index::version_anchor(v.project.as_str(), &v.version.to_string())
                ),
                version: v.version.to_string(),
                severity: active.iter().map(|f| f.severity).max().unwrap_or(Severity::Unknown),
                advisories: active.len(),
                blocked: v.blocked,
            });
        }
        let counts = self.counts();
        crate::index::SecuritySummary {
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
