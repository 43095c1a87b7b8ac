//! The one clock for everything written into a tree or report.
//!
//! `SOURCE_DATE_EPOCH` (reproducible-builds.org) pins it, so identical inputs
//! give byte-identical trees and reports; otherwise it is the current time,
//! read once per process so that every page of a run agrees.

use std::sync::OnceLock;

static NOW: OnceLock<jiff::Timestamp> = OnceLock::new();

pub fn output_time() -> jiff::Timestamp {
    *NOW.get_or_init(|| {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
            .unwrap_or_else(|| {
                jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now())
            })
    })
}

/// The wall clock now, to the second, as RFC 3339 text: when things
/// happened (runs, fetches), as opposed to what a tree says it was built at.
pub fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string()
}
