//! The `airlock advisories` commands: build a snapshot from sources, refresh
//! the manifest's snapshot, describe one, and check versions against it.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use super::snapshot::{self, BuildStats, Input, Snapshot, SnapshotError, SourceInfo};
use super::source::SourceSpec;
use super::source::{self, SourceError};
use crate::upstream::{Client, ClientConfig, Download, UpstreamError, Validators};
use crate::util::hashing::hash_file;
use crate::util::redact;
use crate::util::ui::human_bytes;

#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("no advisory sources: list them in [advisories] sources")]
    NoSources,
    #[error(
        "advisory source {location} holds no OSV records{errors}: an empty or unmounted directory, or the wrong file? No snapshot is built from it"
    )]
    EmptySource { location: String, errors: String },
    #[error(
        "the advisory sources hold no PyPI advisory ({records} record(s) read, none for PyPI): no snapshot is built from them"
    )]
    NoAdvisories { records: usize },
    #[error(
        "the new snapshot has {new} advisories, less than half of the {old} in {path}: refused (a source that lost most of its records?); rerun with --allow-shrink if that is right"
    )]
    Shrunk { path: String, old: usize, new: usize },
}

/// A source as given on the command line or in the manifest.
pub fn parse_spec(s: &str) -> SourceSpec {
    match Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => SourceSpec::Url(u),
        _ => SourceSpec::Path(PathBuf::from(s)),
    }
}

/// Cached download of a URL source, kept between `update` runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cached {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched_at: String,
    sha256: String,
}

fn cache_paths(cache: &Path, url: &Url) -> (PathBuf, PathBuf) {
    let key = crate::util::hashing::Sha256::of(redact::url(url).as_bytes()).hex();
    let ext = if url.path().ends_with(".zip") { "zip" } else { "json" };
    (cache.join(format!("{}.{ext}", &key[..24])), cache.join(format!("{}.meta.json", &key[..24])))
}

/// Fetch (conditionally) a URL source into the cache; returns the local file
/// and what to record about it.
fn fetch_url(client: &Client, url: &Url, cache: &Path) -> Result<(PathBuf, SourceInfo), AdvisoryError> {
    let (file, meta_path) = cache_paths(cache, url);
    let old: Option<Cached> =
        std::fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).filter(|_| file.is_file());
    let previous = old.as_ref().map(|c| Validators { etag: c.etag.clone(), last_modified: c.last_modified.clone() });
    let cached = match client.download_conditional(url, previous.as_ref(), &file)? {
        Download::NotModified => {
            let c = old.expect("validators only come from a cache entry");
            tracing::info!("{}: not modified since {}", redact::url(url), c.fetched_at);
            c
        }
        Download::Fetched { validators, sha256, size } => {
            tracing::info!("{}: fetched {}", redact::url(url), human_bytes(size));
            let c = Cached {
                url: redact::url(url),
                etag: validators.etag,
                last_modified: validators.last_modified,
                fetched_at: crate::util::clock::now(),
                sha256: sha256.hex(),
            };
            crate::util::fsx::write_atomically(&meta_path, &serde_json::to_vec_pretty(&c).expect("serializable"))?;
            c
        }
    };
    let info = SourceInfo {
        location: cached.url.clone(),
        kind: if file.extension().is_some_and(|e| e == "zip") { "zip".into() } else { "json".into() },
        sha256: Some(cached.sha256),
        etag: cached.etag,
        last_modified: cached.last_modified,
        fetched_at: Some(cached.fetched_at),
        ..SourceInfo::default()
    };
    Ok((file, info))
}

fn local_info(path: &Path) -> Result<SourceInfo, AdvisoryError> {
    let kind = if path.is_dir() {
        "dir"
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        "zip"
    } else {
        "file"
    };
    let sha256 = if path.is_file() { Some(hash_file(path)?.0.hex()) } else { None };
    Ok(SourceInfo { location: path.display().to_string(), kind: kind.into(), sha256, ..SourceInfo::default() })
}

fn client_for(url: &Url) -> Result<Client, AdvisoryError> {
    Ok(Client::new(&ClientConfig { index: url.clone(), retries: 5, timeout: std::time::Duration::from_secs(120) })?)
}

/// Read every source (URLs through `cache`) and build the snapshot at `out`.
/// Fails closed: a source without records, or sources without a PyPI
/// advisory, build nothing (an unmounted directory must not become an
/// empty snapshot that turns every audit green).
pub fn build(specs: &[SourceSpec], out: &Path, cache: &Path) -> Result<BuildStats, AdvisoryError> {
    build_checked(specs, out, cache, |_| Ok(()))
}

/// [`build`], written to `out` only when `accept` agrees with the stats.
fn build_checked(
    specs: &[SourceSpec],
    out: &Path,
    cache: &Path,
    accept: impl FnOnce(&BuildStats) -> Result<(), AdvisoryError>,
) -> Result<BuildStats, AdvisoryError> {
    if specs.is_empty() {
        return Err(AdvisoryError::NoSources);
    }
    let mut inputs = Vec::new();
    for spec in specs {
        let (path, info) = match spec {
            SourceSpec::Url(u) => fetch_url(&client_for(u)?, u, cache)?,
            SourceSpec::Path(p) => (p.clone(), local_info(p)?),
        };
        let parsed = source::read(&path)?;
        if parsed.records.is_empty() {
            let errors = match parsed.errors.len() {
                0 => String::new(),
                n => format!(" ({n} file(s) did not parse)"),
            };
            return Err(AdvisoryError::EmptySource { location: info.location.clone(), errors });
        }
        inputs.push(Input { info, parsed });
    }
    let built_at = crate::util::clock::output_time().to_string();
    // Built beside `out` and renamed over it only once accepted.
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let scratch = tempfile::Builder::new().prefix(".snapshot-").tempdir_in(dir)?;
    let staged = scratch.path().join("snapshot.sqlite.zst");
    let stats = snapshot::build(inputs, &staged, &built_at)?;
    if stats.advisories == 0 {
        return Err(AdvisoryError::NoAdvisories { records: stats.records_read });
    }
    accept(&stats)?;
    fs_err::rename(&staged, out)?;
    Ok(stats)
}

/// `airlock advisories update`: rebuild `snapshot` from `sources`, caching
/// downloads in `cache`. When a source cannot be reached, the old snapshot
/// stays and the error says how old it is; a new snapshot with less than
/// half the old one's advisories replaces it only with `allow_shrink`.
pub fn update(
    sources: &[SourceSpec],
    snapshot: &Path,
    cache: &Path,
    allow_shrink: bool,
) -> Result<BuildStats, AdvisoryError> {
    let old = Snapshot::open(snapshot).ok();
    let old_count = old.as_ref().map(|s| s.advisories.len());
    let accept = |stats: &BuildStats| match old_count {
        Some(old) if !allow_shrink && stats.advisories * 2 < old => {
            Err(AdvisoryError::Shrunk { path: snapshot.display().to_string(), old, new: stats.advisories })
        }
        _ => Ok(()),
    };
    match build_checked(sources, snapshot, cache, accept) {
        Ok(stats) => Ok(stats),
        Err(e) => {
            if matches!(e, AdvisoryError::Upstream(_)) {
                tracing::warn!(
                    "a source could not be downloaded; a machine without internet access takes a local copy instead: [advisories] sources = [\"/path/to/PyPI-all.zip\"] (osv.dev's PyPI/all.zip fetched elsewhere, or a checkout of the advisory database)"
                );
            }
            if let Some(old) = old {
                let age =
                    old.age_days(jiff::Timestamp::now()).map_or("unknown age".into(), |d| format!("{d} day(s) old"));
                tracing::warn!(
                    "keeping the existing snapshot {} (built {}, {age})",
                    snapshot.display(),
                    old.meta.built_at
                );
            }
            Err(e)
        }
    }
}

pub fn print_stats(stats: &BuildStats, out: &Path) {
    tracing::info!(
        "wrote {} ({}, sha256 {}): {} advisories ({} withdrawn) for {} packages from {} records; {} parse error(s), {} other-ecosystem, {} duplicate, {} GIT range(s) skipped, {} unparseable event version(s)",
        out.display(),
        human_bytes(stats.bytes),
        stats.sha256,
        stats.advisories,
        stats.withdrawn,
        stats.packages,
        stats.records_read,
        stats.parse_errors,
        stats.other_ecosystems,
        stats.duplicates,
        stats.git_ranges,
        stats.bad_events
    );
}

/// `airlock advisories info FILE`.
pub fn info(path: &Path, out: &mut dyn Write) -> Result<(), AdvisoryError> {
    let s = Snapshot::open(path)?;
    let age = s.age_days(jiff::Timestamp::now()).map_or_else(String::new, |d| format!(" ({d} day(s) ago)"));
    writeln!(out, "snapshot   {}", path.display())?;
    writeln!(out, "sha256     {}", s.sha256)?;
    writeln!(out, "size       {}", human_bytes(s.bytes))?;
    writeln!(out, "schema     {} (built by airlock {})", s.meta.schema_version, s.meta.airlock_version)?;
    writeln!(out, "built      {}{age}", s.meta.built_at)?;
    let counts: Vec<String> = s.meta.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "counts     {}", counts.join(", "))?;
    for src in &s.meta.sources {
        let mut extra = vec![src.kind.clone(), format!("{} records", src.records)];
        if src.errors > 0 {
            extra.push(format!("{} unparseable", src.errors));
        }
        if let Some(c) = &src.commit {
            extra.push(format!("commit {c}"));
        }
        if let Some(e) = &src.etag {
            extra.push(format!("etag {e}"));
        }
        if let Some(d) = src.last_modified.as_ref().or(src.fetched_at.as_ref()) {
            extra.push(format!("date {d}"));
        }
        if let Some(h) = &src.sha256 {
            extra.push(format!("sha256 {h}"));
        }
        writeln!(out, "source     {} ({})", src.location, extra.join(", "))?;
    }
    Ok(())
}

/// One line of batch output.
#[derive(Serialize)]
struct CheckLine<'a> {
    name: &'a str,
    version: &'a str,
    advisories: Vec<&'a str>,
    aliases: std::collections::BTreeMap<&'a str, Vec<&'a str>>,
}

/// `airlock advisories check` with NAME VERSION: a readable list.
pub fn check_one(snapshot: &Snapshot, name: &str, version: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let findings = snapshot.check(name, version);
    if findings.is_empty() {
        return writeln!(out, "{name} {version}: no known advisories");
    }
    writeln!(
        out,
        "{name} {version}: {} known advisor{}",
        findings.len(),
        if findings.len() == 1 { "y" } else { "ies" }
    )?;
    for f in &findings {
        let score = f.score.map(|s| format!(" {s:.1}")).unwrap_or_default();
        let fixed = if f.fixed_in.is_empty() {
            "no fix listed".to_string()
        } else {
            format!("fixed in {}", f.fixed_in.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        };
        let aliases: Vec<&str> = snapshot.aliases(f).collect();
        let aliases = if aliases.is_empty() { String::new() } else { format!(" ({})", aliases.join(", ")) };
        writeln!(out, "  {} {}{score}, {fixed}{aliases}", snapshot.id(f), f.severity)?;
        let summary = snapshot.summary(f);
        if !summary.is_empty() {
            writeln!(out, "      {summary}")?;
        }
    }
    Ok(())
}

/// Lines are checked in parallel in blocks this size and written in order.
const BATCH: usize = 2048;

fn check_line(snapshot: &Snapshot, lineno: usize, text: &str, buf: &mut Vec<u8>) {
    let mut parts = text.split_whitespace();
    let (name, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(v), None) => (n, v),
        (Some(nv), None, None) if nv.contains("==") => nv.split_once("==").expect("checked"),
        _ => {
            let err = serde_json::json!({"line": lineno, "input": text, "error": "expected `NAME VERSION`"});
            serde_json::to_writer(&mut *buf, &err).expect("in-memory write");
            buf.push(b'\n');
            return;
        }
    };
    let findings = snapshot.check(name, version);
    let line = CheckLine {
        name,
        version,
        advisories: findings.iter().map(|f| snapshot.id(f)).collect(),
        aliases: findings.iter().map(|f| (snapshot.id(f), snapshot.aliases(f).collect())).collect(),
    };
    serde_json::to_writer(&mut *buf, &line).expect("in-memory write");
    buf.push(b'\n');
}

/// `airlock advisories check` without NAME VERSION: `NAME VERSION` lines in,
/// one JSON line out per input line (blank lines and `#` comments skipped).
pub fn check_batch(snapshot: &Snapshot, input: impl BufRead, out: impl Write) -> std::io::Result<usize> {
    use rayon::prelude::*;
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut n = 0;
    let mut block: Vec<(usize, String)> = Vec::with_capacity(BATCH);
    let mut lines = input.lines().enumerate();
    loop {
        block.clear();
        for (i, line) in lines.by_ref() {
            let line = line?;
            let text = line.trim();
            if !text.is_empty() && !text.starts_with('#') {
                block.push((i + 1, text.to_string()));
            }
            if block.len() == BATCH {
                break;
            }
        }
        if block.is_empty() {
            break;
        }
        if block.len() >= super::snapshot::PRELOAD_AT {
            snapshot.preload();
        }
        // Parallel within the block; the collected buffers keep input order.
        let rendered: Vec<Vec<u8>> = block
            .par_iter()
            .map(|(lineno, text)| {
                let mut buf = Vec::with_capacity(256);
                check_line(snapshot, *lineno, text, &mut buf);
                buf
            })
            .collect();
        for r in &rendered {
            out.write_all(r)?;
        }
        n += block.len();
    }
    out.flush()?;
    Ok(n)
}
