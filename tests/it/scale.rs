//! Sharded fetches (issue 13): `plan -o`, `fetch --plan --shard K/N` in
//! parallel into one store, then `build --offline` renders the tree one run
//! would have.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::*;

/// A manifest `name` for one runner: its own state and output, a shared store.
fn config(env: &Env, name: &str, state: &str, output: &str, store: &str) {
    let text = format!(
        "[mirror]\nname = \"test mirror\"\nupstream = \"{}\"\njobs = 2\nretries = 1\ntimeout = 10\nstate = \"{state}\"\nstore = \"{store}\"\noutput = \"{output}\"\n[select]\npackages = [\"alpha\", \"beta\", \"gamma\", \"delta\"]\n",
        env.upstream.index_url()
    );
    std::fs::write(env.path(name), text).unwrap();
}

/// Four projects of 20 files in all, and the pages and files one plain
/// run makes of them (at a fixed clock), for comparing sharded runs with.
fn four_projects_and_one_run(env: &Env) -> BTreeMap<String, Vec<u8>> {
    for (p, versions) in [("alpha", 3), ("beta", 2), ("gamma", 4), ("delta", 1)] {
        for v in 0..versions {
            env.upstream.add(p, FakeFile::new(wheel(p, &format!("1.{v}"), WheelSpec::default())));
            env.upstream.add(p, FakeFile::new(sdist(p, &format!("1.{v}"))));
        }
    }
    env.manifest("[select]\npackages = [\"alpha\", \"beta\", \"gamma\", \"delta\"]\n");
    env.airlock().arg("build").env("SOURCE_DATE_EPOCH", "1700000000").assert().success();
    let reference = pages(&env.public());
    env.upstream.clear_requests();
    reference
}

/// The binary in `env`'s directory with moto's S3 endpoint and credentials,
/// its output kept out of the test's.
fn s3_command(env: &Env, port: u16) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("airlock"));
    cmd.current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("NO_PROXY", "127.0.0.1")
        .env("NO_COLOR", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null());
    cmd
}

fn pages(root: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    tree(root).into_iter().filter(|(k, _)| k.starts_with("simple/") || k.starts_with("packages/")).collect()
}

#[test]
fn shards_fetch_each_file_once_and_build_the_tree_of_one_run() {
    let env = Env::new(Flavour::Json);
    let reference = four_projects_and_one_run(&env);
    assert_eq!(reference.keys().filter(|k| k.starts_with("packages/") && !k.ends_with(".metadata")).count(), 20);

    config(&env, "plan.toml", "plan-state", "sharded", "shared-store");
    env.airlock().args(["plan", "-c", "plan.toml", "-o", "plan.json"]).assert().success();
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(env.path("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["schema"], "airlock.plan/v1");
    assert_eq!(plan["files"].as_array().unwrap().len(), 20);
    assert!(env.upstream.file_requests().iter().all(|r| r.ends_with(".metadata")), "plan fetches no file");

    // Four shards at once, each with its own empty state, one shared store.
    let children: Vec<_> = (0..4)
        .map(|k| {
            config(&env, &format!("shard{k}.toml"), &format!("shard-state-{k}"), "unused", "shared-store");
            Command::new(assert_cmd::cargo::cargo_bin("airlock"))
                .args(["fetch", "-c", &format!("shard{k}.toml"), "--plan", "plan.json", "--shard", &format!("{k}/4")])
                .current_dir(env.dir.path())
                .env("HOME", env.dir.path())
                .env("NO_PROXY", "127.0.0.1")
                .env("NO_COLOR", "1")
                .output()
        })
        .collect();
    for (k, c) in children.into_iter().enumerate() {
        let out = c.unwrap();
        assert!(out.status.success(), "shard {k}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut fetched: Vec<String> =
        env.upstream.file_requests().into_iter().filter(|r| !r.ends_with(".metadata")).collect();
    fetched.sort();
    let before = fetched.len();
    fetched.dedup();
    assert_eq!((before, fetched.len()), (20, 20), "each file fetched exactly once in total");
    assert!(!env.path("shared-store/.tmp").exists() || tree(&env.path("shared-store/.tmp")).is_empty());

    // Render and publish from the store, offline.
    env.upstream.clear_requests();
    env.airlock()
        .args(["build", "-c", "plan.toml", "--offline"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .assert()
        .success();
    assert!(env.upstream.requests().is_empty(), "offline");
    assert!(pages(&env.path("sharded")) == reference, "the sharded tree differs from one run's");
}

#[test]
fn a_shard_refuses_bad_input() {
    let env = Env::new(Flavour::Json);
    for p in ["alpha", "beta", "gamma", "delta"] {
        env.upstream.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
    }
    config(&env, "plan.toml", "plan-state", "sharded", "shared-store");
    env.airlock().args(["plan", "-c", "plan.toml", "-o", "plan.json"]).assert().success();
    let a = env.airlock().args(["fetch", "-c", "plan.toml", "--plan", "plan.json", "--shard", "4/4"]).assert().code(2);
    assert!(stderr(&a).contains("shard \"4/4\": expected K/N"), "{}", stderr(&a));
    // A plan whose hash was changed: the file fails verification, nothing is stored.
    let text = std::fs::read_to_string(env.path("plan.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sha = v["files"][0]["sha256"].as_str().unwrap().to_string();
    std::fs::write(env.path("bad.json"), text.replace(&sha, &"0".repeat(64))).unwrap();
    let a = env.airlock().args(["fetch", "-c", "plan.toml", "--plan", "bad.json"]).assert().code(1);
    assert!(stderr(&a).contains("sha256 mismatch"), "{}", stderr(&a));
    assert!(!env.path("shared-store/alpha").join("alpha-1.0-py3-none-any.whl").exists());
    std::fs::write(env.path("bad.json"), text.replace("alpha-1.0-py3-none-any.whl", "../evil.whl")).unwrap();
    let a = env.airlock().args(["fetch", "-c", "plan.toml", "--plan", "bad.json"]).assert().code(1);
    assert!(stderr(&a).contains("bad.json: file 0"), "{}", stderr(&a));
    env.airlock().args(["fetch", "-c", "plan.toml", "--plan", "plan.json"]).assert().success();
    assert!(env.path("shared-store/alpha").join("alpha-1.0-py3-none-any.whl").exists());
    // A store that is neither a directory nor s3:// is named at its line.
    let text = std::fs::read_to_string(env.path("plan.toml")).unwrap();
    std::fs::write(env.path("ftp.toml"), text.replace("store = \"shared-store\"", "store = \"ftp://host/mirror\""))
        .unwrap();
    let a = env.airlock().args(["build", "-c", "ftp.toml"]).assert().code(1);
    let err = stderr(&a);
    assert!(
        err.contains("ftp.toml:8:9: `store = \"ftp://host/mirror\"`: a store is a directory or s3://bucket/prefix"),
        "{err}"
    );
}

/// `store = "s3://..."`: build, lose the whole local state and tree (a new
/// runner), build again: nothing is fetched from the upstream, no package
/// object is written again, the tree is the same. Then without the state
/// checkpoint either: still nothing from the upstream.
#[test]
fn an_object_store_store_lets_an_empty_runner_continue() {
    let Some(moto) = crate::publishing::start_moto() else { return };
    let bucket = "store-test";
    moto.create_bucket(bucket);
    let env = Env::new(Flavour::Json);
    for p in ["alpha", "beta", "gamma"] {
        env.upstream.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
        env.upstream.add(p, FakeFile::new(sdist(p, "1.0")));
    }
    env.manifest(&format!("store = \"s3://{bucket}/mirror\"\n[select]\npackages = [\"alpha\", \"beta\", \"gamma\"]\n"));
    let build = |env: &Env| {
        let mut cmd = env.airlock();
        cmd.arg("build").env("SOURCE_DATE_EPOCH", "1700000000");
        crate::publishing::s3_env(&mut cmd, moto.port);
        cmd.assert().success()
    };
    build(&env);
    let first = pages(&env.public());
    let held = crate::publishing::read_back(moto.port, bucket, "mirror");
    assert_eq!(held.len(), 6, "every verified file is in the object store: {:?}", held.keys());
    assert!(held.contains_key("alpha/alpha-1.0-py3-none-any.whl"));

    for without_checkpoint in [false, true] {
        if without_checkpoint {
            crate::publishing::delete_object(moto.port, bucket, "mirror/.airlock/state.sqlite.zst");
        }
        std::fs::remove_dir_all(env.path(".airlock")).unwrap();
        std::fs::remove_dir_all(env.dir.path().join(".public.airlock")).ok();
        std::fs::remove_file(env.public()).ok();
        env.upstream.clear_requests();
        moto.recorder("start-recording");
        let a = build(&env);
        let recorded = moto.recorder("download-recording");
        moto.recorder("stop-recording");
        let files: Vec<String> =
            env.upstream.file_requests().into_iter().filter(|r| !r.ends_with(".metadata")).collect();
        assert!(files.is_empty(), "checkpoint gone: {without_checkpoint}: fetched {files:?}: {}", stderr(&a));
        let writes: Vec<&str> = recorded
            .lines()
            .filter(|l| l.contains("\"method\": \"PUT\"") || l.contains("\"method\": \"POST\""))
            // The state checkpoint and the lease are the only writes (the
            // lease's release is a bulk delete; the objects are counted below).
            .filter(|l| !l.contains("/.airlock/") && !l.contains("/moto-api/") && !l.contains("?delete"))
            .collect();
        assert_eq!(crate::publishing::read_back(moto.port, bucket, "mirror").len(), 6, "no package object deleted");
        assert!(writes.is_empty(), "package objects were written again: {writes:?}");
        let now = pages(&env.public());
        let differ: Vec<&String> = now.keys().chain(first.keys()).filter(|k| now.get(*k) != first.get(*k)).collect();
        assert!(
            differ.is_empty(),
            "the tree differs: {differ:?} ({} vs {} entries) {}",
            now.len(),
            first.len(),
            stderr(&a)
        );
    }

    // The lease: released after every run; one held by another runner
    // stops this one before it touches anything; an expired one is taken over.
    assert!(!crate::publishing::has_object(moto.port, bucket, "mirror/.airlock/lease"), "the lease is released");
    let lease = |expires: &str| {
        let body = format!(
            r#"{{"holder":"airlock build (pid 7 on ci-runner-3)","acquired_at":"2026-01-01T00:00:00Z","expires_at":"{expires}"}}"#
        );
        crate::publishing::put_object(moto.port, bucket, "mirror/.airlock/lease", body.as_bytes());
    };
    lease("2999-01-01T00:00:00Z");
    let mut cmd = env.airlock();
    cmd.arg("build");
    crate::publishing::s3_env(&mut cmd, moto.port);
    let a = cmd.assert().code(1);
    assert!(
        stderr(&a).contains("another runner holds the store: airlock build (pid 7 on ci-runner-3)"),
        "{}",
        stderr(&a)
    );
    lease("2020-01-01T00:00:00Z");
    let a = build(&env);
    assert!(stderr(&a).contains("taking over the expired lease"), "{}", stderr(&a));
    assert!(!crate::publishing::has_object(moto.port, bucket, "mirror/.airlock/lease"));
}

/// With an object-store store, runners share nothing but the bucket:
/// `plan -o` on one, four shards at once each with its own empty state,
/// then `build --offline` on a fifth with an empty state: each file fetched
/// once in total, and the tree of a single run.
#[test]
fn shards_into_an_object_store_from_empty_runners() {
    for one_layout in [false, true] {
        shards_into_a_bucket(one_layout);
    }
}

/// See [`shards_into_an_object_store_from_empty_runners`]; under one
/// layout (`[publish] to` the store's prefix) the render step downloads
/// no package: it adopts each one from the bucket by the sha256 its upload
/// recorded.
fn shards_into_a_bucket(one_layout: bool) {
    let Some(moto) = crate::publishing::start_moto() else { return };
    let bucket = if one_layout { "shard-one-layout" } else { "shard-test" };
    moto.create_bucket(bucket);
    let env = Env::new(Flavour::Json);
    let reference = four_projects_and_one_run(&env);
    let store = format!("s3://{bucket}/mirror");
    // Every runner has its own (empty) state; the bucket is all they share.
    let runner = |name: &str, output: &str, args: &[&str]| {
        config(&env, &format!("{name}.toml"), &format!("{name}-state"), output, &store);
        if one_layout {
            let path = env.path(&format!("{name}.toml"));
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{text}[publish]\nto = \"{store}\"\n")).unwrap();
        }
        let mut cmd = s3_command(&env, moto.port);
        cmd.args(args).args(["-c", &format!("{name}.toml")]);
        cmd
    };
    let out = runner("plan", "unused", &["plan", "-o", "plan.json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shards: Vec<_> = (0..4)
        .map(|k| {
            let shard = format!("{k}/4");
            runner(&format!("shard{k}"), "unused", &["fetch", "--plan", "plan.json", "--shard", &shard])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for (k, mut c) in shards.into_iter().enumerate() {
        assert!(c.wait().unwrap().success(), "shard {k}");
    }
    let mut fetched: Vec<String> =
        env.upstream.file_requests().into_iter().filter(|r| !r.ends_with(".metadata")).collect();
    fetched.sort();
    let total = fetched.len();
    fetched.dedup();
    assert_eq!((total, fetched.len()), (20, 20), "each file fetched exactly once in total");
    let under = if one_layout { "mirror/packages" } else { "mirror" };
    let dists = |k: &String| !k.ends_with(".metadata") && !k.ends_with(".provenance");
    assert_eq!(crate::publishing::read_back(moto.port, bucket, under).keys().filter(|k| dists(k)).count(), 20);

    env.upstream.clear_requests();
    moto.recorder("start-recording");
    let out = runner("render", "sharded", &["build", "--offline"]).output().unwrap();
    let recorded = moto.recorder("download-recording");
    moto.recorder("stop-recording");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env.upstream.requests().is_empty(), "offline: {:?}", env.upstream.requests());
    if one_layout {
        let downloads: Vec<String> = recorded
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["method"] == "GET")
            .filter_map(|v| v["url"].as_str().map(str::to_string))
            .filter(|u| u.ends_with(".whl") || u.ends_with(".tar.gz"))
            .collect();
        assert!(downloads.is_empty(), "no package comes down from the bucket: {downloads:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("adopted ").count(), 20, "each adopted from the bucket: {err}");
    }
    let sharded = pages(&env.path("sharded"));
    // Under one layout the tree holds no package, only what is beside them.
    let compared = |k: &&String| !one_layout || k.starts_with("simple/") || k.ends_with(".metadata");
    let differ: Vec<&String> = sharded
        .keys()
        .chain(reference.keys())
        .filter(compared)
        .filter(|k| sharded.get(*k) != reference.get(*k))
        .collect();
    assert!(differ.is_empty(), "differs from one run's tree: {differ:?}");
}

/// A shard killed (SIGKILL) while uploading to the object store, then run
/// again: every object under a final key was always a verified file, and
/// the rerun completes without fetching anything twice.
#[test]
fn a_shard_killed_mid_upload_completes_on_rerun() {
    let Some(moto) = crate::publishing::start_moto() else { return };
    let bucket = "kill-test";
    moto.create_bucket(bucket);
    let env = Env::new(Flavour::Json);
    let mut files = BTreeMap::new();
    for p in ["alpha", "beta", "gamma", "delta"] {
        for f in [FakeFile::new(wheel(p, "1.0", WheelSpec::default())), FakeFile::new(sdist(p, "1.0"))] {
            files.insert(format!("{p}/{}", f.filename), f.bytes.clone());
            env.upstream.add(p, f);
        }
    }
    config(&env, "mirror.toml", ".airlock", "public", &format!("s3://{bucket}/m"));
    let airlock = |fault: Option<&str>| {
        let mut cmd = s3_command(&env, moto.port);
        cmd.stderr(std::process::Stdio::null());
        if let Some(point) = fault {
            cmd.env("AIRLOCK_FAULT", point).env("AIRLOCK_FAULT_MARKER", env.path("marker"));
        }
        cmd
    };
    assert!(airlock(None).args(["plan", "-o", "plan.json"]).status().unwrap().success());
    let mut child = airlock(Some("upload:4")).args(["fetch", "--plan", "plan.json"]).spawn().unwrap();
    let started = std::time::Instant::now();
    while !env.path("marker").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the shard ended before its 4th upload");
        assert!(started.elapsed().as_secs() < 60, "never reached the 4th upload");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let check = |objects: &BTreeMap<String, (Vec<u8>, String, String)>| {
        for (key, (bytes, _, _)) in objects {
            assert!(files.get(key) == Some(bytes), "{key}: an object that is not the verified file");
        }
    };
    let partial = crate::publishing::read_back(moto.port, bucket, "m");
    check(&partial);
    assert!(partial.len() < 8, "killed before the end: {}", partial.len());
    env.upstream.clear_requests();
    assert!(airlock(None).args(["fetch", "--plan", "plan.json"]).status().unwrap().success());
    let whole = crate::publishing::read_back(moto.port, bucket, "m");
    check(&whole);
    assert_eq!(whole.len(), 8, "the rerun completes the store");
    assert!(env.upstream.file_requests().is_empty(), "nothing fetched twice: {:?}", env.upstream.file_requests());
}

/// A 16 MiB tmpfs mounted for the test's life (root only: `None`, said,
/// elsewhere).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: std::path::PathBuf) -> Option<SmallDisk> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a 16 MiB tmpfs (not root?)");
        }
        ok.then_some(SmallDisk(at))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// One layout (issue 28): `[mirror] store` and `[publish] to` are the same
/// bucket prefix, so each package is stored once, under the key the tree
/// publishes; an empty runner whose state and output sit on a 16 MiB disk
/// renders and publishes a 48 MiB mirror plus a new release, downloading
/// no package, and pip and uv install from the bucket.
#[test]
fn one_layout_the_bucket_is_the_mirror_for_an_empty_runner_with_a_small_disk() {
    let Some(moto) = crate::publishing::start_moto() else { return };
    let env = Env::new(Flavour::Json);
    let Some(disk) = SmallDisk::mount(env.path("small")) else { return };
    let bucket = "one-layout";
    moto.create_bucket(bucket);
    let projects = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    let mut upstream_bytes = BTreeMap::new();
    for p in projects {
        let (name, bytes) = heavy_wheel(p, "1.0", 8 << 20);
        upstream_bytes.insert(format!("{p}/{name}"), bytes.len() as u64);
        env.upstream.add(p, FakeFile::new((name, bytes)));
    }
    let list = projects.map(|p| format!("{p:?}")).join(", ");
    let manifest = |state: &str, output: &str| {
        format!(
            "[mirror]\nname = \"test mirror\"\nupstream = \"{}\"\njobs = 2\nretries = 1\ntimeout = 30\nstate = \"{state}\"\noutput = \"{output}\"\nstore = \"s3://{bucket}/pypi\"\n[select]\npackages = [{list}]\n[publish]\nto = \"s3://{bucket}/pypi\"\ndelete_after_hours = 0\n",
            env.upstream.index_url()
        )
    };
    let run = |dir: &std::path::Path, args: &[&str]| {
        let mut cmd = airlock_in(dir);
        cmd.args(args).env("SOURCE_DATE_EPOCH", "1700000000");
        crate::publishing::s3_env(&mut cmd, moto.port);
        cmd.assert()
    };
    // The packages in the bucket: key → size, and their .metadata.
    let packages = || -> BTreeMap<String, u64> {
        moto.keys(bucket, "pypi/packages")
            .into_iter()
            .filter(|(k, _)| !k.ends_with(".metadata") && !k.ends_with(".provenance"))
            .collect()
    };

    // Runner one: a first build and publish.
    std::fs::write(env.path("mirror.toml"), manifest(".airlock", "public")).unwrap();
    let a = run(env.dir.path(), &["build"]).success();
    assert!(
        !env.public().join("packages/alpha/alpha-1.0-py3-none-any.whl").exists(),
        "the tree holds no copy of a package: {}",
        stderr(&a)
    );
    let a = run(env.dir.path(), &["publish"]).success();
    assert!(stderr(&a).contains("unchanged"), "{}", stderr(&a));
    let first: BTreeMap<String, u64> =
        packages().into_iter().map(|(k, v)| (k.trim_start_matches("pypi/packages/").to_string(), v)).collect();
    assert_eq!(first, upstream_bytes, "each package once, under its published key");
    assert!(moto.keys(bucket, "pypi").keys().all(|k| !k.starts_with("pypi/alpha/")), "no second layout");

    // A new release upstream; runner two starts empty, its state and
    // output on a 16 MiB disk, three times smaller than the mirror.
    let (name, bytes) = heavy_wheel("alpha", "2.0", 1 << 20);
    upstream_bytes.insert(format!("alpha/{name}"), bytes.len() as u64);
    env.upstream.add("alpha", FakeFile::new((name.clone(), bytes)));
    env.upstream.clear_requests();
    let runner = env.path("runner-two");
    std::fs::create_dir_all(&runner).unwrap();
    let small = disk.0.display().to_string();
    std::fs::write(runner.join("mirror.toml"), manifest(&format!("{small}/state"), &format!("{small}/public")))
        .unwrap();
    moto.recorder("start-recording");
    let a = run(&runner, &["build"]).success();
    let recorded = moto.recorder("download-recording");
    moto.recorder("stop-recording");
    let fetched: Vec<String> = env.upstream.file_requests();
    assert_eq!(fetched.len(), 1, "only the new file comes from the upstream: {fetched:?}");
    // What runner two asked of the bucket: no package down, one up.
    let requests: Vec<(String, String)> = recorded
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| (v["method"].as_str().unwrap_or("").to_string(), v["url"].as_str().unwrap_or("").to_string()))
        .collect();
    let dists = |method: &str| -> Vec<&String> {
        requests
            .iter()
            .filter(|(m, u)| m == method && u.contains("/packages/") && u.ends_with(".whl"))
            .map(|(_, u)| u)
            .collect()
    };
    assert!(dists("GET").is_empty(), "no package comes down from the bucket: {:?}", dists("GET"));
    assert_eq!(dists("PUT").len(), 1, "only the new file goes up: {:?}", dists("PUT"));
    let a2 = run(&runner, &["publish"]).success();
    let now: BTreeMap<String, u64> =
        packages().into_iter().map(|(k, v)| (k.trim_start_matches("pypi/packages/").to_string(), v)).collect();
    assert_eq!(now, upstream_bytes, "every package in the bucket exactly once: {}", stderr(&a2));
    assert_eq!(now.values().sum::<u64>(), upstream_bytes.values().sum::<u64>());
    let page = std::fs::read_to_string(disk.0.join("public/simple/alpha/index.html")).unwrap();
    assert!(page.contains(&name), "the new release is listed: {page} {}", stderr(&a));
    let local: u64 = walkdir::WalkDir::new(&disk.0)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(local < 16 << 20, "the small disk holds {local} bytes");

    // verify checks the tree here and the packages in the bucket.
    let a = run(&runner, &["verify"]).success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("7 package(s) in the bucket"), "{out}");
    moto.delete(bucket, &format!("pypi/packages/beta/{}", "beta-1.0-py3-none-any.whl"));
    let a = run(&runner, &["verify"]).code(1);
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("missing     packages/beta/beta-1.0-py3-none-any.whl"), "{out}");
    // The next build brings it back from the upstream, verified.
    env.upstream.clear_requests();
    run(&runner, &["build"]).success();
    assert_eq!(env.upstream.file_requests(), ["/files/beta-1.0-py3-none-any.whl"]);
    assert_eq!(packages().len(), 7);
    // A bundle for an air gap carries the packages, streamed from the bucket.
    let bundle = env.path("mirror.tar.zst");
    run(&runner, &["export", "--full", "-o", bundle.to_str().unwrap()]).success();
    run(&runner, &["import", bundle.to_str().unwrap(), "--into", env.path("inside").to_str().unwrap()]).success();
    let inside = tree(&env.path("inside"));
    for (key, size) in &upstream_bytes {
        assert_eq!(inside.get(&format!("packages/{key}")).map(|b| b.len() as u64), Some(*size), "{key} in the bundle");
    }

    // pip and uv install from the bucket's HTTP endpoint.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    let status = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{}/{bucket}?policy", moto.port))
        .header("Content-Type", "application/json")
        .body(policy)
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let index = format!("http://127.0.0.1:{}/{bucket}/pypi/simple/", moto.port);
    let py = crate::support::tools::venv(&env.path("venv"));
    let out = crate::support::tools::pip_install(&py, &index, &["alpha==2.0", "beta"]);
    assert!(out.status.success(), "pip from the bucket: {}", String::from_utf8_lossy(&out.stderr));
    let (out, _) = crate::support::tools::uv_install(&env.path("uv"), &index, &["alpha==2.0", "gamma"]);
    assert!(out.status.success(), "uv from the bucket: {}", String::from_utf8_lossy(&out.stderr));
}
