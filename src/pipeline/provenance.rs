//! Stage: provenance (inside fetch). For every file fetched and verified
//! whose upstream offers PEP 740 provenance, the provenance object is
//! fetched once (`Accept: application/vnd.pypi.integrity.v1+json`, the
//! client's limits and retries), verified offline against the trusted
//! root (`provenance::verify_provenance`), and kept beside the file in the
//! store (`<file>.provenance`, the upstream's bytes): a rerun asks nothing
//! it knows, because the file and its provenance are kept together. A file
//! whose provenance fails is removed from the store and never served.
//!
//! Publisher pinning: the verified publisher of every attested file is
//! recorded; a project without a pin is pinned to its newest verified
//! release's publisher (trust on first use, like an SSH host key); a file
//! signed by another publisher than the pin (or than the project's
//! `publisher` key) is held (`publisher-changed`) and leaves the store,
//! unless an `[[select.admit]]` entry lets its release in, which moves the
//! pin. The gate (`select::admission::Pins`) holds it on later runs
//! without asking the upstream again.

use std::collections::BTreeMap;
use std::sync::Arc;

use url::Url;

use crate::diagnostics::{Diagnostic, HoldReason};
use crate::dist::Version;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::error::Error;
use crate::manifest::{Admit, Policy, ProvenancePolicy, Select};
use crate::provenance::{Publisher, TrustRoot};
use crate::select::admission::{Pin, Pins};
use crate::store::Store;
use crate::store::state::{AttestedRow, State};
use crate::upstream::Client;
use crate::upstream::listing::UpstreamFile;
use crate::util::hashing::Sha256;

const ACCEPT: &str = "application/vnd.pypi.integrity.v1+json";
/// A provenance object is a few kilobytes per attestation.
const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The trusted root `[policy]` names (or the built-in production one);
/// `None` under `provenance = "off"`.
pub fn trust_root(policy: &Policy) -> Result<Option<TrustRoot>, Error> {
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
        None => {
            TrustRoot::production().map_err(|e| Error::Failed(format!("the built-in Sigstore trusted root: {e}")))?
        }
    };
    Ok(Some(root))
}

/// What the stage checks against, made once per run.
pub struct Check {
    root: TrustRoot,
    /// The pins in force this run (the gate reads the same).
    pins: Arc<Pins>,
    /// Projects pinned by their manifest `publisher` key or a lock file's
    /// `attestation-identities` (no pin recorded).
    keyed: std::collections::BTreeSet<ProjectName>,
    admits: Vec<Admit>,
    today: jiff::civil::Date,
}

/// What checking a batch's files found.
#[derive(Default)]
pub struct Checked {
    /// Refusals and holds, each naming the file; admissions.
    pub diags: Vec<Diagnostic>,
    /// Files that leave the batch (refused or held).
    pub gone: std::collections::BTreeSet<(ProjectName, String)>,
    /// Every verified file's publisher, for the state.
    pub attested: Vec<AttestedRow>,
    /// New pins: a project's first verified publisher, or an admitted one.
    pub pins: Vec<(ProjectName, Publisher, Version)>,
}

impl Check {
    /// `None` under `provenance = "off"`; the trusted root read (or the
    /// built-in production one) and the pins recorded in `state` otherwise.
    pub fn new(policy: &Policy, select: &Select, state: &State) -> Result<Option<Check>, Error> {
        let Some(root) = trust_root(policy)? else { return Ok(None) };
        let recorded = if policy.publisher_pinning { state.publisher_pins()? } else { BTreeMap::new() };
        let mut pins: BTreeMap<ProjectName, Pin> = recorded.into_iter().map(|(p, v)| (p, Pin::one(v))).collect();
        // A lock file's identities replace the recorded pin; the manifest's
        // key replaces both. Neither is recorded in the state.
        let mut keyed = std::collections::BTreeSet::new();
        let mut locked: BTreeMap<ProjectName, Vec<Publisher>> = BTreeMap::new();
        for p in select.locks.iter().flat_map(|l| &l.packages).filter(|p| !p.publishers.is_empty()) {
            let all = locked.entry(p.name.clone()).or_default();
            all.extend(p.publishers.iter().filter(|x| !all.contains(x)).cloned().collect::<Vec<_>>());
        }
        for (project, all) in locked {
            pins.insert(project.clone(), Pin(all));
            keyed.insert(project);
        }
        for (project, o) in &select.overrides {
            if let Some(p) = &o.publisher {
                pins.insert(project.clone(), Pin::one(p.clone()));
                keyed.insert(project.clone());
            }
        }
        let refused = state.attested(true)?.into_iter().map(|a| ((a.project, a.filename), a.publisher)).collect();
        let pins = Pins {
            require: policy.provenance == ProvenancePolicy::Require,
            pinning: policy.publisher_pinning,
            pins,
            refused,
        };
        let today = crate::util::clock::output_time().to_zoned(jiff::tz::TimeZone::UTC).date();
        Ok(Some(Check { root, pins: Arc::new(pins), keyed, admits: select.admit.clone(), today }))
    }

    /// The trusted root the run verifies against.
    pub fn root(&self) -> &TrustRoot {
        &self.root
    }

    /// The pins the gate holds releases by.
    pub fn pins(&self) -> Arc<Pins> {
        self.pins.clone()
    }

    /// The live `[[select.admit]]` entry for a release.
    fn admit(&self, project: &ProjectName, version: &Version) -> Option<&Admit> {
        self.admits.iter().find(|a| &a.project == project && &a.version == version && a.expires >= self.today)
    }
}

/// One file's verdict.
pub enum Verdict {
    Refused(Diagnostic),
    Verified(Publisher),
}

/// Verify provenance `bytes` for a file whose verified sha256 is `sha`:
/// who signed (the certificate's word; every attestation names the same),
/// or the refusal naming the file and the failed step.
fn judge(
    root: &TrustRoot,
    (project, filename): (&ProjectName, &DistFilename),
    sha: &Sha256,
    bytes: &[u8],
) -> Result<Publisher, Diagnostic> {
    let refusal = |step: &str, message: String| Diagnostic::ProvenanceRefused {
        project: project.clone(),
        filename: filename.to_string(),
        step: step.to_string(),
        message,
    };
    let verified = crate::provenance::verify_provenance(bytes, filename.as_str(), sha, root, None)
        .map_err(|e| refusal(e.step.as_str(), e.to_string()))?;
    verified
        .into_iter()
        .next()
        .map(|v| v.publisher)
        .ok_or_else(|| refusal("parse", "the provenance holds no attestation".into()))
}

/// Fetch, verify and keep one file's provenance (`None`: it offers none).
/// Run in the fetch worker that verified the file. A refused file leaves
/// the store.
pub fn verify_one(
    root: &TrustRoot,
    client: &Client,
    store: &Store,
    (project, file): (&ProjectName, &UpstreamFile),
    sha: &Sha256,
) -> Option<Verdict> {
    let url = file.facts.provenance.as_deref()?;
    let refused = |d: Diagnostic| {
        store.remove(project, &file.filename);
        Some(Verdict::Refused(d))
    };
    let refusal = |step: &str, message: String| Diagnostic::ProvenanceRefused {
        project: project.clone(),
        filename: file.filename.to_string(),
        step: step.to_string(),
        message,
    };
    let bytes = match Url::parse(url)
        .map_err(|e| e.to_string())
        .and_then(|u| client.get_small_as(&u, Some(ACCEPT), MAX_BYTES).map_err(|e| e.to_string()))
    {
        Ok(b) => b,
        Err(e) => return refused(refusal("fetch", format!("its provenance could not be fetched: {e}"))),
    };
    let signed = match judge(root, (project, &file.filename), sha, &bytes) {
        Ok(p) => p,
        Err(d) => return refused(d),
    };
    match crate::util::fsx::write_atomically(&store.provenance_path(project, &file.filename), &bytes) {
        Ok(()) => Some(Verdict::Verified(signed)),
        Err(e) => refused(refusal("store", format!("its verified provenance could not be stored: {e}"))),
    }
}

/// A stored, unrecorded file being adopted (a killed run's, a shard's):
/// the provenance kept beside it verified again, offline. `None`: the file
/// offers none; `Some(None)`: it offers one but none is stored, so it is
/// not adopted (fetched again, or, offline, not served: fail closed).
pub fn verify_stored(
    root: &TrustRoot,
    store: &Store,
    (project, file): (&ProjectName, &UpstreamFile),
    sha: &Sha256,
) -> Option<Option<Verdict>> {
    file.facts.provenance.as_ref()?;
    let Ok(bytes) = fs_err::read(store.provenance_path(project, &file.filename)) else { return Some(None) };
    Some(Some(match judge(root, (project, &file.filename), sha, &bytes) {
        Ok(p) => Verdict::Verified(p),
        Err(d) => {
            store.remove(project, &file.filename);
            Verdict::Refused(d)
        }
    }))
}

/// After the object store restored recorded files: each provenance it
/// brought back beside a recorded, attested file verified again against
/// the file's recorded sha256, offline. One that fails (the bucket's
/// object was altered) is removed, so it is never served, and reported.
pub fn verify_restored(
    root: &TrustRoot,
    store: &Store,
    restored: &[&crate::store::state::Artifact],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for a in restored {
        let path = store.provenance_path(&a.project, &a.filename);
        let Ok(bytes) = fs_err::read(&path) else { continue };
        if let Err(mut d) = judge(root, (&a.project, &a.filename), &a.sha256, &bytes) {
            let _ = std::fs::remove_file(&path);
            if let Diagnostic::ProvenanceRefused { message, .. } = &mut d {
                message.push_str(" (the copy kept in the object store; not served)");
            }
            out.push(d);
        }
    }
    out
}

/// What the verdicts on a batch's verified files come to: refusals (each
/// naming the file and the failed step), publisher holds, the publishers to
/// record. Refused and held files leave the store. Sequential, in the
/// order given (sorted), for deterministic reports and pins.
pub fn decide(
    check: &Check,
    store: &Store,
    verdicts: Vec<(&ProjectName, &UpstreamFile, Sha256, Option<Verdict>)>,
) -> Checked {
    let mut out = Checked::default();
    // The newest verified release's publisher pins an unpinned project.
    let mut first: BTreeMap<ProjectName, (Version, Publisher)> = BTreeMap::new();
    for (project, file, sha, verdict) in verdicts {
        let signed = match verdict {
            None => continue,
            Some(Verdict::Refused(d)) => {
                out.gone.insert((project.clone(), file.filename.to_string()));
                out.diags.push(d);
                continue;
            }
            Some(Verdict::Verified(p)) => p,
        };
        let version = file.filename.version();
        let mut held = false;
        match check.pins.pins.get(project) {
            Some(pin) if !pin.accepts(&signed) => match check.admit(project, version) {
                Some(a) => {
                    if !check.pins.refused.contains_key(&(project.clone(), file.filename.to_string())) {
                        out.diags.push(Diagnostic::Admitted {
                            project: project.clone(),
                            version: version.clone(),
                            reason: a.reason.clone(),
                            expires: Some(a.expires),
                        });
                    }
                    if !check.keyed.contains(project) {
                        out.pins.push((project.clone(), signed.as_pin(), version.clone()));
                    }
                }
                None => {
                    held = true;
                    store.remove(project, &file.filename);
                    out.gone.insert((project.clone(), file.filename.to_string()));
                    out.diags.push(Diagnostic::Held {
                        project: project.clone(),
                        version: version.clone(),
                        reason: HoldReason::PublisherChanged,
                        due: None,
                        expired: None,
                        note: Some(format!("{} is signed by {signed}, pinned is {pin}", file.filename)),
                    });
                }
            },
            Some(_) => {}
            None if check.pins.pinning => {
                let slot = first.entry(project.clone()).or_insert_with(|| (version.clone(), signed.as_pin()));
                if version > &slot.0 {
                    *slot = (version.clone(), signed.as_pin());
                }
            }
            None => {}
        }
        out.attested.push(AttestedRow {
            project: project.clone(),
            filename: file.filename.to_string(),
            sha256: sha,
            publisher: signed,
            held,
        });
    }
    out.pins.extend(first.into_iter().map(|(p, (v, publisher))| (p, publisher, v)));
    out
}
