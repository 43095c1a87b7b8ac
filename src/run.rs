//! The session every command that works on a mirror's state shares: the run
//! lock, the state database, the artifact store and the publish target.
//! `Session::open` is the prologue of readers (export, publish, verify);
//! `Session::begin` records a new run for the commands that change the
//! mirror (build, audit, verify --repair), after cleaning up what a killed
//! run left behind.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use crate::manifest::Mirror;
use crate::store::Store;
use crate::store::lock::{LockError, RunLock};
use crate::store::state::{RunCounts, State, StateError};
use crate::tree::{Target, TreeEntry, TreeError, decode_listing};

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
    NothingPublished { command: String },
    #[error("{path} is not a published tree (run `airlock build`)")]
    NotATree { path: String },
    #[error("the state holds no readable listing of run {run}'s tree")]
    NoListing { run: i64 },
}

/// The lock, the state, the store and where the tree is published.
pub struct Session {
    _lock: RunLock,
    pub state: State,
    pub store: Store,
    pub target: Target,
}

/// The tree being served, with what the state recorded about it.
pub struct ServedTree {
    pub run: i64,
    pub root: PathBuf,
    pub listing: Vec<TreeEntry>,
}

impl Session {
    /// Take the run lock (one run at a time) and open the state.
    pub fn open(mirror: &Mirror, output: &Path, command: &str) -> Result<Session, RunError> {
        let target = Target::new(output)?;
        let lock = RunLock::acquire(&mirror.state, command)?;
        let state = State::open(&mirror.state)?;
        Ok(Session { _lock: lock, state, store: Store::new(&mirror.state), target })
    }

    /// Record a new run, after marking runs a killed process left running
    /// as crashed and clearing its partial downloads.
    pub fn begin(self, command: &str) -> Result<Run, RunError> {
        if self.state.mark_crashed_runs()? > 0 {
            tracing::warn!("a previous run did not finish; this run completes its work");
        }
        let partial = self.store.prepare()?;
        if partial > 0 {
            tracing::info!("removed {partial} partial download(s) left by an interrupted run");
        }
        let id = self.state.begin_run(command)?;
        Ok(Run { session: self, id })
    }

    /// The tree served now and its recorded listing.
    pub fn served(&self, command: &str) -> Result<ServedTree, RunError> {
        let run = self
            .state
            .last_published_run()?
            .ok_or_else(|| RunError::NothingPublished { command: command.to_string() })?;
        let root = self
            .target
            .current()
            .filter(|p| p.is_dir())
            .ok_or_else(|| RunError::NotATree { path: self.target.output().display().to_string() })?;
        let listing = self.state.tree(run)?.and_then(|b| decode_listing(&b)).ok_or(RunError::NoListing { run })?;
        Ok(ServedTree { run, root, listing })
    }
}

/// A session that records itself as run `id`.
pub struct Run {
    session: Session,
    pub id: i64,
}

impl Run {
    /// Record how the run ended. Consumes the run: the lock goes with it.
    pub fn finish(self, outcome: &str, counts: &RunCounts, errors: &[String]) -> Result<(), RunError> {
        self.session.state.finish_run(self.id, outcome, counts, errors)?;
        Ok(())
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
