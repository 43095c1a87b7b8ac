//! What a new user met in the first hour against the real PyPI (issue 11):
//! each bug and rough edge, reproduced where a user would see it.

use crate::support::*;

fn whl(up: &Upstream, name: &str, version: &str) {
    up.add(name, FakeFile::new(wheel(name, version, WheelSpec::default())));
}

/// A version left out by an offline run (not stored) arrives on the next
/// online run: the plan key must not record a selection files were dropped from.
#[test]
fn offline_then_online_fetches_what_offline_left_out() {
    let env = Env::new(Flavour::Json);
    for v in ["3.5", "3.6", "3.7", "3.8"] {
        whl(&env.upstream, "idna", v);
    }
    env.manifest("[select]\npackages = [\"idna<3.8\"]\nlatest = 1\n");
    env.build().success();
    assert_eq!(listed(&env.public(), "idna"), ["idna-3.7-py3-none-any.whl"]);
    env.manifest("[select]\npackages = [\"idna<3.8\"]\nlatest = 2\n");
    let a = env.airlock().args(["build", "--offline"]).assert().success();
    assert!(stderr(&a).contains("idna-3.6-py3-none-any.whl"), "{}", stderr(&a));
    let plan = env.airlock().arg("plan").assert().success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(text.contains("idna-3.6-py3-none-any.whl"), "plan shows the file to fetch: {text}");
    env.build().success();
    assert_eq!(listed(&env.public(), "idna"), ["idna-3.6-py3-none-any.whl", "idna-3.7-py3-none-any.whl"]);
}

/// How each run of a mirror ended, oldest first: (command, outcome, errors).
fn runs(env: &Env) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(env.path(".airlock/state.sqlite")).unwrap();
    let mut q = conn.prepare("SELECT command, outcome, COALESCE(errors, '') FROM runs ORDER BY id").unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

/// An output that cannot be written fails the run before its first request,
/// and the failure is recorded: the next run does not find an unfinished one.
#[test]
fn unwritable_output_fails_before_any_request_and_is_recorded() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "idna", "3.7");
    std::fs::write(env.path("blocker"), "a file where a directory should be").unwrap();
    env.manifest("output = \"blocker/public\"\n[select]\npackages = [\"idna\"]\n");
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("cannot write in") && err.contains("blocker"), "{err}");
    assert!(env.upstream.requests().is_empty(), "requests before the check: {:?}", env.upstream.requests());
    let recorded = runs(&env);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1, "failed", "{recorded:?}");
    assert!(recorded[0].2.contains("blocker"), "the error is recorded: {recorded:?}");

    // A directory airlock does not manage is refused the same way.
    std::fs::create_dir_all(env.path("site")).unwrap();
    std::fs::write(env.path("site/mine.html"), "not airlock's").unwrap();
    env.manifest("output = \"site\"\n[select]\npackages = [\"idna\"]\n");
    let a = env.build().code(1);
    assert!(stderr(&a).contains("does not manage"), "{}", stderr(&a));
    assert!(env.upstream.requests().is_empty());
    assert_eq!(std::fs::read_to_string(env.path("site/mine.html")).unwrap(), "not airlock's");

    env.manifest("[select]\npackages = [\"idna\"]\n");
    let a = env.build().success();
    assert!(!stderr(&a).contains("did not finish"), "{}", stderr(&a));
    assert_eq!(listed(&env.public(), "idna"), ["idna-3.7-py3-none-any.whl"]);
}

/// SIGINT and SIGTERM stop a run: it says so, is recorded as interrupted,
/// leaves the lock free and the served tree as it was, and exits 128 + N.
#[test]
fn a_signal_stops_the_run_records_it_and_frees_the_lock() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let env = Env::new(Flavour::Json);
        whl(&env.upstream, "idna", "3.7");
        env.manifest("[select]\npackages = [\"idna\"]\n");
        env.build().success();
        let before = tree(&env.public());
        whl(&env.upstream, "idna", "3.8");
        env.upstream.fault("/files/idna-3.8-py3-none-any.whl", Fault::Stall);
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("airlock"));
        cmd.arg("build").current_dir(env.dir.path()).env("NO_PROXY", "127.0.0.1,localhost").env("NO_COLOR", "1");
        let child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
        let started = std::time::Instant::now();
        while !env.upstream.file_requests().iter().any(|r| r.contains("idna-3.8")) {
            assert!(started.elapsed().as_secs() < 30, "the download never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let signalled = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {err}");
        // The stalled download would hold the run for a minute; the run
        // gives in-flight work 5 s (a wide margin here for a loaded runner).
        assert!(signalled.elapsed().as_secs() < 20, "SIG{signal}: took {:?}", signalled.elapsed());
        let tmp: Vec<String> = tree(&env.path(".airlock/tmp")).into_keys().collect();
        assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
        assert!(err.contains(&format!("interrupted by SIG{signal}")), "{err}");
        assert_eq!(std::fs::read_to_string(env.path(".airlock/lock")).unwrap(), "", "the lock is left free");
        assert_eq!(runs(&env).last().unwrap().1, "interrupted");
        assert!(tree(&env.public()) == before, "the served tree is as it was");
        env.upstream.fault("/files/idna-3.8-py3-none-any.whl", Fault::None);
        let a = env.build().success();
        let next = stderr(&a);
        assert!(!next.contains("stale lock") && !next.contains("did not finish"), "{next}");
    }
}

/// On an up-to-date mirror that follows dependencies, `plan` claims no removal.
#[test]
fn plan_on_an_up_to_date_mirror_with_dependencies_claims_no_removal() {
    for mode in ["true", "\"all\"", "\"resolve\""] {
        let env = Env::new(Flavour::Json);
        let up = &env.upstream;
        up.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec { requires: &["lib>=1"], ..WheelSpec::default() })));
        up.add("lib", FakeFile::new(wheel("lib", "1.0", WheelSpec { requires: &["base"], ..WheelSpec::default() })));
        whl(up, "base", "2.0");
        env.manifest(&format!("[select]\npackages = [\"app\"]\ndependencies = {mode}\n"));
        env.build().success();
        assert_eq!(listed(&env.public(), "base"), ["base-2.0-py3-none-any.whl"], "{mode}");
        let out = env.airlock().arg("plan").assert().success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(text.contains("remove 0 from the index"), "{mode}: {text}");
        assert!(!text.lines().any(|l| l.starts_with("- ")), "{mode}: {text}");
        let a = env.build().success();
        assert!(stderr(&a).contains("removed 0"), "{mode}: {}", stderr(&a));
    }
}

/// `serve` gives every file its Content-Length, for HEAD as for GET, and
/// never sends a file chunked; a client reusing one connection for many
/// requests never waits on a body's end.
#[test]
fn serve_sends_content_length_for_head_and_get() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(dir.path().join("packages/big")).unwrap();
    std::fs::write(dir.path().join("packages/big/big-1.0-py3-none-any.whl"), &big).unwrap();
    let served = crate::support::tools::Served::start(dir.path());
    let url = format!("{}packages/big/big-1.0-py3-none-any.whl", served.url);
    let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
    let head = client.head(&url).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], big.len().to_string().as_str(), "{:?}", head.headers());
    for i in 0..40 {
        let get = client.get(&url).send().unwrap();
        assert!(get.headers().get("transfer-encoding").is_none(), "{:?}", get.headers());
        assert_eq!(get.headers()["content-length"], big.len().to_string().as_str());
        assert_eq!(get.bytes().unwrap().len(), big.len(), "request {i}");
        let head = client.head(&url).send().unwrap();
        assert_eq!(head.headers()["content-length"], big.len().to_string().as_str(), "request {i}");
    }
}

/// `--log-format json`: the run's figures are fields of their own; the text
/// format shows the sentence only.
#[test]
fn json_logs_carry_the_run_figures_as_fields() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "idna", "3.7");
    whl(&env.upstream, "six", "1.0");
    env.manifest("[select]\npackages = [\"idna\", \"six\"]\n");
    let a = env.airlock().args(["--log-format", "json", "build"]).assert().success();
    let lines: Vec<serde_json::Value> =
        stderr(&a).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    let run = lines.iter().find(|l| l.get("exit_code").is_some()).expect("a line with the run's figures");
    assert_eq!(run["added"], 2, "{run}");
    assert_eq!(run["kept"], 0);
    assert_eq!(run["removed"], 0);
    assert_eq!(run["failed"], 0);
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["command"], "build");
    assert!(run["bytes"].as_u64().unwrap() > 0 && run["seconds"].as_f64().is_some(), "{run}");
    let a = env.build().success();
    let text = stderr(&a);
    assert!(text.contains("run 2: added 0, kept 2") && !text.contains("exit_code="), "{text}");
}

/// `advisories check -c mirror.toml` reads the snapshot the manifest names.
#[test]
fn advisories_check_takes_the_manifest_for_its_snapshot() {
    let env = Env::new(Flavour::Json);
    env.manifest("[select]\npackages = [\"vulnlib\"]\n[advisories]\nsnapshot = \"adv.sqlite.zst\"\n");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv/policy");
    env.airlock().args(["advisories", "build"]).arg(&fixtures).args(["-o", "adv.sqlite.zst"]).assert().success();
    let out = env.airlock().args(["advisories", "check", "-c", "mirror.toml", "vulnlib", "1.0"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("GHSA-crit-crit-crit"), "{text}");
    let a = env.airlock().args(["advisories", "check", "-c", "elsewhere.toml", "vulnlib", "1.0"]).assert().code(1);
    assert!(stderr(&a).contains("elsewhere.toml"), "{}", stderr(&a));
}

/// The release binary is a distributable one: no debug info (125 MiB with
/// line tables), panic locations kept (they are data, not debug info). The
/// size itself is checked whenever a release build is at hand
/// (`scripts/check-release.sh` builds one).
#[test]
fn the_release_profile_ships_a_small_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let release = &cargo["profile"]["release"];
    assert_eq!(release.get("debug").and_then(toml::Value::as_bool), Some(false), "{release}");
    assert_eq!(release.get("strip").and_then(toml::Value::as_str), Some("debuginfo"), "{release}");
    assert!(release.get("panic").is_none_or(|p| p.as_str() == Some("unwind")), "panics keep unwinding: {release}");
    let built =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into).join("release/airlock");
    match std::fs::metadata(&built) {
        Ok(m) => assert!(m.len() <= 40 << 20, "{} is {} MiB", built.display(), m.len() >> 20),
        Err(_) => eprintln!("no release build at {}: size not checked here", built.display()),
    }
}

/// A manifest with several mistakes: every one at once, in file order, in
/// the user's words; a missing `-r` include names the line that includes it.
#[test]
fn manifest_mistakes_are_reported_together() {
    let env = Env::new(Flavour::Json);
    std::fs::write(
        env.path("mirror.toml"),
        "[selct]\npackages = [\"idna\"]\n[mirror]\njobs = \"4\"\n[select]\nlatest = \"1\"\nplatforms = [\"windows\"]\n",
    )
    .unwrap();
    let a = env.build().code(1);
    let err = stderr(&a);
    let first = err.find("mirror.toml:1:2: unknown table [selct]; did you mean [select]?").expect(&err);
    let second =
        err.find("mirror.toml:4:8: `jobs` in [mirror] expects a whole number, got the string \"4\"").expect(&err);
    let third = err.find("mirror.toml:6:10: `latest` in [select] expects a whole number").expect(&err);
    assert!(first < second && second < third, "{err}");
    // The platform's value is checked in the same run as the shape.
    assert!(
        err.contains("4 problem(s)") && err.contains("unknown platform \"windows\"; did you mean \"win_amd64\"?"),
        "{err}"
    );
    assert!(!err.contains("invalid type"), "serde's words stay out: {err}");

    std::fs::write(env.path("req.txt"), "idna\n-r nothere.txt\n").unwrap();
    env.manifest("[select]\nrequirements = [\"req.txt\"]\nplatforms = [\"windows\"]\n");
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("req.txt:2: cannot read ") && err.contains("nothere.txt"), "{err}");
    assert!(err.contains("unknown platform \"windows\"") && err.contains("win_amd64"), "{err}");
    assert!(!err.contains("canonicalize"), "{err}");
    assert!(env.upstream.requests().is_empty());
}

/// The repository's own demo manifest: resolution and a failing
/// installability check, so that what it publishes installs
/// (`scripts/check-demo.sh` installs and imports it from the real PyPI).
#[test]
fn the_demo_manifest_resolves_what_it_installs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = airlock::manifest::Manifest::load(&root.join("mirror.toml")).expect("the demo manifest loads");
    assert_eq!(m.select.defaults.dependencies, airlock::manifest::Dependencies::Resolve);
    assert_eq!(m.select.installable, airlock::manifest::Installable::Fail);
    // A pin of a project the resolution picks would fight it (Jinja2 2.10
    // with MarkupSafe 3.0.2 did): the demo names only what it installs.
    let named: Vec<String> = m.select.requirements.iter().map(|r| r.requirement.name.to_string()).collect();
    assert_eq!(named, ["requests", "jinja2"]);
}
