//! Benchmarks for the mirror core (issue 2):
//! - rendering the simple index of 10,000 projects / 100,000 files, pages
//!   only and as a complete tree (hard-linked packages included);
//! - hash-verifying 1 GiB with the streaming hasher, on one core and on all.
//!
//! `cargo bench --bench pipeline`; the render figures depend on the file
//! system the temporary directory is on (`TMPDIR=/dev/shm` measures the CPU
//! side). Figures are recorded in docs/BENCHMARKS.md.

use airlock::dist::file::{FileFacts, RequiresPython, Yanked};
use std::path::{Path, PathBuf};

use airlock::index::Templates;
use airlock::index::{SiteFile, SiteInfo, render_site};
use airlock::util::hashing::{Sha256, hash_file};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

const PROJECTS: usize = 10_000;
const FILES_PER_PROJECT: usize = 10;

/// Each file gets its own source inode, as real artifacts do: hard links to
/// one inode would contend on its link count (and ext4 caps it at 65,000).
fn site_files(src: &Path) -> Vec<SiteFile> {
    let mut files = Vec::with_capacity(PROJECTS * FILES_PER_PROJECT);
    for p in 0..PROJECTS {
        let project: airlock::dist::names::ProjectName = format!("project-{p:05}").parse().unwrap();
        for v in 0..FILES_PER_PROJECT {
            let filename = format!("project_{p:05}-1.{v}-py3-none-any.whl");
            let source = src.join(&filename);
            std::fs::write(&source, b"x").unwrap();
            files.push(SiteFile {
                project: project.clone(),
                sha256: Sha256::of(filename.as_bytes()),
                size: 12_345,
                facts: FileFacts {
                    requires_python: Some(RequiresPython::new(">=3.8")),
                    yanked: Yanked::from_reason((v == 3).then_some("bad build")),
                    upload_time: Some("2024-01-02T03:04:05Z".parse().unwrap()),
                    provenance: None,
                },
                metadata: None,
                source,
                in_bucket: false,
                metadata_source: None,
                provenance_source: None,
                source_inode: None,
                listed: true,
                filename: filename.parse().unwrap(),
            });
        }
    }
    files
}

fn render(c: &mut Criterion) {
    let scratch = tempfile::tempdir().unwrap();
    let files = site_files(scratch.path());
    let templates = Templates::new(None).unwrap();
    let info = SiteInfo {
        name: "bench".into(),
        upstream: None,
        generated_at: jiff::Timestamp::UNIX_EPOCH,
        environments: Vec::new(),
        index_url: None,
        unselected: Vec::new(),
        held: 0,
        withdrawn: 0,
        attested: None,
        project_pages: false,
    };
    let mut group = c.benchmark_group("render");
    group.sample_size(10);
    group.throughput(Throughput::Elements(files.len() as u64));
    group.bench_function("tree_10k_projects_100k_files", |b| {
        b.iter_with_setup(
            || tempfile::tempdir_in(scratch.path()).unwrap(),
            |out| {
                render_site(&files, &info, None, &templates, (out.path(), None)).unwrap();
                out
            },
        )
    });
    group.finish();
}

fn make_blob(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(name);
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&path, &data).unwrap();
    path
}

fn hashing(c: &mut Criterion) {
    let scratch = tempfile::tempdir().unwrap();
    const GIB: usize = 1 << 30;
    let parts: Vec<PathBuf> = (0..8).map(|i| make_blob(scratch.path(), &format!("part{i}"), GIB / 8)).collect();
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(GIB as u64));
    group.bench_function("1GiB_one_core", |b| b.iter(|| parts.iter().map(|p| hash_file(p).unwrap().1).sum::<u64>()));
    group.bench_function("1GiB_all_cores", |b| {
        b.iter(|| parts.par_iter().map(|p| hash_file(p).unwrap().1).sum::<u64>())
    });
    group.finish();
}

criterion_group!(benches, render, hashing);
criterion_main!(benches);
