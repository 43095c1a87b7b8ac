//! The PubGrub solving loop, with the decision order uv uses, so that
//! where several solutions exist airlock mirrors the one uv would install.
//!
//! PubGrub's own `resolve` never revisits an early decision that later
//! packages keep conflicting with: with pandas deciding python-dateutil
//! 4.0 first, it rejects every boto3 release one by one (each fetching
//! botocore's metadata) because every botocore needs python-dateutil < 3.
//! Like uv, this loop counts conflicts per package; once a package has
//! rejected others [`THRESHOLD`] times it is decided later and the solver
//! backtracks to before it, and the packages it kept rejecting are decided
//! earlier.
//!
//! Decision order otherwise: the root, then projects narrowed to one
//! version (`==`), then the conflict tiers, then first seen first (the
//! requirement order of the metadata that named them).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use pubgrub::{Dependencies, DependencyProvider, Id, PackageResolutionStatistics, PubGrubError, Ranges, State};
use uv_pep440::Version;

use crate::dist::names::ProjectName;

use super::explain::Pkg;

/// Conflicts after which a package is reordered (uv's figure).
const THRESHOLD: u32 = 5;

/// A package's place in the decision order: higher is decided first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// First seen first.
    Unspecified(Reverse<usize>),
    /// Often rejected others: decided after the packages it rejected.
    ConflictLate(Reverse<usize>),
    /// Often rejected: decided before the packages that rejected it.
    ConflictEarly(Reverse<usize>),
    /// Narrowed to one version: deciding it costs nothing.
    Singleton(Reverse<usize>),
    Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Unspecified,
    Late,
    Early,
}

/// The order projects were first seen in and their conflict tiers; a
/// project's extras share its place.
#[derive(Debug, Default)]
pub struct Order {
    places: RefCell<HashMap<ProjectName, (Tier, usize)>>,
}

impl Order {
    /// Note a project the first time a requirement names it.
    pub fn seen(&self, project: &ProjectName) {
        let mut places = self.places.borrow_mut();
        let next = places.len();
        places.entry(project.clone()).or_insert((Tier::Unspecified, next));
    }

    pub fn priority(&self, pkg: &Pkg, range: &Ranges<Version>) -> Priority {
        let project = match pkg {
            Pkg::Root => return Priority::Root,
            Pkg::Project(p) | Pkg::Extra(p, _) => p,
        };
        let (tier, index) = self.places.borrow().get(project).copied().unwrap_or((Tier::Unspecified, usize::MAX));
        let index = Reverse(index);
        if range.as_singleton().is_some() {
            return Priority::Singleton(index);
        }
        match tier {
            Tier::Unspecified => Priority::Unspecified(index),
            Tier::Late => Priority::ConflictLate(index),
            Tier::Early => Priority::ConflictEarly(index),
        }
    }

    /// Move a project to `tier`; whether that changed anything. Early is
    /// never demoted to late: a project can be both, and being rejected is
    /// what the reordering is for.
    fn mark(&self, pkg: &Pkg, tier: Tier) -> bool {
        let (Pkg::Project(project) | Pkg::Extra(project, _)) = pkg else { return false };
        let mut places = self.places.borrow_mut();
        let next = places.len();
        let place = places.entry(project.clone()).or_insert((Tier::Unspecified, next));
        if place.0 == tier || (place.0 == Tier::Early && tier == Tier::Late) {
            return false;
        }
        place.0 = tier;
        true
    }
}

/// Conflict counts, and the packages that just crossed the threshold.
#[derive(Default)]
struct Conflicts {
    affected: HashMap<Id<Pkg>, u32>,
    culprit: HashMap<Id<Pkg>, u32>,
    early: Vec<Id<Pkg>>,
    late: Vec<Id<Pkg>>,
}

impl Conflicts {
    /// `affected` was rejected because of `culprits`' decisions.
    fn record(&mut self, affected: Id<Pkg>, culprits: impl Iterator<Item = Id<Pkg>>) {
        let n = self.affected.entry(affected).or_default();
        *n += 1;
        if *n == THRESHOLD {
            self.early.push(affected);
        }
        for c in culprits.filter(|c| *c != affected) {
            let n = self.culprit.entry(c).or_default();
            *n += 1;
            if *n == THRESHOLD {
                self.late.push(c);
            }
        }
    }
}

/// What a provider gives the loop beyond PubGrub's trait.
pub trait Ordered: DependencyProvider<P = Pkg, V = Version, VS = Ranges<Version>, Priority = Priority> {
    fn order(&self) -> &Order;
}

/// Solve from the root; the decisions, in no particular order.
// PubGrub's own error type, as its `resolve` returns it: large, and rare.
#[allow(clippy::result_large_err)]
pub fn solve<DP: Ordered>(provider: &DP) -> Result<Vec<(Pkg, Version)>, PubGrubError<DP>> {
    let mut state = State::<DP>::init(Pkg::Root, Version::new([0]));
    let mut conflicts = Conflicts::default();
    // Versions whose dependencies PubGrub already holds: deciding one again
    // after a backtrack needs no second fetch.
    let mut added: HashSet<(Id<Pkg>, Version)> = HashSet::new();
    let stats = PackageResolutionStatistics::default();
    let mut next = state.root_package;
    loop {
        let causes = state.unit_propagation(next).map_err(PubGrubError::NoSolution)?;
        for (affected, incompat) in causes {
            let culprits: Vec<Id<Pkg>> = state.conflict_packages(&incompat).collect();
            conflicts.record(affected, culprits.into_iter());
        }
        reorder(&mut state, &mut conflicts, provider.order());

        let package_store = &state.package_store;
        let Some((pkg, range)) =
            state.partial_solution.pick_highest_priority_pkg(|p, r| provider.prioritize(&package_store[p], r, &stats))
        else {
            let solution = state.partial_solution.extract_solution();
            return Ok(solution.map(|(p, v)| (state.package_store[p].clone(), v)).collect());
        };
        next = pkg;
        let range = range.clone();
        let choice = provider.choose_version(&state.package_store[next], &range).map_err(|source| {
            PubGrubError::ErrorChoosingVersion { package: state.package_store[next].clone(), source }
        })?;
        let Some(version) = choice else {
            state.add_no_versions(next, range);
            continue;
        };
        if !added.insert((next, version.clone())) {
            state.partial_solution.add_decision(next, version);
            continue;
        }
        let dependencies = provider.get_dependencies(&state.package_store[next], &version).map_err(|source| {
            PubGrubError::ErrorRetrievingDependencies {
                package: state.package_store[next].clone(),
                version: version.clone(),
                source,
            }
        })?;
        match dependencies {
            Dependencies::Unavailable(reason) => state.add_unavailable(next, Ranges::singleton(version), reason),
            Dependencies::Available(deps) => {
                let single = Ranges::singleton(version.clone());
                if let Some(conflict) = state.add_package_version_dependencies(next, version, single, deps) {
                    let culprits: Vec<Id<Pkg>> = state.conflict_packages(&conflict).collect();
                    conflicts.record(next, culprits.into_iter());
                }
            }
        }
    }
}

/// Apply the reorderings the last conflicts call for: a package that kept
/// rejecting others is undone (the solver backtracks to before it) and
/// decided later.
fn reorder<DP: Ordered>(state: &mut State<DP>, conflicts: &mut Conflicts, order: &Order) {
    for p in conflicts.early.drain(..) {
        order.mark(&state.package_store[p], Tier::Early);
    }
    for p in conflicts.late.drain(..) {
        if order.mark(&state.package_store[p], Tier::Late) {
            let undone = state.backtrack_package(p);
            tracing::debug!(
                "{} keeps rejecting others: decided later ({undone:?} decisions undone)",
                state.package_store[p]
            );
        }
    }
}
