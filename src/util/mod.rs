//! Small pieces every stage uses and that know nothing of mirrors: the one
//! clock, bounded decompression, streaming hashes, atomic file writes, credential redaction,
//! progress and logs, content types, and fault-injection points.

pub mod bounded;
pub mod clock;
pub mod fault;
pub mod fsx;
pub mod hashing;
pub mod mem;
pub mod mime;
pub mod redact;
pub mod run_id;
pub mod signal;
pub mod ui;

/// Requests in flight for `jobs` parallel transfers (`[mirror] jobs`):
/// a listing, a `.metadata` or a small file is a round trip, not a
/// transfer, so against a far upstream the run waits on latency, not
/// bandwidth. Small requests run four to a transfer slot (uv runs 50
/// downloads at once by default); a large file still takes one of the
/// `jobs` slots ([`Slots`]).
pub(crate) fn requests_in_flight(jobs: usize) -> usize {
    jobs.max(1).saturating_mul(4).min(MAX_IN_FLIGHT)
}

/// The most requests a run keeps in flight, and so the idle connections
/// per host worth keeping for them (`upstream::Client`).
pub(crate) const MAX_IN_FLIGHT: usize = 512;

/// A counting semaphore for pool threads: at most `n` holders at once.
/// Blocking a pool thread is fine here: a holder's work never waits on
/// the pool (a fetch uses no rayon), so a waiting thread only waits for a
/// holder to finish.
pub(crate) struct Slots {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Slots {
    pub(crate) fn new(n: usize) -> Slots {
        Slots { free: std::sync::Mutex::new(n.max(1)), freed: std::sync::Condvar::new() }
    }

    /// Run `f` holding a slot.
    pub(crate) fn hold<R>(&self, f: impl FnOnce() -> R) -> R {
        // A poisoned lock only means a holder panicked: the count is still right.
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        drop(free);
        struct Release<'a>(&'a Slots);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self);
        f()
    }
}

/// Run `f` on a pool of `jobs` threads: transfers are I/O-bound, so more
/// threads than cores pay. Falls back to the global pool if the system
/// refuses the threads, rather than failing the run.
pub fn with_pool<R: Send>(jobs: usize, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build() {
        Ok(pool) => pool.install(f),
        Err(e) => {
            tracing::debug!("cannot start {jobs} threads ({e}); using the global pool");
            f()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn slots_never_have_more_holders_than_slots() {
        let slots = Slots::new(3);
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    slots.hold(|| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        let peak = peak.into_inner();
        assert!((1..=3).contains(&peak), "peak holders {peak}");
        assert_eq!(requests_in_flight(0), 4);
        assert_eq!(requests_in_flight(16), 64);
        assert_eq!(requests_in_flight(10_000), 512);
    }
}
