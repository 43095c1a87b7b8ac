//! Nightly-safe operation: failed runs leave the served tree alone, SIGKILL
//! at any stage loses nothing, one run at a time, pruning after `keep_runs`,
//! verify and repair, incremental reruns, logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn add_project(up: &Upstream, name: &str, versions: &[&str]) {
    for v in versions {
        up.add(name, FakeFile::new(wheel(name, v, WheelSpec::default())));
    }
}

fn served_target(public: &Path) -> PathBuf {
    std::fs::read_link(public).unwrap()
}

/// Start `airlock build` stopping at a fault point; returns once it is there.
fn build_until(env: &Env, point: &str) -> Child {
    start_until(env, point, false).0
}

/// `airlock build` stopped at `point` (its stderr piped); with `resume`, it
/// goes on once the returned marker is removed.
fn start_until(env: &Env, point: &str, resume: bool) -> (Child, PathBuf) {
    let marker = env.path(&format!("fault-{}", point.replace(':', "-")));
    let _ = std::fs::remove_file(&marker);
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("airlock"));
    cmd.arg("build")
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("NETRC", env.path("no-netrc"))
        .env("NO_PROXY", "127.0.0.1")
        .env("AIRLOCK_BACKOFF_MS", "5")
        .env("AIRLOCK_FAULT", point)
        .env("AIRLOCK_FAULT_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(if resume { Stdio::piped() } else { Stdio::null() });
    if resume {
        cmd.env("AIRLOCK_FAULT_RESUME", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("build exited ({status}) before reaching {point}");
        }
        assert!(Instant::now() < deadline, "build never reached {point}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, marker)
}

fn sigkill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn with_publish_partial_false_a_failed_run_leaves_the_previous_tree_served() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "stable", &["1.0", "1.1"]);
    env.manifest("[select]\npackages = [\"stable\"]\n");
    env.build().success();
    let before = tree(&env.public());
    let served = served_target(&env.public());

    for p in ["flaky", "down", "corrupt", "cut"] {
        add_project(&env.upstream, p, &["1.0"]);
    }
    let file = |p: &str| format!("/files/{p}-1.0-py3-none-any.whl");
    env.upstream.fault(&file("flaky"), Fault::StatusThenOk { status: 503, times: 2 });
    env.upstream.fault(&file("down"), Fault::Always(503));
    env.upstream.fault(&file("corrupt"), Fault::Corrupt);
    env.upstream.fault(&file("cut"), Fault::Truncate);
    // All or nothing: the default publishes what verified (tests/it/faults.rs).
    env.manifest(
        "publish_partial = false\n[select]\npackages = [\"stable\", \"flaky\", \"down\", \"corrupt\", \"cut\"]\n",
    );
    let a = env.build().code(1);
    let err = stderr(&a);
    for name in [
        "down-1.0-py3-none-any.whl",
        "corrupt-1.0-py3-none-any.whl: sha256 mismatch",
        "cut-1.0-py3-none-any.whl: truncated",
    ] {
        let said =
            err.lines().filter(|l| l.starts_with("ERROR") && l.contains(name) && !l.contains("failure(s) (")).count();
        assert_eq!(said, 1, "{name} said once: {err}");
    }
    let recap = err.lines().find(|l| l.contains("failure(s) (")).expect("one line that adds them up");
    assert!(
        recap.contains("3 failure(s) (fetch-failed: corrupt/corrupt-1.0-py3-none-any.whl, cut/cut-1.0-py3-none-any.whl, down/down-1.0-py3-none-any.whl)"),
        "{recap}"
    );
    assert!(err.contains("expected") && err.contains("computed"), "{err}");
    assert!(!recap.contains("flaky"), "the 503-twice file was retried and fetched: {err}");
    assert!(err.contains("the served tree is left as it was"), "{err}");
    assert!(tree(&env.public()) == before, "the previous tree changed");
    assert_eq!(served_target(&env.public()), served, "the previous tree is still the one served");
    // The flaky file is verified and stored for the next run; the others never are.
    let store = tree(&env.path(".airlock/store"));
    assert!(store.contains_key("flaky/flaky-1.0-py3-none-any.whl"));
    assert!(
        !store.keys().any(|k| k.starts_with("down/") || k.starts_with("corrupt/") || k.starts_with("cut/")),
        "{:?}",
        store.keys()
    );
}

/// SIGKILL at each stage: the old tree stays intact and served, and the
/// rerun completes fetching only what never completed.
#[test]
fn sigkill_at_any_stage_loses_nothing() {
    for (point, refetched) in
        [("fetch:2", true), ("render", false), ("before-publish", false), ("after-publish", false)]
    {
        let env = Env::new(Flavour::Json);
        add_project(&env.upstream, "base", &["1.0"]);
        env.manifest("jobs = 1\n[select]\npackages = [\"base\", \"grow\"]\n");
        add_project(&env.upstream, "grow", &["0.1"]);
        env.build().success();
        let before = tree(&env.public());
        let served = served_target(&env.public());

        add_project(&env.upstream, "grow", &["1.0", "1.1", "1.2", "1.3"]);
        env.upstream.clear_requests();
        sigkill(build_until(&env, point));
        let fetched_before_kill = env.upstream.file_requests().len();
        if point == "after-publish" {
            // Killed after the swap: the new tree is served, and it is complete.
            assert_ne!(served_target(&env.public()), served, "{point}");
            assert_eq!(listed(&env.public(), "grow").len(), 5, "{point}");
        } else {
            assert!(tree(&env.public()) == before, "{point}: the old tree changed");
            assert_eq!(served_target(&env.public()), served, "{point}: another tree is served");
        }

        // Small files fetch several at once whatever `jobs` says: those
        // verified before the kill are kept (all of them, when the others
        // finished while one stalled), and the rerun fetches exactly the rest.
        let grown = || -> Vec<String> {
            tree(&env.path(".airlock/store"))
                .into_keys()
                .filter(|k| k.starts_with("grow/grow-1.") && k.ends_with(".whl"))
                .collect()
        };
        let kept = grown();
        env.upstream.clear_requests();
        env.build().success();
        let refetched = if refetched { grown().len() - kept.len() } else { 0 };
        assert_eq!(
            env.upstream.file_requests().len(),
            refetched,
            "{point}: rerun fetched {:?} (before the kill: {fetched_before_kill}, kept {kept:?})",
            env.upstream.file_requests()
        );
        assert_eq!(listed(&env.public(), "grow").len(), 5, "{point}");
        assert!(tree(&env.path(".airlock/tmp")).is_empty(), "{point}: partial downloads left");
        let trees = std::fs::read_dir(env.path(".public.airlock"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>();
        assert!(!trees.iter().any(|t| t.starts_with("staging-")), "{point}: {trees:?}");
        // Everything served verifies.
        env.airlock().arg("verify").assert().success();
    }
}

#[test]
fn one_run_at_a_time_and_a_stale_lock_is_taken_over() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "pkg", &["1.0"]);
    env.manifest("[select]\npackages = [\"pkg\"]\n");
    let holder = build_until(&env, "before-publish");
    let pid = holder.id();
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(
        err.contains("another airlock run holds")
            && err.contains(&format!("pid {pid}"))
            && err.contains("airlock build"),
        "{err}"
    );
    sigkill(holder);
    // The killed run's lock is stale: taken over, and the run completes.
    let a = env.build().success();
    assert!(
        stderr(&a).contains(&format!("taking over a stale lock left by a run that did not finish (pid {pid}")),
        "{}",
        stderr(&a)
    );
    assert!(stderr(&a).contains("a previous run did not finish"));
    assert_eq!(listed(&env.public(), "pkg"), ["pkg-1.0-py3-none-any.whl"]);
}

#[test]
fn a_dropped_project_leaves_the_index_at_once_and_the_store_after_keep_runs() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "stay", &["1.0"]);
    add_project(&env.upstream, "drop", &["1.0"]);
    env.manifest("keep_runs = 2\n[select]\npackages = [\"stay\", \"drop\"]\n");
    env.build().success(); // run 1
    let pkg = "packages/drop/drop-1.0-py3-none-any.whl";
    env.manifest("keep_runs = 2\nmax_removed = 1\n[select]\npackages = [\"stay\"]\n");
    let plan = env.airlock().arg("plan").assert().success();
    assert!(
        String::from_utf8_lossy(&plan.get_output().stdout)
            .contains("- drop: drop-1.0-py3-none-any.whl leaves the index")
    );
    env.build().success(); // run 2: out of the index, still downloadable
    let root = std::fs::read_to_string(env.public().join("simple/index.html")).unwrap();
    assert!(!root.contains("drop/") && !env.public().join("simple/drop").exists());
    assert!(env.public().join(pkg).exists(), "a client with a cached page can still download it");
    env.build().success(); // run 3
    assert!(env.path(".airlock/store/drop/drop-1.0-py3-none-any.whl").exists());
    let plan = env.airlock().arg("plan").assert().success();
    assert!(
        String::from_utf8_lossy(&plan.get_output().stdout)
            .contains("x drop: drop-1.0-py3-none-any.whl leaves the store"),
        "{}",
        String::from_utf8_lossy(&plan.get_output().stdout)
    );
    env.build().success(); // run 4: 4 - 1 > keep_runs
    assert!(!env.path(".airlock/store/drop/drop-1.0-py3-none-any.whl").exists());
    assert!(!env.public().join(pkg).exists());
    assert!(env.public().join("packages/stay/stay-1.0-py3-none-any.whl").exists());
    env.airlock().arg("verify").assert().success();
}

#[test]
fn verify_finds_and_repair_fixes() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "pkg", &["1.0", "2.0"]);
    env.manifest("[select]\npackages = [\"pkg\"]\n");
    env.build().success();
    let a = env.airlock().arg("verify").assert().success();
    assert!(String::from_utf8_lossy(&a.get_output().stdout).contains("all good"));

    let public = env.public();
    let good = std::fs::read(public.join("packages/pkg/pkg-1.0-py3-none-any.whl")).unwrap();
    // Damage in place (through the hard link the store shares), delete, add.
    std::fs::write(public.join("packages/pkg/pkg-1.0-py3-none-any.whl"), b"not a wheel").unwrap();
    std::fs::remove_file(public.join("packages/pkg/pkg-2.0-py3-none-any.whl")).unwrap();
    std::fs::write(public.join("simple/pkg/index.html"), b"defaced").unwrap();
    std::fs::write(public.join("packages/pkg/extra.txt"), b"?").unwrap();
    let a = env.airlock().arg("verify").assert().code(1);
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("corrupt     packages/pkg/pkg-1.0-py3-none-any.whl: expected sha256"), "{out}");
    assert!(out.contains("missing     packages/pkg/pkg-2.0-py3-none-any.whl"), "{out}");
    assert!(out.contains("corrupt     simple/pkg/index.html"), "{out}");
    assert!(out.contains("unexpected  packages/pkg/extra.txt"), "{out}");

    env.upstream.clear_requests();
    env.airlock().args(["verify", "--repair"]).assert().success();
    assert_eq!(
        env.upstream.file_requests(),
        ["/files/pkg-1.0-py3-none-any.whl"],
        "only the damaged artifact is refetched"
    );
    assert_eq!(std::fs::read(public.join("packages/pkg/pkg-1.0-py3-none-any.whl")).unwrap(), good);
    assert!(public.join("packages/pkg/pkg-2.0-py3-none-any.whl").exists());
    assert!(!public.join("packages/pkg/extra.txt").exists());
    env.airlock().arg("verify").assert().success();
}

#[test]
fn an_unchanged_rerun_replans_nothing_and_publishes_nothing() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "one", &["1.0"]);
    add_project(&env.upstream, "two", &["1.0"]);
    env.manifest("[select]\npackages = [\"one\", \"two\"]\n");
    env.build().success();
    let served = served_target(&env.public());
    env.upstream.clear_requests();
    let a = env.build().success();
    assert!(env.upstream.file_requests().is_empty());
    assert!(stderr(&a).contains("nothing changed since run 1"), "{}", stderr(&a));
    assert_eq!(served_target(&env.public()), served, "no new tree");
    // A new version upstream: its project is planned again and published.
    add_project(&env.upstream, "two", &["2.0"]);
    env.build().success();
    assert_eq!(listed(&env.public(), "two").len(), 2);
    assert_ne!(served_target(&env.public()), served);
    // A manifest change re-plans without any page change.
    env.manifest("[select]\npackages = [\"one\", \"two<2\"]\n");
    env.airlock().args(["build", "--allow-removals"]).assert().success();
    assert_eq!(listed(&env.public(), "two"), ["two-1.0-py3-none-any.whl"]);
}

#[test]
fn logs_are_plain_lines_or_json_and_end_with_a_summary() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "pkg", &["1.0"]);
    env.manifest("[select]\npackages = [\"pkg\"]\n");
    let a = env.build().success();
    let err = stderr(&a);
    assert!(err.lines().any(|l| l.contains("fetched pkg-1.0-py3-none-any.whl")), "{err}");
    assert!(err.lines().last().unwrap().contains("run 1: added 1, kept 0, removed 0 (pruned 0), failed 0"), "{err}");
    assert!(!err.contains('\u{1b}'), "no escape codes without a terminal");

    let a = env.airlock().args(["build", "--log-format", "json"]).assert().success();
    for line in stderr(&a).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    let a = env.airlock().args(["-q", "build"]).assert().success();
    assert!(!stderr(&a).contains("INFO"), "{}", stderr(&a));
    let a = env.airlock().args(["-v", "build"]).assert().success();
    assert!(stderr(&a).contains("DEBUG"), "{}", stderr(&a));
}

/// 40 projects from an upstream that speaks PyPI's serials (issue 15).
fn serial_mirror(serials: bool) -> (Env, Vec<String>) {
    let env = Env::new(Flavour::Json);
    env.upstream.serve_serials(serials);
    let names: Vec<String> = (0..40).map(|i| format!("proj{i:02}")).collect();
    for n in &names {
        add_project(&env.upstream, n, &["1.0"]);
    }
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    env.manifest(&format!("[select]\npackages = [{}]\n", list.join(", ")));
    env.build().success();
    (env, names)
}

/// With serials, a no-change rerun asks the upstream one question whatever
/// the number of projects; a new release costs the changelog, its page and
/// its file; a change the changelog leaves out is caught by the periodic
/// full check of every page.
#[test]
fn serials_make_a_no_change_rerun_one_request() {
    let (env, names) = serial_mirror(true);
    env.upstream.clear_requests();
    env.build().success();
    assert_eq!(env.upstream.requests(), ["/pypi"], "a no-change rerun: the changelog only");

    add_project(&env.upstream, "proj07", &["2.0"]);
    env.upstream.clear_requests();
    env.build().success();
    let requests = env.upstream.requests();
    assert!(requests.len() <= 6, "{requests:?}");
    assert!(requests.contains(&"/simple/proj07/".to_string()), "{requests:?}");
    assert_eq!(env.upstream.file_requests(), ["/files/proj07-2.0-py3-none-any.whl"]);
    assert_eq!(listed(&env.public(), "proj07"), ["proj07-1.0-py3-none-any.whl", "proj07-2.0-py3-none-any.whl"]);

    // The changelog lies by omission: a nightly run misses the release...
    add_project_unlogged(&env.upstream, "proj11", "2.0");
    env.upstream.clear_requests();
    env.build().success();
    assert_eq!(env.upstream.requests(), ["/pypi"]);
    assert_eq!(listed(&env.public(), "proj11"), ["proj11-1.0-py3-none-any.whl"]);
    // ...and the periodic full check of every page catches it.
    env.upstream.clear_requests();
    env.airlock().arg("build").env("AIRLOCK_FULL_CHECK_HOURS", "0").assert().success();
    let pages = env.upstream.requests().iter().filter(|r| r.starts_with("/simple/")).count();
    assert_eq!(pages, names.len(), "a full check asks every page");
    assert_eq!(listed(&env.public(), "proj11"), ["proj11-1.0-py3-none-any.whl", "proj11-2.0-py3-none-any.whl"]);
    // Back to one question.
    env.upstream.clear_requests();
    env.build().success();
    assert_eq!(env.upstream.requests(), ["/pypi"]);
}

fn add_project_unlogged(up: &Upstream, name: &str, version: &str) {
    up.add_unlogged(name, FakeFile::new(wheel(name, version, WheelSpec::default())));
}

/// An upstream without serials still works: every page is asked
/// conditionally (304s), the XML-RPC API is not asked again until the next
/// full check, and a new release is mirrored.
#[test]
fn an_upstream_without_serials_gets_conditional_requests() {
    let (env, names) = serial_mirror(false);
    env.upstream.clear_requests();
    let before = env.upstream.pages_not_modified();
    env.build().success();
    let requests = env.upstream.requests();
    assert!(!requests.contains(&"/pypi".to_string()), "not probed again before the next full check: {requests:?}");
    assert_eq!(requests.len(), names.len(), "{requests:?}");
    assert_eq!(env.upstream.pages_not_modified() - before, names.len() as u32, "every page asked conditionally");
    add_project(&env.upstream, "proj03", &["2.0"]);
    env.build().success();
    assert_eq!(listed(&env.public(), "proj03"), ["proj03-1.0-py3-none-any.whl", "proj03-2.0-py3-none-any.whl"]);
}

/// The summary line of a build without its timing.
fn summary_line(a: &assert_cmd::assert::Assert) -> String {
    let err = stderr(a);
    let line = err.lines().rev().find(|l| l.contains(" added ")).unwrap_or_default();
    let start = line.find("added").unwrap_or(0);
    line[start..].split(", fetched").next().unwrap_or_default().to_string()
}

#[test]
fn batched_runs_build_exactly_what_one_batch_builds() {
    // A large mirror is planned, fetched and recorded a batch of projects
    // at a time; with one project per batch, every run (first build,
    // additions, a dropped project, a pinned one, pruning) must give the
    // same summary and a byte-identical tree as one batch of everything.
    let env = Env::new(Flavour::Json);
    for p in ["alpha", "bravo", "charlie", "delta", "echo"] {
        add_project(&env.upstream, p, &["1.0", "1.1"]);
    }
    add_project(&env.upstream, "foxtrot", &["2.0"]);
    let other = tempfile::tempdir().unwrap();
    let run = |dir: &Path, batch: &str| {
        let a =
            airlock_in(dir).arg("build").env("AIRLOCK_BATCH", batch).env("SOURCE_DATE_EPOCH", "1700000000").assert();
        summary_line(&a.success())
    };
    // `airlock plan` is batched as the build is: one project per batch
    // must say exactly what one batch of everything says.
    let plan = |dir: &Path, batch: &str| {
        let a = airlock_in(dir).arg("plan").env("AIRLOCK_BATCH", batch).assert().success();
        String::from_utf8(a.get_output().stdout.clone()).unwrap()
    };
    let both = |rest: &str| {
        env.manifest(&format!("max_removed = \"100%\"\n{rest}"));
        std::fs::copy(env.path("mirror.toml"), other.path().join("mirror.toml")).unwrap();
        let planned = plan(env.dir.path(), "1");
        assert_eq!(planned, plan(other.path(), "1000"), "the plans differ");
        let (one, all) = (run(env.dir.path(), "1"), run(other.path(), "1000"));
        assert_eq!(one, all, "the summaries differ");
        assert_eq!(tree(&env.public()), tree(&other.path().join("public")), "the trees differ");
        (one, planned)
    };
    let (first, planned) =
        both("keep_runs = 0\n[select]\npackages = [\"alpha\", \"bravo\", \"charlie\", \"delta\", \"echo\"]\n");
    assert!(first.starts_with("added 10, kept 0"), "{first}");
    assert!(planned.contains("plan: add 10 file(s)"), "{planned}");
    add_project(&env.upstream, "charlie", &["1.2"]);
    let (second, planned) =
        both("keep_runs = 0\n[select]\npackages = [\"alpha\", \"charlie\", \"delta==1.0\", \"echo\", \"foxtrot\"]\n");
    // bravo's two files and delta 1.1 leave the index and, with keep_runs = 0, the store.
    assert!(second.starts_with("added 2, kept 7, removed 3 (pruned 3)"), "{second}");
    for line in
        ["- bravo: bravo-1.0-py3-none-any.whl leaves the index", "x bravo: bravo-1.0-py3-none-any.whl", "x delta:"]
    {
        assert!(planned.contains(line), "{line:?} missing from the plan:\n{planned}");
    }
    assert!(planned.contains("remove 3 from the index, prune 3 from the store"), "{planned}");
    assert!(!env.path(".airlock/store/bravo").join("bravo-1.0-py3-none-any.whl").exists());
    for dir in [env.dir.path(), other.path()] {
        airlock_in(dir).arg("verify").assert().success();
    }
}

#[test]
fn a_file_that_leaves_the_store_before_the_render_fails_the_run_and_keeps_the_served_tree() {
    let env = Env::new(Flavour::Json);
    add_project(&env.upstream, "stable", &["1.0", "1.1"]);
    env.manifest("[select]\npackages = [\"stable\", \"fresh\"]\n");
    add_project(&env.upstream, "fresh", &["1.0"]);
    env.build().success();
    let before = tree(&env.public());
    let served = served_target(&env.public());

    // A new release makes the next run render; between its inventory and
    // its render, a file it found vanishes from the store.
    add_project(&env.upstream, "fresh", &["2.0"]);
    let (child, marker) = start_until(&env, "inventoried", true);
    let gone = env.path(".airlock/store/stable/stable-1.0-py3-none-any.whl");
    std::fs::remove_file(&gone).unwrap();
    std::fs::remove_file(&marker).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(!out.status.success(), "a run missing a file exited 0:\n{stderr}");
    assert!(stderr.contains("stable-1.0-py3-none-any.whl"), "the error names the file:\n{stderr}");
    // Nothing smaller was swapped in: the served tree is the one before.
    assert_eq!(served_target(&env.public()), served);
    assert_eq!(tree(&env.public()), before);
}
