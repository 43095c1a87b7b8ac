//! The nightly no-change rerun (issue 5): a mirror of 10,000 projects ×
//! 10 files (a generated `file://` upstream) is built once, then rebuilt
//! `--offline` with nothing changed: airlock's local work alone.
//!
//! `TMPDIR=/dev/shm cargo bench --bench nightly` (creating 100,000 files on
//! a slow disk makes the setup, not the measurement, long).
//! `AIRLOCK_BENCH_PROJECTS` changes the size. Figures: docs/BENCHMARKS.md.

use airlock::manifest::Manifest;
use airlock::pipeline::{BuildOptions, build};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/upstream.rs"]
mod upstream;

fn nightly(c: &mut Criterion) {
    let projects: usize = std::env::var("AIRLOCK_BENCH_PROJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let scratch = tempfile::tempdir().unwrap();
    upstream::generate(scratch.path(), projects, 10);
    let manifest = Manifest::load(&scratch.path().join("mirror.toml")).unwrap();
    let first = build(&manifest, &BuildOptions::default()).unwrap();
    assert_eq!(first.summary.added as usize, projects * 10);
    let offline = BuildOptions { offline: true, ..BuildOptions::default() };
    let mut group = c.benchmark_group("nightly");
    group.sample_size(10);
    group.bench_function(format!("no_change_rerun_{projects}_projects_offline"), |b| {
        b.iter(|| {
            let o = build(&manifest, &offline).unwrap();
            assert!(!o.summary.published);
        })
    });
    group.finish();
}

criterion_group!(benches, nightly);
criterion_main!(benches);
