//! Fault-injection points for the crash-safety tests.
//!
//! With `AIRLOCK_FAULT=<point>` (or `<point>:<n>`, to stop at the n-th time
//! the point is passed), the process writes the point's name to the file
//! named by `AIRLOCK_FAULT_MARKER` (if set) and then stalls, so a test can
//! SIGKILL it at exactly that stage. Unset, as always in production, a point
//! costs one environment lookup.

use std::sync::atomic::{AtomicU64, Ordering};

static PASSED: AtomicU64 = AtomicU64::new(0);

pub fn point(name: &str) {
    let Ok(want) = std::env::var("AIRLOCK_FAULT") else { return };
    let (want, nth) = match want.split_once(':') {
        Some((w, n)) => (w.to_string(), n.parse::<u64>().unwrap_or(1)),
        None => (want, 1),
    };
    if want != name {
        return;
    }
    // One counter serves: a test stops at one point per run.
    if PASSED.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    if let Ok(marker) = std::env::var("AIRLOCK_FAULT_MARKER") {
        let _ = std::fs::write(marker, name);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
