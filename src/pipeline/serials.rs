//! Stage: since. Where the upstream publishes PyPI's serials, ask it once
//! what changed since the serial the stored views are complete up to, and
//! check only those projects' pages: a no-change nightly run is one request
//! whatever the number of projects, a new release that project's page and
//! files.
//!
//! The capability is detected, never assumed: an upstream whose XML-RPC
//! API is missing or answers nonsense gets conditional requests for every
//! page (in parallel, as before), and is asked again at the next full
//! check. A full check of every page runs periodically anyway (every 7 days;
//! `AIRLOCK_FULL_CHECK_HOURS`), so a changelog that leaves a change out is
//! caught. The serial only moves forward when every page it covers was
//! checked without error, so a failed page is asked again next run.

use std::collections::HashMap;

use crate::dist::names::ProjectName;
use crate::store::state::{ProjectView, State, StateError, UpstreamSerial};
use crate::upstream::Client;
use crate::util::redact;

/// Default hours between full checks of every page.
const FULL_CHECK_HOURS: i64 = 7 * 24;

fn full_check_hours() -> i64 {
    std::env::var("AIRLOCK_FULL_CHECK_HOURS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(FULL_CHECK_HOURS)
}

/// What this run knows about changes upstream.
#[derive(Debug, Default)]
pub struct Since {
    /// The projects changed since the stored serial, with their latest
    /// change's serial; `None`: no changelog this run, check every page.
    changed: Option<HashMap<ProjectName, i64>>,
    /// What to record once every page was checked without error.
    record: Option<(String, UpstreamSerial)>,
    /// Why serials are not used this run, when they are not.
    unavailable: Option<String>,
}

impl Since {
    /// Every page is checked (offline, or for commands that always do).
    pub fn every_page() -> Since {
        Since::default()
    }

    /// How this run knew what changed, for the run's upstream line.
    pub fn describe(&self) -> String {
        match (&self.changed, &self.record, &self.unavailable) {
            (Some(c), _, _) => format!("serials: {} project(s) changed", c.len()),
            (None, Some((_, UpstreamSerial { serial: Some(s), .. })), _) => format!("a full check (serial {s})"),
            (None, _, Some(why)) => format!("serials unavailable ({why})"),
            (None, _, None) => "serials unavailable".into(),
        }
    }

    /// Whether the upstream offers no serials (every run checks every page).
    pub fn no_serials(&self) -> bool {
        self.changed.is_none() && !matches!(&self.record, Some((_, UpstreamSerial { serial: Some(_), .. })))
    }

    /// Whether a project's stored view is known current without asking:
    /// the changelog names no change to it after the view was fetched.
    pub fn unchanged(&self, project: &ProjectName, old: Option<&ProjectView>) -> bool {
        let (Some(changed), Some(old)) = (&self.changed, old) else { return false };
        match changed.get(project) {
            None => true,
            Some(&serial) => old.serial.is_some_and(|seen| seen >= serial),
        }
    }

    /// Record how far the stored views are complete, when the run's pages
    /// all came through.
    pub fn finish(&self, state: &mut State, pages_failed: bool) -> Result<(), StateError> {
        match &self.record {
            Some((upstream, s)) if !pages_failed => state.put_upstream_serial(upstream, s),
            _ => Ok(()),
        }
    }
}

/// Stage: since. Decide from the stored serial whether this run asks the
/// changelog or checks every page (and, for a full check, which serial it
/// will be complete up to: read before any page, so a change made while
/// pages are fetched is asked again next time).
pub fn since(client: Option<&Client>, state: &State) -> Result<Since, StateError> {
    let Some(client) = client else { return Ok(Since::every_page()) };
    if crate::upstream::serial::endpoint(client.index()).is_none() {
        return Ok(Since { unavailable: Some("not an HTTP upstream".into()), ..Since::every_page() });
    }
    let key = redact::url(client.index());
    let now = crate::util::clock::now();
    let stored = state.upstream_serial(&key)?;
    let due = stored.as_ref().is_none_or(|s| {
        let checked: Option<jiff::Timestamp> = s.full_check.parse().ok();
        let now: Option<jiff::Timestamp> = now.parse().ok();
        match (checked, now) {
            (Some(c), Some(n)) => n.duration_since(c).as_secs() >= full_check_hours() * 3600,
            _ => true,
        }
    });
    if let Some(UpstreamSerial { serial: None, .. }) = stored.as_ref().filter(|_| !due) {
        // Known to offer none: not asked again until the next full check.
        return Ok(Since { unavailable: Some("known since the last full check".into()), ..Since::every_page() });
    }
    if let Some(UpstreamSerial { serial: Some(serial), full_check }) = stored.filter(|_| !due) {
        match client.changes_since(serial) {
            Ok(changes) if changes.iter().all(|(_, s)| *s > serial) => {
                let latest = changes.iter().map(|(_, s)| *s).max().unwrap_or(serial);
                let mut changed: HashMap<ProjectName, i64> = HashMap::new();
                for (p, s) in changes {
                    let e = changed.entry(p).or_insert(s);
                    *e = (*e).max(s);
                }
                tracing::info!(
                    "upstream changelog: {} project(s) changed since serial {serial} (now {latest})",
                    changed.len()
                );
                let record = UpstreamSerial { serial: Some(latest), full_check };
                return Ok(Since { changed: Some(changed), record: Some((key, record)), unavailable: None });
            }
            Ok(_) => tracing::warn!(
                "the upstream changelog lists changes at or before serial {serial}: inconsistent; checking every page"
            ),
            Err(e) => tracing::warn!("the upstream changelog is unavailable ({e}); checking every page"),
        }
    }
    // A full check: every page, complete up to the serial read now.
    let (serial, unavailable) = match client.last_serial() {
        Ok(n) => (Some(n), None),
        Err(e) => {
            // Said once, when found out: why no rerun of this mirror can be one request.
            tracing::info!(
                "the upstream offers no serials ({e}): every run checks every page (conditionally where pages carry an ETag); asked again at the next full check"
            );
            (None, Some(e.to_string()))
        }
    };
    Ok(Since { changed: None, record: Some((key, UpstreamSerial { serial, full_check: now })), unavailable })
}
