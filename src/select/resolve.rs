//! Per-environment resolution with PubGrub, the solver uv is built on: what
//! pip or uv would install in one target environment for the requested
//! requirements. Newest compatible versions first; markers, extras,
//! Requires-Python and the environment's wheel tags decide; sdists only
//! where the manifest allows them; yanked files only when pinned with `==`
//! (PEP 592); pre-releases only when allowed, named, or the only way
//! (pip's rule).
//!
//! The resolver reads through an [`Index`], so the same code resolves
//! against the upstream (what to mirror) and against the tree about to be
//! published (whether it installs). One resolution runs on one thread;
//! environments run in parallel, each with its own provider.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, PackageResolutionStatistics, PubGrubError, Ranges,
    Reporter,
};
use uv_normalize::ExtraName;
use uv_pep440::Version;
use uv_pep508::{Requirement, VersionOrUrl};

use super::env::TargetEnv;
pub use super::explain::Pkg;
use super::solver::{self, Order, Ordered, Priority};
use crate::dist::filename::DistFilename;
use crate::dist::metadata::CoreMetadata;
use crate::dist::names::ProjectName;
use crate::manifest::{Dependencies as Follow, Select};
use crate::upstream::listing::UpstreamFile;

/// What resolution reads: a project's files, and a file's core metadata.
pub trait Index: Sync {
    /// Every file of `project` the index offers (an error when the project
    /// cannot be listed at all).
    fn files(&self, project: &ProjectName) -> Result<Arc<Vec<UpstreamFile>>, String>;
    /// The core metadata of one of those files.
    fn metadata(&self, project: &ProjectName, file: &UpstreamFile) -> Result<Arc<CoreMetadata>, String>;
}

/// One installable version of a project in an environment.
#[derive(Debug, Clone)]
struct Candidate {
    /// The file whose metadata stands for the version (the first fitting
    /// wheel by name, else the sdist), by its place in the project's
    /// listing: a big project's versions times the environments would
    /// otherwise copy its listing many times over.
    file: usize,
    /// Every fitting file is yanked.
    yanked: bool,
}

/// A project's installable versions in one environment, with the listing
/// their files are indexes into.
struct Candidates {
    files: Arc<Vec<UpstreamFile>>,
    versions: BTreeMap<Version, Candidate>,
}

/// Why a version of a project offers nothing to an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// No wheel for the environment's platform (and no allowed sdist).
    NoWheel,
    /// Files exist for the platform, but their Requires-Python excludes it.
    RequiresPython,
    /// Only an sdist, and the manifest mirrors no sdists.
    SdistOnly,
    /// The index has no file of the project at all.
    Absent,
}

/// Which of a project's versions an environment can install, and what is
/// missing for the others.
fn candidates(
    files: &[UpstreamFile],
    env: &TargetEnv,
    sdists: bool,
) -> (BTreeMap<Version, Candidate>, BTreeMap<Version, Missing>) {
    let tags = env.tags();
    let python = env.python_version();
    let mut by_version: BTreeMap<&Version, Vec<(usize, &UpstreamFile)>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        by_version.entry(f.filename.version()).or_default().push((i, f));
    }
    let mut ok = BTreeMap::new();
    let mut missing = BTreeMap::new();
    for (version, mut fs) in by_version {
        fs.sort_by(|a, b| a.1.filename.as_str().cmp(b.1.filename.as_str()));
        let platform: Vec<&(usize, &UpstreamFile)> = fs
            .iter()
            .filter(|(_, f)| match &f.filename {
                DistFilename::Wheel(w) => tags.matches(w),
                DistFilename::Sdist(_) => sdists,
            })
            .collect();
        let fitting: Vec<&(usize, &UpstreamFile)> =
            platform.iter().copied().filter(|(_, f)| f.facts.admits_python(&python)).collect();
        let best = fitting.iter().find(|(_, f)| f.filename.is_wheel()).or_else(|| fitting.first());
        match best {
            Some((i, _)) => {
                let yanked = fitting.iter().all(|(_, f)| f.facts.yanked.is_yanked());
                ok.insert(version.clone(), Candidate { file: *i, yanked });
            }
            None => {
                let why = if !platform.is_empty() {
                    Missing::RequiresPython
                } else if !sdists && fs.iter().any(|(_, f)| !f.filename.is_wheel()) {
                    Missing::SdistOnly
                } else {
                    Missing::NoWheel
                };
                missing.insert(version.clone(), why);
            }
        }
    }
    (ok, missing)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IndexError(String);

/// The PubGrub provider of one resolution.
struct Provider<'a> {
    env: &'a TargetEnv,
    index: &'a dyn Index,
    select: &'a Select,
    roots: &'a [Requirement],
    constraints: &'a BTreeMap<ProjectName, Ranges<Version>>,
    follow_all: bool,
    candidates: RefCell<HashMap<ProjectName, Rc<Candidates>>>,
    /// Projects some requirement names a pre-release of.
    explicit_pre: RefCell<HashSet<ProjectName>>,
    /// The file whose metadata each chosen version was resolved with.
    used: RefCell<BTreeMap<(ProjectName, Version), UpstreamFile>>,
    order: Order,
}

type Deps = Dependencies<Pkg, Ranges<Version>, String>;

impl Provider<'_> {
    fn candidates(&self, project: &ProjectName) -> Result<Rc<Candidates>, IndexError> {
        if let Some(c) = self.candidates.borrow().get(project) {
            return Ok(c.clone());
        }
        let files = self.index.files(project).map_err(IndexError)?;
        let sdists = self.select.options_for(project).sdists;
        let versions = candidates(&files, self.env, sdists).0;
        let c = Rc::new(Candidates { files, versions });
        self.candidates.borrow_mut().insert(project.clone(), c.clone());
        Ok(c)
    }

    /// The edges a requirement adds, intersected with the constraints.
    fn edges(&self, r: &Requirement, out: &mut BTreeMap<Pkg, Ranges<Version>>) {
        let range = match &r.version_or_url {
            None => Ranges::full(),
            Some(VersionOrUrl::VersionSpecifier(s)) => {
                if s.iter().any(|s| s.version().any_prerelease()) {
                    self.explicit_pre.borrow_mut().insert(ProjectName::from(&r.name));
                }
                Ranges::from(s.clone())
            }
            // A direct URL cannot come from an index: not followed.
            Some(VersionOrUrl::Url(_)) => return,
        };
        let name = ProjectName::from(&r.name);
        self.order.seen(&name);
        let range = match self.constraints.get(&name) {
            Some(c) => range.intersection(c),
            None => range,
        };
        for pkg in std::iter::once(Pkg::Project(name.clone()))
            .chain(r.extras.iter().map(|e| Pkg::Extra(name.clone(), e.clone())))
        {
            let slot = out.entry(pkg).or_insert_with(Ranges::full);
            *slot = slot.intersection(&range);
        }
    }

    fn metadata(
        &self,
        project: &ProjectName,
        version: &Version,
    ) -> Result<Result<Arc<CoreMetadata>, String>, IndexError> {
        let candidates = self.candidates(project)?;
        let Some(file) = candidates.versions.get(version).and_then(|c| candidates.files.get(c.file)) else {
            return Ok(Err(format!("{project} {version} has no file for {}", self.env.name())));
        };
        self.used.borrow_mut().insert((project.clone(), version.clone()), file.clone());
        Ok(self.index.metadata(project, file))
    }

    fn project_deps(
        &self,
        project: &ProjectName,
        version: &Version,
        extra: Option<&ExtraName>,
    ) -> Result<Deps, IndexError> {
        let metadata = match self.metadata(project, version)? {
            Ok(m) => m,
            Err(e) => return Ok(Dependencies::Unavailable(e)),
        };
        let python = self.env.python_version();
        if let Some(rp) = metadata.requires_python.as_ref().filter(|rp| !rp.contains(&python)) {
            return Ok(Dependencies::Unavailable(format!("requires Python {rp}")));
        }
        let mut out = BTreeMap::new();
        if self.follow_all || self.select.options_for(project).dependencies != Follow::Off {
            let markers = &self.env.markers;
            for r in &metadata.requires_dist {
                let applies = match extra {
                    None => r.marker.evaluate(markers, &[]),
                    Some(e) => r.marker.evaluate(markers, std::slice::from_ref(e)) && !r.marker.evaluate(markers, &[]),
                };
                if applies {
                    self.edges(r, &mut out);
                }
            }
        }
        if extra.is_some() {
            out.insert(Pkg::Project(project.clone()), Ranges::singleton(version.clone()));
        }
        Ok(Dependencies::Available(out.into_iter().collect()))
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Err = IndexError;
    type Priority = Priority;

    fn prioritize(&self, pkg: &Pkg, range: &Ranges<Version>, _: &PackageResolutionStatistics) -> Priority {
        self.order.priority(pkg, range)
    }

    fn choose_version(&self, pkg: &Pkg, range: &Ranges<Version>) -> Result<Option<Version>, IndexError> {
        let project = match pkg {
            Pkg::Root => return Ok(Some(Version::new([0]))),
            Pkg::Project(p) | Pkg::Extra(p, _) => p,
        };
        let candidates = self.candidates(project)?;
        let opts = self.select.options_for(project);
        let pinned = range.as_singleton();
        let allowed = |v: &Version, c: &Candidate| range.contains(v) && (!c.yanked || opts.yanked || pinned == Some(v));
        let pre_ok = opts.prereleases || self.explicit_pre.borrow().contains(project);
        // Newest first; pre-releases only when allowed, named, or nothing else fits.
        let final_release =
            candidates.versions.iter().rev().find(|(v, c)| (pre_ok || !v.any_prerelease()) && allowed(v, c));
        let any = || candidates.versions.iter().rev().find(|(v, c)| allowed(v, c));
        Ok(final_release.or_else(any).map(|(v, _)| v.clone()))
    }

    fn get_dependencies(&self, pkg: &Pkg, version: &Version) -> Result<Deps, IndexError> {
        match pkg {
            Pkg::Root => {
                let mut out = BTreeMap::new();
                for r in self.roots {
                    self.edges(r, &mut out);
                }
                Ok(Dependencies::Available(out.into_iter().collect()))
            }
            Pkg::Project(p) => self.project_deps(p, version, None),
            Pkg::Extra(p, e) => self.project_deps(p, version, Some(e)),
        }
    }
}

impl Ordered for Provider<'_> {
    fn order(&self) -> &Order {
        &self.order
    }
}

/// What one environment installs.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Every project and the version chosen.
    pub pins: BTreeMap<ProjectName, Version>,
    /// The file whose metadata each chosen version was resolved with.
    pub used: BTreeMap<ProjectName, UpstreamFile>,
}

impl Resolution {
    /// Chosen versions that install only from an sdist (built on install).
    pub fn sdist_only(&self) -> impl Iterator<Item = (&ProjectName, &Version)> {
        self.used.iter().filter(|(_, f)| !f.filename.is_wheel()).filter_map(|(p, _)| self.pins.get(p).map(|v| (p, v)))
    }
}

/// Why an environment cannot install what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsatisfiable {
    /// The requested projects nothing of which fits the environment, and why.
    pub missing: BTreeMap<ProjectName, Missing>,
    /// Why, in plain words: what was asked and what the versions need.
    pub explanation: String,
    /// The solver's own derivation, for `-v`.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Resolved(Resolution),
    Unsatisfiable(Unsatisfiable),
    /// The index failed (a page or metadata could not be read).
    Failed(String),
}

/// What one resolution asks.
pub struct Request<'a> {
    pub env: &'a TargetEnv,
    pub select: &'a Select,
    /// Top-level requirements (their markers hold in `env`).
    pub roots: &'a [Requirement],
    /// `-c` constraints and pins (narrow a project wherever it appears).
    pub constraints: &'a BTreeMap<ProjectName, Ranges<Version>>,
    /// Follow every project's dependencies, whatever its options say (as
    /// pip installing from the tree would).
    pub follow_all: bool,
}

/// Resolve one request against an index.
pub fn resolve(index: &dyn Index, req: &Request<'_>) -> Outcome {
    let provider = Provider {
        env: req.env,
        index,
        select: req.select,
        roots: req.roots,
        constraints: req.constraints,
        follow_all: req.follow_all,
        candidates: RefCell::default(),
        explicit_pre: RefCell::default(),
        used: RefCell::default(),
        order: Order::default(),
    };
    match solver::solve(&provider) {
        Ok(solution) => {
            let mut pins = BTreeMap::new();
            for (pkg, version) in solution {
                if let Pkg::Project(p) = pkg {
                    pins.insert(p, version);
                }
            }
            let used = provider
                .used
                .into_inner()
                .into_iter()
                .filter(|((p, v), _)| pins.get(p) == Some(v))
                .map(|((p, _), f)| (p, f))
                .collect();
            Outcome::Resolved(Resolution { pins, used })
        }
        Err(PubGrubError::NoSolution(mut tree)) => {
            let involved: BTreeSet<ProjectName> = tree
                .packages()
                .into_iter()
                .filter_map(|p| match p {
                    Pkg::Project(p) | Pkg::Extra(p, _) => Some(p.clone()),
                    Pkg::Root => None,
                })
                .collect();
            let explanation = super::explain::plainly(&tree);
            tree.collapse_no_versions();
            let detail = DefaultStringReporter::report(&tree);
            let missing = missing(index, req, involved);
            Outcome::Unsatisfiable(Unsatisfiable { missing, explanation, detail })
        }
        Err(e) => Outcome::Failed(match &e {
            PubGrubError::ErrorRetrievingDependencies { source, .. } => source.to_string(),
            PubGrubError::ErrorChoosingVersion { source, .. } => source.to_string(),
            _ => e.to_string(),
        }),
    }
}

/// The projects a failed resolution involves of which no version fits the
/// environment, each with the most telling reason.
fn missing(
    index: &dyn Index,
    req: &Request<'_>,
    mut involved: BTreeSet<ProjectName>,
) -> BTreeMap<ProjectName, Missing> {
    involved.extend(req.roots.iter().map(|r| ProjectName::from(&r.name)));
    let mut out = BTreeMap::new();
    for project in involved {
        let Ok(files) = index.files(&project) else { continue };
        let (ok, missing) = candidates(&files, req.env, req.select.options_for(&project).sdists);
        if !ok.is_empty() {
            continue;
        }
        // Requires-Python says the most (the platform is served), then
        // sdist-only; no file at all: the index does not have the project.
        out.insert(project, missing.values().max().copied().unwrap_or(Missing::Absent));
    }
    out
}

/// The versions of `project` within `range` an environment can install,
/// newest first by upload time (release time: a version's earliest file),
/// then by PEP 440 order.
pub fn installable_versions(
    index: &dyn Index,
    env: &TargetEnv,
    select: &Select,
    project: &ProjectName,
    range: &Ranges<Version>,
) -> Result<Vec<Version>, String> {
    let files = index.files(project)?;
    let opts = select.options_for(project);
    let (ok, _) = candidates(&files, env, opts.sdists);
    let released =
        |v: &Version| files.iter().filter(|f| f.filename.version() == v).filter_map(|f| f.facts.upload_time).min();
    let mut versions: Vec<Version> = ok
        .into_iter()
        .filter(|(v, c)| range.contains(v) && (!c.yanked || opts.yanked) && (opts.prereleases || !v.any_prerelease()))
        .map(|(v, _)| v)
        .collect();
    versions.sort_by(|a, b| released(b).cmp(&released(a)).then_with(|| b.cmp(a)));
    Ok(versions)
}
