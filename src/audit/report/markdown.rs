//! `reports/summary.md`: a short report sized for a CI step summary
//! (GitHub's limit is 1 MiB; this stays a few kilobytes).

use std::fmt::Write;

use super::views::Inputs;
use crate::audit::{Audit, AuditFinding, AuditedVersion};
use crate::diagnostics::{Diagnostic, Level};

/// Markdown table cells: no pipes, no newlines, no HTML.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ").replace('<', "&lt;").replace('>', "&gt;")
}

const TOP: usize = 15;

/// One line per environment that cannot install what was asked.
fn installability_section(md: &mut String, i: &crate::select::installable::Installability) {
    if i.unchecked.is_some() || i.envs.is_empty() {
        return;
    }
    let failing: Vec<_> = i.failing().collect();
    if failing.is_empty() {
        let _ = writeln!(
            md,
            "Installability: every one of the {} target environments installs the requirements from the mirror.\n",
            i.envs.len()
        );
        return;
    }
    let _ = writeln!(md, "### Installability: {} of {} environments fail\n", failing.len(), i.envs.len());
    for e in failing {
        let problems: Vec<String> =
            e.problems.iter().map(|(p, r)| format!("{p}: {}", r.describe(&e.env.name()))).collect();
        let what = if problems.is_empty() { "does not resolve".to_string() } else { problems.join("; ") };
        let _ = writeln!(md, "- `{}`: {}", e.env.name(), cell(&what));
    }
    md.push('\n');
}

/// Versions named per kind of change; the rest are counted.
const CHANGES: usize = 10;

fn names(refs: impl Iterator<Item = String>, n: usize) -> String {
    let mut shown: Vec<String> = refs.take(CHANGES).map(|r| cell(&r)).collect();
    if n > CHANGES {
        shown.push(format!("…and {} more", n - CHANGES));
    }
    shown.join(", ")
}

/// The delta first: what this tree changed against the one served before
/// it (the same as `reports/changes.json`), so a reader of a nightly step
/// summary sees the news before the totals.
fn changes_section(md: &mut String, c: &super::changes::Changes) {
    // `c` may be cut to what a feed shows; the totals are the full counts.
    let t = c.totals();
    let _ = writeln!(md, "### What changed\n");
    if c.first {
        let _ = writeln!(md, "The first published tree: {} version(s) mirrored.\n", t.added);
    }
    let versions =
        |v: &[super::changes::VersionRef], n| names(v.iter().map(|r| format!("{} {}", r.project, r.version)), n);
    let mut lines = Vec::new();
    if t.tampering > 0 {
        let files = names(c.tampering.iter().map(|t| format!("{}/{}", t.project, t.filename)), t.tampering);
        lines.push(format!("**POSSIBLE TAMPERING**: {files}"));
    }
    let malicious: Vec<_> = c.newly_affected.iter().filter(|f| f.malicious).collect();
    if !malicious.is_empty() {
        let found = names(malicious.iter().map(|f| format!("{} {} ({})", f.project, f.version, f.id)), malicious.len());
        lines.push(format!("**MALICIOUS**: {found}"));
    }
    if t.newly_affected > 0 {
        let found = names(
            c.newly_affected.iter().map(|f| format!("{} {} ({}, {})", f.project, f.version, f.id, f.severity)),
            t.newly_affected,
        );
        lines.push(format!("{} new advisory finding(s): {found}", t.newly_affected));
    }
    if t.resolved > 0 {
        let found =
            names(c.resolved.iter().map(|r| format!("{} {} ({}: {})", r.project, r.version, r.id, r.why)), t.resolved);
        lines.push(format!("{} finding(s) resolved: {found}", t.resolved));
    }
    let added = if c.first { 0 } else { t.added };
    for (what, list, n) in [
        ("added", &c.added, added),
        ("removed", &c.removed, t.removed),
        ("newly blocked", &c.blocked, t.blocked),
        ("unblocked", &c.unblocked, t.unblocked),
    ] {
        if n > 0 {
            lines.push(format!("{n} version(s) {what}: {}", versions(list, n)));
        }
    }
    if lines.is_empty() && c.first {
        return;
    }
    if lines.is_empty() {
        let _ = writeln!(md, "Nothing changed in the mirrored versions or their advisories since the last tree.\n");
        return;
    }
    for l in lines {
        let _ = writeln!(md, "- {l}");
    }
    let _ = writeln!(md, "\nDetails: `reports/changes.json`; subscribe to `reports/feed.xml`.\n");
}

/// What the admission gate holds (with due times), let in early, and what
/// was withdrawn: each list cut to [`DIAGNOSTICS`] lines.
fn gate_section(md: &mut String, inputs: Inputs<'_>) {
    let held = super::admission::held_views(inputs.diagnostics);
    let admitted = super::admission::admitted_views(inputs.diagnostics);
    let withdrawn = inputs.withdrawn;
    if held.is_empty() && admitted.is_empty() && withdrawn.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### What enters the mirror
"
    );
    if !held.is_empty() {
        let _ = writeln!(
            md,
            "{} release(s) held:

| project | version | why | due |\n|---|---|---|---|",
            held.len()
        );
        for h in held.iter().take(DIAGNOSTICS) {
            let due = h.due.as_deref().unwrap_or("not by time");
            let _ = writeln!(md, "| {} | {} | {} | {} |", cell(&h.project), cell(&h.version), h.reason, cell(due));
        }
        md.push('\n');
    }
    for a in admitted.iter().take(DIAGNOSTICS) {
        let until = a.expires.as_deref().map(|e| format!(", until {e}")).unwrap_or_default();
        let _ =
            writeln!(md, "- admitted early: {} {} ({}{until})", cell(&a.project), cell(&a.version), cell(&a.reason));
    }
    for w in withdrawn.iter().take(DIAGNOSTICS) {
        let what = w.filename.as_deref().unwrap_or("the whole project");
        let _ = writeln!(md, "- withdrawn: {} {} ({}, since {})", cell(&w.project), cell(what), w.reason, w.since);
    }
    md.push('\n');
}

/// PEP 792: projects the upstream marks archived, deprecated or quarantined.
fn status_section(md: &mut String, statuses: &crate::index::Statuses) {
    if statuses.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Project status\n");
    for (p, s) in statuses.iter().take(DIAGNOSTICS) {
        let why = s.reason.as_deref().map(|r| format!(": {}", cell(r))).unwrap_or_default();
        let _ = writeln!(md, "- {} is **{}**{why}", cell(p.as_str()), s.status.as_str());
    }
    md.push('\n');
}

/// Diagnostics listed in summary.md at most; the rest are counted.
const DIAGNOSTICS: usize = 30;

/// The run's own diagnostics: errors first (they are sorted that way).
fn run_section(md: &mut String, diagnostics: &[Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let count = |l: Level| diagnostics.iter().filter(|d| d.level() == l).count();
    let _ = writeln!(
        md,
        "### This run\n\n{} error(s), {} warning(s), {} note(s).\n",
        count(Level::Error),
        count(Level::Warning),
        count(Level::Note)
    );
    // Skipped upstream files (an old project lists dozens) are counted, not listed.
    let (skipped, said): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
        diagnostics.iter().partition(|d| matches!(d, Diagnostic::Skipped { .. }));
    for d in said.iter().take(DIAGNOSTICS) {
        let _ = writeln!(md, "- **{}** `{}`: {}", d.level().as_str(), d.code(), cell(&d.to_string()));
    }
    if said.len() > DIAGNOSTICS {
        let _ =
            writeln!(md, "- …and {} more in `reports/security.json` (`run.diagnostics`).", said.len() - DIAGNOSTICS);
    }
    if !skipped.is_empty() {
        let _ = writeln!(
            md,
            "- {} upstream file(s) skipped (not distributions airlock mirrors, or names that do not parse); `reports/security.json` lists them.",
            skipped.len()
        );
    }
    md.push('\n');
}

/// The worst findings first, as a table of at most [`TOP`] rows.
fn top_findings(md: &mut String, audit: &Audit) {
    let mut top: Vec<(&AuditedVersion, &AuditFinding)> =
        audit.versions.iter().flat_map(|v| v.active().map(move |f| (v, f))).collect();
    // Worst first; ties by name, version and id keep the order stable.
    top.sort_by(|a, b| {
        b.1.effective
            .cmp(&a.1.effective)
            .then(b.1.score.partial_cmp(&a.1.score).unwrap_or(std::cmp::Ordering::Equal))
            .then_with(|| a.0.project.cmp(&b.0.project))
            .then_with(|| a.0.version.cmp(&b.0.version))
            .then_with(|| a.1.id.cmp(&b.1.id))
    });
    if !top.is_empty() {
        let _ = writeln!(
            md,
            "### Top findings\n\n| project | version | advisory | severity | fixed in |\n|---|---|---|---|---|"
        );
        for (v, f) in top.iter().take(TOP) {
            let score = f.score.map(|s| format!(" {s:.1}")).unwrap_or_default();
            let fixed = if f.fixed_in.is_empty() { "none listed".to_string() } else { f.fixed_in.join(", ") };
            let _ = writeln!(
                md,
                "| {} | {}{} | [{}]({}) | {}{score} | {} |",
                v.project,
                cell(&v.version.to_string()),
                if v.blocked { " (blocked)" } else { "" },
                cell(&f.id),
                super::sarif::help_uri(&f.id),
                f.severity,
                cell(&fixed)
            );
        }
        if top.len() > TOP {
            let _ = writeln!(md, "\n…and {} more in `reports/security.html`.", top.len() - TOP);
        }
        md.push('\n');
    }
}

/// Blocked versions, expired ignores and tampering evidence, each when any.
fn lists_section(md: &mut String, audit: &Audit) {
    let blocked: Vec<&AuditedVersion> = audit.versions.iter().filter(|v| v.blocked).collect();
    if !blocked.is_empty() {
        let _ = writeln!(md, "### Blocked versions\n");
        for v in blocked {
            let ids: Vec<&str> = v.active().map(|f| f.id.as_str()).collect();
            let _ = writeln!(md, "- {} {}: {}", v.project, cell(&v.version.to_string()), cell(&ids.join(", ")));
        }
        md.push('\n');
    }
    let expired: Vec<_> = audit.ignores.iter().filter(|i| i.expired).collect();
    if !expired.is_empty() {
        let _ = writeln!(md, "### Expired ignores (no longer applied)\n");
        for i in expired {
            let _ =
                writeln!(md, "- `{}` expired {}: {}", cell(&i.id), i.expires.as_deref().unwrap_or(""), cell(&i.reason));
        }
        md.push('\n');
    }
    if !audit.tampering.is_empty() {
        let _ = writeln!(md, "### Possible tampering\n");
        for t in &audit.tampering {
            let _ = writeln!(
                md,
                "- {}/{}: mirrored sha256 `{}`, upstream now declares `{}`",
                t.project,
                cell(&t.filename),
                t.mirrored,
                t.upstream
            );
        }
        md.push('\n');
    }
}

pub fn render(inputs: Inputs<'_>) -> Vec<u8> {
    let audit = inputs.audit;
    let c = audit.counts();
    let mut md = String::new();
    let _ = writeln!(md, "## airlock security report: {}\n", cell(&audit.mirror_name));
    if let Some(b) = &audit.banner {
        let _ = writeln!(md, "> [!WARNING]\n> **{}**\n", cell(b));
    }
    if let Some(changes) = inputs.changes {
        changes_section(&mut md, changes);
    }
    match &audit.snapshot {
        Some(s) => {
            let _ = writeln!(
                md,
                "Advisory snapshot: {} advisories, built {}{}, sha256 `{}`.\n",
                s.advisories,
                s.built_at,
                s.age_days.map(|d| format!(" ({d} day(s) old)")).unwrap_or_default(),
                s.sha256.get(..16).unwrap_or(&s.sha256)
            );
        }
        None => {
            let _ = writeln!(md, "Advisory snapshot: **none**.\n");
        }
    }
    let _ = writeln!(
        md,
        "**{}** of {} versions ({} projects, {} files) have known advisories; **{}** blocked. Policy: fail on `{}`, block `{}`, unknown severity ranks `{}`.\n",
        c.vulnerable_versions,
        c.versions,
        c.projects,
        c.files,
        c.blocked_versions,
        audit.policy.fail_on,
        audit.policy.block,
        audit.policy.unknown_severity
    );
    let _ = writeln!(md, "| critical | high | medium | low | unknown | ignored |\n|---:|---:|---:|---:|---:|---:|");
    let _ =
        writeln!(md, "| {} | {} | {} | {} | {} | {} |\n", c.critical, c.high, c.medium, c.low, c.unknown, c.ignored);

    top_findings(&mut md, audit);
    lists_section(&mut md, audit);
    installability_section(&mut md, inputs.installability);
    gate_section(&mut md, inputs);
    status_section(&mut md, inputs.statuses);
    run_section(&mut md, inputs.diagnostics);
    let _ = writeln!(md, "Generated {} by airlock {}.", audit.generated_at, env!("CARGO_PKG_VERSION"));
    md.into_bytes()
}
