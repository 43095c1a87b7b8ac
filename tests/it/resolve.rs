//! Installable by construction: per-environment resolution against the fake
//! upstream, compared environment by environment with what real uv resolves
//! from the upstream and from the mirror; lock files produced by real uv;
//! the installability check and `installable = "fail"`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::support::tools::*;
use crate::support::*;

/// Python × platform, as airlock names them and as uv's `--python-platform` does.
const ENVS: [(&str, &str, &str); 8] = [
    ("3.11", "manylinux_2_28_x86_64", "x86_64-manylinux_2_28"),
    ("3.11", "manylinux_2_28_aarch64", "aarch64-manylinux_2_28"),
    ("3.11", "macosx_14_0_arm64", "aarch64-apple-darwin"),
    ("3.11", "win_amd64", "x86_64-pc-windows-msvc"),
    ("3.12", "manylinux_2_28_x86_64", "x86_64-manylinux_2_28"),
    ("3.12", "manylinux_2_28_aarch64", "aarch64-manylinux_2_28"),
    ("3.12", "macosx_14_0_arm64", "aarch64-apple-darwin"),
    ("3.12", "win_amd64", "x86_64-pc-windows-msvc"),
];

fn whl(up: &Upstream, name: &str, version: &str, tag: &str, requires: &[&str], requires_python: Option<&str>) {
    let f = FakeFile::new(wheel(name, version, WheelSpec { tag, requires, requires_python }));
    up.add(name, FakeFile { requires_python: requires_python.map(str::to_string), ..f });
}

/// A graph with per-platform and per-Python markers, an extra, a
/// Requires-Python cut-off, a newest version with wheels for one Python
/// only, a conflict that forces backtracking, and projects nobody needs.
fn graph(up: &Upstream) {
    let any = "py3-none-any";
    whl(up, "app", "1.0", any, &["core>=1.0"], None);
    let app2 = [
        "core>=1.0",
        "modern",
        "winhelper; sys_platform == 'win32'",
        "armaccel; platform_machine == 'aarch64'",
        "backport; python_version < '3.12'",
        "extras-lib; extra == 'full'",
    ];
    whl(up, "app", "2.0", any, &app2, None);
    whl(up, "core", "0.9", any, &[], None);
    whl(up, "core", "1.5", any, &[], None);
    for plat in ["manylinux_2_17_x86_64", "manylinux_2_17_aarch64", "macosx_11_0_arm64", "win_amd64"] {
        whl(up, "core", "2.0", &format!("cp312-cp312-{plat}"), &[], None);
    }
    whl(up, "modern", "2.0", any, &[], None);
    whl(up, "modern", "3.0", any, &[], Some(">=3.12"));
    whl(up, "winhelper", "1.0", any, &[], None);
    for py in ["cp311", "cp312"] {
        whl(up, "armaccel", "1.0", &format!("{py}-{py}-manylinux_2_17_aarch64"), &[], None);
    }
    whl(up, "backport", "1.0", any, &[], None);
    whl(up, "extras-lib", "1.0", any, &["core<2"], None);
    whl(up, "unused", "1.0", any, &[], None);
    up.add("app", FakeFile::new(sdist("app", "2.0")));
}

/// `uv pip compile` for one environment: the pins it resolves.
fn uv_compile(dir: &Path, index: &str, python: &str, platform: &str, reqs: &str) -> BTreeMap<String, String> {
    let input = dir.join("requirements.in");
    std::fs::write(&input, reqs).unwrap();
    let out = Command::new(uv())
        .args(["pip", "compile", "--no-config", "--no-header", "--no-annotate", "--only-binary", ":all:"])
        .args(["--python-version", python, "--python-platform", platform, "--index-url", index])
        .arg(&input)
        .env("UV_CACHE_DIR", dir.join("uv-cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    assert!(out.status.success(), "uv pip compile {python} {platform}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (n.trim().to_string(), v.split_whitespace().next().unwrap_or("").to_string()))
        .collect()
}

/// Every (project, version) the mirror lists.
fn mirrored(public: &Path) -> BTreeSet<(String, String)> {
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/index.v1_json")).unwrap()).unwrap();
    let mut out = BTreeSet::new();
    for p in root["projects"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let page: serde_json::Value =
            serde_json::from_slice(&std::fs::read(public.join("simple").join(name).join("index.v1_json")).unwrap())
                .unwrap();
        for v in page["versions"].as_array().unwrap() {
            out.insert((name.to_string(), v.as_str().unwrap().to_string()));
        }
    }
    out
}

fn manifest(env: &Env, extra: &str) {
    let pythons = "[\"3.11\", \"3.12\"]";
    let platforms = "[\"manylinux_2_28_x86_64\", \"manylinux_2_28_aarch64\", \"macosx_14_0_arm64\", \"win_amd64\"]";
    env.manifest(&format!(
        "[select]\npackages = [\"app[full]\"]\npython = {pythons}\nplatforms = {platforms}\nsdists = false\nlatest = 1\ndependencies = \"resolve\"\n{extra}"
    ));
}

fn resolution_matches_uv(pep658: bool) {
    let env = Env::new(Flavour::Json);
    graph(&env.upstream);
    env.upstream.serve_metadata(pep658);
    manifest(&env, "");
    let a = env.build().success();
    let err = stderr(&a);
    if pep658 {
        assert!(env.upstream.requests().iter().any(|r| r.ends_with(".whl.metadata")), "PEP 658 metadata used");
    } else {
        assert!(env.upstream.ranged() > 0, "METADATA read with range requests: {err}");
    }
    let served = Served::start(&env.public());
    let upstream = env.upstream.index_url();
    let mirror = format!("{}simple/", served.url);
    let mut union = BTreeSet::new();
    for (python, _, platform) in ENVS {
        let want = uv_compile(env.dir.path(), &upstream, python, platform, "app[full]\n");
        let got = uv_compile(env.dir.path(), &mirror, python, platform, "app[full]\n");
        assert_eq!(got, want, "{python} {platform}: the mirror resolves the same pins as the upstream");
        union.extend(want);
    }
    assert!(union.contains(&("core".into(), "1.5".into())) && union.contains(&("armaccel".into(), "1.0".into())));
    assert_eq!(mirrored(&env.public()), union, "nothing outside the pins is mirrored");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/installability.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["environments"], 8);
    assert_eq!(report["summary"]["installable"], 8, "{report:#}");
    // A rerun asks the upstream for no file and no metadata.
    env.upstream.clear_requests();
    env.build().success();
    let files: Vec<String> = env.upstream.file_requests();
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn resolution_matches_uv_per_environment_with_range_requests() {
    resolution_matches_uv(false);
}

#[test]
fn resolution_matches_uv_per_environment_with_pep_658_metadata() {
    resolution_matches_uv(true);
}

/// From a PEP 503 upstream that serves no metadata and refuses ranges:
/// metadata comes from verified downloads.
#[test]
fn pip_installs_the_resolution_in_this_machines_environment() {
    let env = Env::new(Flavour::Html);
    graph(&env.upstream);
    env.upstream.refuse_ranges();
    manifest(&env, "");
    env.build().success();
    let served = Served::start(&env.public());
    let py = venv(&env.path("venv"));
    let out = pip_install(&py, &format!("{}simple/", served.url), &["app[full]"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = run_python(&py, "import app, core, modern; print(app.__version__, core.__version__)");
    assert_eq!(got, "2.0 1.5", "extras-lib's core<2 made the resolver backtrack");
    assert_eq!(env.upstream.ranged(), 0);
}

/// `plan` shows what every environment would install.
#[test]
fn plan_shows_the_resolution_per_environment() {
    let env = Env::new(Flavour::Json);
    graph(&env.upstream);
    manifest(&env, "");
    let out = env.airlock().arg("plan").assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("@ cp311-win_amd64: ") && text.contains("winhelper==1.0"), "{text}");
    let aarch = text.lines().find(|l| l.starts_with("@ cp312-manylinux_2_28_aarch64: ")).unwrap();
    assert!(aarch.contains("armaccel==1.0") && aarch.contains("modern==3.0") && !aarch.contains("backport"), "{aarch}");
    assert!(!text.contains("unused"), "{text}");
    assert!(!env.public().exists(), "plan touches nothing");
}

#[test]
fn installable_fail_exits_1_and_leaves_the_served_tree() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "linuxonly", "1.0", "cp312-cp312-manylinux_2_17_x86_64", &[], None);
    whl(&env.upstream, "pure", "1.0", "py3-none-any", &["linuxonly"], None);
    let m = |mode: &str, platforms: &str| {
        env.manifest(&format!(
            "[select]\npackages = [\"pure\"]\npython = [\"3.12\"]\nplatforms = {platforms}\nsdists = false\ndependencies = true\ninstallable = \"{mode}\"\n"
        ))
    };
    m("fail", "[\"manylinux_2_28_x86_64\"]");
    env.build().success();
    let before = tree(&env.public());
    m("warn", "[\"manylinux_2_28_x86_64\", \"win_amd64\"]");
    let a = env.build().success();
    let err = stderr(&a);
    assert!(err.contains("linuxonly cannot be installed from the mirror on cp312-win_amd64"), "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/installability.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["failing"], serde_json::json!(["cp312-win_amd64"]));
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/installability.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&report).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let win = &report["environments"][1];
    assert_eq!(win["problems"][0]["reason"], "no-wheel", "{win:#}");
    let landing = std::fs::read_to_string(env.public().join("index.html")).unwrap();
    assert!(landing.contains("<code>cp312-win_amd64</code>") && landing.contains("no wheel for"), "{landing}");
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    assert!(md.contains("`cp312-win_amd64`: linuxonly: no wheel for cp312-win_amd64"), "{md}");
    let warned = tree(&env.public());
    assert_ne!(warned, before);
    m("fail", "[\"manylinux_2_28_x86_64\", \"win_amd64\"]");
    let a = env.build().code(1);
    assert!(stderr(&a).contains("nothing is published"), "{}", stderr(&a));
    assert!(tree(&env.public()) == warned, "the served tree is untouched");
}

/// Lock files written by real uv against the fake upstream are mirrored
/// exactly; a lock hash that disagrees with the upstream is refused.
#[test]
fn uv_lock_and_pylock_are_mirrored_exactly() {
    let env = Env::new(Flavour::Json);
    graph(&env.upstream);
    let project = env.path("proj");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("pyproject.toml"),
        "[project]\nname = \"demo\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"app[full]\"]\n",
    )
    .unwrap();
    let uv_run = |args: &[&str]| {
        let out = Command::new(uv())
            .args(args)
            .args(["--no-config", "--index-url", &env.upstream.index_url()])
            .current_dir(&project)
            .env("UV_CACHE_DIR", env.path("uv-cache"))
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
            .unwrap();
        assert!(out.status.success(), "uv {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    uv_run(&["lock"]);
    uv_run(&["export", "--format", "pylock.toml", "-o", "pylock.toml"]);
    for lock in ["uv.lock", "pylock.toml"] {
        let env2 = Env { dir: tempfile::tempdir().unwrap(), upstream: env.upstream.clone() };
        std::fs::copy(project.join(lock), env2.path(lock)).unwrap();
        env2.manifest(&format!(
            "[select]\nlockfiles = [\"{lock}\"]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_x86_64\", \"win_amd64\"]\nsdists = false\n"
        ));
        env2.build().success();
        let files: BTreeSet<String> = tree(&env2.public())
            .into_keys()
            .filter(|k| k.starts_with("packages/") && !k.ends_with(".metadata"))
            .map(|k| k.rsplit('/').next().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = [
            "app-2.0-py3-none-any.whl",
            "backport-1.0-py3-none-any.whl",
            "core-1.5-py3-none-any.whl",
            "extras_lib-1.0-py3-none-any.whl",
            "modern-3.0-py3-none-any.whl",
            "winhelper-1.0-py3-none-any.whl",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        // backport is for Python < 3.12: the lock names it for no target here.
        let want: BTreeSet<String> = want.into_iter().filter(|f| !f.starts_with("backport")).collect();
        assert_eq!(files, want, "{lock}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env2.public().join("reports/installability.json")).unwrap()).unwrap();
        assert_eq!(report["summary"]["installable"], 2, "{lock}: {report:#}");
    }
    // The upstream now declares another sha256 for a locked file: refused, reported.
    let env3 = Env { dir: tempfile::tempdir().unwrap(), upstream: Upstream::start(Flavour::Json) };
    graph(&env3.upstream);
    let (name, bytes) = wheel("modern", "3.0", WheelSpec::default());
    env3.upstream.add(
        "modern",
        FakeFile {
            declared_sha256: Some("ab".repeat(32)),
            requires_python: Some(">=3.12".into()),
            ..FakeFile::new((name, bytes))
        },
    );
    std::fs::copy(project.join("uv.lock"), env3.path("uv.lock")).unwrap();
    env3.manifest("[select]\nlockfiles = [\"uv.lock\"]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_x86_64\"]\nsdists = false\n");
    let a = env3.build().code(1);
    let err = stderr(&a);
    assert!(
        err.contains("POSSIBLE TAMPERING: modern/modern-3.0-py3-none-any.whl: ")
            && err.contains("uv.lock locks sha256"),
        "{err}"
    );
    assert!(!env3.path(".airlock/store/modern/modern-3.0-py3-none-any.whl").exists(), "never fetched");
}

/// What used to go unsaid: a pin no environment can use, a version only an
/// sdist serves on some environment.
#[test]
fn unusable_pins_and_sdist_only_versions_are_named() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "linuxonly", "1.0", "cp312-cp312-manylinux_2_17_x86_64", &[], None);
    whl(&env.upstream, "pure", "1.0", "py3-none-any", &[], None);
    env.upstream.add("builds", FakeFile::new(sdist("builds", "1.0")));
    env.manifest(
        "[select]\npackages = [\"linuxonly==1.0\", \"pure\", \"builds\"]\npython = [\"3.12\"]\nplatforms = [\"win_amd64\"]\ndependencies = true\n",
    );
    let a = env.build().success();
    let err = stderr(&a);
    assert!(
        err.contains("linuxonly: ")
            && err.contains("`linuxonly==1.0` pins a version no target environment can install"),
        "{err}"
    );
    env.manifest("[select]\npackages = [\"pure\", \"builds\"]\npython = [\"3.12\"]\nplatforms = [\"win_amd64\"]\ndependencies = true\n");
    let a = env.build().success();
    let err = stderr(&a);
    assert!(err.contains("builds 1.0 installs only from its sdist (built on install) on cp312-win_amd64"), "{err}");
    assert_eq!(listed(&env.public(), "builds"), ["builds-1.0.tar.gz"]);
}

/// An early decision that later projects keep conflicting with is revisited,
/// as uv does: frames takes dates 4.0 before tools' cloud is even seen, and
/// every cloud release needs dates < 3. Plain PubGrub would reject the 40
/// cloud releases one by one (fetching metadata for each); airlock backs
/// out of dates 4.0 after a few conflicts and lands on uv's answer.
#[test]
fn a_decision_that_keeps_conflicting_is_revisited_like_uv() {
    let env = Env::new(Flavour::Json);
    let any = "py3-none-any";
    whl(&env.upstream, "frames", "1.0", any, &["dates>=2"], None);
    whl(&env.upstream, "tools", "1.0", any, &["cloud"], None);
    for v in ["2.0", "3.0", "4.0"] {
        whl(&env.upstream, "dates", v, any, &[], None);
    }
    for minor in 0..40 {
        whl(&env.upstream, "cloud", &format!("1.{minor}"), any, &["dates<3"], None);
    }
    env.upstream.serve_metadata(true);
    env.manifest(
        "[select]\npackages = [\"frames\", \"tools\"]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_x86_64\"]\nsdists = false\nlatest = 1\ndependencies = \"resolve\"\n",
    );
    env.build().success();
    let fetched = env.upstream.requests().iter().filter(|r| r.contains("cloud-") && r.ends_with(".metadata")).count();
    assert!(fetched < 10, "{fetched} cloud metadata files fetched");
    let want =
        uv_compile(env.dir.path(), &env.upstream.index_url(), "3.12", "x86_64-manylinux_2_28", "frames\ntools\n");
    assert_eq!((want.get("cloud"), want.get("dates")), (Some(&"1.39".into()), Some(&"2.0".into())), "{want:?}");
    let union: BTreeSet<(String, String)> = want.into_iter().collect();
    assert_eq!(mirrored(&env.public()), union);
}
