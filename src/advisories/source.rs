//! Reading OSV records from local sources: a directory (walked; `.json`,
//! `.yaml`, `.yml`), a `.zip` archive such as osv.dev's per-ecosystem
//! `all.zip`, or a single record file. Files are parsed in parallel; a record
//! that does not parse is reported with its path and skipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::osv::Record;

/// Where advisories come from: a URL (fetched conditionally, cached) or a
/// local directory, `.zip` or record file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Url(url::Url),
    Path(std::path::PathBuf),
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Url(u) => f.write_str(&crate::util::redact::url(u)),
            SourceSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: not a readable zip archive: {message}")]
    Zip { path: String, message: String },
    #[error("{path}: not a directory, .zip, .json or .yaml file")]
    Kind { path: String },
}

/// What one source yielded.
#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<Record>,
    /// `path: message` for every record that did not parse.
    pub errors: Vec<String>,
    /// The git commit of a checked-out directory, when there is one.
    pub commit: Option<String>,
}

/// A whole OSV file is capped: real records are kilobytes.
const MAX_RECORD: u64 = 64 * 1024 * 1024;

fn parse_one(name: &str, bytes: &[u8]) -> Result<Vec<Record>, String> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".json") {
        // A file may hold one record or an array of them.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match value {
            serde_json::Value::Array(items) => {
                items.into_iter().map(|v| serde_json::from_value::<Record>(v).map_err(|e| e.to_string())).collect()
            }
            v => serde_json::from_value::<Record>(v).map(|r| vec![r]).map_err(|e| e.to_string()),
        }
    } else {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        serde_saphyr::from_str::<Record>(text)
            .map(|r| vec![r])
            .map_err(|e| e.to_string().lines().next().unwrap_or("").to_string())
    }
}

fn is_record_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".json") || lower.ends_with(".yaml") || lower.ends_with(".yml")
}

fn collect(named: Vec<(String, Result<Vec<u8>, String>)>) -> Parsed {
    // Parse in parallel; the output order follows the (sorted) input order.
    let results: Vec<(String, Result<Vec<Record>, String>)> = named
        .into_par_iter()
        .map(|(name, bytes)| {
            let parsed = bytes.and_then(|b| parse_one(&name, &b));
            (name, parsed)
        })
        .collect();
    let mut out = Parsed::default();
    for (name, r) in results {
        match r {
            Ok(records) => out.records.extend(records),
            Err(e) => {
                tracing::warn!("skipping {name}: {e}");
                out.errors.push(format!("{name}: {e}"));
            }
        }
    }
    out
}

/// Read a local source.
pub fn read(path: &Path) -> Result<Parsed, SourceError> {
    if path.is_dir() {
        return read_dir(path);
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".zip") {
        return read_zip(path);
    }
    if is_record_file(&name) {
        let bytes = fs_err::read(path)?;
        return Ok(collect(vec![(path.display().to_string(), Ok(bytes))]));
    }
    if !path.exists() {
        return Err(SourceError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: no such file or directory", path.display()),
        )));
    }
    Err(SourceError::Kind { path: path.display().to_string() })
}

/// A directory, walked through symbolic links (a tree of links to
/// checkouts is a common layout); a link loop is an error naming it.
fn read_dir(dir: &Path) -> Result<Parsed, SourceError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
    {
        let entry = entry.map_err(|e| SourceError::Io(e.into()))?;
        if entry.file_type().is_file() && is_record_file(&entry.file_name().to_string_lossy()) {
            files.push(entry.into_path());
        }
    }
    let named: Vec<(String, Result<Vec<u8>, String>)> = files
        .par_iter()
        .map(|p| {
            let bytes = std::fs::File::open(p)
                .and_then(|f| {
                    let mut b = Vec::new();
                    f.take(MAX_RECORD).read_to_end(&mut b)?;
                    Ok(b)
                })
                .map_err(|e| e.to_string());
            (p.display().to_string(), bytes)
        })
        .collect();
    let mut parsed = collect(named);
    parsed.commit = git_head(dir);
    Ok(parsed)
}

fn read_zip(path: &Path) -> Result<Parsed, SourceError> {
    let zip_err =
        |e: zip::result::ZipError| SourceError::Zip { path: path.display().to_string(), message: e.to_string() };
    let file = fs_err::File::open(path)?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    let mut named = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(zip_err)?;
        let member = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        if !entry.is_file() || !is_record_file(&member) {
            continue;
        }
        let name = format!("{}!{member}", path.display());
        let mut bytes = Vec::with_capacity(entry.size().min(MAX_RECORD) as usize);
        let read = entry.take(MAX_RECORD).read_to_end(&mut bytes).map(|_| bytes).map_err(|e| e.to_string());
        named.push((name, read));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(collect(named))
}

/// The commit a git checkout is at (`.git/HEAD`, following one ref), if the
/// directory or its parent (`advisory-database/vulns`) is one.
fn git_head(dir: &Path) -> Option<String> {
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let git = d.join(".git");
        if git.is_dir() {
            let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
            let head = head.trim();
            return match head.strip_prefix("ref: ") {
                Some(r) => std::fs::read_to_string(git.join(r)).ok().map(|s| s.trim().to_string()).or_else(|| {
                    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
                    packed
                        .lines()
                        .find(|l| l.ends_with(r))
                        .and_then(|l| l.split_whitespace().next())
                        .map(str::to_string)
                }),
                None => Some(head.to_string()),
            };
        }
    }
    None
}
