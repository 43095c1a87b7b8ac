//! The dependency closure (`dependencies = true`): each selected wheel's
//! `Requires-Dist`, with markers evaluated for the manifest's Pythons and
//! platforms and extras taken from the requirements that asked for the
//! project, become requirement lines of their own until nothing new appears.
//!
//! Metadata comes from the verified wheel in the store, never from an
//! unverified source, so the closure is only as wide as what was mirrored.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use uv_normalize::ExtraName;
use uv_pep440::Version;
use uv_pep508::{MarkerEnvironment, MarkerTree, Requirement, VersionOrUrl};

use super::env;
use crate::dist::metadata;
use crate::dist::names::ProjectName;
use crate::manifest::requirements::RequirementLine;

/// Key that identifies a requirement line regardless of where it came from.
fn key(req: &Requirement) -> String {
    let mut r = req.clone();
    r.marker = MarkerTree::TRUE;
    r.to_string()
}

/// The closure being built: which requirements are already known, so each
/// is added once whatever how many wheels ask for it.
pub struct Closure {
    seen: BTreeSet<String>,
}

impl Closure {
    pub fn new(requested: &BTreeMap<ProjectName, Vec<RequirementLine>>) -> Closure {
        Closure { seen: requested.values().flatten().map(|l| key(&l.requirement)).collect() }
    }

    /// The requirement lines a selected wheel's METADATA adds: its
    /// `Requires-Dist` whose markers hold on one of `envs` (with the extras
    /// the wheel was asked for), not seen before.
    pub fn follow(
        &mut self,
        project: &ProjectName,
        version: &Version,
        metadata: &[u8],
        envs: &[MarkerEnvironment],
        extras: &[ExtraName],
    ) -> Vec<(ProjectName, RequirementLine)> {
        let origin = format!("{project} {version} (Requires-Dist)");
        let headers = metadata::headers(metadata);
        let mut new = Vec::new();
        for raw in metadata::header_values(&headers, "Requires-Dist") {
            let mut req = match Requirement::from_str(raw) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("{origin}: ignoring unparseable requirement {raw:?}: {}", e.message);
                    continue;
                }
            };
            if !env::applies(&req, envs, extras) || matches!(req.version_or_url, Some(VersionOrUrl::Url(_))) {
                continue;
            }
            req.marker = MarkerTree::TRUE;
            if self.seen.insert(key(&req)) {
                let dep = ProjectName::from(&req.name);
                new.push((dep, RequirementLine { requirement: req, origin: origin.clone(), constraint: false }));
            }
        }
        new
    }
}
