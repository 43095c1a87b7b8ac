//! Commands that only read: `plan`.

use std::io::Write;

use crate::error::{Error, Exit};
use crate::manifest::Manifest;
use crate::plan;
use crate::state::State;
use crate::store::Store;
use crate::ui::human_bytes;

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
    let client = if offline { None } else { Some(crate::build::client_for(manifest)?) };
    let requested = plan::requested(manifest);
    let projects: Vec<_> = requested.keys().cloned().collect();
    let views = plan::gather(client.as_ref(), &state, &projects, m.jobs)?;
    let stored = state.artifacts()?;
    let next_run = state.runs()?.last().map_or(1, |r| r.id + 1);
    let plan = plan::make(manifest, &requested, &views, &stored, &Store::new(&m.state), next_run);

    let mut out = std::io::stdout().lock();
    let (mut keep, mut unlist) = (0, 0);
    for (project, pp) in &plan.projects {
        for f in &pp.fetch {
            writeln!(
                out,
                "+ {project} {}: {} ({})",
                f.filename.version(),
                f.filename,
                f.size.map_or_else(|| "size unknown".into(), human_bytes)
            )?;
        }
        if !pp.keep.is_empty() {
            writeln!(out, "= {project}: {} file(s) kept", pp.keep.len())?;
        }
        for f in &pp.unlist {
            writeln!(out, "- {project}: {f} leaves the index")?;
        }
        for (f, mirrored, upstream) in &pp.tampered {
            writeln!(
                out,
                "! {project}: {f}: upstream sha256 changed from {mirrored} to {upstream} (possible tampering; the mirrored file is kept)"
            )?;
        }
        keep += pp.keep.len();
        unlist += pp.unlist.len();
    }
    for (project, f) in &plan.prune {
        writeln!(out, "x {project}: {f} leaves the store (not selected for more than {} runs)", m.keep_runs)?;
    }
    for e in views.errors.iter().chain(&plan.errors) {
        writeln!(out, "! {e}")?;
    }
    for (project, up) in &views.projects {
        for s in up.skipped() {
            writeln!(out, "? {project}: skipping {:?}: {}", s.filename, s.reason)?;
        }
    }
    writeln!(
        out,
        "plan: add {} file(s) ({}), keep {keep}, remove {unlist} from the index, prune {} from the store",
        plan.fetch_count(),
        human_bytes(plan.fetch_bytes()),
        plan.prune.len()
    )?;
    Ok(if views.errors.is_empty() && plan.errors.is_empty() { Exit::Success } else { Exit::Failed })
}
