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
