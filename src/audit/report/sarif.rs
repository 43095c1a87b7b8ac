//! `reports/security.sarif`: SARIF 2.1.0, one result per vulnerability per
//! mirrored version (aliases grouped, never repeated), one rule per
//! vulnerability with help URIs, ignored findings as suppressed results.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::views::Inputs;
use crate::advisories::severity::Severity;
use crate::audit::AdvisoryText;
use crate::diagnostics::{Diagnostic, Level};

/// Where an id is documented: osv.dev knows PYSEC/GHSA/OSV ids and aliases.
pub fn help_uri(id: &str) -> String {
    format!(
        "https://osv.dev/vulnerability/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}

pub(crate) fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

pub(crate) fn rule(a: &AdvisoryText, effective: Severity) -> Value {
    let mut help = format!(
        "{}\n\nAliases: {}\n",
        a.summary,
        if a.aliases.is_empty() { "none".into() } else { a.aliases.join(", ") }
    );
    for (_, url) in &a.references {
        help.push_str(&format!("- {url}\n"));
    }
    let mut properties = json!({
        "tags": ["security", "vulnerability", "python"],
        "aliases": a.aliases,
        "severity": a.severity.as_str(),
    });
    if let Some(score) = a.score {
        // GitHub code scanning ranks results by this property.
        properties["security-severity"] = json!(format!("{score:.1}"));
    }
    if let Some(v) = &a.vector {
        properties["cvss"] = json!(v);
    }
    json!({
        "id": a.id,
        "name": a.id,
        "shortDescription": {"text": if a.summary.is_empty() { a.id.clone() } else { a.summary.clone() }},
        "fullDescription": {"text": if a.details.is_empty() { a.summary.clone() } else { a.details.clone() }},
        "helpUri": help_uri(&a.id),
        "help": {"text": help},
        "defaultConfiguration": {"level": level(effective)},
        "properties": properties,
    })
}

/// The run's diagnostics as tool execution notifications: what a code
/// scanning UI shows about the run itself rather than about a finding.
fn notifications(banner: Option<&str>, diagnostics: &[Diagnostic]) -> Vec<Value> {
    let mut out: Vec<Value> = banner.map(|b| json!({"level": "warning", "message": {"text": b}})).into_iter().collect();
    for d in diagnostics {
        let level = match d.level() {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        };
        let mut n = json!({
            "level": level,
            "message": {"text": d.to_string()},
            "descriptor": {"id": d.code()},
            "properties": {"project": d.project().as_str()},
        });
        if let Some(file) = d.filename() {
            n["locations"] = json!([{"physicalLocation": {"artifactLocation": {
                "uri": format!("packages/{}/{}", d.project(), file), "uriBaseId": "MIRROR"}}}]);
        }
        if let Some(v) = d.version() {
            n["properties"]["version"] = json!(v.to_string());
        }
        out.push(n);
    }
    out
}

pub fn render(inputs: Inputs<'_>) -> Vec<u8> {
    let audit = inputs.audit;
    // Rules first, in id order, so result.ruleIndex is stable.
    let mut effective: BTreeMap<&str, Severity> = BTreeMap::new();
    for f in audit.versions.iter().flat_map(|v| v.findings.iter()) {
        effective.entry(&f.id).or_insert(f.effective);
    }
    let rule_index: BTreeMap<&str, usize> =
        audit.advisories.keys().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let rules: Vec<Value> = audit
        .advisories
        .values()
        .map(|a| rule(a, effective.get(a.id.as_str()).copied().unwrap_or(a.severity)))
        .collect();
    let mut results = Vec::new();
    for v in &audit.versions {
        for f in &v.findings {
            let fixed = if f.fixed_in.is_empty() {
                "No fixed version is listed.".to_string()
            } else {
                format!("Fixed in {}.", f.fixed_in.join(", "))
            };
            let blocked = if v.blocked { " The version is blocked: it is left out of the index." } else { "" };
            let mut result = json!({
                "ruleId": f.id,
                "ruleIndex": rule_index[f.id.as_str()],
                "level": level(f.effective),
                "message": {"text": format!("{} {} is affected by {} ({} severity): {} {fixed}{blocked}", v.project, v.version, f.id, f.severity, f.summary)},
                "locations": v.files.iter().map(|file| json!({
                    "physicalLocation": {"artifactLocation": {"uri": format!("packages/{}/{}", v.project, file), "uriBaseId": "MIRROR"}}
                })).collect::<Vec<_>>(),
                "partialFingerprints": {"airlockFinding/v1": format!("{}/{}/{}", v.project, v.version, f.id)},
                "properties": {
                    "project": v.project.as_str(),
                    "version": v.version.to_string(),
                    "aliases": f.aliases,
                    "fixedIn": f.fixed_in,
                    "blocked": v.blocked,
                },
            });
            if let Some(ig) = &f.ignored {
                result["suppressions"] = json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": match &ig.expires { Some(e) => format!("{} (until {e})", ig.reason), None => ig.reason.clone() },
                }]);
            }
            results.push(result);
        }
    }
    let failed = inputs.diagnostics.iter().any(Diagnostic::fails_run);
    let mut invocation = json!({"executionSuccessful": !failed});
    let notes = notifications(audit.banner.as_deref(), inputs.diagnostics);
    if !notes.is_empty() {
        invocation["toolExecutionNotifications"] = json!(notes);
    }
    log(
        rules,
        results,
        json!({
            "originalUriBaseIds": {"MIRROR": {"description": {"text": "The root of the published mirror tree."}}},
            "invocations": [invocation],
            "properties": {
                "mirror": audit.mirror_name,
                "status": audit.status,
                "snapshotSha256": audit.snapshot.as_ref().map(|s| s.sha256.clone()),
            },
        }),
    )
}

/// A SARIF 2.1.0 log of one airlock run: the tool with its `rules`, the
/// `results`, and the run's other members (`run`, an object), serialized.
pub(crate) fn log(rules: Vec<Value>, results: Vec<Value>, mut run: Value) -> Vec<u8> {
    run["tool"] = json!({"driver": {
        "name": "airlock",
        "version": env!("CARGO_PKG_VERSION"),
        "informationUri": "https://osv.dev/",
        "rules": rules,
    }});
    run["results"] = json!(results);
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    // A JSON value serializes into memory without error.
    let mut out = serde_json::to_vec_pretty(&log).unwrap_or_default();
    out.push(b'\n');
    out
}
