//! Fail closed: no mistake and no missing data shrinks the served tree,
//! empties a bundle or turns the audit green. A conflicting pin, a
//! misspelt project and an uninstallable requirement keep what was
//! served; mass removals need `--allow-removals`; a `--hash` that names no
//! upstream file is tampering; an empty advisory source builds nothing;
//! `-c` constraints bind transitive dependencies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::tools::*;
use crate::support::*;

fn whl(up: &Upstream, name: &str, version: &str, requires: &[&str]) -> FakeFile {
    let f = FakeFile::new(wheel(name, version, WheelSpec { tag: "py3-none-any", requires, requires_python: None }));
    up.add(name, f.clone());
    f
}

/// What clients install from: the simple pages and the packages.
fn index_of(public: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(public).into_iter().filter(|(k, _)| k.starts_with("simple/") || k.starts_with("packages/")).collect()
}

fn resolve_manifest(env: &Env, packages: &str, extra: &str) {
    env.manifest(&format!(
        "[select]\npackages = [{packages}]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_28_x86_64\"]\nsdists = false\ndependencies = \"resolve\"\n{extra}"
    ));
}

#[test]
fn a_conflict_a_misspelt_project_or_an_sdist_only_requirement_keep_the_served_tree() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "app", "1.0", &["lib-core>=2"]);
    whl(&env.upstream, "lib-core", "2.0", &[]);
    whl(&env.upstream, "lib-core", "2.1", &[]);
    env.upstream.add("sdonly", FakeFile::new(sdist("sdonly", "1.0")));
    resolve_manifest(&env, "\"app\"", "");
    env.build().success();
    let good = index_of(&env.public());
    assert!(good.contains_key("packages/lib-core/lib_core-2.1-py3-none-any.whl"), "{:?}", good.keys());

    // A conflicting pin: exit 0 under `installable = "warn"`, the cause in plain words.
    resolve_manifest(&env, "\"app\", \"lib-core<1\"", "");
    let a = env.build().success();
    let err = stderr(&a);
    assert!(err.contains("`app 1.0` needs `lib-core>=2`; you asked for `lib-core<1`"), "{err}");
    assert!(err.contains("keeps its last good resolution (run 1)"), "{err}");
    assert!(!err.contains("Because") && !err.contains("depends on"), "no solver internals: {err}");
    assert!(index_of(&env.public()) == good, "the served index is unchanged");
    let plan = env.airlock().arg("plan").assert().success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(text.contains("plan: add 0 file(s)") && text.contains("remove 0 from the index"), "{text}");

    // The same under `installable = "fail"`: exit 1.
    resolve_manifest(&env, "\"app\", \"lib-core<1\"", "installable = \"fail\"\n");
    let a = env.build().code(1);
    assert!(stderr(&a).contains("you asked for `lib-core<1`"), "{}", stderr(&a));
    assert!(index_of(&env.public()) == good);

    // A misspelt new project: exit 1, a suggestion, nothing shrinks.
    resolve_manifest(&env, "\"app\", \"lib-cor\"", "");
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("project `lib-cor` not found") && err.contains("did you mean `lib-core`?"), "{err}");
    assert!(index_of(&env.public()) == good);

    // A new requirement only an sdist serves, with `sdists = false`.
    resolve_manifest(&env, "\"app\", \"sdonly\"", "");
    let a = env.build().success();
    assert!(stderr(&a).contains("no version of `sdonly`"), "{}", stderr(&a));
    assert!(index_of(&env.public()) == good);

    // Fixed: it resolves again and moves on.
    resolve_manifest(&env, "\"app\", \"lib-core<2.1\"", "");
    env.airlock().args(["build", "--allow-removals"]).assert().success();
    assert_eq!(listed(&env.public(), "lib-core"), ["lib_core-2.0-py3-none-any.whl"]);
}

#[test]
fn a_requirement_nothing_meets_keeps_what_its_project_served() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "pkg", "1.0", &[]);
    env.manifest("[select]\npackages = [\"pkg\"]\n");
    env.build().success();
    let good = index_of(&env.public());
    env.manifest("[select]\npackages = [\"pkg>=5\"]\n");
    let a = env.build().success();
    assert!(stderr(&a).contains("the 1 file(s) it served stay listed"), "{}", stderr(&a));
    assert!(index_of(&env.public()) == good);
}

#[test]
fn dropping_most_of_the_mirror_is_refused_until_allowed() {
    let env = Env::new(Flavour::Json);
    let names = ["alpha", "bravo", "charlie", "delta", "echo"];
    for p in names {
        whl(&env.upstream, p, "1.0", &[]);
    }
    let list = |ps: &[&str]| ps.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    env.manifest(&format!("[select]\npackages = [{}]\n", list(&names)));
    env.build().success();
    let before = tree(&env.public());
    // One of five (20%) is within the default guard.
    env.manifest(&format!("[select]\npackages = [{}]\n", list(&names[..4])));
    env.build().success();
    let four = tree(&env.public());
    assert_ne!(four, before);
    // Three of the four left: refused, the tree untouched, the way out named.
    env.manifest("[select]\npackages = [\"alpha\"]\n");
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(err.contains("would unlist 3 of the 4 file(s)") && err.contains("--allow-removals"), "{err}");
    assert!(tree(&env.public()) == four, "the served tree is untouched");
    // Refused again on the next run, not let through because it was recorded.
    env.build().code(1);
    assert!(tree(&env.public()) == four);
    env.airlock().args(["build", "--allow-removals"]).assert().success();
    let root = std::fs::read_to_string(env.public().join("simple/index.html")).unwrap();
    assert!(root.contains("alpha/") && !root.contains("bravo/"), "{root}");
    // A count works too.
    env.manifest(&format!("max_removed = 0\n[select]\npackages = [{}]\n", list(&names)));
    env.build().success();
    env.manifest(&format!("max_removed = 0\n[select]\npackages = [{}]\n", list(&names[1..])));
    let a = env.build().code(1);
    assert!(stderr(&a).contains("`max_removed = 0`"), "{}", stderr(&a));
}

#[test]
fn an_altered_hash_in_a_hashed_requirements_line_is_tampering() {
    let env = Env::new(Flavour::Json);
    let w = whl(&env.upstream, "pkg", "1.0", &[]);
    let s = FakeFile::new(sdist("pkg", "1.0"));
    env.upstream.add("pkg", s.clone());
    let other = whl(&env.upstream, "other", "1.0", &[]).sha256();
    let lock = |hashes: &[String]| {
        let h: Vec<String> = hashes.iter().map(|h| format!("--hash=sha256:{h}")).collect();
        let text = format!("other==1.0 --hash=sha256:{other}\npkg==1.0 \\\n    {}\n", h.join(" "));
        std::fs::write(env.path("req.lock.txt"), text).unwrap();
    };
    env.manifest("[select]\nlockfiles = [\"req.lock.txt\"]\n");
    lock(&[w.sha256(), s.sha256()]);
    env.build().success();
    let good = index_of(&env.public());
    assert_eq!(listed(&env.public(), "pkg").len(), 2);

    // One of the two hashes altered: the line is refused, naming file:line.
    let mut altered = s.sha256();
    altered.replace_range(0..4, if altered.starts_with("0000") { "1111" } else { "0000" });
    lock(&[w.sha256(), altered.clone()]);
    let a = env.build().code(1);
    let err = stderr(&a);
    assert!(
        err.contains("POSSIBLE TAMPERING: pkg==1.0: req.lock.txt:2 names --hash=sha256:") && err.contains(&altered),
        "{err}"
    );
    assert!(index_of(&env.public()) == good, "pkg keeps what it served");
    // The refusal is news: changes.json and the feed say so.
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/changes.json")).unwrap()).unwrap();
    let t = &changes["tampering"][0];
    assert_eq!(t["project"], "pkg");
    assert_eq!(t["filename"], format!("sha256:{altered}"));
    let feed = std::fs::read_to_string(env.public().join("reports/feed.xml")).unwrap();
    assert!(feed.contains("POSSIBLE TAMPERING"), "{feed}");
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    assert!(md.contains("**POSSIBLE TAMPERING**") && !md.contains("Nothing changed"), "{md}");
}

fn osv(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv").join(dir)
}

#[test]
fn an_empty_or_shrunken_advisory_source_never_replaces_the_snapshot() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "vulnlib", "1.0", &[]);
    let empty = env.path("unmounted");
    std::fs::create_dir_all(&empty).unwrap();
    let policy = osv("policy");
    let sources = |dir: &Path| {
        env.manifest(&format!(
            "[select]\npackages = [\"vulnlib\"]\n[advisories]\nsources = [\"{}\"]\nmax_age_days = 30\n[policy]\nfail_on = \"high\"\n",
            dir.display()
        ))
    };
    sources(&policy);
    env.airlock().args(["advisories", "update"]).assert().success();
    let snapshot = env.path(".airlock/advisories.sqlite.zst");
    let before = std::fs::read(&snapshot).unwrap();
    env.build().code(3);

    // The source is an empty directory: nothing is built or replaced.
    sources(&empty);
    let a = env.airlock().args(["advisories", "update"]).assert().code(1);
    assert!(stderr(&a).contains("holds no OSV records"), "{}", stderr(&a));
    assert_eq!(std::fs::read(&snapshot).unwrap(), before);
    env.airlock().arg("audit").assert().code(3);
    let out = env.path("out.sqlite.zst");
    let a = env.airlock().args(["advisories", "build"]).arg(&empty).arg("-o").arg(&out).assert().code(1);
    assert!(stderr(&a).contains("unmounted") && !out.exists(), "{}", stderr(&a));

    // One advisory where there were three: refused unless --allow-shrink.
    let one = env.path("one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::copy(policy.join("PYSEC-2099-2.json"), one.join("PYSEC-2099-2.json")).unwrap();
    sources(&one);
    let a = env.airlock().args(["advisories", "update"]).assert().code(1);
    assert!(stderr(&a).contains("less than half") && stderr(&a).contains("--allow-shrink"), "{}", stderr(&a));
    assert_eq!(std::fs::read(&snapshot).unwrap(), before);
    env.airlock().args(["advisories", "update", "--allow-shrink"]).assert().success();
    assert_ne!(std::fs::read(&snapshot).unwrap(), before);

    // A tree of symbolic links to directories is followed, not skipped.
    let links = env.path("links");
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(&policy, links.join("policy")).unwrap();
    let a = env.airlock().args(["advisories", "build"]).arg(&links).arg("-o").arg(&out).assert().success();
    assert!(stderr(&a).contains(": 3 advisories"), "{}", stderr(&a));
}

#[test]
fn a_constraint_binds_a_transitive_dependency_and_pip_installs_with_it() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "top", "1.0", &["dep>=1"]);
    whl(&env.upstream, "dep", "1.0", &[]);
    whl(&env.upstream, "dep", "2.0", &[]);
    std::fs::write(env.path("c.txt"), "dep<2\n").unwrap();
    std::fs::write(env.path("requirements.txt"), "-c c.txt\ntop\n").unwrap();
    env.manifest(
        "[select]\nrequirements = [\"requirements.txt\"]\npython = [\"3.11\"]\nsdists = false\ndependencies = \"resolve\"\ninstallable = \"fail\"\n",
    );
    env.build().success();
    assert_eq!(listed(&env.public(), "dep"), ["dep-1.0-py3-none-any.whl"], "the constraint binds dep");
    let served = Served::start(&env.public());
    let py = venv(&env.path("venv"));
    let out = pip_install(
        &py,
        &format!("{}simple/", served.url),
        &["-r", env.path("requirements.txt").to_str().unwrap(), "-c", env.path("c.txt").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(run_python(&py, "import dep; print(dep.__version__)"), "1.0");
}
