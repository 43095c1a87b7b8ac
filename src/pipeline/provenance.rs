//! Stage: provenance (inside fetch). For every file fetched and verified
//! whose upstream offers PEP 740 provenance, the provenance object is
//! fetched once (`Accept: application/vnd.pypi.integrity.v1+json`, the
//! client's limits and retries), verified offline against the trusted
//! root (`provenance::verify_provenance`), and kept beside the file in the
//! store (`<file>.provenance`, the upstream's bytes): a rerun asks nothing
//! it knows, because the file and its provenance are kept together. A file
//! whose provenance fails is removed from the store and never served.

use rayon::prelude::*;
use url::Url;

use crate::diagnostics::Diagnostic;
use crate::dist::names::ProjectName;
use crate::error::Error;
use crate::manifest::{Policy, ProvenancePolicy};
use crate::provenance::TrustRoot;
use crate::store::Store;
use crate::upstream::Client;
use crate::upstream::listing::UpstreamFile;
use crate::util::hashing::Sha256;

const ACCEPT: &str = "application/vnd.pypi.integrity.v1+json";
/// A provenance object is a few kilobytes per attestation.
const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// What the stage checks against, made once per run.
pub struct Check {
    root: TrustRoot,
}

impl Check {
    /// `None` under `provenance = "off"`; the trusted root read (or the
    /// built-in production one) otherwise.
    pub fn new(policy: &Policy) -> Result<Option<Check>, Error> {
        if policy.provenance == ProvenancePolicy::Off {
            return Ok(None);
        }
        let root = match &policy.trusted_root {
            Some(path) => {
                let json = fs_err::read_to_string(path)?;
                TrustRoot::from_json(&json).map_err(|e| {
                    Error::Failed(format!("trusted_root {}: not a Sigstore trusted root: {e}", path.display()))
                })?
            }
            None => TrustRoot::production()
                .map_err(|e| Error::Failed(format!("the built-in Sigstore trusted root: {e}")))?,
        };
        Ok(Some(Check { root }))
    }
}

/// The path of a file's provenance beside it in the store.
pub fn stored_path(store: &Store, project: &ProjectName, filename: &str) -> std::path::PathBuf {
    let mut p = store.path(project, filename).into_os_string();
    p.push(".provenance");
    p.into()
}

/// Check every fetched file that offers provenance; the refusals, each
/// naming the file and the failed step. Refused files leave the store.
pub fn check(
    check: &Check,
    client: &Client,
    store: &Store,
    fetched: &[(&ProjectName, &UpstreamFile, Sha256)],
    jobs: usize,
) -> Vec<Diagnostic> {
    let one = |(project, file, sha): &(&ProjectName, &UpstreamFile, Sha256)| -> Option<Diagnostic> {
        let url = file.facts.provenance.as_deref()?;
        let name = file.filename.as_str();
        let refuse = |step: &str, message: String| {
            store.remove(project, name);
            Some(Diagnostic::ProvenanceRefused {
                project: (*project).clone(),
                filename: name.to_string(),
                step: step.to_string(),
                message,
            })
        };
        let bytes = match Url::parse(url)
            .map_err(|e| e.to_string())
            .and_then(|u| client.get_small_as(&u, Some(ACCEPT), MAX_BYTES).map_err(|e| e.to_string()))
        {
            Ok(b) => b,
            Err(e) => return refuse("fetch", format!("its provenance could not be fetched: {e}")),
        };
        if let Err(e) = crate::provenance::verify_provenance(&bytes, name, sha, &check.root, None) {
            return refuse(e.step.as_str(), e.to_string());
        }
        match crate::util::fsx::write_atomically(&stored_path(store, project, name), &bytes) {
            Ok(()) => None,
            Err(e) => refuse("store", format!("its verified provenance could not be stored: {e}")),
        }
    };
    // In parallel, then in the order given (sorted), for deterministic reports.
    crate::util::with_pool(jobs, || fetched.par_iter().map(one).collect::<Vec<_>>()).into_iter().flatten().collect()
}
