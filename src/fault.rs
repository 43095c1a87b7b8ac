//! Fault-injection points for the crash-safety tests.
//!
//! With `AIRLOCK_FAULT=<point>` set, the process writes `<point>` to the file
//! named by `AIRLOCK_FAULT_MARKER` (if set) and then stalls, so a test can
//! SIGKILL it at exactly that stage. Unset (always, in production) it costs
//! one environment lookup per call site per run.

pub fn point(name: &str) {
    let Ok(want) = std::env::var("AIRLOCK_FAULT") else {
        return;
    };
    if want != name {
        return;
    }
    if let Ok(marker) = std::env::var("AIRLOCK_FAULT_MARKER") {
        let _ = std::fs::write(marker, name);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
