//! Object stores never lose data, on two S3 implementations (moto and
//! s3s-fs): a store and a publish target nested one in the other are
//! refused before anything is written; side by side, and in one prefix
//! (one layout: each package stored once, under its published key), they
//! survive an empty runner with every linked package in the bucket; a store object deleted behind
//! airlock's back is fetched again and verified, or fails the run; a
//! checkpoint that is a decompression bomb fails by name within bounded
//! memory; a server that refuses directory keys gets everything else.

use std::collections::BTreeSet;

use crate::support::s3::{Kind, S3};
use crate::support::*;

fn projects(env: &Env) {
    for p in ["alpha", "beta"] {
        env.upstream.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
        env.upstream.add(p, FakeFile::new(sdist(p, "1.0")));
    }
}

fn run(env: &Env, s3: &S3, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = env.airlock();
    cmd.args(args).env("SOURCE_DATE_EPOCH", "1700000000");
    s3.env(&mut cmd);
    cmd.assert()
}

/// A runner that starts empty: no state, no output.
fn empty_runner(env: &Env) {
    std::fs::remove_dir_all(env.path(".airlock")).ok();
    std::fs::remove_dir_all(env.dir.path().join(".public.airlock")).ok();
    std::fs::remove_file(env.public()).ok();
    std::fs::remove_dir_all(env.public()).ok();
}

#[test]
fn a_store_and_a_publish_target_nested_are_refused_before_any_write() {
    for s3 in S3::both() {
        let env = Env::new(Flavour::Json);
        projects(&env);
        s3.create_bucket("mirror");
        for (store, to) in [("site/store", "site"), ("site", "site/public"), ("", "site")] {
            env.manifest(&format!(
                "store = \"s3://mirror/{store}\"\n[select]\npackages = [\"alpha\"]\n[publish]\nto = \"s3://mirror/{to}\"\ndelete_after_hours = 0\n"
            ));
            let a = run(&env, &s3, &["build"]).code(1);
            let err = stderr(&a);
            assert!(
                err.contains("mirror.toml:") && err.contains("`[mirror] store") && err.contains("`[publish] to"),
                "{}: {err}",
                s3.name()
            );
            assert!(s3.keys("mirror", "").is_empty(), "{}: nothing written: {:?}", s3.name(), s3.keys("mirror", ""));
            assert!(!env.path(".airlock").exists(), "not even the state");
        }
    }
}

#[test]
fn side_by_side_or_in_one_layout_an_empty_runner_publishes_every_package_its_pages_link() {
    for s3 in S3::both() {
        for (store_prefix, site) in [("store", "site"), ("site", "site")] {
            let one_layout = store_prefix == site;
            let env = Env::new(Flavour::Json);
            projects(&env);
            // A bucket of its own for each layout.
            let bucket = if one_layout { "one-layout" } else { "mirror" };
            s3.create_bucket(bucket);
            env.manifest(&format!(
                "store = \"s3://{bucket}/{store_prefix}\"\n[select]\npackages = [\"alpha\", \"beta\"]\n[publish]\nto = \"s3://{bucket}/{site}\"\ndelete_after_hours = 0\ndirectory_keys = \"never\"\n",
            ));
            run(&env, &s3, &["build"]).success();
            // Another tool's object under the publish prefix is never airlock's to delete.
            s3.put(bucket, &format!("{site}/notes/README.txt"), b"not airlock's");
            run(&env, &s3, &["publish"]).success();
            // A new release upstream, and a runner that starts empty.
            env.upstream.add("beta", FakeFile::new(wheel("beta", "2.0", WheelSpec::default())));
            empty_runner(&env);
            env.upstream.clear_requests();
            run(&env, &s3, &["build"]).success();
            let fetched = env.upstream.file_requests();
            assert!(
                fetched.iter().all(|f| f.ends_with(".metadata") || f.ends_with("beta-2.0-py3-none-any.whl")),
                "{}: only the new file: {fetched:?}",
                s3.name()
            );
            run(&env, &s3, &["publish"]).success();
            let keys = s3.keys(bucket, "");
            assert!(
                keys.contains_key(&format!("{site}/notes/README.txt")),
                "{}: a foreign object was deleted",
                s3.name()
            );
            let under = if one_layout { format!("{site}/packages/") } else { format!("{store_prefix}/") };
            let store: BTreeSet<&str> = keys.keys().filter_map(|k| k.strip_prefix(under.as_str())).collect();
            for f in ["alpha/alpha-1.0.tar.gz", "beta/beta-1.0-py3-none-any.whl", "beta/beta-2.0-py3-none-any.whl"] {
                assert!(store.contains(f), "{}: {f} in the store: {store:?}", s3.name());
            }
            if one_layout {
                // Each package once: no second layout beside the published one.
                let dists = keys.keys().filter(|k| k.ends_with(".whl") || k.ends_with(".tar.gz")).count();
                assert_eq!(dists, 5, "{}: {:?}", s3.name(), keys.keys());
            }
            for project in ["alpha", "beta"] {
                let page = s3.read_back(bucket, site);
                let json = &page[&format!("simple/{project}/index.v1_json")].0;
                let page: serde_json::Value = serde_json::from_slice(json).unwrap();
                let files = page["files"].as_array().unwrap();
                assert!(!files.is_empty());
                for f in files {
                    let url = f["url"].as_str().unwrap();
                    let key = format!("{site}/{}", url.trim_start_matches("../../"));
                    assert!(keys.contains_key(&key), "{}: {key} is linked and missing: {:?}", s3.name(), keys.keys());
                }
            }
        }
    }
}

#[test]
fn a_store_object_deleted_behind_airlocks_back_is_fetched_again_or_fails_the_run() {
    for s3 in S3::both() {
        let env = Env::new(Flavour::Json);
        projects(&env);
        s3.create_bucket("mirror");
        env.manifest("store = \"s3://mirror/store\"\n[select]\npackages = [\"alpha\", \"beta\"]\n");
        run(&env, &s3, &["build"]).success();
        let whl = "beta/beta-1.0-py3-none-any.whl";
        // Deleted from the bucket; an empty runner: fetched again, verified, uploaded again.
        s3.delete("mirror", &format!("store/{whl}"));
        empty_runner(&env);
        env.upstream.clear_requests();
        let a = run(&env, &s3, &["build"]).success();
        let err = stderr(&a);
        assert!(err.contains("was gone from the store; restored from the upstream"), "{}: {err}", s3.name());
        assert_eq!(env.upstream.file_requests(), ["/files/beta-1.0-py3-none-any.whl"], "{}", s3.name());
        assert!(listed(&env.public(), "beta").contains(&"beta-1.0-py3-none-any.whl".to_string()));
        assert!(s3.has("mirror", &format!("store/{whl}")), "{}: uploaded again", s3.name());

        // Deleted again and the upstream cannot serve it any more, but this
        // runner's served tree holds it: it comes back from there.
        s3.delete("mirror", &format!("store/{whl}"));
        std::fs::remove_dir_all(env.path(".airlock")).ok();
        env.upstream.fault("/files/beta-1.0-py3-none-any.whl", Fault::Always(404));
        let a = run(&env, &s3, &["build"]).success();
        assert!(stderr(&a).contains("restored from the served tree"), "{}: {}", s3.name(), stderr(&a));
        assert!(s3.has("mirror", &format!("store/{whl}")), "{}: uploaded again", s3.name());

        // Deleted again, from an empty runner: nowhere to bring it back
        // from. Exit 1 naming it, and no tree without it.
        s3.delete("mirror", &format!("store/{whl}"));
        empty_runner(&env);
        let a = run(&env, &s3, &["build"]).code(1);
        let err = stderr(&a);
        assert!(
            err.contains(
                "beta/beta-1.0-py3-none-any.whl is recorded but gone from the store and cannot be brought back"
            ),
            "{}: {err}",
            s3.name()
        );
        assert_eq!(err.lines().filter(|l| l.starts_with("ERROR beta/beta-1.0")).count(), 1, "found once: {err}");
        assert!(!env.public().exists(), "{}: nothing is published without it", s3.name());
    }
}

#[test]
fn a_file_deleted_from_a_local_store_comes_back_from_the_served_tree() {
    let env = Env::new(Flavour::Json);
    projects(&env);
    env.manifest("[select]\npackages = [\"alpha\", \"beta\"]\n");
    env.build().success();
    std::fs::remove_file(env.path(".airlock/store/alpha/alpha-1.0.tar.gz")).unwrap();
    // A new release makes the run render a new tree.
    env.upstream.add("beta", FakeFile::new(wheel("beta", "2.0", WheelSpec::default())));
    env.upstream.clear_requests();
    let a = env.build().success();
    assert!(stderr(&a).contains("alpha/alpha-1.0.tar.gz was gone from the store; restored from the served tree"));
    assert!(!env.upstream.file_requests().iter().any(|f| f.contains("alpha")), "{:?}", env.upstream.file_requests());
    assert!(env.path(".airlock/store/alpha/alpha-1.0.tar.gz").is_file());
    assert!(listed(&env.public(), "alpha").contains(&"alpha-1.0.tar.gz".to_string()));
}

/// The peak resident set of a command, from its own rusage.
fn peak_mib(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String, u64) {
    use std::os::unix::process::ExitStatusExt;
    // Reaped by wait4 below, which also reports its peak; `Child::wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: a plain wait4 on our own child, with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid);
    (std::process::ExitStatus::from_raw(status), reader.join().unwrap(), usage.ru_maxrss as u64 / 1024)
}

#[test]
fn a_checkpoint_that_is_a_decompression_bomb_fails_by_name_in_bounded_memory() {
    let Some(s3) = S3::moto() else { return };
    let env = Env::new(Flavour::Json);
    projects(&env);
    s3.create_bucket("mirror");
    env.manifest("store = \"s3://mirror/store\"\n[select]\npackages = [\"alpha\"]\n");
    // An SQLite header, then 4 GiB of zeros: about 128 KiB compressed.
    let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
    std::io::Write::write_all(&mut enc, b"SQLite format 3\0").unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..4096 {
        std::io::Write::write_all(&mut enc, &chunk).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    s3.put("mirror", "store/.airlock/state.sqlite.zst", &bomb);
    let bin = assert_cmd::cargo::cargo_bin("airlock");
    let mut cmd = std::process::Command::new(bin);
    cmd.current_dir(env.dir.path())
        .arg("build")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", s3.endpoint())
        .env("NO_COLOR", "1")
        .env("HOME", env.dir.path());
    let (status, err, peak) = peak_mib(&mut cmd);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("s3://mirror/store/.airlock/state.sqlite.zst: not a usable state checkpoint")
            && err.contains("decompression bomb"),
        "{err}"
    );
    assert!(peak <= 512, "peak RSS {peak} MiB");
    assert!(!env.path(".airlock/state.sqlite").exists(), "no state is made of it");
}

#[test]
fn a_server_that_refuses_directory_keys_gets_everything_else() {
    for s3 in S3::both() {
        let env = Env::new(Flavour::Json);
        projects(&env);
        s3.create_bucket("pub1");
        let manifest = |mode: &str| {
            env.manifest(&format!(
                "[select]\npackages = [\"alpha\", \"beta\"]\n[publish]\nto = \"s3://pub1/pypi\"\ndirectory_keys = \"{mode}\"\n"
            ))
        };
        manifest("auto");
        run(&env, &s3, &["build"]).success();
        let a = run(&env, &s3, &["publish"]).success();
        let objects = s3.read_back("pub1", "pypi");
        let local = tree(&env.public());
        for path in local.keys() {
            assert!(objects.contains_key(path), "{}: {path} published", s3.name());
        }
        let dir_keys = objects.contains_key("simple/alpha/");
        match s3.kind {
            Kind::Moto => assert!(dir_keys, "moto takes directory keys"),
            Kind::S3sFs => {
                assert!(!dir_keys);
                let err = stderr(&a);
                assert_eq!(err.matches("refuses keys ending in `/`").count(), 1, "warned once: {err}");
                // Known now: the next publish neither asks nor warns.
                let a = run(&env, &s3, &["publish"]).success();
                assert!(!stderr(&a).contains("refuses keys"), "{}", stderr(&a));
                manifest("always");
                let a = run(&env, &s3, &["publish"]).code(1);
                assert!(stderr(&a).contains("simple/alpha/"), "{}", stderr(&a));
            }
        }
    }
}

#[test]
fn an_sdist_only_version_is_named_without_resolution_too() {
    let env = Env::new(Flavour::Json);
    env.upstream.add(
        "lib-core",
        FakeFile::new(wheel(
            "lib-core",
            "3.0",
            WheelSpec { tag: "cp312-cp312-manylinux_2_28_x86_64", ..Default::default() },
        )),
    );
    env.upstream.add("lib-core", FakeFile::new(sdist("lib-core", "3.0")));
    env.manifest(
        "[select]\npackages = [\"lib-core\"]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_aarch64\"]\n",
    );
    let a = env.build().success();
    let want = "lib-core 3.0 installs only from its sdist (built on install) on cp312-manylinux_2_28_aarch64";
    assert!(stderr(&a).contains(want), "{}", stderr(&a));
    // A rerun plans nothing again, and its reports still say it.
    env.upstream.add("other", FakeFile::new(wheel("other", "1.0", WheelSpec::default())));
    env.manifest(
        "[select]\npackages = [\"lib-core\", \"other\"]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_aarch64\"]\n",
    );
    env.build().success();
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    let report = std::fs::read_to_string(env.public().join("reports/security.json")).unwrap();
    assert!(report.contains(want) && md.contains("sdist"), "{md}");
}
