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
    // The output (and its staging and kept trees beside it) is pruned at
    // its directory: one comparison per directory, not a path walk per file.
    let out_abs = std::path::absolute(out).ok();
    let trees =
        out_abs.as_ref().and_then(|o| Some(o.parent()?.join(format!(".{}.airlock", o.file_name()?.to_string_lossy()))));
    let dir_abs = std::path::absolute(dir).ok();
    let inside = |p: &Path| {
        let Some(abs) = dir_abs.as_ref().and_then(|d| Some(d.join(p.strip_prefix(dir).ok()?))) else { return false };
        out_abs.iter().chain(&trees).any(|o| abs.starts_with(o))
    };
    let mut skipped = Vec::new();
    let mut found = Vec::new();
    let walk = walkdir::WalkDir::new(dir).follow_links(false).into_iter();
    for entry in walk.filter_entry(|e| !(e.file_type().is_dir() && inside(e.path()))) {
        let entry = entry.map_err(|e| IndexError::Io(e.into()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let fname = entry.file_name().to_string_lossy();
        match DistFilename::parse(&fname, None) {
            Ok(f) => found.push((path.to_path_buf(), f)),
            Err(e) if !fname.starts_with('.') => skipped.push((path.to_path_buf(), e.to_string())),
            Err(_) => {}
        }
    }
    // The walk's order depends on the file system: sorted here, once, by
    // the path's bytes (comparing paths component by component per
    // comparison cost a tenth of a large index).
    found.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    skipped.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    let skipped = skipped
        .into_iter()
        .map(|(path, e)| {
            tracing::warn!("skipping {}: {e}", path.display());
            format!("{}: {e}", path.display())
        })
        .collect();
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
