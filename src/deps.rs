//! The dependency closure (`dependencies = true`): each selected wheel's
//! `Requires-Dist`, with markers evaluated for the manifest's Pythons and
//! platforms and extras taken from the requirements that asked for the
//! project, become requirement lines of their own until nothing new appears.
//!
//! Metadata comes from the verified wheel in the store, never from an
//! unverified source, so the closure is only as wide as what was mirrored.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep508_rs::{ExtraName, MarkerTree, Requirement};

use crate::filename::DistFilename;
use crate::manifest::Manifest;
use crate::metadata;
use crate::names::ProjectName;
use crate::plan::Plan;
use crate::requirements::RequirementLine;
use crate::select;
use crate::store::Store;

/// Key that identifies a requirement line regardless of where it came from.
fn key(req: &Requirement) -> String {
    let mut r = req.clone();
    r.marker = MarkerTree::TRUE;
    r.to_string()
}

/// Requirement lines newly implied by the selected wheels' metadata.
pub fn discover(
    manifest: &Manifest,
    plan: &Plan,
    requested: &BTreeMap<ProjectName, Vec<RequirementLine>>,
    store: &Store,
) -> BTreeMap<ProjectName, Vec<RequirementLine>> {
    let known: BTreeSet<String> = requested.values().flatten().map(|l| key(&l.requirement)).collect();
    let mut new: BTreeMap<ProjectName, Vec<RequirementLine>> = BTreeMap::new();
    let mut seen = known.clone();
    for (project, pp) in &plan.projects {
        let opts = manifest.select.options_for(project);
        if !opts.dependencies {
            continue;
        }
        let envs = select::environments(&opts.tags);
        let extras: Vec<ExtraName> =
            requested.get(project).into_iter().flatten().flat_map(|l| l.requirement.extras.iter().cloned()).collect();
        for name in &pp.selected {
            let Ok(file @ DistFilename::Wheel(_)) = DistFilename::parse(name, Some(project)) else {
                continue;
            };
            let path = store.metadata_path(project, file.as_str());
            let Ok(bytes) = std::fs::read(&path) else {
                tracing::debug!("{project}: no stored metadata for {file}; its dependencies are not followed");
                continue;
            };
            let headers = metadata::headers(&bytes);
            for raw in metadata::header_values(&headers, "Requires-Dist") {
                let origin = format!("{project} {} (Requires-Dist)", file.version());
                let mut req = match Requirement::from_str(raw) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("{origin}: ignoring unparseable requirement {raw:?}: {}", e.message);
                        continue;
                    }
                };
                if !select::applies(&req, &envs, &extras)
                    || req.version_or_url.as_ref().is_some_and(|v| matches!(v, pep508_rs::VersionOrUrl::Url(_)))
                {
                    continue;
                }
                req.marker = MarkerTree::TRUE;
                if seen.insert(key(&req)) {
                    let dep = ProjectName::from(&req.name);
                    new.entry(dep).or_default().push(RequirementLine { requirement: req, origin, constraint: false });
                }
            }
        }
    }
    new
}
