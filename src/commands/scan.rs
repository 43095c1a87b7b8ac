//! `airlock scan`: audit requirements, lock files or installed environments
//! offline, against a snapshot: a file, the one a mirror publishes
//! (`reports/advisories.sqlite.zst`, over http(s), `file://` or a path), or
//! the manifest's. Output as columns (like pip-audit's), pip-audit's JSON
//! layout (so tools that read pip-audit read this), or markdown; exit 3 on
//! a finding at or above `--fail-on`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::advisories::Snapshot;
use crate::advisories::severity::{Severity, Threshold};
use crate::audit::is_malicious;
use crate::error::Error;
use crate::exit::Exit;
use crate::manifest::{Ignore, Manifest};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Columns,
    Json,
    Markdown,
}

/// Where the snapshot comes from.
pub enum Source {
    File(PathBuf),
    /// A mirror: its root or its `simple/` URL, or a directory.
    Index(String),
    Manifest(PathBuf),
}

/// What to scan.
#[derive(Default)]
pub struct Inputs {
    pub requirements: Vec<PathBuf>,
    pub locks: Vec<PathBuf>,
    pub paths: Vec<PathBuf>,
}

/// One package to audit, and where it was named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Dependency {
    name: String,
    /// `None`: not pinned, so not auditable (why in `skip`).
    version: Option<String>,
    skip: Option<String>,
}

// pip-audit's JSON layout (`pip-audit --format json`).
#[derive(Serialize)]
struct Report {
    dependencies: Vec<ReportDependency>,
    fixes: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct ReportDependency {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vulns: Option<Vec<Vuln>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_reason: Option<String>,
}

#[derive(Serialize, Clone)]
struct Vuln {
    id: String,
    fix_versions: Vec<String>,
    aliases: Vec<String>,
    description: String,
    /// airlock's additions, which pip-audit readers ignore.
    severity: Severity,
    malicious: bool,
}

fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

/// Open the snapshot a source names (downloading a mirror's into `scratch`).
fn open_snapshot(source: &Source, scratch: &Path) -> Result<(Snapshot, Vec<Ignore>, Severity), Error> {
    let open = |p: &Path| Snapshot::open(p).map_err(|e| Error::from(crate::advisories::AdvisoryError::from(e)));
    match source {
        Source::File(p) => Ok((open(p)?, Vec::new(), Severity::High)),
        Source::Manifest(c) => {
            let m = Manifest::load(c)?;
            Ok((open(&m.advisories.snapshot)?, m.policy.ignore, m.policy.unknown_severity))
        }
        Source::Index(url) => {
            let base = url.trim_end_matches('/');
            let base = base.strip_suffix("/simple").unwrap_or(base);
            let rel = "reports/advisories.sqlite.zst";
            let path = if base.starts_with("http://") || base.starts_with("https://") {
                let target = format!("{base}/{rel}");
                let fail = |e: &dyn std::fmt::Display| Error::Failed(format!("GET {target}: {e}"));
                let resp = reqwest::blocking::Client::builder()
                    .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION"), " (scan)"))
                    .timeout(std::time::Duration::from_secs(120))
                    .build()
                    .map_err(|e| fail(&e))?
                    .get(&target)
                    .send()
                    .map_err(|e| fail(&e))?;
                if !resp.status().is_success() {
                    return Err(fail(&format!(
                        "HTTP {} (does the mirror publish its snapshot? it needs an airlock that does)",
                        resp.status()
                    )));
                }
                let bytes = resp.bytes().map_err(|e| fail(&e))?;
                let path = scratch.join("advisories.sqlite.zst");
                fs_err::write(&path, &bytes)?;
                path
            } else {
                let dir = base.strip_prefix("file://").unwrap_or(base);
                Path::new(dir).join(rel)
            };
            Ok((open(&path)?, Vec::new(), Severity::High))
        }
    }
}

/// The packages requirements files pin (`==`); the rest are not auditable.
fn from_requirements(path: &Path, out: &mut Vec<Dependency>) -> Result<(), Error> {
    let lines = crate::manifest::requirements::read_file(path).map_err(crate::manifest::ManifestError::from)?;
    for line in lines.iter().filter(|l| !l.constraint) {
        let r = &line.requirement;
        let name = r.name.to_string();
        let pinned = match &r.version_or_url {
            Some(uv_pep508::VersionOrUrl::VersionSpecifier(specs)) => {
                let specs: Vec<_> = specs.iter().collect();
                match specs.as_slice() {
                    [s] if *s.operator() == uv_pep440::Operator::Equal => Some(s.version().to_string()),
                    _ => None,
                }
            }
            _ => None,
        };
        let skip = pinned.is_none().then(|| format!("{}: not pinned with `==`, so not auditable", line.origin));
        out.push(Dependency { name, version: pinned, skip });
    }
    Ok(())
}

/// Every package a lock file names, whatever its markers say (an audit
/// covers every environment the lock serves).
fn from_lock(path: &Path, out: &mut Vec<Dependency>) -> Result<(), Error> {
    let lock = crate::manifest::lockfile::LockFile::read(path)
        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    for p in &lock.packages {
        let version = p.version.as_ref().map(ToString::to_string);
        let skip = version.is_none().then(|| format!("{}: no version locked", path.display()));
        out.push(Dependency { name: p.name.to_string(), version, skip });
    }
    Ok(())
}

/// Installed distributions: every `*.dist-info/METADATA` under a venv or a
/// site-packages directory (no Python needed).
fn from_path(path: &Path, out: &mut Vec<Dependency>) -> Result<(), Error> {
    if !path.is_dir() {
        return Err(Error::Failed(format!("{}: not a directory (a venv or site-packages)", path.display())));
    }
    let mut found = 0;
    for entry in walkdir::WalkDir::new(path).max_depth(6).into_iter().filter_map(Result::ok) {
        let p = entry.path();
        let is_meta = p.file_name().is_some_and(|n| n == "METADATA")
            && p.parent().and_then(|d| d.file_name()).is_some_and(|d| d.to_string_lossy().ends_with(".dist-info"));
        if !is_meta {
            continue;
        }
        let Ok(bytes) = std::fs::read(p) else { continue };
        let headers = crate::dist::metadata::headers(&bytes);
        let value = |k: &str| crate::dist::metadata::header_values(&headers, k).next().map(str::to_string);
        if let (Some(name), Some(version)) = (value("Name"), value("Version")) {
            out.push(Dependency { name, version: Some(version), skip: None });
            found += 1;
        }
    }
    if found == 0 {
        tracing::warn!("{}: no installed distribution found (no *.dist-info/METADATA)", path.display());
    }
    Ok(())
}

/// `airlock scan`.
pub fn scan(
    source: &Source,
    inputs: &Inputs,
    format: Format,
    fail_on: Threshold,
    output: Option<&Path>,
) -> Result<Exit, Error> {
    if inputs.requirements.is_empty() && inputs.locks.is_empty() && inputs.paths.is_empty() {
        return Err(usage("nothing to scan: give -r REQUIREMENTS, --lock FILE or --path VENV"));
    }
    let scratch = tempfile::tempdir()?;
    let (snapshot, ignores, unknown_as) = open_snapshot(source, scratch.path())?;
    let mut deps = Vec::new();
    for r in &inputs.requirements {
        from_requirements(r, &mut deps)?;
    }
    for l in &inputs.locks {
        from_lock(l, &mut deps)?;
    }
    for p in &inputs.paths {
        from_path(p, &mut deps)?;
    }
    // One row per (name, version), in a stable order.
    for d in &mut deps {
        if let Ok(n) = crate::dist::names::ProjectName::from_str(&d.name) {
            d.name = n.to_string();
        }
    }
    deps.sort();
    deps.dedup_by(|a, b| a.name == b.name && a.version == b.version);

    let today = crate::util::clock::output_time().to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut report = Report { dependencies: Vec::new(), fixes: Vec::new() };
    let mut breach = false;
    let (mut vulnerable, mut findings) = (0usize, 0usize);
    for d in &deps {
        let Some(version) = &d.version else {
            report.dependencies.push(ReportDependency {
                name: d.name.clone(),
                version: None,
                vulns: None,
                skip_reason: d.skip.clone(),
            });
            continue;
        };
        let mut vulns = Vec::new();
        for f in snapshot.check(&d.name, version) {
            let id = snapshot.id(&f).to_string();
            let aliases: Vec<String> = snapshot.aliases(&f).map(str::to_string).collect();
            if crate::audit::ignore_applies(&ignores, today, &id, &aliases).is_some() {
                continue;
            }
            let malicious = is_malicious(&id, &aliases);
            let effective = if f.severity == Severity::Unknown { unknown_as } else { f.severity };
            breach |= malicious || fail_on.triggered_by(effective);
            vulns.push(Vuln {
                fix_versions: f.fixed_in.iter().map(ToString::to_string).collect(),
                description: snapshot.summary(&f).to_string(),
                severity: f.severity,
                malicious,
                id,
                aliases,
            });
        }
        vulnerable += usize::from(!vulns.is_empty());
        findings += vulns.len();
        report.dependencies.push(ReportDependency {
            name: d.name.clone(),
            version: Some(version.clone()),
            vulns: Some(vulns),
            skip_reason: None,
        });
    }
    let text = match format {
        Format::Json => {
            let mut j = serde_json::to_string(&report).map_err(|e| Error::Failed(e.to_string()))?;
            j.push('\n');
            j
        }
        Format::Columns => columns(&report),
        Format::Markdown => markdown(&report),
    };
    match output {
        Some(p) => fs_err::write(p, text)?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    let skipped = report.dependencies.iter().filter(|d| d.skip_reason.is_some()).count();
    tracing::info!(
        "found {findings} known vulnerabilit{} in {vulnerable} package(s) of {}{}",
        if findings == 1 { "y" } else { "ies" },
        deps.len() - skipped,
        if skipped > 0 { format!("; {skipped} not auditable (not pinned)") } else { String::new() }
    );
    Ok(if breach { Exit::Policy } else { Exit::Success })
}

fn rows(report: &Report) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    for d in &report.dependencies {
        for v in d.vulns.iter().flatten() {
            let id = if v.malicious { format!("{} (MALICIOUS)", v.id) } else { v.id.clone() };
            out.push([d.name.clone(), d.version.clone().unwrap_or_default(), id, v.fix_versions.join(",")]);
        }
    }
    out
}

/// pip-audit's default: a table of Name, Version, ID, Fix Versions.
fn columns(report: &Report) -> String {
    let rows = rows(report);
    if rows.is_empty() {
        return "No known vulnerabilities found\n".to_string();
    }
    let header = ["Name", "Version", "ID", "Fix Versions"].map(String::from);
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

fn markdown(report: &Report) -> String {
    let rows = rows(report);
    let mut out = String::from("| Name | Version | ID | Fix Versions |\n|---|---|---|---|\n");
    if rows.is_empty() {
        return "No known vulnerabilities found.\n".to_string();
    }
    let cell = |s: &str| s.replace('|', "\\|");
    for r in &rows {
        out.push_str(&format!("| {} | {} | {} | {} |\n", cell(&r[0]), cell(&r[1]), cell(&r[2]), cell(&r[3])));
    }
    out
}
