//! Faults a nightly mirror meets (issue 12): one bad file or a dead
//! upstream never freezes or empties the mirror, `max_failures` stops an
//! upstream gone bad, hostile servers fail with named errors, and a full
//! disk leaves the served tree and the state intact.

use crate::support::*;

fn whl(up: &Upstream, name: &str, version: &str) -> FakeFile {
    let f = FakeFile::new(wheel(name, version, WheelSpec::default()));
    up.add(name, f.clone());
    f
}

fn file_path(f: &FakeFile) -> String {
    format!("/files/{}", f.filename)
}

/// The run's diagnostics as `reports/security.json` lists them: (code, file).
fn reported(env: &Env) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(env.public().join("reports/security.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["run"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap().to_string(), d["file"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// One corrupt file among new ones: the rest is published, what was served
/// stays, the run exits 1 naming the file in the summary, the reports and
/// the JSON log; the next run retries it.
#[test]
fn one_corrupt_file_never_freezes_the_mirror() {
    let env = Env::new(Flavour::Json);
    let old = whl(&env.upstream, "stable", "1.0");
    env.manifest("[select]\npackages = [\"stable\", \"other\", \"fresh\"]\n");
    whl(&env.upstream, "other", "1.0");
    whl(&env.upstream, "fresh", "0.1");
    env.build().success();
    let served_old = std::fs::read(env.public().join("packages/stable").join(&old.filename)).unwrap();

    whl(&env.upstream, "stable", "1.1");
    let bad = whl(&env.upstream, "stable", "1.2");
    whl(&env.upstream, "other", "2.0");
    let bad_new = whl(&env.upstream, "fresh", "0.2");
    env.upstream.fault(&file_path(&bad), Fault::Corrupt);
    env.upstream.fault(&file_path(&bad_new), Fault::Corrupt);
    let a = env.airlock().args(["build", "--log-format", "json"]).assert().code(1);
    let err = stderr(&a);
    assert_eq!(
        listed(&env.public(), "stable"),
        ["stable-1.0-py3-none-any.whl", "stable-1.1-py3-none-any.whl"],
        "the good new file is published, the bad one is not"
    );
    assert_eq!(listed(&env.public(), "other"), ["other-1.0-py3-none-any.whl", "other-2.0-py3-none-any.whl"]);
    assert_eq!(listed(&env.public(), "fresh"), ["fresh-0.1-py3-none-any.whl"]);
    assert_eq!(std::fs::read(env.public().join("packages/stable").join(&old.filename)).unwrap(), served_old);
    assert!(!env.public().join("packages/stable").join(&bad.filename).exists());
    // Named in the JSON log's summary line, and in the reports.
    let summary: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(summary["failed"], 2, "{summary}");
    assert_eq!(summary["published"], true, "{summary}");
    assert_eq!(summary["exit_code"], 1, "{summary}");
    assert!(err.contains(&format!("{}: sha256 mismatch", bad.filename)), "{err}");
    let diags = reported(&env);
    for f in [&bad, &bad_new] {
        assert!(diags.iter().any(|(_, file)| *file == f.filename), "{} not in the report: {diags:?}", f.filename);
    }
    // Fixed upstream: the next run brings it in.
    env.upstream.fault(&file_path(&bad), Fault::None);
    env.upstream.fault(&file_path(&bad_new), Fault::None);
    env.build().success();
    assert_eq!(listed(&env.public(), "stable").len(), 3);
    assert_eq!(listed(&env.public(), "fresh").len(), 2);
}

/// The upstream is down: every page fails, nothing is removed, nothing new
/// appears, and the run says so and exits 1.
#[test]
fn an_upstream_outage_removes_nothing() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "a", "1.0");
    whl(&env.upstream, "b", "1.0");
    env.manifest("keep_runs = 0\n[select]\npackages = [\"a\", \"b\"]\n");
    env.build().success();
    let before: Vec<String> =
        tree(&env.public()).into_keys().filter(|k| k.starts_with("packages/") || k.starts_with("simple/")).collect();
    // A dead port: connection refused for every request.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = std::fs::read_to_string(env.path("mirror.toml")).unwrap();
    let dead = text.replace(&env.upstream.index_url(), &format!("http://127.0.0.1:{port}/simple/"));
    std::fs::write(env.path("mirror.toml"), dead.replace("retries = 3", "retries = 0")).unwrap();
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("stays published"), "{err}");
    assert!(err.contains("removed 0"), "{err}");
    let after: Vec<String> =
        tree(&env.public()).into_keys().filter(|k| k.starts_with("packages/") || k.starts_with("simple/")).collect();
    assert_eq!(before, after, "an outage changes no page and no file");
    assert_eq!(listed(&env.public(), "a"), ["a-1.0-py3-none-any.whl"]);
    assert_eq!(listed(&env.public(), "b"), ["b-1.0-py3-none-any.whl"]);
}

/// `max_failures` refuses to publish a run that failed more than it allows,
/// as a count or as a share of the run's work.
#[test]
fn max_failures_stops_an_upstream_gone_bad() {
    for (limit, published) in [("1", false), ("2", true), ("\"10%\"", false), ("\"50%\"", true)] {
        let env = Env::new(Flavour::Json);
        whl(&env.upstream, "p", "1.0");
        env.manifest(&format!("max_failures = {limit}\n[select]\npackages = [\"p\"]\n"));
        env.build().success();
        let before = tree(&env.public());
        // 4 new files, 2 corrupt: 2 failures of 5 (1 page + 4 files).
        for v in ["1.1", "1.2", "1.3", "1.4"] {
            let f = whl(&env.upstream, "p", v);
            if v == "1.2" || v == "1.4" {
                env.upstream.fault(&file_path(&f), Fault::Corrupt);
            }
        }
        let a = env.build().code(1);
        let err = stderr(&a);
        if published {
            assert_eq!(listed(&env.public(), "p").len(), 3, "max_failures = {limit}: {err}");
        } else {
            assert!(err.contains("more than `max_failures"), "max_failures = {limit}: {err}");
            assert!(tree(&env.public()) == before, "max_failures = {limit}: the tree changed");
        }
    }
    let env = Env::new(Flavour::Json);
    env.manifest("max_failures = \"lots\"\n[select]\npackages = [\"p\"]\n");
    let a = env.build().code(1);
    assert!(
        stderr(&a).contains("mirror.toml:7:16: `max_failures`: expected a whole number or a percentage"),
        "{}",
        stderr(&a)
    );
}

/// Hostile servers: a stalled body, a trickling page, a redirect loop, a
/// page too large and a page listing too many files each fail with an
/// error that names the limit, and never hang the run.
#[test]
fn hostile_servers_fail_with_named_errors() {
    let env = Env::new(Flavour::Json);
    let stalled = whl(&env.upstream, "stalled", "1.0");
    whl(&env.upstream, "trickle", "1.0");
    whl(&env.upstream, "loop", "1.0");
    whl(&env.upstream, "fine", "1.0");
    env.upstream.fault(&file_path(&stalled), Fault::Stall);
    env.upstream.fault("/simple/trickle/", Fault::Trickle);
    env.upstream.fault("/simple/loop/", Fault::RedirectLoop);
    env.manifest("[select]\npackages = [\"stalled\", \"trickle\", \"loop\", \"fine\"]\n");
    let text = std::fs::read_to_string(env.path("mirror.toml")).unwrap();
    std::fs::write(
        env.path("mirror.toml"),
        text.replace("retries = 3", "retries = 0").replace("timeout = 10", "timeout = 1"),
    )
    .unwrap();
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("stalled-1.0-py3-none-any.whl") && err.contains("stalled: no data for 1s"), "{err}");
    assert!(err.contains("/simple/trickle/: too slow: not complete after 5s"), "{err}");
    assert!(err.contains("/simple/loop/: more than 10 redirects"), "{err}");
    assert_eq!(listed(&env.public(), "fine"), ["fine-1.0-py3-none-any.whl"]);

    let env = Env::new(Flavour::Json);
    for v in ["1.0", "1.1", "1.2"] {
        whl(&env.upstream, "many", v);
    }
    env.manifest("[select]\npackages = [\"many\"]\n");
    let a = env.airlock().arg("build").env("AIRLOCK_MAX_PAGE_FILES", "2").assert().code(1);
    assert!(stderr(&a).contains("the page lists 3 files, more than the limit of 2"), "{}", stderr(&a));
    let a = env.airlock().arg("build").env("AIRLOCK_MAX_PAGE_BYTES", "100").assert().code(1);
    assert!(stderr(&a).contains("the page is larger than the limit of 100 bytes"), "{}", stderr(&a));
    env.airlock().arg("build").assert().success();
}

/// A tmpfs of `size` mounted at `dir` for the life of the value (root only).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        }
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The disk holding the state and the store fills up during a fetch: the
/// error names the file and the path, the served tree is untouched, the
/// state stays usable, and once space is freed the next run completes.
#[test]
fn a_full_disk_during_a_fetch_loses_nothing() {
    let env = Env::new(Flavour::Json);
    let Some(disk) = Tmpfs::mount(&env.path("state"), "2M") else { return };
    whl(&env.upstream, "small", "1.0");
    env.manifest("state = \"state\"\n[select]\npackages = [\"small\", \"big\"]\n");
    // Incompressible bytes: tmpfs does not compress, but be plain about it.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let bytes: Vec<u8> = (0..3 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    env.upstream.add("big", FakeFile::new(("big-0.1.tar.gz".to_string(), b"first".to_vec())));
    env.build().success();
    let before = tree(&env.public());

    env.upstream.add("big", FakeFile::new(("big-1.0.tar.gz".to_string(), bytes)));
    whl(&env.upstream, "small", "1.1");
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("big-1.0.tar.gz") && err.contains("No space left on device"), "{err}");
    assert!(err.contains("state/tmp/big-1.0.tar.gz."), "the error names the path: {err}");
    assert!(!listed(&env.public(), "big").contains(&"big-1.0.tar.gz".to_string()));
    assert_eq!(before.get("packages/big/big-0.1.tar.gz"), tree(&env.public()).get("packages/big/big-0.1.tar.gz"));
    assert!(tree(&env.path("state/tmp")).is_empty(), "nothing half-written stays");
    env.airlock().arg("verify").assert().success();

    disk.resize("16M");
    env.build().success();
    assert_eq!(listed(&env.public(), "big"), ["big-0.1.tar.gz", "big-1.0.tar.gz"]);
    assert_eq!(listed(&env.public(), "small").len(), 2);
}

/// The disk holding the published tree fills up while the new tree is
/// staged: the error names the path, the served tree stays as it was and
/// served, and once space is freed the next run publishes.
#[test]
fn a_full_disk_while_staging_the_tree_leaves_the_served_one() {
    let env = Env::new(Flavour::Json);
    let Some(disk) = Tmpfs::mount(&env.path("site"), "1M") else { return };
    whl(&env.upstream, "small", "1.0");
    env.manifest("output = \"site/public\"\n[select]\npackages = [\"small\", \"big\"]\n");
    env.upstream.add("big", FakeFile::new(("big-0.1.tar.gz".to_string(), b"first".to_vec())));
    env.build().success();
    let public = env.path("site/public");
    let before = tree(&public);
    let served = std::fs::read_link(&public).unwrap();
    env.upstream.add("big", FakeFile::new(("big-1.0.tar.gz".to_string(), vec![7u8; 2 << 20])));
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("No space left on device") && err.contains("site/"), "{err}");
    assert!(tree(&public) == before, "the served tree changed");
    assert_eq!(std::fs::read_link(&public).unwrap(), served);
    disk.resize("16M");
    env.build().success();
    assert_eq!(listed(&public, "big"), ["big-0.1.tar.gz", "big-1.0.tar.gz"]);
}
