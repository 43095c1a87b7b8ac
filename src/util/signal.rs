//! SIGINT and SIGTERM: stop at the next safe point, say so, record the run
//! as interrupted, release the lock, exit 130 (143 for SIGTERM).
//!
//! A thread waits for the signal and raises a flag; stages check it at
//! their boundaries and requests before they start, so the run unwinds
//! through its ordinary error path (its `Drop`s record it and empty the
//! lock) and `main` exits. A command with no run in progress runs its
//! registered cleanups (the lock) and exits at once. If the run has not
//! unwound within [`GRACE`] (a request stuck on a silent server), or a
//! second signal comes, the thread runs the cleanups itself and exits: a
//! stopped run is never left looking like a crash.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How long a run gets to unwind after the first signal.
const GRACE: Duration = Duration::from_secs(5);

static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Runs in progress: with none, a signal exits at once.
static BUSY: AtomicUsize = AtomicUsize::new(0);
type Cleanup = Box<dyn Fn() + Send>;
static CLEANUPS: Mutex<Vec<(u64, Cleanup)>> = Mutex::new(Vec::new());
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Stopped by a signal.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by {}: stopped before finishing; the served tree is unchanged by this run", name(self.0))]
pub struct Interrupted(pub i32);

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Listen for SIGINT and SIGTERM (once, at start-up).
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Some(first) = signals.forever().next() else { return };
        RECEIVED.store(first, Ordering::SeqCst);
        let busy = BUSY.load(Ordering::SeqCst) > 0;
        if busy {
            eprintln!("airlock: {}: stopping at the next safe point (again to stop at once)", name(first));
            let started = Instant::now();
            while started.elapsed() < GRACE && BUSY.load(Ordering::SeqCst) > 0 {
                std::thread::sleep(Duration::from_millis(50));
                if signals.pending().next().is_some() {
                    break;
                }
            }
            if BUSY.load(Ordering::SeqCst) == 0 {
                // The run unwound: the main thread prints and exits.
                return;
            }
        }
        for (_, cleanup) in CLEANUPS.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            cleanup();
        }
        // Without a run (serve, plan), a signal is the ordinary way to stop.
        if busy {
            eprintln!("airlock: {}", Interrupted(first));
        }
        std::process::exit(exit_code(first).into());
    })?;
    Ok(())
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn interrupted() -> bool {
    received().is_some()
}

/// At a safe point: stop here if a signal came.
pub fn check() -> Result<(), Interrupted> {
    received().map_or(Ok(()), |s| Err(Interrupted(s)))
}

/// The shell's convention: 128 + the signal number.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(1)
}

/// Registered work to undo if a signal ends the process: while a guard
/// made with [`Guard::waiting`] is held, a signal first gives the run
/// [`GRACE`] to unwind by itself.
#[derive(Debug)]
pub struct Guard {
    id: u64,
    waiting: bool,
}

impl Guard {
    /// `cleanup` runs if a signal ends the process while the guard lives.
    pub fn cleanup(cleanup: impl Fn() + Send + 'static) -> Guard {
        let id = NEXT.fetch_add(1, Ordering::SeqCst) as u64;
        CLEANUPS.lock().unwrap_or_else(PoisonError::into_inner).push((id, Box::new(cleanup)));
        Guard { id, waiting: false }
    }

    /// As [`Guard::cleanup`], for a run that checks [`check`] and unwinds.
    pub fn waiting(cleanup: impl Fn() + Send + 'static) -> Guard {
        let mut guard = Guard::cleanup(cleanup);
        guard.waiting = true;
        BUSY.fetch_add(1, Ordering::SeqCst);
        guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        CLEANUPS.lock().unwrap_or_else(PoisonError::into_inner).retain(|(id, _)| *id != self.id);
        if self.waiting {
            BUSY.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
