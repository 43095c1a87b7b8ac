//! `airlock index DIR`: a simple index for a local directory of wheels and
//! sdists (CI artifacts), published like a mirror: hashes and PEP 658
//! metadata computed locally, atomic swap, deterministic output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::render::{self, RenderError, SiteFile, SiteInfo};
use super::templates::{TemplateError, Templates};
use crate::dist::filename::DistFilename;
use crate::dist::metadata;
use crate::tree::{Target, TreeError};
use crate::util::hashing::hash_file;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("{first} and {second} have the same filename but different contents")]
    Conflict { first: String, second: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Tree(#[from] TreeError),
}

#[derive(Debug)]
pub struct IndexOutcome {
    pub projects: usize,
    pub files: usize,
    pub skipped: Vec<String>,
}

/// Distribution files found, and messages about the other files.
type Found = (Vec<(PathBuf, DistFilename)>, Vec<String>);

/// Every distribution file under `dir` (not under `out`), parsed; the
/// others are returned as messages.
fn candidates(dir: &Path, out: &Path) -> Result<Found, IndexError> {
    let out_abs = std::path::absolute(out).ok();
    let mut skipped = Vec::new();
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|e| IndexError::Io(e.into()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        if out_abs.as_ref().is_some_and(|o| std::path::absolute(path).is_ok_and(|p| p.starts_with(o))) {
            continue;
        }
        let fname = entry.file_name().to_string_lossy();
        match DistFilename::parse(&fname, None) {
            Ok(f) => found.push((path.to_path_buf(), f)),
            Err(e) if !fname.starts_with('.') => {
                tracing::warn!("skipping {}: {e}", path.display());
                skipped.push(format!("{}: {e}", path.display()));
            }
            Err(_) => {}
        }
    }
    Ok((found, skipped))
}

/// Hash a file and, for a wheel, extract its METADATA into `meta_dir`.
fn site_file(path: &Path, f: &DistFilename, meta_dir: &Path) -> Result<SiteFile, IndexError> {
    let (sha256, size) = hash_file(path)?;
    let mut requires_python = None;
    let mut meta = None;
    let mut metadata_source = None;
    if let DistFilename::Wheel(w) = f {
        let dest = meta_dir.join(format!("{f}.metadata"));
        match metadata::extract_to(path, w, &dest) {
            Ok(m) => {
                let headers = metadata::headers(&fs_err::read(&dest)?);
                requires_python = metadata::header_values(&headers, "Requires-Python").next().map(str::to_string);
                meta = Some(m);
                metadata_source = Some(dest);
            }
            Err(e) => tracing::warn!("no PEP 658 metadata for {}: {e}", path.display()),
        }
    }
    Ok(SiteFile {
        project: f.name().clone(),
        filename: f.clone(),
        sha256,
        size,
        requires_python,
        yanked: None,
        upload_time: None,
        metadata: meta,
        source: path.to_path_buf(),
        metadata_source,
        listed: true,
    })
}

pub fn index_dir(dir: &Path, out: &Path, name: &str, templates: Option<&Path>) -> Result<IndexOutcome, IndexError> {
    if !dir.is_dir() {
        return Err(IndexError::NotADirectory(dir.display().to_string()));
    }
    let templates = Templates::new(templates)?;
    let target = Target::new(out)?;
    let (found, skipped) = candidates(dir, out)?;
    let meta_dir = tempfile::Builder::new().prefix(".airlock-index-").tempdir_in(dir)?;
    // Hash and extract in parallel, then order by filename: walk order and
    // thread timing never reach the output.
    let mut files: Vec<SiteFile> =
        found.par_iter().map(|(path, f)| site_file(path, f, meta_dir.path())).collect::<Result<_, _>>()?;
    files.sort_by(|a, b| a.filename.as_str().cmp(b.filename.as_str()).then_with(|| a.source.cmp(&b.source)));
    let mut unique: BTreeMap<String, SiteFile> = BTreeMap::new();
    for f in files {
        if let Some(prev) = unique.get(f.filename.as_str()) {
            if prev.sha256 != f.sha256 {
                return Err(IndexError::Conflict {
                    first: prev.source.display().to_string(),
                    second: f.source.display().to_string(),
                });
            }
            continue;
        }
        unique.insert(f.filename.to_string(), f);
    }
    let files: Vec<SiteFile> = unique.into_values().collect();

    let info = SiteInfo {
        name: name.to_string(),
        upstream: None,
        generated_at: crate::util::clock::output_time(),
        environments: Vec::new(),
        index_url: None,
        unselected: Vec::new(),
    };
    let staged = target.stage(&crate::tree::target::fresh_id())?;
    render::render_site(&files, &info, None, &templates, staged.dir())?;
    staged.commit()?;
    let projects = files.iter().map(|f| &f.project).collect::<std::collections::BTreeSet<_>>().len();
    Ok(IndexOutcome { projects, files: files.len(), skipped })
}
