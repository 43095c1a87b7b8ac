//! `reports/changes.json` (schema `airlock.changes/v1`): what a published
//! tree changed against the one before it (versions added and removed,
//! advisories newly affecting mirrored versions, versions blocked and
//! unblocked, tampering found), and `reports/feed.xml`, the same as an
//! Atom feed over the last runs, newest first, so an operator subscribes
//! instead of reading the whole report.
//!
//! The previous tree is known by its `reports/security.json`, read back as
//! data (a tree published by an older airlock, or none, counts as empty).

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::advisories::severity::Severity;
use crate::audit::Audit;
use crate::diagnostics::Diagnostic;

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
    /// The file refused (for a `--hash` no upstream file has: the hash).
    pub filename: String,
    /// What was found, when it was a lock file's refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A finding that no longer affects a served version, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resolved {
    pub project: String,
    pub version: String,
    pub id: String,
    /// `fixed-version-mirrored`: the version left and a fixed one is
    /// served; `version-removed`: the version left; `advisory-withdrawn`:
    /// the version is served and the snapshot no longer says it is affected.
    pub why: ResolvedWhy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolvedWhy {
    FixedVersionMirrored,
    VersionRemoved,
    AdvisoryWithdrawn,
}

impl std::fmt::Display for ResolvedWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResolvedWhy::FixedVersionMirrored => "a fixed version is mirrored",
            ResolvedWhy::VersionRemoved => "the version left the mirror",
            ResolvedWhy::AdvisoryWithdrawn => "the advisory no longer affects it",
        })
    }
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
    /// Findings that no longer affect a served version.
    #[serde(default)]
    pub resolved: Vec<Resolved>,
    /// Releases newly held by the admission gate.
    #[serde(default)]
    pub held: Vec<VersionRef>,
    /// Held releases newly let in early.
    #[serde(default)]
    pub admitted: Vec<VersionRef>,
    /// What newly left the tree because the upstream no longer offers it
    /// (or the freeze holds it).
    #[serde(default)]
    pub withdrawn: Vec<super::admission::WithdrawnView>,
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
    #[serde(default)]
    pub resolved: usize,
    #[serde(default)]
    pub held: usize,
    #[serde(default)]
    pub admitted: usize,
    #[serde(default)]
    pub withdrawn: usize,
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
            resolved: self.resolved.len(),
            held: self.held.len(),
            admitted: self.admitted.len(),
            withdrawn: self.withdrawn.len(),
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
            resolved: cut(&self.resolved),
            held: cut(&self.held),
            admitted: cut(&self.admitted),
            withdrawn: cut(&self.withdrawn),
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
        if t.held > 0 {
            parts.push(format!("{} held", t.held));
        }
        if t.admitted > 0 {
            parts.push(format!("{} admitted early", t.admitted));
        }
        if t.withdrawn > 0 {
            parts.push(format!("{} withdrawn", t.withdrawn));
        }
        if t.resolved > 0 {
            parts.push(format!("{} finding(s) resolved", t.resolved));
        }
        parts.join(", ")
    }
}

/// What the previous tree's security.json says: versions, findings (with
/// the versions that fix them), blocked, tampering and lock refusals.
#[derive(Default)]
struct Before {
    versions: BTreeSet<VersionRef>,
    findings: BTreeMap<(String, String, String), Vec<String>>,
    blocked: BTreeSet<VersionRef>,
    tampering: BTreeSet<TamperingRef>,
    held: BTreeSet<VersionRef>,
    admitted: BTreeSet<VersionRef>,
    withdrawn: BTreeSet<super::admission::WithdrawnView>,
}

/// The parts of a previous security.json the changes are computed from,
/// read as typed rows (not a generic JSON tree, which would cost several
/// times the file's size for a large mirror); other fields are skipped.
#[derive(Deserialize)]
struct PreviousReport {
    projects: Vec<PreviousProject>,
    #[serde(default)]
    tampering: Vec<TamperingRef>,
    #[serde(default)]
    run: PreviousRun,
    #[serde(default)]
    held: Vec<VersionRef>,
    #[serde(default)]
    admitted: Vec<VersionRef>,
    #[serde(default)]
    withdrawn: Vec<super::admission::WithdrawnView>,
}

#[derive(Deserialize, Default)]
struct PreviousRun {
    #[serde(default)]
    diagnostics: Vec<PreviousDiagnostic>,
}

#[derive(Deserialize)]
struct PreviousDiagnostic {
    code: String,
    project: String,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    message: String,
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
    /// Counted, not kept (a zero-sized element per file).
    #[serde(default)]
    files: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    advisories: Vec<PreviousAdvisory>,
}

#[derive(Deserialize)]
struct PreviousAdvisory {
    id: String,
    #[serde(default)]
    fixed_in: Vec<String>,
}

/// A refusal of the run that a report lists among its diagnostics but
/// not among its versions: a malicious release kept out before it was
/// fetched (`blocked`), a lock file's file or hash refused (tampering).
enum Refusal {
    Blocked(VersionRef),
    Tampering(TamperingRef),
}

fn refusal(code: &str, project: &str, file: Option<&str>, version: Option<&str>, message: &str) -> Option<Refusal> {
    match code {
        "blocked" => Some(Refusal::Blocked(VersionRef { project: project.into(), version: version?.into() })),
        "lock-mismatch" => Some(Refusal::Tampering(TamperingRef {
            project: project.into(),
            filename: file?.into(),
            detail: Some(message.into()),
        })),
        "lock-unknown-hash" => Some(Refusal::Tampering(TamperingRef {
            project: project.into(),
            filename: message.split("--hash=").nth(1)?.split(',').next()?.trim().into(),
            detail: Some(message.into()),
        })),
        _ => None,
    }
}

fn before(previous: Option<&[u8]>) -> Option<Before> {
    let report: PreviousReport = serde_json::from_slice(previous?).ok()?;
    let mut b = Before::default();
    for p in report.projects {
        for ver in p.versions {
            let r = VersionRef { project: p.name.clone(), version: ver.version };
            for a in ver.advisories {
                b.findings.insert((r.project.clone(), r.version.clone(), a.id), a.fixed_in);
            }
            if ver.blocked {
                b.blocked.insert(r.clone());
            }
            // A release refused before it was fetched is reported, not mirrored.
            if !ver.files.is_empty() {
                b.versions.insert(r);
            }
        }
    }
    b.tampering.extend(report.tampering.into_iter().map(|t| TamperingRef { detail: None, ..t }));
    b.held.extend(report.held);
    b.admitted.extend(report.admitted);
    b.withdrawn
        .extend(report.withdrawn.into_iter().map(|w| super::admission::WithdrawnView { since: String::new(), ..w }));
    for d in &report.run.diagnostics {
        match refusal(&d.code, &d.project, d.file.as_deref(), d.version.as_deref(), &d.message) {
            Some(Refusal::Blocked(r)) => {
                b.blocked.insert(r);
            }
            Some(Refusal::Tampering(t)) => {
                b.tampering.insert(TamperingRef { detail: None, ..t });
            }
            None => {}
        }
    }
    Some(b)
}

/// The changes from the tree whose security.json is `previous` to this
/// one. A first tree has no before: every finding it serves is newly
/// affected, so a feed's subscribers hear of what was vulnerable on day one.
pub fn compute(
    audit: &Audit,
    diagnostics: &[Diagnostic],
    withdrawn: &[super::admission::WithdrawnView],
    previous: Option<&[u8]>,
) -> Changes {
    let prev = before(previous);
    let first = prev.is_none();
    let prev = prev.unwrap_or_default();
    let mut now = Before::default();
    let mut newly_affected = Vec::new();
    for v in &audit.versions {
        let r = VersionRef { project: v.project.to_string(), version: v.version.to_string() };
        for f in &v.findings {
            let key = (r.project.clone(), r.version.clone(), f.id.clone());
            // A version new to a mirror that had a tree is "added", not newly affected.
            if first || (prev.versions.contains(&r) && !prev.findings.contains_key(&key)) {
                newly_affected.push(NewFinding {
                    project: r.project.clone(),
                    version: r.version.clone(),
                    id: f.id.clone(),
                    severity: f.severity,
                    malicious: f.malicious,
                });
            }
            now.findings.insert(key, Vec::new());
        }
        if v.blocked {
            now.blocked.insert(r.clone());
        }
        if !v.files.is_empty() {
            now.versions.insert(r);
        }
    }
    for t in &audit.tampering {
        now.tampering.insert(TamperingRef {
            project: t.project.to_string(),
            filename: t.filename.clone(),
            detail: None,
        });
    }
    let mut refused_tampering = Vec::new();
    for d in diagnostics {
        let version = d.version().map(ToString::to_string);
        match refusal(d.code(), d.project().as_str(), d.filename(), version.as_deref(), &d.to_string()) {
            Some(Refusal::Blocked(r)) => {
                now.blocked.insert(r);
            }
            Some(Refusal::Tampering(t)) => refused_tampering.push(t),
            None => {}
        }
    }
    // Tampering is new when its (project, file) was not reported before.
    let mut tampering: Vec<TamperingRef> = now
        .tampering
        .iter()
        .chain(&refused_tampering)
        .filter(|t| !prev.tampering.contains(&TamperingRef { detail: None, ..(*t).clone() }))
        .cloned()
        .collect();
    tampering.sort();
    tampering.dedup_by(|a, b| a.project == b.project && a.filename == b.filename);
    // Worst first (malicious, then severity as the policy ranks it): the one
    // critical finding must not hide behind a cut list.
    let rank = |f: &NewFinding| {
        let s = if f.severity == Severity::Unknown { audit.policy.unknown_severity } else { f.severity };
        (std::cmp::Reverse(f.malicious), std::cmp::Reverse(s))
    };
    newly_affected.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    let resolved = resolved(&prev, &now);
    let version_ref = |project: &str, version: &str| VersionRef { project: project.into(), version: version.into() };
    let held: BTreeSet<VersionRef> =
        super::admission::held_views(diagnostics).iter().map(|h| version_ref(&h.project, &h.version)).collect();
    let admitted: BTreeSet<VersionRef> =
        super::admission::admitted_views(diagnostics).iter().map(|a| version_ref(&a.project, &a.version)).collect();
    let withdrawn: Vec<super::admission::WithdrawnView> = withdrawn
        .iter()
        .filter(|w| !prev.withdrawn.contains(&super::admission::WithdrawnView { since: String::new(), ..(*w).clone() }))
        .cloned()
        .collect();
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
        tampering,
        resolved,
        held: held.difference(&prev.held).cloned().collect(),
        admitted: admitted.difference(&prev.admitted).cloned().collect(),
        withdrawn,
        totals: None,
    }
}

/// Findings of the previous tree that this one no longer has, and why.
fn resolved(prev: &Before, now: &Before) -> Vec<Resolved> {
    let mut out = Vec::new();
    for ((project, version, id), fixed_in) in &prev.findings {
        if now.findings.contains_key(&(project.clone(), version.clone(), id.clone())) {
            continue;
        }
        let served = now.versions.contains(&VersionRef { project: project.clone(), version: version.clone() });
        let why = if served {
            ResolvedWhy::AdvisoryWithdrawn
        } else if fixed_in
            .iter()
            .any(|f| now.versions.contains(&VersionRef { project: project.clone(), version: f.clone() }))
        {
            ResolvedWhy::FixedVersionMirrored
        } else {
            ResolvedWhy::VersionRemoved
        };
        out.push(Resolved { project: project.clone(), version: version.clone(), id: id.clone(), why });
    }
    out
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
pub fn render_feed(mirror: &str, updated: &str, runs: &[(RunId, Changes)]) -> Vec<u8> {
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
            c.tampering
                .iter()
                .map(|t| match &t.detail {
                    Some(d) => d.clone(),
                    None => format!("{} {}", t.project, t.filename),
                })
                .collect(),
            totals.tampering,
        );
        section("held (not yet admitted)", c.held.iter().map(v).collect(), totals.held);
        section("admitted early", c.admitted.iter().map(v).collect(), totals.admitted);
        section(
            "withdrawn (the upstream no longer offers it)",
            c.withdrawn
                .iter()
                .map(|w| {
                    let what = w
                        .filename
                        .clone()
                        .or_else(|| w.version.clone())
                        .unwrap_or_else(|| "(the whole project)".into());
                    format!("{} {what} ({})", w.project, w.reason)
                })
                .collect(),
            totals.withdrawn,
        );
        section(
            "resolved (no longer affected)",
            c.resolved.iter().map(|r| format!("{} {}: {} ({})", r.project, r.version, r.id, r.why)).collect(),
            totals.resolved,
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
