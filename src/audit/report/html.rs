//! `reports/security.html`: one self-contained page (inline CSS, no external
//! assets, readable without JavaScript; a small inline script only sorts and
//! filters). Every upstream or advisory string is escaped by the template,
//! reference links are emitted only for http(s) URLs, and a Content-Security-
//! Policy allows no script but the page's own (by hash): even markup that got
//! through could not run.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use sha2::Digest as _;

use super::views::{DiagnosticView, Inputs, TamperingView};
use crate::advisories::severity::Severity;
use crate::audit::{AuditFinding, AuditedVersion, IgnoreStatus, Status};
use crate::index::{TemplateError, Templates};

#[derive(Serialize)]
struct View<'a> {
    name: &'a str,
    generated_at: String,
    upstream: Option<&'a str>,
    status: Status,
    banner: Option<&'a str>,
    snapshot: Option<SnapshotView<'a>>,
    policy: PolicyView,
    counts: crate::audit::Counts,
    rows: Vec<Row>,
    /// Why some findings are of unknown severity, when some are.
    unknown_note: Option<String>,
    advisories: Vec<AdvisoryView>,
    ignores: &'a [IgnoreStatus],
    expired_ignores: usize,
    tampering: Vec<TamperingView>,
    /// What the admission gate holds (with when each is due) and let in
    /// early, what was withdrawn, the projects' PEP 792 statuses.
    gate: super::admission::GateViews,
    /// Who published the served files (PEP 740).
    provenance: &'a super::provenance::ProvenanceView,
    diagnostics: Vec<DiagnosticView>,
    /// Upstream files the run skipped: collapsed, they can be many.
    skipped: Vec<DiagnosticView>,
    version: &'static str,
    script: &'a str,
    script_hash: String,
    project_pages: bool,
}

#[derive(Serialize)]
struct SnapshotView<'a> {
    built_at: &'a str,
    age: Option<String>,
    advisories: usize,
    sha256: &'a str,
    sources: &'a [String],
}

#[derive(Serialize)]
struct PolicyView {
    fail_on: String,
    block: String,
    unknown_severity: String,
    require_advisories: bool,
}

/// One vulnerable version: its findings grouped, worst first.
#[derive(Serialize)]
struct Row {
    project: String,
    version: String,
    version_key: String,
    /// The worst finding's rating (active findings first).
    severity: Severity,
    ranked_as: Option<Severity>,
    rank: u8,
    /// A malicious-package record: shown, ranked and sorted above critical.
    malicious: bool,
    score: String,
    score_key: String,
    /// Worst first; past `shown`, behind a disclosure.
    findings: Vec<FindingView>,
    shown: usize,
    count: usize,
    /// The version to upgrade to, and whether the mirror has it.
    upgrade: String,
    status: StatusView,
    /// Every finding is ignored.
    ignored: bool,
    /// The landing page links here.
    version_anchor: String,
}

#[derive(Serialize)]
struct FindingView {
    id: String,
    anchor: String,
    severity: Severity,
    malicious: bool,
    /// Why it is ignored, when it is.
    ignored: Option<String>,
    summary: String,
}

/// What the mirror does about a version.
#[derive(Serialize)]
struct StatusView {
    /// `blocked`, `ignored` or `served`.
    tag: &'static str,
    text: String,
    key: u8,
}

#[derive(Serialize)]
struct AdvisoryView {
    id: String,
    anchor: String,
    severity: Severity,
    score: Option<String>,
    vector: Option<String>,
    aliases: String,
    summary: String,
    details: String,
    published: Option<String>,
    modified: Option<String>,
    affects: String,
    /// Past `references_shown`, behind a disclosure.
    references: Vec<RefView>,
    references_shown: usize,
}

#[derive(Serialize)]
struct RefView {
    kind: Option<String>,
    url: String,
    safe: bool,
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Unknown => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

/// An id as an HTML anchor: letters, digits and dashes only.
fn anchor(id: &str) -> String {
    format!("adv-{}", id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect::<String>())
}

/// Only absolute http(s) URLs become links; `javascript:`, `data:` and
/// anything relative are shown as text.
fn safe_url(url: &str) -> bool {
    url::Url::parse(url.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) && !url.contains(['"', '<', '>'])
}

/// How many of a version's findings show before "N more".
const SHOWN: usize = 3;

fn finding_rank(f: &AuditFinding) -> u8 {
    if f.malicious { 6 } else { rank(f.effective) }
}

/// One vulnerable version's row: its findings worst first (ignored last),
/// the upgrade target, and what the mirror does about it.
fn row(v: &AuditedVersion) -> Row {
    // A sortable key: zero-padded release segments.
    let version_key = v.version.release().iter().take(6).map(|n| format!("{n:08}")).collect::<Vec<_>>().join(".");
    let mut findings: Vec<&AuditFinding> = v.findings.iter().collect();
    findings.sort_by(|a, b| {
        a.ignored
            .is_some()
            .cmp(&b.ignored.is_some())
            .then_with(|| finding_rank(b).cmp(&finding_rank(a)))
            .then_with(|| b.score.unwrap_or(-1.0).total_cmp(&a.score.unwrap_or(-1.0)))
            .then_with(|| a.id.cmp(&b.id))
    });
    let worst = findings[0];
    let ignored = v.active().next().is_none();
    let views: Vec<FindingView> = findings
        .iter()
        .map(|f| FindingView {
            id: f.id.clone(),
            anchor: anchor(&f.id),
            severity: f.severity,
            malicious: f.malicious,
            ignored: f.ignored.as_ref().map(|i| match &i.expires {
                Some(e) => format!("{} (until {e})", i.reason),
                None => i.reason.clone(),
            }),
            summary: f.summary.clone(),
        })
        .collect();
    // The score of what counts: the active findings, else (all ignored) all.
    let counted = findings.iter().filter(|f| ignored || f.ignored.is_none());
    let score = counted.filter_map(|f| f.score).reduce(f64::max);
    let upgrade = match &v.upgrade_to {
        Some(u) if v.upgrade_mirrored => format!("{u} (mirrored)"),
        Some(u) => format!("{u} (not mirrored)"),
        None => "no fixed version known".to_string(),
    };
    let ignored_count = v.findings.len() - v.active().count();
    let status = if v.blocked {
        StatusView { tag: "blocked", text: "left out of the index".into(), key: 2 }
    } else if ignored {
        StatusView { tag: "ignored", text: "every finding is ignored by the policy".into(), key: 0 }
    } else {
        let text = if ignored_count > 0 { format!("listed; {ignored_count} ignored") } else { "listed".into() };
        StatusView { tag: "served", text, key: 1 }
    };
    Row {
        project: v.project.to_string(),
        version: v.version.to_string(),
        version_anchor: crate::index::version_anchor(v.project.as_str(), &v.version.to_string()),
        version_key,
        severity: worst.severity,
        ranked_as: (worst.severity == Severity::Unknown && worst.effective != Severity::Unknown)
            .then_some(worst.effective),
        rank: finding_rank(worst),
        malicious: worst.malicious,
        score: score.map(|s| format!("{s:.1}")).unwrap_or_else(|| "–".into()),
        score_key: score.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-1".into()),
        count: findings.len(),
        shown: collapsed_at(findings.len(), SHOWN),
        findings: views,
        upgrade,
        status,
        ignored,
    }
}

/// Why findings are "unknown": no record of the vulnerability carries a
/// CVSS vector, and which sources do carry them.
fn unknown_note(audit: &crate::audit::Audit) -> Option<String> {
    let unknown: BTreeMap<&str, &AuditFinding> = audit
        .versions
        .iter()
        .flat_map(|v| v.findings.iter())
        .filter(|f| f.severity == Severity::Unknown && !f.malicious)
        .map(|f| (f.id.as_str(), f))
        .collect();
    if unknown.is_empty() {
        return None;
    }
    let findings =
        audit.versions.iter().flat_map(|v| v.findings.iter()).filter(|f| unknown.contains_key(f.id.as_str()));
    let without_ghsa =
        unknown.values().filter(|f| !f.id.starts_with("GHSA-") && !f.aliases.iter().any(|a| a.starts_with("GHSA-")));
    let without_ghsa = without_ghsa.count();
    let mut note = format!(
        "{} finding(s) of {} vulnerabilit{} have unknown severity: no record of them in the advisory snapshot \
         carries a CVSS vector. The PyPA advisory database (PYSEC ids) publishes no CVSS scores; GitHub's \
         advisories (GHSA ids) usually carry one, and osv.dev's PyPI data includes both.",
        findings.count(),
        unknown.len(),
        if unknown.len() == 1 { "y" } else { "ies" },
    );
    if without_ghsa > 0 {
        note.push_str(&format!(
            " {without_ghsa} of them have no GHSA record in this snapshot: a snapshot built from osv.dev's PyPI \
             data (or with the GitHub advisory database as a second source) may rate them."
        ));
    }
    note.push_str(&format!(" The policy ranks unknown as {}.", audit.policy.unknown_severity));
    Some(note)
}

/// References shown before the rest are collapsed.
const REFERENCES: usize = 5;

/// How many items of a list show before the rest collapse: all of a
/// short one (hiding a single item saves nothing), the first `few` of a
/// long one.
fn collapsed_at(len: usize, few: usize) -> usize {
    if len > few + 1 { few } else { len }
}

pub fn render(inputs: Inputs<'_>, templates: &Templates) -> Result<Vec<u8>, TemplateError> {
    let audit = inputs.audit;
    let script = templates.asset("security.js")?;
    let script_hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
    let mut affects: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for v in &audit.versions {
        for f in &v.findings {
            affects.entry(&f.id).or_default().push(format!("{} {}", v.project, v.version));
        }
    }
    let mut rows: Vec<Row> = audit.versions.iter().filter(|v| !v.findings.is_empty()).map(row).collect();
    // Worst first without JavaScript; ties by project and version.
    rows.sort_by(|a, b| {
        b.rank
            .cmp(&a.rank)
            .then_with(|| {
                b.score_key.parse::<f64>().unwrap_or(-1.0).total_cmp(&a.score_key.parse::<f64>().unwrap_or(-1.0))
            })
            .then_with(|| a.project.cmp(&b.project))
            .then_with(|| a.version_key.cmp(&b.version_key))
    });
    let advisories = audit
        .advisories
        .values()
        .map(|a| AdvisoryView {
            id: a.id.clone(),
            anchor: anchor(&a.id),
            severity: a.severity,
            score: a.score.map(|s| format!("{s:.1}")),
            vector: a.vector.clone(),
            aliases: a.aliases.join(", "),
            // A summary taken from the details' first line is not said twice.
            summary: if a.details.trim_start().starts_with(a.summary.trim_end_matches('…')) {
                String::new()
            } else {
                a.summary.clone()
            },
            details: a.details.trim().to_string(),
            published: a.published.clone(),
            modified: a.modified.clone(),
            affects: affects.get(a.id.as_str()).map(|v| v.join(", ")).unwrap_or_default(),
            references: a
                .references
                .iter()
                .map(|(kind, url)| RefView { kind: kind.clone(), url: url.clone(), safe: safe_url(url) })
                .collect(),
            references_shown: collapsed_at(a.references.len(), REFERENCES),
        })
        .collect();
    let view = View {
        name: &audit.mirror_name,
        generated_at: audit.generated_at.to_string(),
        upstream: audit.upstream.as_deref(),
        status: audit.status,
        banner: audit.banner.as_deref(),
        snapshot: audit.snapshot.as_ref().map(|s| SnapshotView {
            built_at: &s.built_at,
            age: s.age_days.map(|d| format!("{d} day(s) before this report")),
            advisories: s.advisories,
            sha256: &s.sha256,
            sources: &s.sources,
        }),
        policy: PolicyView {
            fail_on: audit.policy.fail_on.to_string(),
            block: audit.policy.block.to_string(),
            unknown_severity: audit.policy.unknown_severity.to_string(),
            require_advisories: audit.policy.require_advisories,
        },
        counts: audit.counts(),
        rows,
        unknown_note: unknown_note(audit),
        advisories,
        ignores: &audit.ignores,
        expired_ignores: audit.ignores.iter().filter(|i| i.expired).count(),
        tampering: super::views::tampering_views(&audit.tampering),
        gate: super::admission::GateViews::of(inputs.diagnostics, inputs.withdrawn, inputs.statuses),
        provenance: inputs.provenance,
        diagnostics: super::views::diagnostic_views(
            &inputs
                .diagnostics
                .iter()
                .filter(|d| !matches!(d, crate::diagnostics::Diagnostic::Skipped { .. }))
                .cloned()
                .collect::<Vec<_>>(),
        ),
        skipped: super::views::diagnostic_views(
            &inputs
                .diagnostics
                .iter()
                .filter(|d| matches!(d, crate::diagnostics::Diagnostic::Skipped { .. }))
                .cloned()
                .collect::<Vec<_>>(),
        ),
        version: env!("CARGO_PKG_VERSION"),
        script: &script,
        script_hash,
        project_pages: inputs.project_pages,
    };
    Ok(templates.render("security.html", &view)?.into_bytes())
}
