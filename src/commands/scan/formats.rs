//! `airlock scan`'s output formats, each its own wire shape built from one
//! [`Scanned`]: pip-audit's columns and JSON (ignored findings left out, as
//! pip-audit leaves them out), markdown for CI step summaries, CycloneDX
//! 1.5 with a `vulnerabilities` section (VEX: ignored findings stay, with
//! the ignore as their analysis) and SARIF 2.1.0 (ignored findings as
//! suppressed results), located at the line that names each dependency.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::model::{Dependency, Scanned};
use crate::advisories::severity::Severity;
use crate::audit::report::sarif::{help_uri, level, log, rule};
use crate::audit::{AdvisoryText, AuditFinding};

// pip-audit's JSON layout (`pip-audit --format json`).
#[derive(Serialize)]
struct PipAudit {
    dependencies: Vec<PipAuditDependency>,
    fixes: Vec<Value>,
}

#[derive(Serialize)]
struct PipAuditDependency {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vulns: Option<Vec<PipAuditVuln>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_reason: Option<String>,
}

#[derive(Serialize)]
struct PipAuditVuln {
    id: String,
    fix_versions: Vec<String>,
    aliases: Vec<String>,
    description: String,
    /// airlock's additions, which pip-audit readers ignore.
    severity: Severity,
    malicious: bool,
}

fn active(findings: &[AuditFinding]) -> impl Iterator<Item = &AuditFinding> {
    findings.iter().filter(|f| f.ignored.is_none())
}

fn with_newline(mut text: String) -> String {
    text.push('\n');
    text
}

pub(super) fn pip_audit_json(scanned: &Scanned<'_>) -> String {
    let dependencies = scanned
        .dependencies
        .iter()
        .map(|(d, findings)| PipAuditDependency {
            name: d.name.clone(),
            version: d.version.clone(),
            vulns: d.version.as_ref().map(|_| {
                active(findings)
                    .map(|f| PipAuditVuln {
                        id: f.id.clone(),
                        fix_versions: f.fixed_in.clone(),
                        aliases: f.aliases.clone(),
                        description: f.summary.clone(),
                        severity: f.severity,
                        malicious: f.malicious,
                    })
                    .collect()
            }),
            skip_reason: d.skip.clone(),
        })
        .collect();
    // Plain structs serialize without error.
    with_newline(serde_json::to_string(&PipAudit { dependencies, fixes: Vec::new() }).unwrap_or_default())
}

/// Name, Version, ID, Fix Versions: one row per active finding.
fn rows(scanned: &Scanned<'_>) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    for (d, findings) in &scanned.dependencies {
        for f in active(findings) {
            let id = if f.malicious { format!("{} (MALICIOUS)", f.id) } else { f.id.clone() };
            out.push([d.name.clone(), d.version.clone().unwrap_or_default(), id, f.fixed_in.join(",")]);
        }
    }
    out
}

const HEADER: [&str; 4] = ["Name", "Version", "ID", "Fix Versions"];

/// pip-audit's default: a table of Name, Version, ID, Fix Versions.
pub(super) fn columns(scanned: &Scanned<'_>) -> String {
    let rows = rows(scanned);
    if rows.is_empty() {
        return "No known vulnerabilities found\n".to_string();
    }
    let header = HEADER.map(String::from);
    let mut width = [0usize; 4];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String; 4]| {
        let cells: Vec<String> = r.iter().zip(width).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", cells.join(" ").trim_end())
    };
    let mut out = line(&header);
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

pub(super) fn markdown(scanned: &Scanned<'_>) -> String {
    if rows(scanned).is_empty() {
        return "No known vulnerabilities found.\n".to_string();
    }
    let cell = |s: &str| s.replace('|', "\\|");
    // pip-audit's columns plus the severity (worst first), which a CI
    // summary reader triages by.
    let mut out = format!("| {} | Severity |\n|---|---|---|---|---|\n", HEADER.join(" | "));
    let mut rated: Vec<(&Dependency, &AuditFinding)> =
        scanned.dependencies.iter().flat_map(|(d, fs)| active(fs).map(move |f| (d, f))).collect();
    rated.sort_by_key(|(_, f)| std::cmp::Reverse((f.malicious, f.effective)));
    for (d, f) in rated {
        let id = if f.malicious { format!("{} (MALICIOUS)", f.id) } else { f.id.clone() };
        let severity = match (f.malicious, f.severity) {
            (true, _) => "malicious".to_string(),
            (false, Severity::Unknown) => format!("unknown (ranks {})", f.effective),
            (false, s) => s.to_string(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {severity} |\n",
            cell(&d.name),
            cell(d.version.as_deref().unwrap_or_default()),
            cell(&id),
            cell(&f.fixed_in.join(","))
        ));
    }
    out
}

/// The package URL of a PyPI release: the normalized name, the version
/// percent-encoded (a local version's `+` is not allowed as written).
fn purl(d: &Dependency) -> String {
    const VERSION: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_').remove(b'~');
    let version = d.version.as_deref().unwrap_or_default();
    format!("pkg:pypi/{}@{}", d.name, percent_encoding::utf8_percent_encode(version, VERSION))
}

/// CycloneDX's rating method for a CVSS vector.
fn method(vector: Option<&str>) -> &'static str {
    match vector {
        Some(v) if v.starts_with("CVSS:4") => "CVSSv4",
        Some(v) if v.starts_with("CVSS:3.1") => "CVSSv31",
        Some(v) if v.starts_with("CVSS:3") => "CVSSv3",
        Some(_) => "CVSSv2",
        None => "other",
    }
}

fn cdx_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Unknown => "unknown",
    }
}

/// One CycloneDX vulnerability: every component it affects, its rating,
/// the aliases as references, and the analysis (VEX).
fn cdx_vulnerability(text: &AdvisoryText, f: &AuditFinding, affects: &[String]) -> Value {
    let osv = |id: &str| json!({"name": "OSV", "url": help_uri(id)});
    let rating = if f.malicious {
        json!({"severity": "critical", "method": "other",
               "justification": "a malicious-package record (OpenSSF malicious-packages): ranked above critical"})
    } else {
        let mut r = json!({"severity": cdx_severity(f.severity), "method": method(text.vector.as_deref())});
        if let Some(score) = f.score {
            r["score"] = json!(score);
        }
        if let Some(v) = &text.vector {
            r["vector"] = json!(v);
        }
        r
    };
    let analysis = match &f.ignored {
        Some(ig) => json!({
            "state": "exploitable",
            "response": ["will_not_fix"],
            "detail": match &ig.expires {
                Some(e) => format!("accepted in [policy] ignore until {e}: {}", ig.reason),
                None => format!("accepted in [policy] ignore: {}", ig.reason),
            },
        }),
        None => json!({"state": "in_triage"}),
    };
    let mut v = json!({
        "bom-ref": format!("vulnerability:{}", f.id),
        "id": f.id,
        "source": osv(&f.id),
        "references": f.aliases.iter().map(|a| json!({"id": a, "source": osv(a)})).collect::<Vec<_>>(),
        "ratings": [rating],
        "description": f.summary,
        "advisories": text.references.iter().map(|(_, url)| json!({"url": url})).collect::<Vec<_>>(),
        "analysis": analysis,
        "affects": affects.iter().map(|r| json!({"ref": r})).collect::<Vec<_>>(),
    });
    if !text.details.is_empty() {
        v["detail"] = json!(text.details);
    }
    if f.malicious {
        // CWE-506: Embedded Malicious Code.
        v["cwes"] = json!([506]);
    }
    if !f.fixed_in.is_empty() {
        v["recommendation"] = json!(format!("Upgrade to a fixed version: {}", f.fixed_in.join(", ")));
    }
    for (k, t) in [("published", &text.published), ("updated", &text.modified)] {
        if let Some(t) = t.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
            v[k] = json!(t.to_string());
        }
    }
    v
}

/// CycloneDX 1.5 JSON: every auditable dependency as a component, every
/// vulnerability once with the components it affects.
pub(super) fn cyclonedx(scanned: &Scanned<'_>) -> String {
    let mut components = Vec::new();
    // By id: one entry per vulnerability, whatever number of components.
    let mut vulns: BTreeMap<&str, (&AuditFinding, Vec<String>)> = BTreeMap::new();
    for (d, findings) in scanned.dependencies.iter().filter(|(d, _)| d.version.is_some()) {
        let purl = purl(d);
        let mut component = json!({
            "type": "library",
            "bom-ref": purl,
            "name": d.name,
            "version": d.version,
            "purl": purl,
        });
        // PEP 740: who the mirror verified published it; whom a lock expects.
        let verified = scanned.publishers.get(&(d.name.clone(), d.version.clone().unwrap_or_default()));
        let properties: Vec<Value> = verified
            .into_iter()
            .flatten()
            .map(|p| json!({"name": "airlock:pep740:publisher", "value": p}))
            .chain(d.identities.iter().map(|p| json!({"name": "airlock:pep740:attestation-identity", "value": p})))
            .collect();
        if !properties.is_empty() {
            component["properties"] = json!(properties);
        }
        components.push(component);
        for f in findings {
            vulns.entry(&f.id).or_insert_with(|| (f, Vec::new())).1.push(purl.clone());
        }
    }
    let vulnerabilities: Vec<Value> = vulns
        .values()
        .map(|(f, affects)| cdx_vulnerability(&AdvisoryText::of(scanned.snapshot, f), f, affects))
        .collect();
    let bom = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": scanned.generated_at.to_string(),
            "tools": {"components": [{"type": "application", "name": "airlock", "version": env!("CARGO_PKG_VERSION")}]},
            "properties": [
                {"name": "airlock:snapshot:sha256", "value": scanned.snapshot.sha256.hex()},
                {"name": "airlock:snapshot:built_at", "value": scanned.snapshot.meta.built_at},
            ],
        },
        "components": components,
        "vulnerabilities": vulnerabilities,
    });
    with_newline(serde_json::to_string_pretty(&bom).unwrap_or_default())
}

/// A path as a SARIF URI reference: relative paths stay relative (GitHub
/// resolves them against the checkout), each segment percent-encoded.
fn uri(path: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/')
        .remove(b'+')
        .remove(b'@');
    let path = path.strip_prefix("./").unwrap_or(path);
    percent_encoding::utf8_percent_encode(path, SEGMENT).to_string()
}

/// SARIF 2.1.0: one rule per vulnerability, one result per (dependency,
/// vulnerability) at the line that names the dependency.
pub(super) fn sarif(scanned: &Scanned<'_>) -> String {
    let mut texts: BTreeMap<&str, (AdvisoryText, Severity)> = BTreeMap::new();
    for f in scanned.dependencies.iter().flat_map(|(_, f)| f) {
        texts.entry(&f.id).or_insert_with(|| (AdvisoryText::of(scanned.snapshot, f), f.effective));
    }
    let index: BTreeMap<&str, usize> = texts.keys().enumerate().map(|(i, id)| (*id, i)).collect();
    let rules: Vec<Value> = texts.values().map(|(t, effective)| rule(t, *effective)).collect();
    let mut results = Vec::new();
    for (d, findings) in &scanned.dependencies {
        let version = d.version.as_deref().unwrap_or_default();
        for f in findings {
            let fixed = if f.fixed_in.is_empty() {
                "No fixed version is listed.".to_string()
            } else {
                format!("Fixed in {}.", f.fixed_in.join(", "))
            };
            let what = if f.malicious { "MALICIOUS, ".to_string() } else { String::new() };
            let mut location = json!({"physicalLocation": {"artifactLocation": {"uri": uri(&d.origin.file)}}});
            if let Some(line) = d.origin.line {
                location["physicalLocation"]["region"] = json!({"startLine": line});
            }
            let mut result = json!({
                "ruleId": f.id,
                "ruleIndex": index[f.id.as_str()],
                "level": if f.malicious { "error" } else { level(f.effective) },
                "message": {"text": format!("{} {version} is affected by {} ({what}{} severity): {} {fixed}", d.name, f.id, f.severity, f.summary)},
                "locations": [location],
                "partialFingerprints": {"airlockScan/v1": format!("{}/{version}/{}", d.name, f.id)},
                "properties": {"package": d.name, "version": version, "aliases": f.aliases, "fixedIn": f.fixed_in, "malicious": f.malicious},
            });
            if let Some(ig) = &f.ignored {
                result["suppressions"] =
                    json!([{"kind": "external", "status": "accepted", "justification": ig.reason}]);
            }
            results.push(result);
        }
    }
    let run = json!({"properties": {"snapshotSha256": scanned.snapshot.sha256.hex()}});
    // Serialized JSON is UTF-8.
    String::from_utf8_lossy(&log(rules, results, run)).into_owned()
}
