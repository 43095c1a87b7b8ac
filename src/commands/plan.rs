//! `airlock plan`: what a build would do, written to stdout, touching
//! nothing (not even the state: it is opened read-only, or a throwaway one
//! stands in before the first build). `plan -o PLAN.json` also writes the
//! files to fetch for sharded fetches, and keeps the views it planned from.

use std::io::Write;
use std::path::Path;

use crate::diagnostics::Diagnostics;
use crate::error::Error;
use crate::exit::Exit;
use crate::manifest::Dependencies;
use crate::manifest::Manifest;
use crate::pipeline::plan::{self, Decision, Plan};
use crate::pipeline::resolve::Resolved;
use crate::pipeline::{Build, Scope};
use crate::select::resolve::Outcome;
use crate::store::Store;
use crate::store::state::State;
use crate::util::ui::human_bytes;

fn print(out: &mut impl Write, plan: &Plan, keep_runs: u32) -> std::io::Result<()> {
    for pp in &plan.projects {
        let project = &pp.project;
        for f in &pp.files {
            match &f.decision {
                Decision::Fetch(u) | Decision::Adopt(u) => writeln!(
                    out,
                    "+ {project} {}: {} ({})",
                    f.filename.version(),
                    f.filename,
                    u.size.map_or_else(|| "size unknown".into(), human_bytes)
                )?,
                Decision::Unlist => writeln!(out, "- {project}: {} leaves the index", f.filename)?,
                Decision::Keep | Decision::Drop => {}
            }
        }
        let kept = pp.carried as usize + pp.with(|d| matches!(d, Decision::Keep)).count();
        if kept > 0 {
            writeln!(out, "= {project}: {kept} file(s) kept")?;
        }
        for (f, mirrored, upstream) in &pp.tampered {
            writeln!(
                out,
                "! {project}: {f}: upstream sha256 changed from {mirrored} to {upstream} (possible tampering; the mirrored file is kept)"
            )?;
        }
    }
    for (project, f) in &plan.prune {
        writeln!(out, "x {project}: {f} leaves the store (not selected for more than {keep_runs} runs)")?;
    }
    Ok(())
}

/// What each target environment would install (with `dependencies =
/// "resolve"`), and why an environment cannot.
fn print_resolution(out: &mut impl Write, resolved: &Resolved) -> std::io::Result<()> {
    for (env, outcome) in &resolved.envs {
        match outcome {
            Outcome::Resolved(r) => {
                let pins: Vec<String> = r.pins.iter().map(|(p, v)| format!("{p}=={v}")).collect();
                writeln!(out, "@ {}: {}", env.name(), pins.join(" "))?;
            }
            Outcome::Unsatisfiable(u) => {
                writeln!(out, "! {}: does not resolve: {}", env.name(), u.explanation.trim().replace('\n', " "))?
            }
            Outcome::Failed(e) => writeln!(out, "! {}: {e}", env.name())?,
        }
    }
    Ok(())
}

/// What a plan adds up to, batch by batch.
#[derive(Default)]
struct Totals {
    fetch: usize,
    fetch_bytes: u64,
    keep: usize,
    unlist: usize,
    prune: usize,
}

impl Totals {
    fn add(&mut self, plan: &Plan) {
        self.fetch += plan.count(|d| matches!(d, Decision::Fetch(_) | Decision::Adopt(_)));
        self.fetch_bytes += plan.fetch_bytes();
        self.keep += plan.count(|d| matches!(d, Decision::Keep))
            + plan.projects.iter().map(|p| p.carried as usize).sum::<usize>();
        self.unlist += plan.count(|d| matches!(d, Decision::Unlist));
    }
}

/// What plan says after every file's decision: the run's diagnostics and
/// a summary line.
fn print_end(out: &mut impl Write, totals: &Totals, diags: &Diagnostics, closure: bool) -> std::io::Result<()> {
    for d in diags.sorted() {
        let mark = if d.fails_run() { "!" } else { "?" };
        writeln!(out, "{mark} {d}")?;
    }
    if closure {
        writeln!(
            out,
            "? dependencies = \"all\": the closure is only known once the selected wheels are fetched; plan shows the requested projects"
        )?;
    }
    writeln!(
        out,
        "plan: add {} file(s) ({}), keep {}, remove {} from the index, prune {} from the store",
        totals.fetch,
        human_bytes(totals.fetch_bytes),
        totals.keep,
        totals.unlist,
        totals.prune
    )?;
    Ok(())
}

/// The state plan reads: a throwaway one when there is none (plan must
/// not create anything); with `-o`, the real one under the run lock,
/// restored from the object store's checkpoint when the store is remote.
#[allow(clippy::type_complexity)]
fn open_state(
    manifest: &Manifest,
    writes: bool,
    scratch: &Path,
) -> Result<(Option<crate::pipeline::remote::RemoteStore>, Option<crate::store::lock::RunLock>, State), Error> {
    let m = &manifest.mirror;
    let mut remote = if writes { crate::pipeline::remote::open(m, &manifest.publish)? } else { None };
    if let Some(r) = remote.as_mut() {
        r.lease("airlock plan -o")?;
        r.restore_state(&m.state)?;
    }
    let lock = if writes { Some(crate::store::lock::RunLock::acquire(&m.state, "plan -o")?) } else { None };
    let state = if writes {
        State::open(&m.state)?
    } else if m.state.join("state.sqlite").is_file() {
        State::open_read_only(&m.state)?
    } else {
        State::open(scratch)?
    };
    Ok((remote, lock, state))
}

/// `airlock plan`: what a build would do, written to stdout; with `plan_out`,
/// the files to fetch written there too (see `commands::shard`).
pub fn plan(manifest: &Manifest, offline: bool, plan_out: Option<&Path>) -> Result<Exit, Error> {
    let m = &manifest.mirror;
    // Plan must not create anything: without a state directory, plan against
    // an empty one in a throwaway location. A plan written for shards stores
    // the views it planned from, so the `build --offline` after them plans
    // the same (under the run lock, like any writer of the state).
    let scratch = tempfile::tempdir()?;
    let (remote, _lock, mut state) = open_state(manifest, plan_out.is_some(), scratch.path())?;
    // What the build would refuse before fetching (malicious releases);
    // a snapshot the policy would reject is the build's to report.
    let loaded = crate::audit::load_snapshot(&manifest.advisories, &manifest.policy, crate::util::clock::output_time())
        .unwrap_or(crate::audit::LoadedSnapshot {
            snapshot: None,
            info: None,
            status: crate::audit::Status::Unaudited,
            banner: None,
        });
    // The build's own context and planning stages, in its batches, writing
    // nothing but (with `-o`) the views: plan shows what build does. Each
    // batch is printed and written to the plan file as it comes, then
    // dropped: a plan of a whole index holds one batch at a time.
    let mut build = Build::new(&state, manifest, (offline, None), &loaded)?;
    let id = state.next_run_id()?;
    let select = &manifest.select;
    // The closure of `dependencies = "all"` needs the selected wheels, which
    // plan does not fetch: it cannot tell which dependencies stay, so it
    // claims no removal of a project the manifest does not name.
    let closure = build.want.requested.keys().any(|p| select.options_for(p).dependencies == Dependencies::All);
    let mut leaving = plan::Leaving::new(&state, id, i64::from(m.keep_runs))?;
    let mut written = plan_out.map(|p| crate::commands::shard::PlanWriter::create(p, &m.upstream)).transpose()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut totals, mut requested_all) = (Totals::default(), std::collections::BTreeSet::new());
    // Files a batch unlists with `keep_runs = 0`: they leave the store too.
    let mut also = Vec::new();
    for names in crate::pipeline::batches(select, &build.want.requested) {
        let batch = names.into_iter().filter_map(|p| build.want.requested.get(&p).map(|l| (p, l.clone()))).collect();
        let scope = Scope::Plan {
            state: &mut state,
            store: Store::for_mirror(m),
            id,
            keep_views: plan_out.is_some(),
            tmp: scratch.path().to_path_buf(),
        };
        let (mut plan, requested, resolved) = build.plan_stages(scope, batch)?;
        if closure {
            for pp in plan.projects.iter_mut().filter(|pp| !requested.contains_key(&pp.project)) {
                pp.files.retain(|f| !matches!(f.decision, Decision::Unlist));
            }
        }
        leaving.see(&plan);
        also.append(&mut plan.prune);
        if let Some(w) = written.as_mut() {
            w.add(&plan)?;
        }
        print_resolution(&mut out, &resolved)?;
        print(&mut out, &plan, m.keep_runs)?;
        totals.add(&plan);
        requested_all.extend(requested.into_keys());
    }
    let mut rest = leaving.finish(&mut state, requested_all.iter(), also)?;
    if closure {
        rest.projects.clear();
        rest.prune.retain(|(p, _)| requested_all.contains(p));
    }
    print(&mut out, &rest, m.keep_runs)?;
    totals.add(&rest);
    totals.prune = rest.prune.len();
    let diags = std::mem::take(&mut build.diags);
    if let Some(r) = &remote {
        r.checkpoint_state(&state, state.next_run_id()?.minus(1))?;
    }
    if let (Some(path), Some(w)) = (plan_out, written) {
        let (files, bytes) = w.finish()?;
        tracing::info!("wrote {}: {files} file(s) to fetch ({})", path.display(), human_bytes(bytes));
    }
    print_end(&mut out, &totals, &diags, closure)?;
    out.flush()?;
    Ok(if diags.failed() { Exit::Failed } else { Exit::Success })
}
