//! Stage (inside publish): the installability check. For every target
//! environment, the requested requirements are resolved again, against the
//! tree about to be published and nothing else: only what it holds, with
//! each wheel's metadata as published beside it. What cannot install, and
//! why, goes to `reports/installability.json`, the landing page and
//! summary.md; with `installable = "fail"` the run fails and publishes
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use pubgrub::Ranges;
use rayon::prelude::*;
use uv_pep508::Requirement;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::dist::Version;
use crate::dist::filename::DistFilename;
use crate::dist::metadata::{self, CoreMetadata};
use crate::dist::names::ProjectName;
use crate::index::SiteFile;
use crate::manifest::{Dependencies, Installable, Select};
use crate::select::env::TargetEnv;
use crate::select::installable::{EnvCheck, Installability, Installed, Reason};
use crate::select::locked::Locked;
use crate::select::resolve::{self, Index, Outcome, Request};
use crate::store::state::MetadataCache;
use crate::upstream::listing::UpstreamFile;

use super::resolve::{FileKey, Once};

/// The tree about to be published, as an index.
struct TreeIndex<'a> {
    files: BTreeMap<ProjectName, Arc<Vec<UpstreamFile>>>,
    sources: HashMap<(ProjectName, String), &'a SiteFile>,
    cache: Option<&'a MetadataCache>,
    metadata: Mutex<HashMap<FileKey, Once<Arc<CoreMetadata>>>>,
}

impl<'a> TreeIndex<'a> {
    fn new(site: &'a [SiteFile], cache: Option<&'a MetadataCache>) -> TreeIndex<'a> {
        let mut files: BTreeMap<ProjectName, Vec<UpstreamFile>> = BTreeMap::new();
        let mut sources = HashMap::new();
        for f in site.iter().filter(|f| f.listed) {
            // Only a name to the resolver: metadata is read from `sources`.
            let absolute = std::path::absolute(&f.source).unwrap_or_else(|_| f.source.clone());
            let Ok(url) = url::Url::from_file_path(&absolute) else { continue };
            files.entry(f.project.clone()).or_default().push(UpstreamFile {
                filename: f.filename.clone(),
                url,
                sha256: Some(f.sha256),
                size: Some(f.size),
                facts: f.facts.clone(),
                metadata: Default::default(),
            });
            sources.insert((f.project.clone(), f.filename.to_string()), f);
        }
        let files = files.into_iter().map(|(p, fs)| (p, Arc::new(fs))).collect();
        TreeIndex { files, sources, cache, metadata: Mutex::default() }
    }

    fn read(&self, f: &SiteFile) -> Result<Vec<u8>, String> {
        if let Some(path) = &f.metadata_source {
            return fs_err::read(path).map_err(|e| e.to_string());
        }
        if let Some(bytes) = self.cache.and_then(|c| c.get(&f.sha256).ok().flatten()) {
            return Ok(bytes);
        }
        match &f.filename {
            DistFilename::Wheel(w) => metadata::wheel_metadata(&f.source, w).map_err(|e| e.to_string()),
            DistFilename::Sdist(s) => metadata::sdist_metadata(&f.source, s).map_err(|e| e.to_string()),
        }
    }
}

impl Index for TreeIndex<'_> {
    fn files(&self, project: &ProjectName) -> Result<Arc<Vec<UpstreamFile>>, String> {
        Ok(self.files.get(project).cloned().unwrap_or_default())
    }

    fn metadata(&self, project: &ProjectName, file: &UpstreamFile) -> Result<Arc<CoreMetadata>, String> {
        let key = (project.clone(), file.filename.to_string());
        let slot = self.metadata.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default().clone();
        slot.get_or_init(|| {
            let f = self.sources.get(&key).ok_or_else(|| format!("{} is not in the tree", file.filename))?;
            Ok(Arc::new(CoreMetadata::parse(&self.read(f)?)))
        })
        .clone()
    }
}

/// What is checked: every requested requirement, and every locked package.
pub struct CheckInputs<'a> {
    pub select: &'a Select,
    pub requested: &'a BTreeMap<ProjectName, Vec<crate::manifest::requirements::RequirementLine>>,
    pub locked: &'a Locked,
    /// Why resolution against the upstream found a project unusable in an
    /// environment (an sdist-only project is "sdist-only" here, not
    /// "missing" because the tree lacks it): (environment, project) -> reason.
    pub upstream_missing: &'a BTreeMap<(String, ProjectName), Reason>,
    /// Every `-c` constraint, by the project it names (as `pip install -c`).
    pub constraints: &'a BTreeMap<ProjectName, Vec<crate::manifest::requirements::RequirementLine>>,
    pub envs: &'a [TargetEnv],
    pub jobs: usize,
}

impl CheckInputs<'_> {
    /// Checked when the mirror claims dependencies: a project follows them, or a lock names them.
    pub(crate) fn wanted(&self) -> bool {
        !self.locked.is_empty()
            || self.requested.keys().any(|p| self.select.options_for(p).dependencies != Dependencies::Off)
    }

    fn roots(&self, env: &TargetEnv) -> (Vec<Requirement>, BTreeMap<ProjectName, Ranges<Version>>) {
        let mut roots = Vec::new();
        for lines in self.requested.values() {
            for l in lines.iter().filter(|l| !l.constraint && l.requirement.marker.evaluate(&env.markers, &[])) {
                roots.push(l.requirement.clone());
            }
        }
        let constraints = super::views::constraint_ranges(self.constraints, &env.markers);
        for lock in &self.select.locks {
            for p in lock.packages_for(&env.markers) {
                if let Some(v) = &p.version
                    && let Ok(r) = format!("{}=={v}", p.name).parse::<Requirement>()
                {
                    roots.push(r);
                }
            }
        }
        (roots, constraints)
    }
}

fn check_env(index: &TreeIndex<'_>, inputs: &CheckInputs<'_>, env: &TargetEnv) -> EnvCheck {
    let (roots, constraints) = inputs.roots(env);
    let req = Request { env, select: inputs.select, roots: &roots, constraints: &constraints, follow_all: true };
    let mut check =
        EnvCheck { env: env.clone(), installs: BTreeMap::new(), problems: BTreeMap::new(), explanation: None };
    match resolve::resolve(index, &req) {
        Outcome::Resolved(r) => {
            for (project, version) in &r.pins {
                let Some(f) = r.used.get(project) else { continue };
                let sdist = !f.filename.is_wheel();
                let installed = Installed { version: version.clone(), file: f.filename.to_string(), sdist };
                check.installs.insert(project.clone(), installed);
            }
        }
        Outcome::Unsatisfiable(u) => {
            for r in &roots {
                let p = ProjectName::from(&r.name);
                if index.files.get(&p).is_none_or(|f| f.is_empty()) {
                    let known = inputs.upstream_missing.get(&(env.name(), p.clone())).copied();
                    check.problems.insert(p, known.unwrap_or(Reason::Missing));
                }
            }
            for (p, m) in &u.missing {
                check.problems.entry(p.clone()).or_insert((*m).into());
            }
            if check.problems.is_empty()
                && let Some(p) = roots.first()
            {
                check.problems.insert(ProjectName::from(&p.name), Reason::Conflict);
            }
            check.explanation = Some(u.explanation);
        }
        Outcome::Failed(e) => check.explanation = Some(e),
    }
    check
}

/// Stage: check every environment against the tree's files (parallel over
/// environments, merged in order). Adds a diagnostic per project that does
/// not install, naming the environments.
/// The verdict of a mirror that claims no dependencies.
pub fn unchecked() -> Installability {
    Installability {
        unchecked: Some("dependencies = false and no lock files: the mirror holds what was selected".into()),
        ..Installability::default()
    }
}

pub fn check(
    inputs: &CheckInputs<'_>,
    site: &[SiteFile],
    cache: Option<&MetadataCache>,
    diags: &mut Diagnostics,
) -> Installability {
    if !inputs.wanted() {
        return unchecked();
    }
    let index = TreeIndex::new(site, cache);
    let envs: Vec<EnvCheck> = crate::util::with_pool(inputs.jobs, || {
        inputs.envs.par_iter().map(|env| check_env(&index, inputs, env)).collect()
    });
    let mut by_project: BTreeMap<(ProjectName, Reason), Vec<String>> = BTreeMap::new();
    for e in &envs {
        for (p, r) in &e.problems {
            by_project.entry((p.clone(), *r)).or_default().push(e.env.name());
        }
    }
    let fatal = inputs.select.installable == Installable::Fail;
    for ((project, reason), names) in by_project {
        let reason = reason.describe("these environments");
        diags.push(Diagnostic::NotInstallable { project, envs: names, reason, fatal });
    }
    let requirements = inputs.requested.values().flatten().map(|l| l.requirement.to_string()).collect();
    Installability { unchecked: None, requirements, envs }
}
