//! `reports/changes.json` (schema `airlock.changes/v1`): what a published
//! tree changed against the one before it (versions added and removed,
//! advisories newly affecting mirrored versions, versions blocked and
//! unblocked, tampering found), and `reports/feed.xml`, the same as an
//! Atom feed over the last runs, newest first, so an operator subscribes
//! instead of reading the whole report.
//!
//! The previous tree is known by its `reports/security.json`, read back as
//! data (a tree published by an older airlock, or none, counts as empty).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Inputs;
use crate::advisories::severity::Severity;

pub const SCHEMA: &str = "airlock.changes/v1";
/// Runs the feed shows.
pub const FEED_RUNS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionRef {
    pub project: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NewFinding {
    pub project: String,
    pub version: String,
    pub id: String,
    pub severity: Severity,
    pub malicious: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TamperingRef {
    pub project: String,
    pub filename: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Changes {
    pub schema: String,
    pub generated_at: String,
    pub mirror: String,
    /// Whether there was a previous tree to compare with.
    pub first: bool,
    pub added: Vec<VersionRef>,
    pub removed: Vec<VersionRef>,
    pub newly_affected: Vec<NewFinding>,
    pub blocked: Vec<VersionRef>,
    pub unblocked: Vec<VersionRef>,
    pub tampering: Vec<TamperingRef>,
}

impl Changes {
    /// One line, for feed titles.
    pub fn headline(&self) -> String {
        let mut parts = vec![format!("{} added", self.added.len()), format!("{} removed", self.removed.len())];
        if !self.newly_affected.is_empty() {
            parts.push(format!("{} new advisory finding(s)", self.newly_affected.len()));
        }
        if self.newly_affected.iter().any(|f| f.malicious) {
            parts.push("MALICIOUS".into());
        }
        if !self.blocked.is_empty() {
            parts.push(format!("{} blocked", self.blocked.len()));
        }
        if !self.tampering.is_empty() {
            parts.push(format!("{} POSSIBLE TAMPERING", self.tampering.len()));
        }
        parts.join(", ")
    }
}

/// What the previous tree's security.json says: versions, findings, blocked.
#[derive(Default)]
struct Before {
    versions: BTreeSet<VersionRef>,
    findings: BTreeSet<(String, String, String)>,
    blocked: BTreeSet<VersionRef>,
    tampering: BTreeSet<TamperingRef>,
}

fn before(previous: Option<&[u8]>) -> Option<Before> {
    let v: serde_json::Value = serde_json::from_slice(previous?).ok()?;
    let mut b = Before::default();
    for p in v["projects"].as_array()? {
        let project = p["name"].as_str().unwrap_or_default().to_string();
        for ver in p["versions"].as_array().into_iter().flatten() {
            let r =
                VersionRef { project: project.clone(), version: ver["version"].as_str().unwrap_or_default().into() };
            for a in ver["advisories"].as_array().into_iter().flatten() {
                let id = a["id"].as_str().unwrap_or_default().to_string();
                b.findings.insert((r.project.clone(), r.version.clone(), id));
            }
            if ver["blocked"].as_bool() == Some(true) {
                b.blocked.insert(r.clone());
            }
            b.versions.insert(r);
        }
    }
    for t in v["tampering"].as_array().into_iter().flatten() {
        b.tampering.insert(TamperingRef {
            project: t["project"].as_str().unwrap_or_default().into(),
            filename: t["filename"].as_str().unwrap_or_default().into(),
        });
    }
    Some(b)
}

/// The changes from the tree whose security.json is `previous` to this one.
pub fn compute(inputs: Inputs<'_>, previous: Option<&[u8]>) -> Changes {
    let audit = inputs.audit;
    let prev = before(previous);
    let first = prev.is_none();
    let prev = prev.unwrap_or_default();
    let mut now = Before::default();
    let mut newly_affected = Vec::new();
    for v in &audit.versions {
        let r = VersionRef { project: v.project.to_string(), version: v.version.to_string() };
        for f in &v.findings {
            let key = (r.project.clone(), r.version.clone(), f.id.clone());
            // A version new to the mirror is "added", not newly affected.
            if !first && prev.versions.contains(&r) && !prev.findings.contains(&key) {
                newly_affected.push(NewFinding {
                    project: r.project.clone(),
                    version: r.version.clone(),
                    id: f.id.clone(),
                    severity: f.severity,
                    malicious: f.malicious,
                });
            }
        }
        if v.blocked {
            now.blocked.insert(r.clone());
        }
        now.versions.insert(r);
    }
    for t in &audit.tampering {
        now.tampering.insert(TamperingRef { project: t.project.to_string(), filename: t.filename.clone() });
    }
    newly_affected.sort();
    Changes {
        schema: SCHEMA.into(),
        generated_at: audit.generated_at.to_string(),
        mirror: audit.mirror_name.clone(),
        first,
        added: now.versions.difference(&prev.versions).cloned().collect(),
        removed: prev.versions.difference(&now.versions).cloned().collect(),
        newly_affected,
        blocked: now.blocked.difference(&prev.blocked).cloned().collect(),
        unblocked: prev.blocked.intersection(&now.versions).filter(|r| !now.blocked.contains(*r)).cloned().collect(),
        tampering: now.tampering.difference(&prev.tampering).cloned().collect(),
    }
}

pub fn render_json(c: &Changes) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(c).unwrap_or_default();
    out.push(b'\n');
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The Atom feed of `runs` (run id, changes), newest first.
pub fn render_feed(mirror: &str, updated: &str, runs: &[(i64, Changes)]) -> Vec<u8> {
    let id_base = format!("urn:airlock:{}", mirror.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>());
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    out.push_str(&format!("  <title>{}: what changed</title>\n", xml(mirror)));
    out.push_str(&format!("  <id>{id_base}:changes</id>\n  <updated>{}</updated>\n", xml(updated)));
    out.push_str("  <author><name>airlock</name></author>\n");
    out.push_str("  <link rel=\"alternate\" href=\"security.html\"/>\n");
    for (run, c) in runs.iter().take(FEED_RUNS) {
        let mut text = String::new();
        let mut section = |title: &str, lines: Vec<String>| {
            if !lines.is_empty() {
                text.push_str(&format!("{title}:\n"));
                for l in lines {
                    text.push_str(&format!("  {l}\n"));
                }
            }
        };
        let v = |r: &VersionRef| format!("{} {}", r.project, r.version);
        section("added", c.added.iter().map(v).collect());
        section("removed", c.removed.iter().map(v).collect());
        section(
            "newly affected",
            c.newly_affected
                .iter()
                .map(|f| {
                    let rank = if f.malicious { "MALICIOUS".to_string() } else { f.severity.to_string() };
                    format!("{} {}: {} ({rank})", f.project, f.version, f.id)
                })
                .collect(),
        );
        section("blocked", c.blocked.iter().map(v).collect());
        section("unblocked", c.unblocked.iter().map(v).collect());
        section("POSSIBLE TAMPERING", c.tampering.iter().map(|t| format!("{} {}", t.project, t.filename)).collect());
        out.push_str("  <entry>\n");
        out.push_str(&format!("    <id>{id_base}:run:{run}</id>\n"));
        out.push_str(&format!("    <title>run {run}: {}</title>\n", xml(&c.headline())));
        out.push_str(&format!("    <updated>{}</updated>\n", xml(&c.generated_at)));
        out.push_str("    <link rel=\"alternate\" href=\"changes.json\"/>\n");
        out.push_str(&format!("    <content type=\"text\">{}</content>\n", xml(text.trim_end())));
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out.into_bytes()
}
