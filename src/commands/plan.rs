//! `airlock plan`: what a build would do, written to stdout, touching
//! nothing (not even the state: it is opened read-only, or a throwaway one
//! stands in before the first build).

use std::io::Write;

use crate::diagnostics::Diagnostics;
use crate::error::Error;
use crate::exit::Exit;
use crate::manifest::Manifest;
use crate::pipeline::plan::{self, Decision, Plan, PlanInputs};
use crate::pipeline::{connect, views};
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
        let kept = pp.with(|d| matches!(d, Decision::Keep)).count();
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

/// `airlock plan`: what a build would do, written to stdout.
pub fn plan(manifest: &Manifest, offline: bool) -> Result<Exit, Error> {
    let m = &manifest.mirror;
    // Plan must not create anything: without a state directory, plan against
    // an empty one in a throwaway location.
    let scratch = tempfile::tempdir()?;
    let state = if m.state.join("state.sqlite").is_file() {
        State::open_read_only(&m.state)?
    } else {
        State::open(scratch.path())?
    };
    let client = connect(m, offline)?;
    let requested = views::requested(&manifest.select);
    let projects: Vec<_> = requested.keys().cloned().collect();
    let mut diags = Diagnostics::default();
    let views = views::gather(client.as_ref(), &state, &projects, m.jobs, &mut diags)?;
    let inputs = PlanInputs {
        select: &manifest.select,
        keep_runs: m.keep_runs,
        store: Store::new(&m.state),
        run: state.next_run_id()?,
    };
    let plan = plan::make(&inputs, &requested, &views, &state.artifacts()?, &mut diags);

    let mut out = std::io::stdout().lock();
    print(&mut out, &plan, m.keep_runs)?;
    for d in diags.sorted() {
        let mark = if d.fails_run() { "!" } else { "?" };
        writeln!(out, "{mark} {d}")?;
    }
    let fetch = plan.count(|d| matches!(d, Decision::Fetch(_) | Decision::Adopt(_)));
    let keep = plan.count(|d| matches!(d, Decision::Keep));
    let unlist = plan.count(|d| matches!(d, Decision::Unlist));
    writeln!(
        out,
        "plan: add {fetch} file(s) ({}), keep {keep}, remove {unlist} from the index, prune {} from the store",
        human_bytes(plan.fetch_bytes()),
        plan.prune.len()
    )?;
    Ok(if diags.failed() { Exit::Failed } else { Exit::Success })
}
