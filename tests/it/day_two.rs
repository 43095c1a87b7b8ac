//! What an operator meets in the first week: `airlock serve` as the air
//! gap's index server (concurrent keep-alive clients, `--bind`, an access
//! log), locks installable through the mirror, only the files each
//! environment installs, a nightly whose upstream traffic can be seen, and
//! errors that say it once and say it all.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::tools::*;
use crate::support::*;

/// uv with a short read timeout: a server that leaves a request unanswered
/// fails the install instead of stalling it.
fn uv_quick(dir: &std::path::Path, index: &str, packages: &[String], run: usize) -> std::process::Output {
    let venv = dir.join(format!("uv-venv-{run}"));
    let status = Command::new(uv())
        .args(["venv", "--no-config", "--python"])
        .arg(python())
        .arg(&venv)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    Command::new(uv())
        .args(["pip", "install", "--no-config", "--python"])
        .arg(venv.join("bin/python"))
        .args(["--index-url", index])
        .args(packages)
        .env("UV_CACHE_DIR", dir.join(format!("uv-cache-{run}")))
        .env("UV_HTTP_TIMEOUT", "5")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap()
}

#[test]
fn serve_answers_concurrent_keep_alive_clients_on_every_fresh_start() {
    let env = Env::new(Flavour::Json);
    let names: Vec<String> = (0..20).map(|i| format!("pkg{i:02}")).collect();
    for n in &names {
        env.upstream.add(n, FakeFile::new(wheel(n, "1.0", WheelSpec::default())));
    }
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    env.manifest(&format!("[select]\npackages = [{}]\n", list.join(", ")));
    env.build().success();
    for run in 0..3 {
        let served = Served::start(&env.public());
        let out = uv_quick(env.dir.path(), &format!("{}simple/", served.url), &names, run);
        assert!(out.status.success(), "fresh start {run}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // A burst of keep-alive requests on 16 connections at once, after one
    // that stays open: every one is answered.
    let served = Served::start(&env.public());
    let addr = served.url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n\r\n");
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(request("/simple/").as_bytes()).unwrap();
    let mut conns: Vec<std::net::TcpStream> = (0..16).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(request(&format!("/simple/pkg{:02}/", i % 20)).as_bytes()).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(c).read_line(&mut line).unwrap_or_else(|e| panic!("connection {i} unanswered: {e}"));
        assert!(line.starts_with("HTTP/1.1 200"), "connection {i}: {line:?}");
    }
    drop(idle);
}

#[test]
fn serve_binds_where_told_and_logs_every_request() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec::default())));
    env.manifest("[select]\npackages = [\"app\"]\n");
    env.build().success();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .args(["serve"])
        .arg(env.public())
        .args(["--port", "0", "--bind", "0.0.0.0"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split(" at ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    let client = reqwest::blocking::Client::new();
    let r =
        client.get(format!("{url}simple/app/")).header("Accept", "application/vnd.pypi.simple.v1+json").send().unwrap();
    assert_eq!(r.status(), 200);
    let whl =
        client.get(format!("{url}packages/app/app-1.0-py3-none-any.whl")).header("Range", "bytes=0-3").send().unwrap();
    assert_eq!(whl.status(), 206);
    assert_eq!(whl.bytes().unwrap().as_ref(), b"PK\x03\x04");
    assert_eq!(client.get(format!("{url}nope")).send().unwrap().status(), 404);
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("\"GET /simple/app/ HTTP/1.1\" 200") && log.contains(" json "), "{log}");
    assert!(log.contains("\"GET /packages/app/app-1.0-py3-none-any.whl HTTP/1.1\" 206 4"), "{log}");
    assert!(log.contains("\"GET /nope HTTP/1.1\" 404"), "{log}");
}

/// The file real uv picks for `pkg` on a target, from an index.
fn uv_picks(dir: &std::path::Path, index: &str, platform: &str, python: &str, pkg: &str) -> String {
    let out = Command::new(uv())
        .args(["pip", "install", "--no-config", "--dry-run", "-v", "--python-platform", platform])
        .args(["--python-version", python, "--target"])
        .arg(dir.join("uv-target"))
        .args(["--index-url", index, pkg])
        .env("UV_CACHE_DIR", dir.join("uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = log.lines().find(|l| l.contains(&format!("Selecting: {pkg}=="))).unwrap_or_else(|| panic!("{log}"));
    line.rsplit('(').next().unwrap().trim_end_matches(')').to_string()
}

#[test]
fn a_resolve_mirror_holds_only_the_wheel_each_environment_installs() {
    let env = Env::new(Flavour::Json);
    for tag in ["py3-none-any", "cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_28_x86_64"] {
        env.upstream.add("pkg", FakeFile::new(wheel("pkg", "1.0", WheelSpec { tag, ..Default::default() })));
    }
    env.upstream.add("pkg", FakeFile::new(sdist("pkg", "1.0")));
    env.upstream.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec { requires: &["pkg"], ..Default::default() })));
    let manifest = |platforms: &str, extra: &str| {
        env.manifest(&format!(
            "max_removed = \"100%\"\n{extra}[select]\npackages = [\"app\"]\npython = [\"3.12\"]\nplatforms = [{platforms}]\nsdists = false\ndependencies = \"resolve\"\n"
        ))
    };
    manifest("\"manylinux_2_28_x86_64\"", "");
    env.build().success();
    let picked = uv_picks(env.dir.path(), &env.upstream.index_url(), "x86_64-manylinux_2_28", "3.12", "pkg");
    assert_eq!(listed(&env.public(), "pkg"), std::slice::from_ref(&picked), "exactly what uv installs there");
    // Two targets: each gets its own.
    manifest("\"manylinux_2_28_x86_64\", \"manylinux_2_17_x86_64\"", "");
    env.build().success();
    let older = uv_picks(env.dir.path(), &env.upstream.index_url(), "x86_64-manylinux_2_17", "3.12", "pkg");
    let mut want = vec![picked, older];
    want.sort();
    assert_eq!(listed(&env.public(), "pkg"), want);
    // "compatible" keeps today's behaviour: every compatible wheel.
    manifest("\"manylinux_2_28_x86_64\"", "files = \"compatible\"\n");
    env.build().success();
    assert_eq!(listed(&env.public(), "pkg").len(), 3);
}

#[test]
fn locks_are_rewritten_into_the_tree_and_install_with_the_network_off() {
    let env = Env::new(Flavour::Json);
    env.upstream
        .add("alpha", FakeFile::new(wheel("alpha", "1.0", WheelSpec { requires: &["beta"], ..Default::default() })));
    env.upstream.add("beta", FakeFile::new(wheel("beta", "2.0", WheelSpec::default())));
    env.upstream.add("beta", FakeFile::new(sdist("beta", "2.0")));
    let project = env.path("proj");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("pyproject.toml"),
        "[project]\nname = \"demo\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"alpha\"]\n",
    )
    .unwrap();
    let uv_in = |dir: &std::path::Path, args: &[&str]| {
        let out = Command::new(uv())
            .args(args)
            .current_dir(dir)
            .env("UV_CACHE_DIR", env.path("uv-cache-locks"))
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
            .unwrap();
        assert!(out.status.success(), "uv {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let index = env.upstream.index_url();
    uv_in(&project, &["lock", "--no-config", "--index-url", &index]);
    uv_in(&project, &["export", "--no-config", "--index-url", &index, "--format", "pylock.toml", "-o", "pylock.toml"]);
    for lock in ["uv.lock", "pylock.toml"] {
        std::fs::copy(project.join(lock), env.path(lock)).unwrap();
    }
    env.manifest("[select]\nlockfiles = [\"uv.lock\", \"pylock.toml\"]\npython = [\"3.11\"]\n");
    env.build().success();
    let locks = env.public().join("locks");
    let pylock = std::fs::read_to_string(locks.join("pylock.toml")).unwrap();
    assert!(pylock.contains("path = \"../packages/alpha/alpha-1.0-py3-none-any.whl\""), "{pylock}");
    assert!(!pylock.contains("url = \"http://127.0.0.1"), "no file is fetched from the upstream: {pylock}");
    let uvlock = std::fs::read_to_string(locks.join("uv.lock")).unwrap();
    assert!(!uvlock.contains("/files/alpha"), "{uvlock}");

    // The network off: uv's offline mode, and the upstream sees nothing.
    env.upstream.clear_requests();
    let venv = env.path("lock-venv");
    uv_in(env.dir.path(), &["venv", "--no-config", "--python", python().to_str().unwrap(), venv.to_str().unwrap()]);
    let lockfile = locks.join("pylock.toml");
    uv_in(
        env.dir.path(),
        &[
            "pip",
            "install",
            "--no-config",
            "--offline",
            "--python",
            venv.join("bin/python").to_str().unwrap(),
            "-r",
            lockfile.to_str().unwrap(),
        ],
    );
    assert_eq!(run_python(&venv.join("bin/python"), "import alpha, beta; print(beta.__version__)"), "2.0");
    let inside = env.path("inside");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::copy(project.join("pyproject.toml"), inside.join("pyproject.toml")).unwrap();
    std::fs::copy(locks.join("uv.lock"), inside.join("uv.lock")).unwrap();
    uv_in(&inside, &["sync", "--no-config", "--frozen", "--offline", "--python", python().to_str().unwrap()]);
    assert_eq!(run_python(&inside.join(".venv/bin/python"), "import alpha; print(alpha.__version__)"), "1.0");
    assert!(env.upstream.requests().is_empty(), "{:?}", env.upstream.requests());
}

#[test]
fn etags_are_learned_when_a_proxy_stops_stripping_them_and_a_new_upstream_is_followed() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec::default())));
    env.upstream.strip_etags(true);
    env.manifest("[select]\npackages = [\"app\"]\n");
    env.build().success();
    env.build().success();
    assert_eq!(env.upstream.pages_not_modified(), 0, "no ETag, no conditional answer");
    env.upstream.strip_etags(false);
    env.build().success(); // the same bytes, now with an ETag: learned
    env.build().success();
    assert_eq!(env.upstream.pages_not_modified(), 1, "the next run asks conditionally");

    // A file the old upstream fails to serve; then the manifest moves to
    // another upstream with byte-identical pages: the file comes from it.
    env.upstream.add("app", FakeFile::new(wheel("app", "2.0", WheelSpec::default())));
    env.upstream.fault("/files/app-2.0-py3-none-any.whl", Fault::Always(500));
    env.build().code(1);
    let other = Upstream::start(Flavour::Json);
    other.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec::default())));
    other.add("app", FakeFile::new(wheel("app", "2.0", WheelSpec::default())));
    let text = std::fs::read_to_string(env.path("mirror.toml")).unwrap();
    std::fs::write(env.path("mirror.toml"), text.replace(&env.upstream.index_url(), &other.index_url())).unwrap();
    env.upstream.clear_requests();
    env.build().success();
    assert!(env.upstream.requests().is_empty(), "the old upstream is not asked: {:?}", env.upstream.requests());
    assert_eq!(other.file_requests(), ["/files/app-2.0-py3-none-any.whl"]);
    assert_eq!(listed(&env.public(), "app").len(), 2);
}

#[test]
fn the_run_says_what_it_asked_the_upstream() {
    let env = Env::new(Flavour::Json);
    for p in ["alpha", "beta", "gamma"] {
        env.upstream.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
    }
    env.upstream.strip_etags(true);
    env.manifest("[select]\npackages = [\"alpha\", \"beta\", \"gamma\"]\n");
    let a = env.airlock().args(["--log-format", "json", "build"]).assert().success();
    let asked = env.upstream.requests().len() as u64;
    let lines: Vec<serde_json::Value> = stderr(&a).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let summary = lines.iter().rev().find(|l| l["upstream_requests"].is_u64()).expect("a summary with the figures");
    assert_eq!(summary["upstream_requests"].as_u64(), Some(asked), "{summary}");
    assert_eq!(summary["not_modified"].as_u64(), Some(0));
    assert!(summary["upstream_bytes"].as_u64().unwrap() > 0);
    let line = lines.iter().filter_map(|l| l["message"].as_str()).find(|m| m.starts_with("upstream: ")).unwrap();
    assert!(
        line.contains("3 page(s) (0 x 304), 3 file(s)")
            && line.contains("serials unavailable")
            && line.contains("no ETags"),
        "{line}"
    );
    // -vv shows each request.
    env.upstream.clear_requests();
    let a = env.airlock().args(["-vv", "build"]).assert().success();
    assert!(
        stderr(&a).contains("GET http://127.0.0.1:") && stderr(&a).contains("/simple/alpha/ -> 200"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn a_table_typo_and_a_platform_typo_are_reported_in_one_run() {
    let env = Env::new(Flavour::Json);
    env.manifest("[selct]\npackages = [\"a\"]\n[select]\npackages = [\"a\"]\nplatforms = [\"manylinux_2_17_x86_65\"]\npython = [\"3.21\"]\n");
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("3 problem(s):"), "{err}");
    assert!(err.contains("unknown table [selct]; did you mean [select]?"), "{err}");
    assert!(
        err.contains("unknown platform \"manylinux_2_17_x86_65\"; did you mean \"manylinux_2_17_x86_64\"?"),
        "{err}"
    );
    assert!(err.contains("\"3.21\" is not a CPython release"), "{err}");
    assert_eq!(err.matches("platform tags are").count(), 1, "{err}");
}

#[test]
fn errors_name_what_to_do() {
    // A name that does not resolve: one line, not five retries.
    let env = Env::new(Flavour::Json);
    std::fs::write(
        env.path("mirror.toml"),
        "[mirror]\nupstream = \"http://no-such-host.invalid/simple/\"\nretries = 5\n[select]\npackages = [\"app\"]\n",
    )
    .unwrap();
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("cannot resolve no-such-host.invalid"), "{err}");
    assert!(!err.contains("retry 1/5"), "{err}");
    // scan with nothing to scan against says what to give it.
    let empty = tempfile::tempdir().unwrap();
    let a = airlock_in(empty.path()).args(["scan", "-r", "x.txt"]).assert().code(2);
    assert!(stderr(&a).contains("give --snapshot FILE, --index-url URL"), "{}", stderr(&a));
    // A mirror built without advisories publishes no snapshot: said so.
    let env = Env::new(Flavour::Json);
    env.upstream.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec::default())));
    env.manifest("[select]\npackages = [\"app\"]\n");
    env.build().success();
    std::fs::write(env.path("req.txt"), "app==1.0\n").unwrap();
    let url = format!("file://{}/simple/", std::fs::canonicalize(env.public()).unwrap().display());
    let a = env.airlock().args(["scan", "--index-url", &url, "-r", "req.txt"]).assert().code(1);
    assert!(stderr(&a).contains("was built without an advisory snapshot"), "{}", stderr(&a));
}

#[test]
fn the_installability_verdict_is_said_and_explained() {
    let env = Env::new(Flavour::Json);
    let whl = |name: &str, version: &str, tag: &str| {
        env.upstream.add(name, FakeFile::new(wheel(name, version, WheelSpec { tag, ..Default::default() })));
    };
    whl("app", "1.0", "py3-none-any");
    whl("num", "1.0", "cp312-cp312-manylinux_2_17_x86_64");
    whl("num", "2.0", "cp312-cp312-win_amd64");
    env.upstream.add("sdonly", FakeFile::new(sdist("sdonly", "1.0")));
    let manifest = |packages: &str, mode: &str| {
        env.manifest(&format!(
            "[select]\npackages = [{packages}]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_x86_64\", \"win_amd64\"]\nsdists = false\ndependencies = \"resolve\"\ninstallable = \"{mode}\"\n"
        ))
    };
    manifest("\"app\", \"num\"", "warn");
    let a = env.build().success();
    let err = stderr(&a);
    assert!(err.contains("installability: 2 of 2 environment(s) install the requirements"), "{err}");
    assert!(
        err.contains("num differs by environment: 1.0 on cp312-manylinux_2_28_x86_64, 2.0 on cp312-win_amd64"),
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/installability.json")).unwrap()).unwrap();
    assert_eq!(report["differing"]["num"]["2.0"], serde_json::json!(["cp312-win_amd64"]), "{report:#}");
    // An sdist-only project, with installable = "fail": named as such, the
    // report written where the message says, nothing else called missing.
    manifest("\"app\", \"num\", \"sdonly\"", "fail");
    let a = env.build().code(1);
    let err = stderr(&a);
    let beside = env.path(".airlock/installability.json");
    assert!(err.contains(&format!("see {}", std::path::Path::new(".airlock/installability.json").display())), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&beside).unwrap()).unwrap();
    let problems = report["environments"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["project"], "sdonly");
    assert_eq!(problems[0]["reason"], "sdist-only", "{report:#}");
}

#[test]
fn reports_lead_with_the_worst_and_count_the_noise() {
    let env = Env::new(Flavour::Json);
    for v in ["1.0", "1.1", "2.0"] {
        env.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", v, WheelSpec::default())));
    }
    env.upstream.add("nosev", FakeFile::new(wheel("nosev", "1.0", WheelSpec::default())));
    // Ancient files a page lists that are no distribution airlock mirrors.
    for odd in ["vulnlib-2004d.tar.gz.asc", "vulnlib-notes.txt", "vulnlib_setup.py"] {
        env.upstream.add("vulnlib", FakeFile { filename: odd.into(), ..FakeFile::new(sdist("vulnlib", "0.1")) });
    }
    env.policy_snapshot();
    env.manifest("[select]\npackages = [\"vulnlib\", \"nosev\"]\n[advisories]\nmax_age_days = 36500\n[policy]\nunknown_severity = \"high\"\n");
    let a = env.build().success();
    let err = stderr(&a);
    let skipping: Vec<&str> = err.lines().filter(|l| l.contains("skipping")).collect();
    assert_eq!(skipping.len(), 1, "one counted line: {err}");
    assert!(skipping[0].contains("skipping 3 upstream file(s)"), "{err}");
    // The log ranks a version's worst as the reports do.
    assert!(err.contains("nosev 1.0: unknown, ranks as high"), "{err}");
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    assert!(md.contains("3 upstream file(s) skipped") && !md.contains("vulnlib_setup.py"), "{md}");
    let html = std::fs::read_to_string(env.public().join("reports/security.html")).unwrap();
    let details = html.find("<details><summary>3 upstream file(s) skipped").expect("collapsed");
    assert!(html[details..].contains("vulnlib_setup.py"));
    // The first tree's findings: the critical one first.
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/changes.json")).unwrap()).unwrap();
    assert_eq!(changes["newly_affected"][0]["severity"], "critical", "{changes:#}");
    // scan's markdown has a severity column, worst first.
    std::fs::write(env.path("req.txt"), "vulnlib==1.0\nnosev==1.0\n").unwrap();
    let out = env.airlock().args(["scan", "-r", "req.txt", "--format", "markdown"]).assert().code(3);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Name")).collect();
    assert!(text.starts_with("| Name | Version | ID | Fix Versions | Severity |"), "{text}");
    assert!(rows[0].ends_with("| critical |"), "{text}");
    assert!(text.contains("| unknown (ranks high) |"), "{text}");
}

#[test]
fn the_console_is_for_people_and_json_for_machines() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec::default())));
    env.upstream.add("bad", FakeFile::new(wheel("bad", "1.0", WheelSpec::default())));
    env.upstream.fault("/files/bad-1.0-py3-none-any.whl", Fault::Corrupt);
    env.manifest("[select]\npackages = [\"app\", \"bad\"]\n");
    // Diagnostics carry what they are about as fields.
    let a = env.airlock().args(["--log-format", "json", "build"]).assert().code(1);
    let failed = stderr(&a)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["code"] == "fetch-failed")
        .unwrap_or_else(|| panic!("{}", stderr(&a)));
    assert_eq!(failed["project"], "bad");
    assert_eq!(failed["file"], "bad-1.0-py3-none-any.whl");
    // Global flags have a heading of their own in every command's help.
    let help = env.airlock().args(["build", "--help"]).assert().success();
    let text = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    let global = text.find("Global options:").expect("a heading");
    assert!(text[global..].contains("--log-format") && !text[..global].contains("--log-format"), "{text}");
    // A directory target is linked into, not uploaded to.
    let a = env.airlock().args(["publish", "--to"]).arg(env.path("www")).assert().success();
    assert!(stderr(&a).contains("as links into the directory") && !stderr(&a).contains("uploaded"), "{}", stderr(&a));
    // On a terminal, per-file lines stay out of the way of the bars.
    if Command::new("script").arg("--version").output().is_ok() {
        env.upstream.add("more", FakeFile::new(wheel("more", "1.0", WheelSpec::default())));
        env.manifest("[select]\npackages = [\"app\", \"more\"]\n");
        let bin = assert_cmd::cargo::cargo_bin("airlock");
        let out = Command::new("script")
            .args(["-qec", &format!("{} build", bin.display()), "/dev/null"])
            .current_dir(env.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("fetched more-1.0"), "per-file lines on a terminal: {text}");
    }
}

#[test]
fn plan_then_build_reads_each_wheels_metadata_once() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("app", FakeFile::new(wheel("app", "1.0", WheelSpec { requires: &["dep"], ..Default::default() })));
    env.upstream.add("dep", FakeFile::new(wheel("dep", "1.0", WheelSpec::default())));
    env.manifest("[select]\npackages = [\"app\"]\npython = [\"3.12\"]\nsdists = false\ndependencies = \"resolve\"\n");
    env.airlock().arg("plan").assert().success();
    let after_plan = env.upstream.ranged();
    assert!(after_plan > 0, "metadata read with range requests");
    env.build().success();
    assert_eq!(env.upstream.ranged(), after_plan, "the build asks for no metadata the plan read");
}

#[test]
fn the_documented_example_manifest_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/mirror.toml");
    let m = airlock::manifest::Manifest::load(&example).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.mirror.name, "internal");
    assert_eq!(m.select.requirements.len(), 2);
}
