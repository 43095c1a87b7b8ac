//! One libFuzzer binary for every parser: `AIRLOCK_FUZZ_TARGET` names the
//! target (`airlock::fuzz::TARGETS`), so one instrumented build serves all.
#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<String> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = TARGET.get_or_init(|| std::env::var("AIRLOCK_FUZZ_TARGET").unwrap_or_default());
    airlock::fuzz::run(target, data);
});
