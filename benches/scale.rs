//! Whole-command benchmarks with peak memory (issue 15): what a user runs,
//! timed from outside, its peak resident set read from the kernel
//! (`wait4`), medians of `AIRLOCK_BENCH_RUNS` runs (default 3):
//! - first builds of a generated `file://` upstream (10 files per
//!   project), 100,000 files by default; `AIRLOCK_BENCH_FILES=100000,1000000`
//!   adds the million (ceilings: 150 MiB and 1 GiB);
//! - `airlock index` of the 71,408 real PyPI filenames in ../shared/data
//!   against dumb-pypi on the same names (dumb-pypi from `scripts/.peers`,
//!   which `scripts/bench-peers.sh` installs from PyPI; skipped without it);
//! - a 30-pin `advisories check` against a snapshot of the pypa database.
//!
//! `TMPDIR=/dev/shm cargo bench --bench scale` (a million files needs about
//! 10 GiB of tmpfs and 2.5 million inodes). Each part without its data is
//! skipped with a message. Figures: docs/BENCHMARKS.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "support/upstream.rs"]
mod upstream;

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

/// One run of a command: wall seconds and peak RSS in MiB.
fn measure(cmd: &mut Command) -> (f64, u64) {
    let started = Instant::now();
    // Reaped by wait4 below, which also reports its peak; `Child::wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is ours and not yet reaped; wait4 reaps it once.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed");
    (started.elapsed().as_secs_f64(), usage.ru_maxrss as u64 / 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time and median peak over `runs`, `setup` before each.
fn runs(n: usize, mut setup: impl FnMut(), mut cmd: impl FnMut() -> Command) -> (f64, u64) {
    let (mut t, mut m) = (Vec::new(), Vec::new());
    for _ in 0..n {
        setup();
        let (s, mib) = measure(&mut cmd());
        t.push(s);
        m.push(mib as f64);
    }
    (median(t), median(m) as u64)
}

fn row(what: &str, (secs, mib): (f64, u64), note: &str) {
    println!("| {what} | {secs:.2} s | {mib} MiB | {note} |");
}

fn first_builds(n: usize) {
    let sizes = std::env::var("AIRLOCK_BENCH_FILES").unwrap_or_else(|_| "100000".into());
    for files in sizes.split(',').filter_map(|s| s.trim().parse::<usize>().ok()) {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path();
        upstream::generate(root, files.div_ceil(10), 10);
        let clean = || {
            for d in [".airlock", ".public.airlock", "public"] {
                let _ = std::fs::remove_dir_all(root.join(d));
            }
        };
        let build = || {
            let mut c = Command::new(AIRLOCK);
            c.current_dir(root).args(["-q", "build", "-c", "mirror.toml"]);
            c
        };
        let ceiling = if files <= 100_000 { 150 } else { 1024 };
        let r = runs(n, clean, build);
        row(&format!("first build, {files} files"), r, &format!("ceiling {ceiling} MiB"));
    }
}

fn index_against_dumb_pypi(n: usize) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pypi-filenames/package-list-huge.txt");
    let Ok(list) = std::fs::read_to_string(&data) else {
        println!("skipping the index: {} is absent", data.display());
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let names: Vec<&str> = list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.contains('/')).collect();
    for name in &names {
        // Each file holds its own name: distinct bytes to hash.
        std::fs::write(dir.join(name), name).unwrap();
    }
    let out = scratch.path().join("out");
    // A fresh output every run, as dumb-pypi's: the trees airlock keeps
    // beside the output go too (a rerun into an existing output also
    // removes the tree before the previous one, which is not this figure).
    let clean = || {
        drop(std::fs::remove_dir_all(&out));
        drop(std::fs::remove_dir_all(scratch.path().join(".out.airlock")));
    };
    let ours = runs(n, clean, || {
        let mut c = Command::new(AIRLOCK);
        c.args(["-q", "index"]).arg(&dir).arg("--out").arg(&out);
        c
    });
    row(&format!("airlock index, {} real filenames", names.len()), ours, "hashes every file");
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/.peers/bin/dumb-pypi");
    if !peer.exists() {
        println!("skipping dumb-pypi: run scripts/bench-peers.sh index once to install it into scripts/.peers");
        return;
    }
    let list_file = scratch.path().join("names.txt");
    std::fs::write(&list_file, names.join("\n")).unwrap();
    let theirs = runs(n, clean, || {
        let mut c = Command::new(&peer);
        c.arg("--package-list").arg(&list_file);
        c.args(["--packages-url", "https://example.invalid/packages/", "--output-dir"]).arg(&out);
        c
    });
    row("dumb-pypi, same names", theirs, &format!("airlock is {:.1}x faster", theirs.0 / ours.0));
}

fn thirty_pins(n: usize) {
    let vulns = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pypa-advisory-database/vulns");
    if !vulns.is_dir() {
        println!("skipping the 30-pin check: {} is absent", vulns.display());
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let snap = scratch.path().join("pypa.sqlite.zst");
    measure(Command::new(AIRLOCK).args(["advisories", "build"]).arg(&vulns).arg("-o").arg(&snap));
    let mut packages: Vec<String> = std::fs::read_dir(&vulns)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    packages.sort();
    let pins: String = packages.iter().take(30).map(|p| format!("{p} 1.0\n")).collect();
    let pins_file = scratch.path().join("pins.txt");
    std::fs::write(&pins_file, pins).unwrap();
    let check = || {
        let mut c = Command::new(AIRLOCK);
        c.args(["advisories", "check", "--snapshot"]).arg(&snap);
        c.env("AIRLOCK_CACHE_DIR", scratch.path().join("cache"));
        c.stdin(std::fs::File::open(&pins_file).unwrap());
        c
    };
    measure(&mut check()); // fills the decompressed copy's cache
    row("advisories check, 30 pins (cache warm)", runs(n.max(5), || {}, check), "ceiling 40 ms");
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter picks parts.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let n = std::env::var("AIRLOCK_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    println!("| what | wall (median) | peak RSS | note |\n|---|---|---|---|");
    if "first_builds".contains(&filter) {
        first_builds(n);
    }
    if "index".contains(&filter) {
        index_against_dumb_pypi(n);
    }
    if "thirty_pins".contains(&filter) {
        thirty_pins(n);
    }
}
