//! `airlock index DIR`: a simple index for a local directory of wheels and
//! sdists (CI artifacts), published like a mirror: hashes and PEP 658
//! metadata computed locally, atomic swap, deterministic output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::Error;
use crate::filename::DistFilename;
use crate::hashing::{Sha256, hash_file};
use crate::metadata;
use crate::publish::{self, Target};
use crate::render::{self, SiteFile, SiteInfo};
use crate::templates::Templates;

#[derive(Debug)]
pub struct IndexOutcome {
    pub projects: usize,
    pub files: usize,
    pub skipped: Vec<String>,
    pub tree: PathBuf,
}

pub fn index_dir(dir: &Path, out: &Path, name: &str, templates: Option<&Path>) -> Result<IndexOutcome, Error> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!("{} is not a directory", dir.display())));
    }
    let templates = Templates::new(templates)?;
    let target = Target::new(out)?;
    let out_abs = std::path::absolute(out).ok();

    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Io(e.into()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        if out_abs.as_ref().is_some_and(|o| std::path::absolute(path).is_ok_and(|p| p.starts_with(o))) {
            continue;
        }
        let fname = entry.file_name().to_string_lossy();
        match DistFilename::parse(&fname, None) {
            Ok(f) => candidates.push((path.to_path_buf(), f)),
            Err(e) => {
                if !fname.starts_with('.') {
                    tracing::warn!("skipping {}: {e}", path.display());
                    skipped.push(format!("{}: {e}", path.display()));
                }
            }
        }
    }

    let meta_dir = tempfile::Builder::new().prefix(".airlock-index-").tempdir_in(dir)?;
    // Hash and extract in parallel, then order by filename: walk order and
    // thread timing never reach the output.
    let mut files: Vec<SiteFile> = candidates
        .par_iter()
        .map(|(path, f)| -> Result<SiteFile, Error> {
            let (sha256, size) = hash_file(path)?;
            let mut requires_python = None;
            let mut meta = None;
            let mut metadata_source = None;
            if let DistFilename::Wheel(w) = f {
                match metadata::wheel_metadata(path, w) {
                    Ok(bytes) => {
                        let headers = metadata::headers(&bytes);
                        requires_python =
                            metadata::header_values(&headers, "Requires-Python").next().map(str::to_string);
                        let mp = meta_dir.path().join(format!("{f}.metadata"));
                        fs_err::write(&mp, &bytes)?;
                        meta = Some((Sha256::of(&bytes), bytes.len() as u64));
                        metadata_source = Some(mp);
                    }
                    Err(e) => tracing::warn!("no PEP 658 metadata for {}: {e}", path.display()),
                }
            }
            Ok(SiteFile {
                project: f.name().clone(),
                filename: f.to_string(),
                version: f.version().clone(),
                sha256,
                size,
                requires_python,
                yanked: None,
                upload_time: None,
                metadata: meta,
                source: path.clone(),
                metadata_source,
                listed: true,
            })
        })
        .collect::<Result<_, _>>()?;
    files.sort_by(|a, b| a.filename.cmp(&b.filename).then_with(|| a.source.cmp(&b.source)));
    let mut unique: BTreeMap<String, SiteFile> = BTreeMap::new();
    for f in files {
        if let Some(prev) = unique.get(&f.filename) {
            if prev.sha256 != f.sha256 {
                return Err(Error::Failed(format!(
                    "{} and {} have the same filename but different contents",
                    prev.source.display(),
                    f.source.display()
                )));
            }
            continue;
        }
        unique.insert(f.filename.clone(), f);
    }
    let files: Vec<SiteFile> = unique.into_values().collect();

    let info = SiteInfo { name: name.to_string(), upstream: None, generated_at: crate::clock::output_time() };
    let staged = target.stage(&publish::fresh_id())?;
    render::render_site(&files, &info, None, &templates, staged.dir())?;
    let tree = staged.commit()?;
    let projects = files.iter().map(|f| &f.project).collect::<std::collections::BTreeSet<_>>().len();
    Ok(IndexOutcome { projects, files: files.len(), skipped, tree })
}
