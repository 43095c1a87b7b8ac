//! Stage (inside publish): repair. A recorded file whose bytes are gone
//! from the store (deleted behind airlock's back, lost with a volume, or
//! absent from an object store an empty runner restores from) is brought
//! back before any tree is rendered without it: from the served tree
//! (whose hard link may be the last copy), else from the upstream, each
//! checked against the sha256 and size the state recorded. Bytes that
//! hash otherwise are possible tampering, never stored. What cannot be
//! brought back fails the run and keeps the served tree as it was
//! (`publish` refuses to render a tree that lost files).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::diagnostics::Diagnostic;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::store::Store;
use crate::store::fetch::{self, FetchError, FetchJob, FetchOptions};
use crate::store::state::Artifact;
use crate::upstream::Client;
use crate::upstream::listing::UpstreamFile;
use crate::util::hashing::hash_file;

/// A recorded URL that no longer parses (a state from outside).
#[derive(Debug, thiserror::Error)]
#[error("recorded URL {url:?}: {error}")]
pub(crate) struct BadRecordedUrl {
    url: String,
    error: url::ParseError,
}

/// The upstream file an artifact came from, expected to hash as recorded.
pub(crate) fn upstream_file(a: &Artifact) -> Result<UpstreamFile, BadRecordedUrl> {
    Ok(UpstreamFile {
        filename: a.filename.clone(),
        url: url::Url::parse(&a.url).map_err(|error| BadRecordedUrl { url: a.url.clone(), error })?,
        sha256: Some(a.sha256),
        size: Some(a.size),
        facts: a.facts.clone(),
        metadata: Default::default(),
    })
}

/// Where gone files may come back from.
pub struct Repairer<'a> {
    /// The upstream (none offline, and for `airlock audit`, which fetches nothing).
    pub client: Option<&'a Client>,
    /// The tree served now, if there is one on this machine.
    pub served: Option<PathBuf>,
    pub jobs: usize,
    /// What was brought back, for an object-store store to upload.
    pub restored: Mutex<Vec<(ProjectName, DistFilename)>>,
    /// What could not be, with why: asked again (the publish stage after
    /// the object-store stage), it is not fetched twice.
    pub tried: Mutex<std::collections::BTreeMap<(ProjectName, String), Diagnostic>>,
}

impl<'a> Repairer<'a> {
    pub fn new(client: Option<&'a Client>, served: Option<PathBuf>, jobs: usize) -> Repairer<'a> {
        Repairer { client, served, jobs, restored: Mutex::default(), tried: Mutex::default() }
    }

    /// Bring `gone` back into `store`; the diagnostics say what came back
    /// from where, and what could not (those fail the run).
    pub fn restore(&self, store: &Store, gone: &[Artifact]) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut still = Vec::new();
        let tried = self.tried.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let gone: Vec<&Artifact> = gone
            .iter()
            .filter(|a| match tried.get(&(a.project.clone(), a.filename.to_string())) {
                Some(d) => {
                    out.push(d.clone());
                    false
                }
                None => true,
            })
            .collect();
        for a in gone {
            match self.served_copy(store, a) {
                true => out.push(repaired(a, "the served tree")),
                false => still.push(a),
            }
        }
        let mut jobs = Vec::new();
        for a in still {
            match (self.client, upstream_file(a)) {
                (Some(_), Ok(file)) => jobs.push((a, FetchJob { project: a.project.clone(), file })),
                (None, _) => out.push(Diagnostic::MissingFromStore {
                    project: a.project.clone(),
                    filename: a.filename.to_string(),
                    why: "offline, it cannot be fetched again".into(),
                }),
                (_, Err(e)) => out.push(Diagnostic::MissingFromStore {
                    project: a.project.clone(),
                    filename: a.filename.to_string(),
                    why: e.to_string(),
                }),
            }
        }
        if let (Some(client), false) = (self.client, jobs.is_empty()) {
            tracing::info!("fetching {} recorded file(s) gone from the store again", jobs.len());
            let fetch_jobs: Vec<FetchJob> = jobs.iter().map(|(_, j)| j.clone()).collect();
            let opts = FetchOptions { jobs: self.jobs, allow_missing_hashes: false };
            let results = fetch::fetch_all(client, store, &fetch_jobs, opts);
            for ((a, _), r) in jobs.iter().zip(results) {
                out.push(match r {
                    Ok(_) => {
                        self.note(a);
                        repaired(a, "the upstream")
                    }
                    Err(e) => gone_for_good(a, &e),
                });
            }
        }
        let mut tried = self.tried.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for d in out.iter().filter(|d| matches!(d, Diagnostic::MissingFromStore { .. })) {
            tried.insert((d.project().clone(), d.filename().unwrap_or_default().to_string()), d.clone());
        }
        out
    }

    /// The served tree's copy, if it hashes as recorded (linked back, or
    /// copied across file systems).
    fn served_copy(&self, store: &Store, a: &Artifact) -> bool {
        let Some(root) = &self.served else { return false };
        let copy = root.join("packages").join(a.project.as_str()).join(a.filename.as_str());
        if !hash_file(&copy).is_ok_and(|(sha, size)| sha == a.sha256 && size == a.size) {
            return false;
        }
        let dest = store.path(&a.project, &a.filename);
        if let Some(dir) = dest.parent()
            && fs_err::create_dir_all(dir).is_err()
        {
            return false;
        }
        let placed = std::fs::hard_link(&copy, &dest).is_ok() || copy_atomically(store, &copy, &dest).is_ok();
        if placed {
            if let DistFilename::Wheel(w) = &a.filename {
                store.extract_metadata(&a.project, w);
            }
            self.note(a);
        }
        placed
    }

    fn note(&self, a: &Artifact) {
        self.restored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((a.project.clone(), a.filename.clone()));
    }
}

fn copy_atomically(store: &Store, from: &Path, to: &Path) -> std::io::Result<()> {
    let tmp = tempfile::Builder::new().suffix(".part").tempfile_in(store.tmp_dir())?;
    fs_err::copy(from, tmp.path())?;
    crate::util::fsx::persist(tmp, to)
}

fn repaired(a: &Artifact, from: &str) -> Diagnostic {
    Diagnostic::Repaired { project: a.project.clone(), filename: a.filename.to_string(), from: from.to_string() }
}

/// A file that could not be brought back: other bytes upstream are
/// possible tampering; anything else is named as it failed.
fn gone_for_good(a: &Artifact, e: &FetchError) -> Diagnostic {
    let why = match e {
        FetchError::Hash(m) => format!(
            "POSSIBLE TAMPERING: the upstream now serves sha256 {} for it, but {} was mirrored; refused",
            m.computed, m.expected
        ),
        FetchError::Exhausted { last, .. } if matches!(**last, FetchError::Hash(_)) => return gone_for_good(a, last),
        other => format!("fetching it again failed: {other}"),
    };
    Diagnostic::MissingFromStore { project: a.project.clone(), filename: a.filename.to_string(), why }
}
