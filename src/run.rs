//! The session every command that works on a mirror's state shares: the run
//! lock, the state database, the artifact store and the publish target.
//! `Session::open` is the prologue of readers (export, publish, verify);
//! `Session::begin` records a new run for the commands that change the
//! mirror (build, audit, verify --repair), after cleaning up what a killed
//! run left behind.

use crate::util::run_id::RunId;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use crate::manifest::Mirror;
use crate::store::Store;
use crate::store::lock::{LockError, RunLock};
use crate::store::state::{RunCounts, State, StateError};
use crate::tree::{Target, TreeEntry, TreeError, decode_listing};

/// The commands that open a session: the run lock, the state's runs and
/// messages name them by [`Command::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Build,
    Audit,
    Verify,
    Repair,
    Export,
    Publish,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Build => "build",
            Command::Audit => "audit",
            Command::Verify => "verify",
            Command::Repair => "repair",
            Command::Export => "export",
            Command::Publish => "publish",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("nothing to {command}: no tree has been published yet (run `airlock build`)")]
    NothingPublished { command: Command },
    #[error("{path} is not a published tree (run `airlock build`)")]
    NotATree { path: String },
    #[error("the state holds no readable listing of run {run}'s tree")]
    NoListing { run: RunId },
    #[error("{0}")]
    Checkpoint(String),
}

/// The lock, the state, the store and where the tree is published.
pub struct Session {
    _lock: RunLock,
    pub state: State,
    pub store: Store,
    pub target: Target,
    pub command: Command,
}

/// The tree being served, with what the state recorded about it.
pub struct ServedTree {
    pub run: RunId,
    pub root: PathBuf,
    pub listing: Vec<TreeEntry>,
}

impl Session {
    /// Take the run lock (one run at a time) and open the state.
    pub fn open(mirror: &Mirror, output: &Path, command: Command) -> Result<Session, RunError> {
        let target = Target::new(output)?;
        let lock = RunLock::acquire(&mirror.state, command.as_str())?;
        let state = State::open(&mirror.state)?;
        Ok(Session { _lock: lock, state, store: Store::for_mirror(mirror), target, command })
    }

    /// Record a new run, after marking runs a killed process left running
    /// as crashed, then check that the store and the output can be written
    /// (before the run's first request) and clear partial downloads. A
    /// run that fails here is recorded as failed like any other.
    pub fn begin(self) -> Result<Run, RunError> {
        if self.state.mark_crashed_runs()? > 0 {
            tracing::warn!("a previous run did not finish; this run completes its work");
        }
        let id = self.state.begin_run(self.command.as_str())?;
        let db = self.state.path().to_path_buf();
        let tmp = self.store.tmp_dir().to_path_buf();
        // A signal that ends the process mid-download leaves no `.part` file.
        let signal = crate::util::signal::Guard::waiting(move || {
            let _ = crate::store::clear_dir(&tmp);
            State::record_interrupted(&db, id);
        });
        let run = Run { session: self, id, finished: false, _signal: signal };
        let partial = match run.store.prepare() {
            Ok(n) => n,
            Err(e) => return Err(run.abort(e.into())),
        };
        if partial > 0 {
            tracing::info!("removed {partial} partial download(s) left by an interrupted run");
        }
        if let Err(e) = run.target.preflight() {
            return Err(run.abort(e.into()));
        }
        Ok(run)
    }

    /// The tree served now and its recorded listing.
    pub fn served(&self) -> Result<ServedTree, RunError> {
        let run = self.state.last_published_run()?.ok_or(RunError::NothingPublished { command: self.command })?;
        let root = self
            .target
            .current()
            .filter(|p| p.is_dir())
            .ok_or_else(|| RunError::NotATree { path: self.target.output().display().to_string() })?;
        let listing = self.state.tree(run)?.and_then(|b| decode_listing(&b)).ok_or(RunError::NoListing { run })?;
        Ok(ServedTree { run, root, listing })
    }
}

/// A session that records itself as run `id`. A run dropped unfinished
/// (an error cut it short) is recorded as failed, so the next run does not
/// mistake it for a crash.
pub struct Run {
    session: Session,
    pub id: RunId,
    finished: bool,
    /// A signal lets the run unwind; if it does not in time, the run is
    /// recorded as interrupted from the signal thread.
    _signal: crate::util::signal::Guard,
}

impl Run {
    /// Record how the run ended. Consumes the run: the lock goes with it.
    pub fn finish(self, outcome: &str, counts: &RunCounts, errors: &[String]) -> Result<(), RunError> {
        self.finish_then(outcome, counts, errors, |_| Ok(()))
    }

    /// As [`Run::finish`], then `then` with the state as recorded, while
    /// the lock is still held (a checkpoint of the state).
    pub fn finish_then(
        mut self,
        outcome: &str,
        counts: &RunCounts,
        errors: &[String],
        then: impl FnOnce(&State) -> Result<(), RunError>,
    ) -> Result<(), RunError> {
        self.finished = true;
        self.session.state.finish_run(self.id, outcome, counts, errors)?;
        then(&self.session.state)
    }

    /// Record the error that ended the run, and hand it back.
    pub fn abort<E: std::fmt::Display>(mut self, error: E) -> E {
        self.record_end(&error.to_string());
        error
    }

    fn record_end(&mut self, error: &str) {
        self.finished = true;
        let outcome = if crate::util::signal::interrupted() { "interrupted" } else { "failed" };
        if let Err(e) = self.session.state.finish_run(self.id, outcome, &RunCounts::default(), &[error.to_string()]) {
            tracing::warn!("cannot record how run {} ended: {e}", self.id);
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished {
            self.record_end("the run ended before it finished (see its log)");
        }
    }
}

impl Deref for Run {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl DerefMut for Run {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}
