//! Advisory snapshot benchmarks (issue 3), on the real pypa/advisory-database
//! copy in ../shared/data (skipped with a message when it is absent):
//! - building the snapshot from ~2,700 YAML records;
//! - 35,000 (name, version) lookups, in-process and through the batch
//!   `check` path (JSON lines out).
//!
//! `cargo bench --bench advisories`. Figures: docs/BENCHMARKS.md.

use std::path::Path;

use airlock::advisories::Snapshot;
use airlock::advisories::SourceSpec;
use airlock::advisories::ops;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// 35,000 distinct (package, version) pairs the database lists (it lists
/// 35,287), in a seeded random order: every listed version checked about
/// once, as a mirror would. Sampling with repetition instead weights the
/// few packages with hundreds of advisories (tensorflow) and measures their
/// output volume rather than lookups.
fn pairs(vulns: &Path) -> Vec<(String, String)> {
    let parsed = airlock::advisories::source::read(vulns).unwrap();
    let mut all = std::collections::BTreeSet::new();
    for r in &parsed.records {
        for a in &r.affected {
            let name =
                airlock::dist::names::ProjectName::new(a.package.as_ref().unwrap().name.clone()).unwrap().to_string();
            all.extend(a.versions.iter().map(|v| (name.clone(), v.clone())));
        }
    }
    let mut all: Vec<(String, String)> = all.into_iter().collect();
    fastrand::Rng::with_seed(1).shuffle(&mut all);
    all.truncate(35_000);
    all
}

fn advisories(c: &mut Criterion) {
    let vulns = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pypa-advisory-database/vulns");
    if !vulns.is_dir() {
        eprintln!("skipping: {} is absent", vulns.display());
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("adv.sqlite.zst");
    let mut group = c.benchmark_group("advisories");
    group.sample_size(10);
    group.bench_function("build_pypa_snapshot", |b| {
        b.iter(|| ops::build(&[SourceSpec::Path(vulns.clone())], &out, scratch.path()).unwrap())
    });
    let snapshot = Snapshot::open(&out).unwrap();
    let pairs = pairs(&vulns);
    group.throughput(Throughput::Elements(pairs.len() as u64));
    group.bench_function("open_snapshot", |b| b.iter(|| Snapshot::open(&out).unwrap()));
    group.bench_function("check_35k_in_process", |b| {
        b.iter(|| pairs.iter().map(|(n, v)| snapshot.check(n, v).len()).sum::<usize>())
    });
    let input: String = pairs.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    group.bench_function("check_35k_batch_json", |b| {
        b.iter(|| ops::check_batch(&snapshot, input.as_bytes(), std::io::sink()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, advisories);
criterion_main!(benches);
