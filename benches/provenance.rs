//! PEP 740 verification cost (issue 27): 1,000 provenance objects verified
//! offline, in parallel as the fetch stage does, against the built-in
//! Sigstore production root. The objects are the real PyPI ones of
//! ../shared/data/pep740 (each verified against its own distribution),
//! taken round-robin: every verification does the whole chain (DSSE,
//! Fulcio chain and SCT, Rekor proof, identity), so 1,000 of a few
//! distinct objects cost what 1,000 distinct ones would.
//!
//! `cargo bench --bench provenance`; figures in docs/BENCHMARKS.md.

use std::path::PathBuf;

use airlock::provenance::{TrustRoot, verify_provenance};
use airlock::util::hashing::Sha256;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

const OBJECTS: usize = 1_000;

fn pairs() -> Option<Vec<(Vec<u8>, String, Sha256)>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pep740");
    if !dir.is_dir() {
        eprintln!("skipped: ../shared/data/pep740 is absent");
        return None;
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("attestations")).ok()? {
        let path = e.ok()?.path();
        let name = path.file_name()?.to_string_lossy().into_owned();
        let Some(dist) = name.strip_suffix(".provenance") else { continue };
        let bytes = std::fs::read(dir.join("dists").join(dist)).ok()?;
        out.push((std::fs::read(&path).ok()?, dist.to_string(), Sha256::of(&bytes)));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Some(out)
}

fn bench(c: &mut Criterion) {
    let Some(pairs) = pairs() else { return };
    let root = TrustRoot::production().unwrap();
    for (bytes, file, sha) in &pairs {
        verify_provenance(bytes, file, sha, &root, None).expect("every real pair verifies");
    }
    let mut g = c.benchmark_group("provenance");
    g.sample_size(10).throughput(Throughput::Elements(OBJECTS as u64));
    g.bench_function("verify 1,000 objects, all cores", |b| {
        b.iter(|| {
            (0..OBJECTS).into_par_iter().for_each(|i| {
                let (bytes, file, sha) = &pairs[i % pairs.len()];
                verify_provenance(bytes, file, sha, &root, None).unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
