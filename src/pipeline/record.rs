//! Stages: record and prune. The state learns the run's selection (and the
//! plan keys that let the next run skip unchanged projects), its tampering
//! evidence, and, after publishing, which files left the store.

use super::plan::{Decision, Plan};
use super::views::Requested;
use crate::diagnostics::{Diagnostic, Diagnostics, Tampering};
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::run::Run;
use crate::store::state::{GateRow, StateError};

/// Stage: record one batch's selection. A project planned from its
/// listing lists exactly its kept files from now on, and records its plan
/// key only when every selected file was brought in (otherwise the next run
/// plans it again). Projects carried over, or whose listing failed, keep
/// their selection as it is, so a flaky upstream never empties a page.
/// Returns how many files left the index.
pub fn record(run: &mut Run, plan: &Plan, requested: &Requested) -> Result<u64, StateError> {
    let mut keep: Vec<(ProjectName, DistFilename)> = Vec::new();
    let mut planned: Vec<ProjectName> = Vec::new();
    let mut keys: Vec<(ProjectName, Option<String>)> = Vec::new();
    let mut sdist_only = Vec::new();
    let mut tampered = Vec::new();
    for pp in &plan.projects {
        tampered.extend(pp.tampered.iter().map(|(f, m, u)| (pp.project.clone(), f.clone(), *m, *u)));
        if pp.reused || !pp.planned || !requested.contains_key(&pp.project) {
            continue;
        }
        keep.extend(pp.with(|d| matches!(d, Decision::Keep)).map(|f| (pp.project.clone(), f.filename.clone())));
        planned.push(pp.project.clone());
        keys.push((pp.project.clone(), pp.complete().then(|| pp.key.clone())));
        sdist_only.push((pp.project.clone(), pp.sdist_only.clone()));
    }
    for (project, filename, mirrored, upstream) in &tampered {
        let t = Tampering {
            project: project.clone(),
            filename: filename.clone(),
            mirrored: *mirrored,
            upstream: *upstream,
            first_run: plan.run,
            last_run: plan.run,
        };
        // Every publish reports it from the state; said here as it is found.
        tracing::error!("{}", Diagnostic::Tampering(t));
    }
    let left = run.state.record_selection(plan.run, &keep, &planned, None)?;
    run.state.set_plan_keys(&keys)?;
    run.state.set_sdist_only(&sdist_only)?;
    run.state.record_tampering(plan.run, &tampered)?;
    Ok(left as u64)
}

/// Stage: record, once every batch is: projects no longer requested leave
/// the index, and their stored views the state. Returns how many files left.
pub fn unrequested(run: &mut Run, requested: &std::collections::BTreeSet<ProjectName>) -> Result<u64, StateError> {
    let names: Vec<ProjectName> = requested.iter().cloned().collect();
    let id = run.id;
    let left = run.state.record_selection(id, &[], &[], Some(&names))?;
    run.state.forget_views_except(&names)?;
    Ok(left as u64)
}

/// Diagnostics for what the run prunes (said before publishing: the tree
/// no longer holds those files).
pub fn pruning(prune: &[(ProjectName, DistFilename)], diags: &mut Diagnostics) {
    for (project, f) in prune {
        diags.push(Diagnostic::Pruned { project: project.clone(), filename: f.to_string() });
    }
}

/// Stage: prune, the state's half. The rows go before the tree is
/// rendered (the tree no longer shows those files), the files after it is
/// published: a kill in between leaves only orphan files, which a later
/// selection adopts or nothing lists.
pub fn prune_rows(run: &mut Run, prune: &[(ProjectName, DistFilename)]) -> Result<u64, StateError> {
    run.state.delete_artifacts(prune)?;
    Ok(prune.len() as u64)
}

/// Stage: prune, the store's half (see [`prune_rows`]).
pub fn prune_files(run: &Run, prune: &[(ProjectName, DistFilename)]) {
    for (p, f) in prune {
        run.store.remove(p, f);
    }
}

/// Files the plan withdrew (the upstream no longer offers them, or the
/// freeze holds them) are marked so in the state, so that no prune ever
/// deletes their bytes and the reports list them with since when.
pub fn withdrawn(run: &mut Run, diags: &Diagnostics) -> Result<(), StateError> {
    let files: Vec<(ProjectName, Option<String>, &str)> = diags
        .iter()
        .filter_map(|d| match d {
            Diagnostic::Withdrawn { project, filename, reason, .. } => {
                Some((project.clone(), filename.clone(), reason.as_str()))
            }
            _ => None,
        })
        .collect();
    let at = crate::util::clock::output_time().to_string();
    let id = run.id;
    run.state.mark_withdrawn(id, &at, &files)
}

/// Stage: record what the gate held and let in early (this build's word
/// replaces the last), for `airlock audit` to report alike.
pub fn gate(run: &mut Run, diags: &Diagnostics) -> Result<(), StateError> {
    let rows: Vec<GateRow> = diags
        .iter()
        .filter_map(|d| match d {
            Diagnostic::Held { project, version, reason, due, expired, note } => Some(GateRow {
                project: project.to_string(),
                version: version.to_string(),
                kind: "held".into(),
                reason: reason.as_str().into(),
                due: due.map(|t| t.to_string()),
                expires: expired.as_ref().map(|(_, e)| e.to_string()),
                entry: expired.as_ref().map(|(r, _)| r.clone()),
                note: note.clone(),
            }),
            Diagnostic::Admitted { project, version, reason, expires } => Some(GateRow {
                project: project.to_string(),
                version: version.to_string(),
                kind: "admitted".into(),
                reason: reason.clone(),
                due: None,
                expires: expires.map(|e| e.to_string()),
                entry: None,
                note: None,
            }),
            _ => None,
        })
        .collect();
    run.state.put_gate(&rows)
}

/// What the last build's gate said, as its diagnostics again (rows that no
/// longer parse are left out: an older airlock's words).
pub fn gate_diagnostics(state: &crate::store::state::State) -> Result<Vec<Diagnostic>, StateError> {
    use crate::diagnostics::HoldReason;
    let mut out = Vec::new();
    for r in state.gate()? {
        let (Ok(project), Ok(version)) = (r.project.parse::<ProjectName>(), r.version.parse::<crate::dist::Version>())
        else {
            continue;
        };
        let date = |d: &Option<String>| d.as_deref().and_then(|d| d.parse::<jiff::civil::Date>().ok());
        if r.kind == "admitted" {
            out.push(Diagnostic::Admitted { project, version, reason: r.reason, expires: date(&r.expires) });
            continue;
        }
        let Some(reason) = HoldReason::parse(&r.reason) else { continue };
        let due = r.due.as_deref().and_then(|d| d.parse::<jiff::Timestamp>().ok());
        let expired = r.entry.zip(date(&r.expires));
        out.push(Diagnostic::Held { project, version, reason, due, expired, note: r.note });
    }
    Ok(out)
}
