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
    /// The full length of each list, when the lists are cut to what a feed
    /// entry shows ([`Changes::for_feed`]); never in changes.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
}

/// How long each list of a [`Changes`] was before it was cut.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Totals {
    pub added: usize,
    pub removed: usize,
    pub newly_affected: usize,
    pub blocked: usize,
    pub unblocked: usize,
    pub tampering: usize,
}

/// Lines per list in a feed entry; the rest is counted, in changes.json.
pub const FEED_LINES: usize = 50;

impl Changes {
    /// The full length of each list, cut or not.
    pub fn totals(&self) -> Totals {
        self.totals.unwrap_or(Totals {
            added: self.added.len(),
            removed: self.removed.len(),
            newly_affected: self.newly_affected.len(),
            blocked: self.blocked.len(),
            unblocked: self.unblocked.len(),
            tampering: self.tampering.len(),
        })
    }

    /// The lists cut to [`FEED_LINES`], their lengths kept: the form the
    /// state keeps for the feed, so a first build's hundred thousand added
    /// versions are not read back by each of the next publishes.
    pub fn for_feed(&self) -> Changes {
        fn cut<T: Clone>(v: &[T]) -> Vec<T> {
            v.iter().take(FEED_LINES).cloned().collect()
        }
        Changes {
            schema: self.schema.clone(),
            generated_at: self.generated_at.clone(),
            mirror: self.mirror.clone(),
            first: self.first,
            added: cut(&self.added),
            removed: cut(&self.removed),
            newly_affected: cut(&self.newly_affected),
            blocked: cut(&self.blocked),
            unblocked: cut(&self.unblocked),
            tampering: cut(&self.tampering),
            totals: Some(self.totals()),
        }
    }

    /// One line, for feed titles.
    pub fn headline(&self) -> String {
        let t = self.totals();
        let mut parts = vec![format!("{} added", t.added), format!("{} removed", t.removed)];
        if t.newly_affected > 0 {
            parts.push(format!("{} new advisory finding(s)", t.newly_affected));
        }
        if self.newly_affected.iter().any(|f| f.malicious) {
            parts.push("MALICIOUS".into());
        }
        if t.blocked > 0 {
            parts.push(format!("{} blocked", t.blocked));
        }
        if t.tampering > 0 {
            parts.push(format!("{} POSSIBLE TAMPERING", t.tampering));
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

/// The parts of a previous security.json the changes are computed from,
/// read as typed rows (not a generic JSON tree, which would cost several
/// times the file's size for a large mirror); other fields are skipped.
#[derive(Deserialize)]
struct PreviousReport {
    projects: Vec<PreviousProject>,
    #[serde(default)]
    tampering: Vec<TamperingRef>,
}

#[derive(Deserialize)]
struct PreviousProject {
    name: String,
    #[serde(default)]
    versions: Vec<PreviousVersion>,
}

#[derive(Deserialize)]
struct PreviousVersion {
    version: String,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    advisories: Vec<PreviousAdvisory>,
}

#[derive(Deserialize)]
struct PreviousAdvisory {
    id: String,
}

fn before(previous: Option<&[u8]>) -> Option<Before> {
    let report: PreviousReport = serde_json::from_slice(previous?).ok()?;
    let mut b = Before::default();
    for p in report.projects {
        for ver in p.versions {
            let r = VersionRef { project: p.name.clone(), version: ver.version };
            for a in ver.advisories {
                b.findings.insert((r.project.clone(), r.version.clone(), a.id));
            }
            if ver.blocked {
                b.blocked.insert(r.clone());
            }
            b.versions.insert(r);
        }
    }
    b.tampering.extend(report.tampering);
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
        totals: None,
    }
}

/// changes.json, streamed (a first build's lists every version).
pub fn write_json(c: &Changes, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, c)?;
    out.write_all(b"\n")
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
        let c = &c.for_feed();
        let totals = c.totals();
        let mut section = |title: &str, lines: Vec<String>, total: usize| {
            if !lines.is_empty() {
                text.push_str(&format!("{title}:\n"));
                for l in &lines {
                    text.push_str(&format!("  {l}\n"));
                }
                if total > lines.len() {
                    text.push_str(&format!("  ... and {} more (changes.json lists them all)\n", total - lines.len()));
                }
            }
        };
        let v = |r: &VersionRef| format!("{} {}", r.project, r.version);
        section("added", c.added.iter().map(v).collect(), totals.added);
        section("removed", c.removed.iter().map(v).collect(), totals.removed);
        section(
            "newly affected",
            c.newly_affected
                .iter()
                .map(|f| {
                    let rank = if f.malicious { "MALICIOUS".to_string() } else { f.severity.to_string() };
                    format!("{} {}: {} ({rank})", f.project, f.version, f.id)
                })
                .collect(),
            totals.newly_affected,
        );
        section("blocked", c.blocked.iter().map(v).collect(), totals.blocked);
        section("unblocked", c.unblocked.iter().map(v).collect(), totals.unblocked);
        section(
            "POSSIBLE TAMPERING",
            c.tampering.iter().map(|t| format!("{} {}", t.project, t.filename)).collect(),
            totals.tampering,
        );
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
