//! `reports/security.html`: one self-contained page (inline CSS, no external
//! assets, readable without JavaScript; a small inline script only sorts and
//! filters). Every upstream or advisory string is escaped by the template,
//! reference links are emitted only for http(s) URLs, and a Content-Security-
//! Policy allows no script but the page's own (by hash): even markup that got
//! through could not run.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;

use super::{DiagnosticView, Inputs, TamperingView};
use crate::advisories::severity::Severity;
use crate::audit::{IgnoreStatus, Status};
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
    advisories: Vec<AdvisoryView>,
    ignores: &'a [IgnoreStatus],
    expired_ignores: usize,
    tampering: Vec<TamperingView>,
    diagnostics: Vec<DiagnosticView>,
    version: &'static str,
    script: &'a str,
    script_hash: String,
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

#[derive(Serialize)]
struct Row {
    project: String,
    version: String,
    version_key: String,
    severity: Severity,
    ranked_as: Option<Severity>,
    rank: u8,
    /// A malicious-package record: shown, ranked and sorted above critical.
    malicious: bool,
    score: String,
    score_key: String,
    id: String,
    anchor: String,
    aliases: String,
    fixed_in: String,
    /// The version to upgrade to, and whether the mirror has it.
    upgrade: Option<String>,
    blocked: bool,
    ignored: Option<String>,
    status_key: u8,
    /// On a version's first row: the landing page links here.
    version_anchor: Option<String>,
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
    references: Vec<RefView>,
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

pub fn render(inputs: Inputs<'_>, templates: &Templates) -> Result<Vec<u8>, TemplateError> {
    let audit = inputs.audit;
    let script = templates.asset("security.js")?;
    let script_hash =
        base64::engine::general_purpose::STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(script.as_bytes()));
    let mut rows = Vec::new();
    let mut affects: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for v in &audit.versions {
        // A sortable key: zero-padded release segments.
        let version_key = v.version.release().iter().take(6).map(|n| format!("{n:08}")).collect::<Vec<_>>().join(".");
        for f in &v.findings {
            affects.entry(&f.id).or_default().push(format!("{} {}", v.project, v.version));
            rows.push(Row {
                project: v.project.to_string(),
                version: v.version.to_string(),
                version_key: version_key.clone(),
                severity: f.severity,
                ranked_as: (f.severity == Severity::Unknown && f.effective != Severity::Unknown).then_some(f.effective),
                rank: if f.malicious { 6 } else { rank(f.effective) },
                malicious: f.malicious,
                score: f.score.map(|s| format!("{s:.1}")).unwrap_or_else(|| "–".into()),
                score_key: f.score.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-1".into()),
                id: f.id.clone(),
                anchor: anchor(&f.id),
                aliases: f.aliases.join(", "),
                fixed_in: if f.fixed_in.is_empty() { "none listed".into() } else { f.fixed_in.join(", ") },
                upgrade: v
                    .upgrade_to
                    .as_ref()
                    .map(|u| format!("{u}{}", if v.upgrade_mirrored { " (mirrored)" } else { " (not mirrored)" })),
                blocked: v.blocked,
                ignored: f.ignored.as_ref().map(|i| match &i.expires {
                    Some(e) => format!("{} (until {e})", i.reason),
                    None => i.reason.clone(),
                }),
                status_key: if v.blocked { 2 } else { u8::from(f.ignored.is_some()) },
                version_anchor: None,
            });
        }
    }
    // Worst first without JavaScript; ties by project, version and id.
    rows.sort_by(|a, b| {
        b.rank
            .cmp(&a.rank)
            .then_with(|| {
                b.score_key.parse::<f64>().unwrap_or(-1.0).total_cmp(&a.score_key.parse::<f64>().unwrap_or(-1.0))
            })
            .then_with(|| a.project.cmp(&b.project))
            .then_with(|| a.version_key.cmp(&b.version_key))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut anchored = std::collections::BTreeSet::new();
    for r in &mut rows {
        if anchored.insert((r.project.clone(), r.version.clone())) {
            r.version_anchor = Some(crate::index::version_anchor(&r.project, &r.version));
        }
    }
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
            summary: a.summary.clone(),
            details: a.details.trim().to_string(),
            published: a.published.clone(),
            modified: a.modified.clone(),
            affects: affects.get(a.id.as_str()).map(|v| v.join(", ")).unwrap_or_default(),
            references: a
                .references
                .iter()
                .map(|(kind, url)| RefView { kind: kind.clone(), url: url.clone(), safe: safe_url(url) })
                .collect(),
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
        advisories,
        ignores: &audit.ignores,
        expired_ignores: audit.ignores.iter().filter(|i| i.expired).count(),
        tampering: super::tampering_views(&audit.tampering),
        diagnostics: super::diagnostic_views(inputs.diagnostics),
        version: env!("CARGO_PKG_VERSION"),
        script: &script,
        script_hash,
    };
    Ok(templates.render("security.html", &view)?.into_bytes())
}
