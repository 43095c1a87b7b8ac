//! Fault-injection points for the crash-safety tests.
//!
//! With `AIRLOCK_FAULT=<point>` (or `<point>:<n>`, to stop at the n-th time
//! the point is passed), the process writes the point's name to the file
//! named by `AIRLOCK_FAULT_MARKER` (if set) and then stalls, so a test can
//! SIGKILL it at exactly that stage. With `AIRLOCK_FAULT_RESUME` set too,
//! the process goes on once the test removes the marker: the test changes
//! the world at exactly that stage (a file vanishes) and sees what the run
//! makes of it. Unset, as always in production, a point costs one
//! environment lookup.

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
    let marker = std::env::var("AIRLOCK_FAULT_MARKER").ok();
    if let Some(marker) = &marker {
        let _ = std::fs::write(marker, name);
        if std::env::var_os("AIRLOCK_FAULT_RESUME").is_some() {
            while std::path::Path::new(marker).exists() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            return;
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
