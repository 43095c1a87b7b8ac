//! `airlock scan`: audit requirements, lock files or installed environments
//! offline, against a snapshot: a file, the one a mirror publishes
//! (`reports/advisories.sqlite.zst`, over http(s), `file://` or a path), or
//! the manifest's. Output as columns (like pip-audit's), pip-audit's JSON
//! layout (so tools that read pip-audit read this), CycloneDX 1.5 with
//! vulnerabilities (VEX), SARIF 2.1.0 or markdown (see [`formats`]); exit 3
//! on a finding at or above `--fail-on`.

mod formats;
mod model;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::advisories::Snapshot;
use crate::advisories::severity::{Severity, Threshold};
use crate::audit::finding;
use crate::error::Error;
use crate::exit::Exit;
use crate::manifest::{Ignore, Manifest, Policy};
use model::{Dependency, Origin, Scanned};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Columns,
    Json,
    Cyclonedx,
    Sarif,
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

fn usage(message: impl Into<String>) -> Error {
    Error::Usage(message.into())
}

/// A mirror's snapshot is downloaded up to this size.
const MAX_SNAPSHOT: u64 = 1024 * 1024 * 1024;

/// A mirror that publishes no snapshot: built without one.
fn no_snapshot(at: &str) -> Error {
    Error::Failed(format!(
        "{at} does not exist: the mirror was built without an advisory snapshot, so it publishes none \
         (on the mirror's host: `airlock advisories update`, then `airlock audit`); or scan against a snapshot file with --snapshot"
    ))
}

/// Open the snapshot a source names (downloading a mirror's into `scratch`).
fn open_snapshot(source: &Source, scratch: &Path) -> Result<(Snapshot, Vec<Ignore>, Severity), Error> {
    let open = |p: &Path| Snapshot::open_cached(p).map_err(|e| Error::from(crate::advisories::AdvisoryError::from(e)));
    match source {
        Source::File(p) => Ok((open(p)?, Vec::new(), Severity::High)),
        Source::Manifest(c) => {
            let m = Manifest::load(c)?;
            Ok((open(&m.advisories.snapshot)?, m.policy.ignore, m.policy.unknown_severity))
        }
        Source::Index(url) => {
            let base = mirror_base(url);
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
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Err(no_snapshot(&target));
                }
                if !resp.status().is_success() {
                    return Err(fail(&format!("HTTP {}", resp.status())));
                }
                let path = scratch.join("advisories.sqlite.zst");
                let mut file = fs_err::File::create(&path)?;
                // A snapshot is tens of megabytes; a mirror that sends more is not one.
                let copied =
                    std::io::copy(&mut std::io::Read::take(resp, MAX_SNAPSHOT + 1), &mut file).map_err(|e| fail(&e))?;
                if copied > MAX_SNAPSHOT {
                    return Err(fail(&format!(
                        "larger than {}: not a snapshot",
                        crate::util::ui::human_bytes(MAX_SNAPSHOT)
                    )));
                }
                path
            } else {
                let dir = base.strip_prefix("file://").unwrap_or(base);
                let path = Path::new(dir).join(rel);
                if !path.exists() {
                    return Err(no_snapshot(&path.display().to_string()));
                }
                path
            };
            Ok((open(&path)?, Vec::new(), Severity::High))
        }
    }
}

/// A mirror's base URL (or directory) from its index URL.
fn mirror_base(url: &str) -> &str {
    let base = url.trim_end_matches('/');
    base.strip_suffix("/simple").unwrap_or(base)
}

/// What the mirror's security.json says of each served version's PEP 740
/// publishers (verified by the mirror): best effort, since a mirror built
/// before provenance publishes none, and a scan needs only the snapshot.
fn mirror_publishers(url: &str, scratch: &Path) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    const MAX_REPORT: u64 = 1 << 30;
    let base = mirror_base(url);
    let rel = "reports/security.json";
    let path = if base.starts_with("http://") || base.starts_with("https://") {
        let path = scratch.join("security.json");
        let got = reqwest::blocking::Client::builder()
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION"), " (scan)"))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .and_then(|c| c.get(format!("{base}/{rel}")).send())
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| {
                let mut file = fs_err::File::create(&path).ok()?;
                std::io::copy(&mut std::io::Read::take(r, MAX_REPORT), &mut file).ok()
            });
        if got.is_none() {
            return Default::default();
        }
        path
    } else {
        Path::new(base.strip_prefix("file://").unwrap_or(base)).join(rel)
    };
    let Some(report) = fs_err::read(&path).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return Default::default();
    };
    let mut out = std::collections::BTreeMap::new();
    for p in report["projects"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        for v in p["versions"].as_array().into_iter().flatten() {
            let mut who: Vec<String> = v["provenance"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(|f| {
                    serde_json::from_value::<crate::provenance::PublisherRecord>(f["publisher"].clone()).ok()
                })
                .map(|r| crate::provenance::Publisher::from_record(&r).to_string())
                .collect();
            who.sort();
            who.dedup();
            if !who.is_empty() {
                out.insert((name.to_string(), v["version"].as_str().unwrap_or_default().to_string()), who);
            }
        }
    }
    out
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
        out.push(Dependency {
            name,
            version: pinned,
            skip,
            origin: Origin::parse(&line.origin),
            identities: Vec::new(),
        });
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
        let identities = p.publishers.iter().map(ToString::to_string).collect();
        out.push(Dependency { name: p.name.to_string(), version, skip, origin: Origin::of(path), identities });
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
            out.push(Dependency {
                name,
                version: Some(version),
                skip: None,
                origin: Origin::of(p),
                identities: Vec::new(),
            });
            found += 1;
        }
    }
    if found == 0 {
        tracing::warn!("{}: no installed distribution found (no *.dist-info/METADATA)", path.display());
    }
    Ok(())
}

/// Every dependency the inputs name, one per (name, version), sorted.
fn dependencies(inputs: &Inputs) -> Result<Vec<Dependency>, Error> {
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
    for d in &mut deps {
        if let Ok(n) = crate::dist::names::ProjectName::from_str(&d.name) {
            d.name = n.to_string();
        }
    }
    // The first place a dependency is named is where it is reported.
    deps.sort();
    deps.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    Ok(deps)
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
    let (snapshot, ignores, unknown_severity) = open_snapshot(source, scratch.path())?;
    let policy = Policy { ignore: ignores, unknown_severity, ..Policy::default() };
    let generated_at = crate::util::clock::output_time();
    let today = generated_at.to_zoned(jiff::tz::TimeZone::UTC).date();
    let dependencies = dependencies(inputs)?;
    if dependencies.len() >= crate::advisories::snapshot::PRELOAD_AT {
        snapshot.preload();
    }
    let dependencies = dependencies
        .into_iter()
        .map(|d| {
            let findings = match &d.version {
                Some(v) => snapshot.check(&d.name, v).iter().map(|f| finding(&snapshot, f, &policy, today)).collect(),
                None => Vec::new(),
            };
            (d, findings)
        })
        .collect();
    let publishers = match source {
        Source::Index(url) => mirror_publishers(url, scratch.path()),
        _ => Default::default(),
    };
    let scanned = Scanned { snapshot: &snapshot, dependencies, generated_at, publishers };
    let text = match format {
        Format::Json => formats::pip_audit_json(&scanned),
        Format::Columns => formats::columns(&scanned),
        Format::Markdown => formats::markdown(&scanned),
        Format::Cyclonedx => formats::cyclonedx(&scanned),
        Format::Sarif => formats::sarif(&scanned),
    };
    match output {
        Some(p) => fs_err::write(p, text)?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    let active = || scanned.dependencies.iter().flat_map(|(_, f)| f.iter().filter(|f| f.ignored.is_none()));
    let breach = active().any(|f| f.malicious || fail_on.triggered_by(f.effective));
    let findings = active().count();
    let vulnerable = scanned.dependencies.iter().filter(|(_, f)| f.iter().any(|f| f.ignored.is_none())).count();
    let skipped = scanned.dependencies.iter().filter(|(d, _)| d.skip.is_some()).count();
    tracing::info!(
        "found {findings} known vulnerabilit{} in {vulnerable} package(s) of {}{}",
        if findings == 1 { "y" } else { "ies" },
        scanned.dependencies.len() - skipped,
        if skipped > 0 { format!("; {skipped} not auditable (not pinned)") } else { String::new() }
    );
    Ok(if breach { Exit::Policy } else { Exit::Success })
}
