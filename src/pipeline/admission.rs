//! Stage: admission. The run's gate (`select::admission`), put in front of
//! every listing the views hand out, so resolution, the closure and the
//! plan only ever see releases that may enter. The gate's inputs are
//! fixed here, once per run: the clock (`SOURCE_DATE_EPOCH` when set), the
//! `[[select.admit]]` entries, the PEP 740 pins (`provenance::Check::pins`),
//! and for the security bypass the snapshot and the versions the mirror
//! serves.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::views::Gatekeeper;
use crate::advisories::Snapshot;
use crate::audit::LoadedSnapshot;
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::manifest::Manifest;
use crate::select::admission::{Gate, Pins, judge};
use crate::store::state::State;

/// The run's gate, or `None` when no project is held back by anything.
pub fn gatekeeper(manifest: &Manifest, loaded: &LoadedSnapshot, pins: Option<Arc<Pins>>) -> Option<Gatekeeper> {
    let select = manifest.select.clone();
    let any = select.defaults.gated() || select.overrides.keys().any(|p| select.options_for(p).gated());
    if !any && pins.is_none() {
        return None;
    }
    let now = crate::util::clock::output_time();
    let bypass = match (&loaded.snapshot, manifest.policy.security_bypass) {
        (Some(s), true) => {
            Some(Bypass { snapshot: s.clone(), state: manifest.mirror.state.clone(), served: OnceLock::new() })
        }
        _ => None,
    };
    Some(Arc::new(move |project: &ProjectName, listing| {
        let fixes = |p: &ProjectName, v: &Version| bypass.as_ref().and_then(|b| b.fixes(p, v));
        let gate = Gate {
            now,
            admits: &select.admit,
            fixes: if bypass.is_some() { Some(&fixes) } else { None },
            provenance: pins.as_deref(),
        };
        judge(project, listing, &select.options_for(project), &gate)
    }))
}

/// What the security bypass reads: the snapshot's ranges and the versions
/// the mirror serves. Those are asked of the state only for a held release
/// (most runs hold nothing), through a read-only connection of its own:
/// the gate runs on the transfer threads, beside the run's own connection.
struct Bypass {
    snapshot: Arc<Snapshot>,
    state: PathBuf,
    served: OnceLock<Option<Mutex<State>>>,
}

impl Bypass {
    /// The first advisory (by served version, then the snapshot's order)
    /// that affects a served version below `release` and not `release`.
    /// Malicious-package records are not "fixed" by a later release.
    fn fixes(&self, project: &ProjectName, release: &Version) -> Option<String> {
        let state = self.served.get_or_init(|| State::open_read_only(&self.state).ok().map(Mutex::new)).as_ref()?;
        let served = match state.lock().unwrap_or_else(PoisonError::into_inner).listed_versions_of(project) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("security bypass: the served versions of {project} are not readable ({e})");
                return None;
            }
        };
        let mut affecting_release: Option<BTreeSet<usize>> = None;
        for v in served.range(..release) {
            for f in self.snapshot.check_version(project.as_str(), v).iter().filter(|f| !f.malicious) {
                let still = affecting_release.get_or_insert_with(|| {
                    self.snapshot.check_version(project.as_str(), release).iter().map(|f| f.group).collect()
                });
                if !still.contains(&f.group) {
                    return Some(self.snapshot.id(f).to_string());
                }
            }
        }
        None
    }
}
