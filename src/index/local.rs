//! `airlock index DIR`: a simple index for a local directory of wheels and
//! sdists (CI artifacts), published like a mirror: hashes and PEP 658
//! metadata computed locally, atomic swap, deterministic output.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::render::{self, RenderError, SiteFile, SiteInfo};
use super::templates::{TemplateError, Templates};
use crate::dist::filename::DistFilename;
use crate::dist::metadata;
use crate::tree::{Target, TreeError};
use crate::util::hashing::hash_file_with;

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

/// What the walk makes of one file.
enum Scanned {
    /// A distribution, hashed; why it has no PEP 658 metadata, if it has none.
    Dist(Box<SiteFile>, Option<String>),
    /// Not a distribution: the path and why.
    Skipped(PathBuf, String),
}

/// What a directory holds, sorted.
struct Scan {
    /// The distributions, hashed, by filename then path.
    files: Vec<SiteFile>,
    /// Why each other file is left out, by path.
    skipped: Vec<String>,
    /// Why each wheel without PEP 658 metadata has none, by path.
    no_metadata: Vec<String>,
}

/// Every distribution file under `dir` (not under `out`, not in
/// `meta_dir`), hashed, with its device and inode when `inodes` (a
/// recycled tree compares them); the other files as messages.
fn scan(dir: &Path, out: &Path, meta_dir: &Path, inodes: bool) -> Result<Scan, IndexError> {
    // The output (and its staging and kept trees beside it) is pruned at
    // its directory: one comparison per directory, not a path walk per file.
    let out_abs = std::path::absolute(out).ok();
    let trees =
        out_abs.as_ref().and_then(|o| Some(o.parent()?.join(format!(".{}.airlock", o.file_name()?.to_string_lossy()))));
    let meta_abs = std::path::absolute(meta_dir).ok();
    let dir_abs = std::path::absolute(dir).ok();
    let inside = |p: &Path| {
        let Some(abs) = dir_abs.as_ref().and_then(|d| Some(d.join(p.strip_prefix(dir).ok()?))) else { return false };
        out_abs.iter().chain(&trees).chain(&meta_abs).any(|o| abs.starts_with(o))
    };
    let walk = walkdir::WalkDir::new(dir).follow_links(false).into_iter();
    // Files are hashed as the walk finds them: listing a large directory
    // and hashing what it holds overlap instead of following each other.
    let scanned: Vec<Scanned> = walk
        .filter_entry(|e| !(e.file_type().is_dir() && inside(e.path())))
        .par_bridge()
        .filter_map(|entry| {
            let entry = match entry {
                Ok(e) if e.file_type().is_file() => e,
                Ok(_) => return None,
                Err(e) => return Some(Err(IndexError::Io(e.into()))),
            };
            let fname = entry.file_name().to_string_lossy();
            match DistFilename::parse(&fname, None) {
                Ok(f) => Some(
                    site_file(entry.path(), &f, meta_dir, inodes).map(|(file, why)| Scanned::Dist(Box::new(file), why)),
                ),
                Err(e) if !fname.starts_with('.') => Some(Ok(Scanned::Skipped(entry.into_path(), e.to_string()))),
                // A hidden file that is not a distribution is left out silently.
                Err(_) => None,
            }
        })
        .collect::<Result<_, _>>()?;
    let (mut files, mut skipped, mut no_metadata) = (Vec::new(), Vec::new(), Vec::new());
    for s in scanned {
        match s {
            Scanned::Dist(file, why) => {
                no_metadata.extend(why.map(|w| (file.source.clone(), w)));
                files.push(*file);
            }
            Scanned::Skipped(path, why) => skipped.push((path, why)),
        }
    }
    // The walk's order, and which thread hashed what, depend on the file
    // system and the scheduler: everything is sorted here, once, by bytes
    // (comparing paths component by component cost a tenth of a large index).
    files.sort_unstable_by(|a, b| {
        a.filename.as_str().cmp(b.filename.as_str()).then_with(|| a.source.as_os_str().cmp(b.source.as_os_str()))
    });
    let messages = |mut v: Vec<(PathBuf, String)>, with_path: bool| -> Vec<String> {
        v.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
        v.into_iter().map(|(path, why)| if with_path { format!("{}: {why}", path.display()) } else { why }).collect()
    };
    // A metadata error names its file already.
    Ok(Scan { files, skipped: messages(skipped, true), no_metadata: messages(no_metadata, false) })
}

/// Hash a file (and `fstat` it when `inode`) and, for a wheel, extract
/// its METADATA into `meta_dir`. A wheel whose METADATA cannot be read is
/// still listed, without PEP 658 metadata; why comes back beside it.
fn site_file(
    path: &Path,
    f: &DistFilename,
    meta_dir: &Path,
    inode: bool,
) -> Result<(SiteFile, Option<String>), IndexError> {
    use std::os::unix::fs::MetadataExt;
    // A wheel that fits the read buffer is read for its METADATA from the
    // bytes just hashed; a larger one is opened again.
    let shown = || path.display().to_string();
    let file = fs_err::File::open(path)?;
    // The open file's `fstat`, not a `stat` of its path at render time.
    let source_inode = match inode {
        true => Some(file.metadata().map(|m| (m.dev(), m.ino()))?),
        false => None,
    };
    let (sha256, size, from_memory) = hash_file_with(file, |bytes| match f {
        DistFilename::Wheel(w) => Some(metadata::wheel_metadata_from(std::io::Cursor::new(bytes), &shown(), w)),
        _ => None,
    })?;
    let mut file = SiteFile {
        project: f.name().clone(),
        filename: f.clone(),
        sha256,
        size,
        facts: Default::default(),
        metadata: None,
        source: path.to_path_buf(),
        metadata_source: None,
        provenance_source: None,
        source_inode,
        in_bucket: false,
        listed: true,
    };
    let DistFilename::Wheel(w) = f else { return Ok((file, None)) };
    let read = match from_memory.flatten() {
        Some(read) => read,
        None => metadata::wheel_metadata(path, w),
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        // The error names the file.
        Err(e) => return Ok((file, Some(e.to_string()))),
    };
    // `meta_dir` is this run's own temporary directory: a plain write is
    // enough, the staged tree is what is swapped in.
    let dest = meta_dir.join(format!("{f}.metadata"));
    fs_err::write(&dest, &bytes)?;
    let headers = metadata::headers(&bytes);
    file.facts.requires_python =
        metadata::header_values(&headers, "Requires-Python").next().map(crate::dist::file::RequiresPython::new);
    file.metadata = Some((crate::util::hashing::Sha256::of(&bytes), bytes.len() as u64));
    file.metadata_source = Some(dest);
    Ok((file, None))
}

/// One warning for many files: each is logged at debug level, the warning
/// counts them and names the first few. A directory of CI artifacts with
/// thousands of eggs or broken wheels gets a readable log, not one line
/// (and one write) per file.
fn warn_each(what: &str, about: &str, messages: &[String]) {
    const SHOWN: usize = 3;
    if messages.len() <= SHOWN {
        return messages.iter().for_each(|m| tracing::warn!("{what} {m}"));
    }
    messages.iter().for_each(|m| tracing::debug!("{what} {m}"));
    tracing::warn!(
        "{what} {} {about}, among them: {}; `-v` lists every one",
        messages.len(),
        messages[..SHOWN].join("; ")
    );
}

pub fn index_dir(dir: &Path, out: &Path, name: &str, templates: Option<&Path>) -> Result<IndexOutcome, IndexError> {
    if !dir.is_dir() {
        return Err(IndexError::NotADirectory(dir.display().to_string()));
    }
    let mut sw = crate::util::ui::Stopwatch::start();
    let templates = Templates::new(templates)?;
    let target = Target::new(out)?;
    let meta_dir = tempfile::Builder::new().prefix(".airlock-index-").tempdir_in(dir)?;
    // The tree the swap would remove is recycled while the files are
    // hashed: both are mostly system calls, on different directories.
    let id = crate::tree::target::fresh_id();
    let inodes = target.will_recycle();
    let (scanned, staged) = rayon::join(|| scan(dir, out, meta_dir.path(), inodes), || target.stage_recycling(&id));
    let (Scan { mut files, skipped, no_metadata }, mut staged) = (scanned?, staged?);
    sw.lap("scan, hash and stage");
    warn_each("skipping", "file(s) that are not wheels or sdists", &skipped);
    warn_each("no PEP 658 metadata for", "wheel(s) whose METADATA cannot be read", &no_metadata);
    // The same file found twice (a copy in two subdirectories) is listed
    // once; two different files of one name cannot both be served. The
    // files are sorted by name, so copies are neighbours: checked, then
    // folded in place.
    let same_name = |a: &SiteFile, b: &SiteFile| a.filename.as_str() == b.filename.as_str();
    if let Some(w) = files.windows(2).find(|w| same_name(&w[0], &w[1]) && w[0].sha256 != w[1].sha256) {
        return Err(IndexError::Conflict {
            first: w[0].source.display().to_string(),
            second: w[1].source.display().to_string(),
        });
    }
    files.dedup_by(|b, a| same_name(a, b));

    let info = SiteInfo {
        name: name.to_string(),
        upstream: None,
        generated_at: crate::util::clock::output_time(),
        environments: Vec::new(),
        index_url: None,
        unselected: Vec::new(),
        held: 0,
        withdrawn: 0,
        attested: None,
        project_pages: false,
    };
    let listing = render::render_site(&files, &info, None, &templates, (staged.dir(), staged.recycled()))?;
    sw.lap("render");
    staged.prune(listing.iter().map(|e| e.path.as_str()))?;
    staged.commit()?;
    sw.lap("prune and swap");
    let projects = files.iter().map(|f| &f.project).collect::<std::collections::HashSet<_>>().len();
    Ok(IndexOutcome { projects, files: files.len(), skipped })
}
