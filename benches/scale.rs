//! Whole-command benchmarks with peak memory (issue 15): what a user runs,
//! timed from outside, its peak resident set read from the kernel
//! (`wait4`), medians of `AIRLOCK_BENCH_RUNS` runs (default 3):
//! - first builds of a generated `file://` upstream (10 files per
//!   project), each size after one build not counted and each counted
//!   one from dropped kernel caches (as root), the render alone (the
//!   build's `-v` laps) and a no-change rerun, 100,000 files by
//!   default; `AIRLOCK_BENCH_FILES=100000,400000,1000000` gives the curve,
//!   each figure per file against the smallest (ceilings: 150 MiB and
//!   1 GiB);
//! - `airlock index` of the 71,408 real PyPI filenames in ../shared/data
//!   against dumb-pypi on the same names (dumb-pypi from `scripts/.peers`,
//!   which `scripts/bench-peers.sh` installs from PyPI; skipped without it);
//! - a 30-pin `advisories check` against a snapshot of the pypa database;
//! - `pypi_plan`, only when named: PyPI on paper, checked by simulation,
//!   `airlock plan -o` over `AIRLOCK_BENCH_PROJECTS` (600,000) generated
//!   PEP 691 pages offering `AIRLOCK_BENCH_PYPI_FILES` (10,000,000) files,
//!   each project's count drawn from the real corpus's files per project
//!   (about 3 GiB of tmpfs and 1.3 million inodes).
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

/// One run of a command as the kernel saw it.
struct Measured {
    secs: f64,
    /// Peak resident set.
    mib: u64,
    /// User and system seconds of every thread: the work done, which
    /// varies less run to run on a shared machine than the wall clock.
    cpu: f64,
    status: i32,
}

/// One run of a command, which must succeed. Its stderr is the caller's
/// to set (null unless a log is wanted).
fn measure(cmd: &mut Command) -> Measured {
    let m = measure_status(cmd);
    assert!(m.status == 0, "{cmd:?} failed");
    m
}

/// [`measure`], whatever the command's exit status.
fn measure_status(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    // Reaped by wait4 below, which also reports its peak; `Child::wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.stdout(Stdio::null()).spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is ours and not yet reaped; wait4 reaps it once.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status), "{cmd:?} did not exit");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        secs: started.elapsed().as_secs_f64(),
        mib: usage.ru_maxrss as u64 / 1024,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        status: libc::WEXITSTATUS(status),
    }
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
        let run = measure(cmd().stderr(Stdio::null()));
        t.push(run.secs);
        m.push(run.mib as f64);
    }
    (median(t), median(m) as u64)
}

fn row(what: &str, (secs, mib): (f64, u64), note: &str) {
    println!("| {what} | {secs:.2} s | {mib} MiB | {note} |");
}

/// The render's share of a build, wall and cpu seconds: its `render and
/// publish` lap (pages, reports and the swap; the `render: *` laps inside
/// it are parts of it, not added again), as
/// `stage render and publish: 1.234s, peak RSS so far 96 MiB, cpu 0.800s user + 0.400s system`
/// (cpu 0 where a lap does not say it).
fn render_seconds(log: &str) -> (f64, f64) {
    let secs = |s: &str| s.trim().strip_suffix('s')?.parse::<f64>().ok();
    let cpu = |lap: &str| {
        let (user, system) = lap.split_once(", cpu ")?.1.split_once(" user + ")?;
        Some(secs(user)? + secs(system.strip_suffix(" system")?)?)
    };
    log.lines()
        .filter_map(|l| {
            let lap = l.split_once("stage render and publish: ")?.1;
            Some((secs(lap.split(',').next()?)?, cpu(lap).unwrap_or(0.0)))
        })
        .fold((0.0, 0.0), |(w, c), (lw, lc)| (w + lw, c + lc))
}

/// One `-v` build and the render's share of it (wall, cpu). Its log is
/// kept beside the scratch directory (`<scratch>.log`), which a failed
/// build removes.
fn verbose_build(root: &Path) -> (Measured, (f64, f64)) {
    let log = root.with_extension("log");
    let mut c = Command::new(AIRLOCK);
    c.current_dir(root).args(["-v", "build", "-c", "mirror.toml"]);
    c.env("NO_COLOR", "1");
    let run = measure(c.stderr(std::fs::File::create(&log).unwrap()));
    (run, render_seconds(&std::fs::read_to_string(&log).unwrap_or_default()))
}

/// Start a counted build from the same kernel state whatever ran before:
/// dirty pages written back and the dentry, inode and page caches dropped
/// (tmpfs contents stay; only root may). Without it, creating a million
/// files cost a plain C program 37–43 s after a million-file build had
/// run, and 15–16 s after the caches were dropped (100,000: 1.1–3.2 s);
/// docs/BENCHMARKS.md, "the kernel's state". Prints once whether it could.
fn settle_kernel() {
    static SAID: std::sync::Once = std::sync::Once::new();
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    SAID.call_once(|| {
        let how = if dropped { "dropped" } else { "not dropped (not root): figures depend on what ran before" };
        println!("| kernel caches before each first build | {how} | | |");
    });
}

/// First build, the render alone and a no-change rerun of each size in
/// `AIRLOCK_BENCH_FILES`, then each figure per file against the smallest
/// size's, wall and cpu: linear cost is a ratio of 1.0 (the issue's
/// bound: within 20%).
fn first_builds(n: usize) {
    let sizes = std::env::var("AIRLOCK_BENCH_FILES").unwrap_or_else(|_| "100000".into());
    // Per size: first build, render, rerun; each (wall, cpu).
    let mut curve: Vec<(usize, [(f64, f64); 3])> = Vec::new();
    for files in sizes.split(',').filter_map(|s| s.trim().parse::<usize>().ok()) {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path();
        upstream::generate(root, files.div_ceil(10), 10);
        let clean = || {
            for d in [".airlock", ".public.airlock", "public"] {
                let _ = std::fs::remove_dir_all(root.join(d));
            }
        };
        // Each figure's wall and cpu samples, and the two peaks.
        let mut samples: [(Vec<f64>, Vec<f64>); 3] = Default::default();
        let (mut peaks, mut rerun_peaks) = (vec![], vec![]);
        // One build not counted: the first build on a file system that has
        // not yet held this many inodes pays the kernel for growing its inode
        // slabs (`inode_init_once`, `allocate_slab`: a fifth of a million-file
        // build's excess over ten 100,000 builds in one profile); later builds
        // on the same machine reuse them while the kernel keeps them.
        clean();
        verbose_build(root);
        for _ in 0..n {
            clean();
            settle_kernel();
            let (first, render) = verbose_build(root);
            let (rerun, _) = verbose_build(root);
            for (i, (wall, cpu)) in [(first.secs, first.cpu), render, (rerun.secs, rerun.cpu)].into_iter().enumerate() {
                samples[i].0.push(wall);
                samples[i].1.push(cpu);
            }
            peaks.push(first.mib as f64);
            rerun_peaks.push(rerun.mib as f64);
        }
        let medians = samples.map(|(wall, cpu)| (median(wall), median(cpu)));
        let [(first, first_cpu), (render, render_cpu), (rerun, rerun_cpu)] = medians;
        let ceiling = if files <= 100_000 { 150 } else { 1024 };
        row(
            &format!("first build, {files} files"),
            (first, median(peaks) as u64),
            &format!("cpu {first_cpu:.2} s; ceiling {ceiling} MiB"),
        );
        println!(
            "| render alone (its laps), {files} files | {render:.2} s | | cpu {render_cpu:.2} s; of that first build |"
        );
        row(
            &format!("no-change rerun, {files} files"),
            (rerun, median(rerun_peaks) as u64),
            &format!("cpu {rerun_cpu:.2} s; serial-less file:// upstream"),
        );
        curve.push((files, medians));
    }
    let Some(&(base, base_figures)) = curve.first() else { return };
    for (files, figures) in &curve[1..] {
        let per = |i: usize, cpu: bool| {
            let pick = |f: (f64, f64)| if cpu { f.1 } else { f.0 };
            (pick(figures[i]) / *files as f64) / (pick(base_figures[i]) / base as f64)
        };
        for (what, cpu) in [("wall", false), ("cpu", true)] {
            println!(
                "| per file, {files} against {base}, {what} | first {:.2}x, render {:.2}x, rerun {:.2}x | | 1.00 is linear |",
                per(0, cpu),
                per(1, cpu),
                per(2, cpu)
            );
        }
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
    measure(Command::new(AIRLOCK).args(["advisories", "build"]).arg(&vulns).arg("-o").arg(&snap).stderr(Stdio::null()));
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
    measure(check().stderr(Stdio::null())); // fills the decompressed copy's cache
    row("advisories check, 30 pins (cache warm)", runs(n.max(5), || {}, check), "ceiling 40 ms");
}

/// Files per project in the real corpus: each filename's project is the
/// part before its first `-<digit>`, normalized (legacy names need no
/// better: this is a distribution, not an index).
fn corpus_counts(list: &str) -> Vec<usize> {
    let mut by: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let cut = l.char_indices().find(|&(i, c)| c == '-' && l[i + 1..].starts_with(|d: char| d.is_ascii_digit()));
        let name = cut.map_or(l, |(i, _)| &l[..i]).to_ascii_lowercase().replace(['_', '.'], "-");
        *by.entry(name).or_default() += 1;
    }
    let mut counts: Vec<usize> = by.into_values().collect();
    counts.sort_unstable();
    counts
}

fn pypi_plan(n: usize) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pypi-filenames/package-list-huge.txt");
    let Ok(list) = std::fs::read_to_string(&data) else {
        println!("skipping the PyPI simulation: {} is absent", data.display());
        return;
    };
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (projects, files) = (env("AIRLOCK_BENCH_PROJECTS", 600_000), env("AIRLOCK_BENCH_PYPI_FILES", 10_000_000));
    let corpus = corpus_counts(&list);
    let mean = corpus.iter().sum::<usize>() as f64 / corpus.len() as f64;
    let scale = files as f64 / projects as f64 / mean;
    // A prime stride through the sorted counts: each drawn as often
    // (unless the corpus had a multiple of 7919 projects), big and small
    // projects mixed, the same every run.
    let counts: Vec<usize> =
        (0..projects).map(|p| ((corpus[(p * 7919) % corpus.len()] as f64 * scale).round() as usize).max(1)).collect();
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    let offered = upstream::generate_pages(root, &counts);
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    println!(
        "| synthetic PyPI: {projects} projects, {offered} files | | | per project: median {}, p99 {}, max {} (corpus: {} projects, mean {mean:.1}) |",
        sorted[projects / 2],
        sorted[projects * 99 / 100],
        sorted[projects - 1],
        corpus.len()
    );
    let plan = root.join("plan.json");
    // Each run's log is kept beside the scratch directory (which a failed
    // run removes), as the builds' are.
    let log = root.with_extension("log");
    let planned = |what: &str, fresh: bool| {
        let (mut t, mut m) = (Vec::new(), Vec::new());
        for _ in 0..n {
            if fresh {
                drop(std::fs::remove_dir_all(root.join(".airlock")));
            }
            let mut c = Command::new(AIRLOCK);
            c.current_dir(root).args(["-v", "plan", "-c", "mirror.toml", "-o"]).arg(&plan).env("NO_COLOR", "1");
            let run = measure(c.stderr(std::fs::File::create(&log).unwrap()));
            t.push(run.secs);
            m.push(run.mib as f64);
        }
        row(what, (median(t), median(m) as u64), "file:// upstream: no network time");
    };
    planned("plan -o, first (every page new)", true);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
    let state: f64 = std::fs::read_dir(root.join(".airlock"))
        .map(|d| d.filter_map(Result::ok).map(|e| size(&e.path())).sum())
        .unwrap_or(0.0);
    println!("| plan.json {:.0} MiB; .airlock/ files {state:.0} MiB | | | |", size(&plan));
    planned("plan -o, again (every view stored)", false);
    shards(root, &plan, offered);
}

/// A shard's memory: `fetch --plan` reads the plan in two streamed passes.
/// First with a share of nothing (a shard count above the files: the cost
/// of reading the plan alone), then with a sixteenth of the files, their
/// URLs pointed at missing local files so that each fails at once instead
/// of going to the network (the cost of holding a share; up to 2,000,000
/// files).
fn shards(root: &Path, plan: &Path, files: usize) {
    use std::io::{BufRead, Write};
    let fetch = |plan: &Path, shard: &str| {
        let mut c = Command::new(AIRLOCK);
        c.current_dir(root).args(["-q", "fetch", "-c", "mirror.toml", "--plan"]).arg(plan).args(["--shard", shard]);
        let run = measure_status(c.stderr(Stdio::null()));
        (run.secs, run.mib)
    };
    let empty = format!("{files}/{}", files + 1);
    row(&format!("fetch --plan --shard {empty}: reading the plan"), fetch(plan, &empty), "two streamed passes");
    // A second copy of a plan of millions of files does not fit beside the
    // rest on a tmpfs of this machine's size.
    if files > 2_000_000 {
        println!("| fetch --plan --shard 0/16 | | | skipped above 2,000,000 files (a copy of the plan) |");
        return;
    }
    let local = root.join("plan-local.json");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&local).unwrap());
    for line in std::io::BufReader::new(std::fs::File::open(plan).unwrap()).lines() {
        let line = line.unwrap().replace("https://files.example.invalid/", "file:///nonexistent/");
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    row(
        &format!("fetch --plan --shard 0/16: {} files held", files.div_ceil(16)),
        fetch(&local, "0/16"),
        "each fetch fails at once (a missing file:// URL)",
    );
    drop(std::fs::remove_file(&local));
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
    // Minutes and gigabytes: only when asked for by name.
    if filter == "pypi_plan" {
        pypi_plan(n);
    }
}
