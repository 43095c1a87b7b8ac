//! Stage: the dependency closure (`dependencies = "all"`). Each selected
//! wheel's `Requires-Dist` (read from the verified wheel in the store, never
//! from an unverified source), with markers evaluated for the manifest's
//! Pythons and platforms and extras taken from the requirements that asked
//! for the project, becomes a requirement line of its own, until nothing
//! new appears. Returns the widened request and the views of every project
//! in it; the wheels it had to fetch are already recorded.

use std::collections::BTreeMap;

use uv_normalize::ExtraName;

use super::fetch::{adopt, fetch};
use super::plan::{self, Decision, Plan, PlanInputs};
use super::views::{self, Requested, Views};
use crate::diagnostics::Diagnostics;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::manifest::Dependencies;
use crate::run::Run;
use crate::select::closure::Closure;
use crate::select::env;
use crate::store::fetch::FetchOptions;
use crate::store::state::StateError;
use crate::upstream::Client;

/// The wheels of the projects that follow their dependencies: the only
/// files the closure has to fetch before the main fetch.
fn wheels_only(plan: Plan, follows: impl Fn(&ProjectName) -> bool) -> Plan {
    let mut projects = Vec::new();
    for mut pp in plan.projects.into_iter().filter(|pp| follows(&pp.project)) {
        pp.files.retain(|f| f.filename.is_wheel());
        projects.push(pp);
    }
    Plan { run: plan.run, projects, prune: Vec::new() }
}

/// New requirement lines from the stored metadata of every kept wheel (a
/// carried-over project's listed wheels are read from the state).
fn discover(
    run: &mut Run,
    plan: &Plan,
    inputs: &PlanInputs<'_>,
    requested: &Requested,
    closure: &mut Closure,
) -> Result<Requested, StateError> {
    let carried: Vec<ProjectName> = plan.projects.iter().filter(|p| p.reused).map(|p| p.project.clone()).collect();
    let mut wheels: BTreeMap<ProjectName, Vec<DistFilename>> = BTreeMap::new();
    for a in run.state.artifacts_of(&carried)?.into_iter().filter(|a| a.listed()) {
        wheels.entry(a.project).or_default().push(a.filename);
    }
    for pp in &plan.projects {
        let kept = pp.with(|d| matches!(d, Decision::Keep)).map(|f| f.filename.clone());
        wheels.entry(pp.project.clone()).or_default().extend(kept);
    }
    let mut new = Requested::new();
    for (project, files) in &wheels {
        let opts = inputs.options_for(project);
        let envs = env::environments(&opts.tags);
        let extras: Vec<ExtraName> =
            requested.get(project).into_iter().flatten().flat_map(|l| l.requirement.extras.iter().cloned()).collect();
        for f in files.iter().filter(|f| f.is_wheel()) {
            let Ok(bytes) = std::fs::read(run.store.metadata_path(project, f)) else {
                tracing::debug!("{project}: no stored metadata for {f}; its dependencies are not followed");
                continue;
            };
            for (dep, line) in closure.follow(project, f.version(), &bytes, &envs, &extras) {
                new.entry(dep).or_default().push(line);
            }
        }
    }
    Ok(new)
}

/// Stage: widen `requested` to its dependency closure.
#[allow(clippy::too_many_arguments)]
pub fn expand(
    run: &mut Run,
    client: Option<&Client>,
    inputs: &PlanInputs<'_>,
    mut requested: Requested,
    mut views: Views,
    opts: FetchOptions,
    diags: &mut Diagnostics,
) -> Result<(Requested, Views), StateError> {
    let follows = |p: &ProjectName| inputs.options_for(p).dependencies == Dependencies::All;
    let mut closure = Closure::new(&requested);
    loop {
        if !requested.keys().any(follows) {
            return Ok((requested, views));
        }
        // Plan diagnostics are the main plan's to report.
        let plan = plan::make(inputs, &requested, &views, &mut run.state, &mut Diagnostics::default())?;
        let plan = adopt(run, wheels_only(plan, follows), (opts.allow_missing_hashes, inputs.provenance), diags)?;
        // Offline, only what is stored is followed (the main fetch says what is missing).
        let plan = if client.is_some() {
            fetch(run, client, plan, opts, (&Default::default(), inputs.provenance), diags)?.0
        } else {
            plan
        };
        let new = discover(run, &plan, inputs, &requested, &mut closure)?;
        if new.is_empty() {
            return Ok((requested, views));
        }
        let fresh: Vec<ProjectName> = new.keys().filter(|p| !views.projects.contains_key(*p)).cloned().collect();
        tracing::info!(
            "dependencies add {} requirement(s), {} new project(s)",
            new.values().map(Vec::len).sum::<usize>(),
            fresh.len()
        );
        for (p, lines) in new {
            let entry = requested
                .entry(p.clone())
                .or_insert_with(|| inputs.constraints.get(&p).into_iter().flatten().cloned().collect());
            entry.extend(lines);
        }
        let mut more = views::gather(client, &run.state, &fresh, opts.jobs, inputs.since, diags)?;
        more.set_gate(inputs.gate);
        run.state.put_project_views(&more.updated)?;
        views.projects.extend(more.projects);
    }
}
