//! The nightly no-change rerun (issue 5): a mirror of 10,000 projects ×
//! 10 files (a generated `file://` upstream) is built once, then rebuilt
//! `--offline` with nothing changed: airlock's local work alone.
//!
//! `TMPDIR=/dev/shm cargo bench --bench nightly` (creating 100,000 files on
//! a slow disk makes the setup, not the measurement, long).
//! `AIRLOCK_BENCH_PROJECTS` changes the size. Figures: docs/BENCHMARKS.md.

use std::io::Write;
use std::path::Path;

use airlock::manifest::Manifest;
use airlock::pipeline::{BuildOptions, build};
use airlock::util::hashing::Sha256;
use criterion::{Criterion, criterion_group, criterion_main};

fn generate(root: &Path, projects: usize, per: usize) {
    let files = root.join("upstream/files");
    std::fs::create_dir_all(&files).unwrap();
    let mut reqs = String::new();
    for p in 0..projects {
        let name = format!("project-{p:05}");
        let mut entries = Vec::with_capacity(per);
        for v in 0..per {
            let filename = format!("project_{p:05}-1.{v}.tar.gz");
            let body = format!("{filename}\n");
            std::fs::write(files.join(&filename), &body).unwrap();
            entries.push(serde_json::json!({
                "filename": filename, "url": format!("../../files/{filename}"),
                "hashes": {"sha256": Sha256::of(body.as_bytes()).hex()}, "size": body.len(),
                "upload-time": format!("2024-01-{:02}T00:00:00Z", v + 1),
            }));
        }
        let dir = root.join("upstream/simple").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": entries});
        std::fs::write(dir.join("index.v1_json"), serde_json::to_vec(&page).unwrap()).unwrap();
        reqs.push_str(&name);
        reqs.push('\n');
    }
    std::fs::write(root.join("requirements.txt"), reqs).unwrap();
    let mut m = std::fs::File::create(root.join("mirror.toml")).unwrap();
    writeln!(
        m,
        "[mirror]\nupstream = \"file://{}/upstream/simple/\"\n[select]\nrequirements = [\"requirements.txt\"]",
        root.display()
    )
    .unwrap();
}

fn nightly(c: &mut Criterion) {
    let projects: usize = std::env::var("AIRLOCK_BENCH_PROJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let scratch = tempfile::tempdir().unwrap();
    generate(scratch.path(), projects, 10);
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
