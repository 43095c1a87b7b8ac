//! Mirror core: selection, normalization, verification, hostile upstreams,
//! determinism — the real binary against the fake upstream.

use crate::support::*;

fn populate(up: &Upstream) {
    up.add(
        "Zope.Interface",
        FakeFile::new(wheel(
            "Zope.Interface",
            "5.0",
            WheelSpec { tag: "cp311-cp311-manylinux_2_17_x86_64", ..Default::default() },
        ))
        .uploaded("2020-01-01T00:00:00Z"),
    );
    up.add(
        "Zope.Interface",
        FakeFile::new(wheel(
            "Zope.Interface",
            "6.0",
            WheelSpec { tag: "cp311-cp311-manylinux_2_17_x86_64", ..Default::default() },
        ))
        .uploaded("2023-01-01T00:00:00Z"),
    );
    up.add(
        "Zope.Interface",
        FakeFile::new(wheel("Zope.Interface", "6.0", WheelSpec { tag: "cp312-cp312-win_amd64", ..Default::default() }))
            .uploaded("2023-01-01T00:00:00Z"),
    );
    up.add(
        "Zope.Interface",
        FakeFile::new(wheel(
            "Zope.Interface",
            "6.0",
            WheelSpec { tag: "cp311-cp311-manylinux_2_28_x86_64", ..Default::default() },
        ))
        .uploaded("2023-01-01T00:00:00Z"),
    );
    up.add("Zope.Interface", FakeFile::new(sdist("Zope.Interface", "6.0")).uploaded("2023-01-01T00:00:00Z"));
    up.add(
        "ruamel.yaml",
        FakeFile::new(wheel("ruamel.yaml", "0.18.0", WheelSpec::default())).uploaded("2023-06-01T00:00:00Z"),
    );
    up.add(
        "ruamel.yaml",
        FakeFile::new(wheel("ruamel.yaml", "0.19.0b1", WheelSpec::default())).uploaded("2024-01-01T00:00:00Z"),
    );
    up.add(
        "typing_extensions",
        FakeFile::new(wheel("typing_extensions", "4.0.0", WheelSpec::default())).uploaded("2021-01-01T00:00:00Z"),
    );
    up.add(
        "typing_extensions",
        FakeFile::new(wheel("typing_extensions", "4.1.0", WheelSpec::default())).uploaded("2022-01-01T00:00:00Z"),
    );
    up.add(
        "typing_extensions",
        FakeFile::new(wheel("typing_extensions", "4.2.0", WheelSpec::default()))
            .uploaded("2022-06-01T00:00:00Z")
            .yanked("broken"),
    );
    let newest = FakeFile::new(wheel(
        "typing_extensions",
        "4.3.0",
        WheelSpec { requires_python: Some(">=3.13"), ..Default::default() },
    ));
    up.add(
        "typing_extensions",
        FakeFile { requires_python: Some(">=3.13".into()), ..newest }.uploaded("2023-01-01T00:00:00Z"),
    );
}

fn selection_case(flavour: Flavour) {
    let env = Env::new(flavour);
    populate(&env.upstream);
    env.manifest(
        r#"
[select]
packages = ["zope.interface>=6", "Ruamel.Yaml", "typing-extensions"]
python = ["3.11"]
platforms = ["manylinux_2_17_x86_64"]
sdists = false
[select.project.typing_extensions]
latest = 1
"#,
    );
    env.build().success();
    let public = env.public();
    // Specifier (>=6) and tags: only the cp311 manylinux_2_17 wheel; not 2_28, not win, no sdist.
    assert_eq!(listed(&public, "zope-interface"), ["zope_interface-6.0-cp311-cp311-manylinux_2_17_x86_64.whl"]);
    // Pre-release excluded by default.
    assert_eq!(listed(&public, "ruamel-yaml"), ["ruamel_yaml-0.18.0-py3-none-any.whl"]);
    // latest = 1 by upload time, after yanked (4.2.0) and requires-python (4.3.0 needs 3.13) are excluded.
    assert_eq!(listed(&public, "typing-extensions"), ["typing_extensions-4.1.0-py3-none-any.whl"]);
    // Both formats list the same files, under normalized project directories.
    for p in ["zope-interface", "ruamel-yaml", "typing-extensions"] {
        assert_eq!(listed(&public, p), listed_html(&public, p), "{p}");
    }
    let root = std::fs::read_to_string(public.join("simple/index.html")).unwrap();
    for p in ["zope-interface/", "ruamel-yaml/", "typing-extensions/"] {
        assert!(root.contains(&format!("href=\"{p}\"")), "{root}");
    }
    let root_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/index.v1_json")).unwrap()).unwrap();
    assert_eq!(root_json["projects"].as_array().unwrap().len(), 3);
}

#[test]
fn selects_by_specifier_tags_prerelease_yanked_latest_json_upstream() {
    selection_case(Flavour::Json);
}

#[test]
fn selects_by_specifier_tags_prerelease_yanked_latest_html_upstream() {
    selection_case(Flavour::Html);
}

#[test]
fn prereleases_and_yanked_when_asked() {
    let env = Env::new(Flavour::Json);
    populate(&env.upstream);
    env.manifest(
        r#"
[select]
packages = ["ruamel.yaml", "typing_extensions==4.2.0"]
prereleases = true
"#,
    );
    env.build().success();
    assert_eq!(
        listed(&env.public(), "ruamel-yaml"),
        ["ruamel_yaml-0.18.0-py3-none-any.whl", "ruamel_yaml-0.19.0b1-py3-none-any.whl"]
    );
    // A == pin takes the yanked file, and the index says it is yanked (PEP 592).
    assert_eq!(listed(&env.public(), "typing-extensions"), ["typing_extensions-4.2.0-py3-none-any.whl"]);
    let html = std::fs::read_to_string(env.public().join("simple/typing-extensions/index.html")).unwrap();
    assert!(html.contains("data-yanked=\"broken\""), "{html}");
    let json = std::fs::read_to_string(env.public().join("simple/typing-extensions/index.v1_json")).unwrap();
    assert!(json.contains("\"yanked\":\"broken\""), "{json}");
}

#[test]
fn pages_carry_hashes_metadata_and_pep_700_fields() {
    let env = Env::new(Flavour::Json);
    let whl = FakeFile::new(wheel("demo", "1.0", WheelSpec { requires_python: Some(">=3.8"), ..Default::default() }))
        .uploaded("2024-05-06T07:08:09.123456Z");
    let sha = whl.sha256();
    env.upstream.add("demo", FakeFile { requires_python: Some(">=3.8".into()), ..whl });
    env.manifest("[select]\npackages = [\"demo\"]\n");
    env.build().success();
    let public = env.public();
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/demo/index.v1_json")).unwrap()).unwrap();
    let f = &page["files"][0];
    assert_eq!(page["meta"]["api-version"], "1.1");
    assert_eq!(page["versions"], serde_json::json!(["1.0"]));
    assert_eq!(f["hashes"]["sha256"], sha);
    assert_eq!(f["url"], "../../packages/demo/demo-1.0-py3-none-any.whl");
    assert_eq!(f["requires-python"], ">=3.8");
    assert_eq!(f["upload-time"], "2024-05-06T07:08:09.123456Z");
    let meta_sha = f["core-metadata"]["sha256"].as_str().unwrap();
    assert_eq!(f["dist-info-metadata"]["sha256"], meta_sha);
    // PEP 658: the .metadata file is the wheel's METADATA, with the declared hash.
    let meta = std::fs::read(public.join("packages/demo/demo-1.0-py3-none-any.whl.metadata")).unwrap();
    assert!(String::from_utf8_lossy(&meta).contains("Name: demo"));
    assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&meta)), meta_sha);
    let html = std::fs::read_to_string(public.join("simple/demo/index.html")).unwrap();
    assert!(html.contains(&format!("#sha256={sha}")));
    assert!(html.contains("data-requires-python=\"&gt;=3.8\""), "{html}");
    assert!(html.contains(&format!("data-core-metadata=\"sha256={meta_sha}\"")));
    assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));
}

#[test]
fn wrong_hash_and_truncated_body_are_never_published() {
    let env = Env::new(Flavour::Json);
    let good = FakeFile::new(wheel("good", "1.0", WheelSpec::default()));
    let corrupt = FakeFile::new(wheel("corrupt", "1.0", WheelSpec::default()));
    let cut = FakeFile::new(wheel("cut", "1.0", WheelSpec::default()));
    let expected = corrupt.sha256();
    let corrupt_name = corrupt.filename.clone();
    env.upstream.add("good", good);
    env.upstream.fault(&format!("/files/{corrupt_name}"), Fault::Corrupt);
    env.upstream.fault(&format!("/files/{}", cut.filename), Fault::Truncate);
    env.upstream.add("corrupt", corrupt);
    env.upstream.add("cut", cut);
    // publish_partial: the good file is published although the run failed.
    env.manifest("publish_partial = true\n[select]\npackages = [\"good\", \"corrupt\", \"cut\"]\n");
    let out = env.build().code(1);
    let err = stderr(&out);
    assert!(err.contains(&format!("{corrupt_name}: sha256 mismatch")), "{err}");
    assert!(err.contains(&format!("expected {expected}, computed ")), "{err}");
    assert!(err.contains("cut-1.0-py3-none-any.whl: truncated"), "{err}");
    assert!(err.contains("received"), "{err}");
    let public = env.public();
    assert_eq!(listed(&public, "good"), ["good-1.0-py3-none-any.whl"], "one failure never stops the others");
    assert!(listed(&public, "corrupt").is_empty() && listed(&public, "cut").is_empty());
    let files: Vec<String> = tree(&public).into_keys().collect();
    assert!(!files.iter().any(|f| f.contains("corrupt-") || f.contains("cut-")), "{files:?}");
    let stored: Vec<String> = tree(&env.path(".airlock/store")).into_keys().collect();
    assert!(!stored.iter().any(|f| f.contains("corrupt-") || f.contains("cut-")), "{stored:?}");
    // Nothing partial is left behind either.
    assert!(tree(&env.path(".airlock/tmp")).is_empty());
}

#[test]
fn missing_hash_is_refused_unless_allowed() {
    let env = Env::new(Flavour::Html);
    env.upstream
        .add("nohash", FakeFile { no_hash: true, ..FakeFile::new(wheel("nohash", "1.0", WheelSpec::default())) });
    env.manifest("[select]\npackages = [\"nohash\"]\n");
    let out = env.build().code(1);
    assert!(stderr(&out).contains("declares no sha256"), "{}", stderr(&out));
    assert!(listed(&env.public(), "nohash").is_empty());
    let text = std::fs::read_to_string(env.path("mirror.toml"))
        .unwrap()
        .replace("[mirror]\n", "[mirror]\nallow_missing_hashes = true\n");
    std::fs::write(env.path("mirror.toml"), text).unwrap();
    env.build().success();
    assert_eq!(listed(&env.public(), "nohash"), ["nohash-1.0-py3-none-any.whl"]);
}

#[test]
fn hostile_upstream_cannot_escape_or_inject() {
    for flavour in [Flavour::Json, Flavour::Html] {
        let env = Env::new(flavour);
        let ok = FakeFile::new(wheel("evil", "1.0", WheelSpec::default()));
        env.upstream.add(
            "evil",
            FakeFile {
                requires_python: Some("\"><script>alert(1)</script>".into()),
                yanked: Some("<img src=x onerror=alert(2)>".into()),
                ..ok
            },
        );
        for name in
            ["../../../escape-1.0.tar.gz", "/etc/evil-1.0.tar.gz", "evil-2.0.tar.gz\0.txt", "evil-3.0<script>.tar.gz"]
        {
            // In the href too: an HTML upstream's filename is the link's last path segment.
            let url = format!(
                "../../files/{}",
                percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
            );
            env.upstream
                .add("evil", FakeFile { filename: name.into(), url: Some(url), ..FakeFile::new(sdist("evil", "9.9")) });
        }
        env.manifest("[select]\npackages = [\"evil\"]\nyanked = true\n");
        let out = env.build().success();
        let err = stderr(&out);
        // Counted on the console; every reason is in the reports.
        assert!(err.contains("skipping 4 upstream file(s)"), "{err}");
        let report = std::fs::read_to_string(env.public().join("reports/security.json")).unwrap();
        assert!(report.contains("unsafe filename"), "{report}");
        assert!(!env.dir.path().parent().unwrap().join("escape-1.0.tar.gz").exists());
        let all = tree(&env.public());
        assert_eq!(
            all.keys().filter(|k| k.starts_with("packages/")).collect::<Vec<_>>(),
            ["packages/evil/evil-1.0-py3-none-any.whl", "packages/evil/evil-1.0-py3-none-any.whl.metadata"]
        );
        for (path, bytes) in &all {
            if path.ends_with(".html") {
                let text = String::from_utf8_lossy(bytes);
                assert!(!text.contains("<script>alert") && !text.contains("<img"), "{path}: {text}");
            }
        }
        let html = String::from_utf8_lossy(&all["simple/evil/index.html"]).into_owned();
        assert!(html.contains("data-yanked=\"&lt;img src=x onerror=alert(2)&gt;\""), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
    }
}

#[test]
fn identical_inputs_give_byte_identical_trees() {
    let mut trees = Vec::new();
    for _ in 0..2 {
        let env = Env::new(Flavour::Json);
        populate(&env.upstream);
        env.manifest("[select]\npackages = [\"zope.interface\", \"ruamel.yaml\", \"typing_extensions\"]\n");
        env.airlock().arg("build").env("SOURCE_DATE_EPOCH", "1700000000").assert().success();
        // The upstream's port appears on the landing page and in the reports;
        // it is the one input that differs.
        let port = env.upstream.port.to_string();
        let t: std::collections::BTreeMap<String, Vec<u8>> = tree(&env.public())
            .into_iter()
            .map(|(k, v)| match String::from_utf8(v) {
                Ok(text) => (k, text.replace(&port, "PORT").into_bytes()),
                Err(e) => (k, e.into_bytes()),
            })
            .collect();
        trees.push(t);
    }
    assert_eq!(trees[0].keys().collect::<Vec<_>>(), trees[1].keys().collect::<Vec<_>>());
    assert!(trees[0] == trees[1], "trees differ");
    assert!(trees[0].len() > 10);
}

#[test]
fn rerun_fetches_nothing_new_and_offline_rebuilds() {
    let env = Env::new(Flavour::Json);
    populate(&env.upstream);
    env.manifest("[select]\npackages = [\"ruamel.yaml\", \"typing_extensions\"]\n");
    env.build().success();
    let first = env.upstream.file_requests().len();
    assert_eq!(first, 4);
    env.upstream.clear_requests();
    env.build().success();
    assert!(env.upstream.file_requests().is_empty(), "{:?}", env.upstream.requests());
    let before = tree(&env.public());
    env.upstream.clear_requests();
    env.airlock().args(["build", "--offline"]).assert().success();
    assert!(env.upstream.requests().is_empty(), "offline made requests: {:?}", env.upstream.requests());
    let after = tree(&env.public());
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
}

#[test]
fn flaky_upstream_is_retried() {
    let env = Env::new(Flavour::Json);
    let f = FakeFile::new(wheel("flaky", "1.0", WheelSpec::default()));
    env.upstream.fault(&format!("/files/{}", f.filename), Fault::StatusThenOk { status: 503, times: 2 });
    env.upstream.fault("/simple/flaky/", Fault::StatusThenOk { status: 429, times: 1 });
    env.upstream.add("flaky", f);
    env.upstream.add("down", FakeFile::new(wheel("down", "1.0", WheelSpec::default())));
    env.upstream.fault("/files/down-1.0-py3-none-any.whl", Fault::Always(500));
    env.manifest("publish_partial = true\n[select]\npackages = [\"flaky\", \"down\"]\n");
    let out = env.build().code(1);
    assert_eq!(listed(&env.public(), "flaky"), ["flaky-1.0-py3-none-any.whl"]);
    let err = stderr(&out);
    assert!(
        err.contains("down-1.0-py3-none-any.whl")
            && err.contains("HTTP 500")
            && err.contains("gave up after 4 attempts"),
        "{err}"
    );
    let hits = env.upstream.requests().iter().filter(|r| r.ends_with("flaky-1.0-py3-none-any.whl")).count();
    assert_eq!(hits, 3);
}

#[test]
fn unknown_project_and_bad_manifest_are_clear_errors() {
    let env = Env::new(Flavour::Json);
    env.manifest("[select]\npackages = [\"nope\"]\n");
    let out = env.build().code(1);
    assert!(stderr(&out).contains("project `nope` not found"), "{}", stderr(&out));
    std::fs::write(env.path("mirror.toml"), "[mirror]\njobz = 3\n").unwrap();
    let out = env.build().code(1);
    assert!(
        stderr(&out).contains("mirror.toml:2:1: unknown key `jobz` in [mirror]; did you mean `jobs`?"),
        "{}",
        stderr(&out)
    );
    env.airlock().args(["build", "--jobs", "0"]).assert().code(2);
}

#[test]
fn requirements_files_with_includes() {
    let env = Env::new(Flavour::Json);
    populate(&env.upstream);
    std::fs::write(env.path("base.txt"), "# base\nruamel.yaml==0.18.0\n").unwrap();
    std::fs::write(env.path("requirements.txt"), "-r base.txt\ntyping_extensions>=4.1 ; python_version >= \"3.8\"\n")
        .unwrap();
    env.manifest("[select]\nrequirements = [\"requirements.txt\"]\n");
    env.build().success();
    assert_eq!(listed(&env.public(), "ruamel-yaml"), ["ruamel_yaml-0.18.0-py3-none-any.whl"]);
    assert_eq!(
        listed(&env.public(), "typing-extensions"),
        ["typing_extensions-4.1.0-py3-none-any.whl", "typing_extensions-4.3.0-py3-none-any.whl"]
    );
}

#[test]
fn plan_touches_nothing() {
    let env = Env::new(Flavour::Json);
    populate(&env.upstream);
    env.manifest("[select]\npackages = [\"ruamel.yaml\"]\n");
    let out = env.airlock().arg("plan").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("+ ruamel-yaml 0.18.0: ruamel_yaml-0.18.0-py3-none-any.whl"), "{stdout}");
    assert!(stdout.contains("plan: add 1 file(s)"), "{stdout}");
    assert!(!env.path(".airlock").exists() && !env.public().exists());
    assert!(env.upstream.file_requests().is_empty());
}

/// Both ways of following dependencies (`true` means "resolve") agree on
/// a graph with one version per requirement.
#[test]
fn dependency_closure_follows_markers_and_extras() {
    for mode in ["true", "\"all\""] {
        dependencies_follow_markers_and_extras(mode);
    }
}

fn dependencies_follow_markers_and_extras(mode: &str) {
    let env = Env::new(Flavour::Json);
    let up = &env.upstream;
    up.add(
        "app",
        FakeFile::new(wheel(
            "app",
            "1.0",
            WheelSpec {
                requires: &[
                    "libdep>=1.0",
                    "winonly; sys_platform == 'win32'",
                    "fancy; extra == 'ui'",
                    "oldpy; python_version < '3.8'",
                ],
                ..Default::default()
            },
        )),
    );
    up.add("libdep", FakeFile::new(wheel("libdep", "0.9", WheelSpec::default())));
    up.add(
        "libdep",
        FakeFile::new(wheel("libdep", "1.2", WheelSpec { requires: &["leaf==2.*"], ..Default::default() })),
    );
    up.add("leaf", FakeFile::new(wheel("leaf", "1.0", WheelSpec::default())));
    up.add("leaf", FakeFile::new(wheel("leaf", "2.1", WheelSpec::default())));
    for p in ["winonly", "fancy", "oldpy"] {
        up.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
    }
    env.manifest(&format!(
        "[select]\npackages = [\"app[ui]\"]\npython = [\"3.12\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\ndependencies = {mode}\n"
    ));
    env.build().success();
    let public = env.public();
    assert_eq!(listed(&public, "libdep"), ["libdep-1.2-py3-none-any.whl"], "{mode}");
    assert_eq!(listed(&public, "leaf"), ["leaf-2.1-py3-none-any.whl"], "{mode}: transitive, with its own specifier");
    assert_eq!(listed(&public, "fancy"), ["fancy-1.0-py3-none-any.whl"], "extra requested");
    assert!(listed(&public, "winonly").is_empty(), "marker false on linux");
    assert!(listed(&public, "oldpy").is_empty(), "marker false on 3.12");
    // A rerun finds everything stored and fetches nothing.
    env.upstream.clear_requests();
    env.build().success();
    assert!(env.upstream.file_requests().is_empty());
}

#[test]
fn index_command_indexes_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("nested")).unwrap();
    let (w, wb) = wheel("My.Pkg", "1.0", WheelSpec { requires_python: Some(">=3.9"), ..Default::default() });
    std::fs::write(dist.join(&w), &wb).unwrap();
    let (s, sb) = sdist("My.Pkg", "1.0");
    std::fs::write(dist.join("nested").join(&s), &sb).unwrap();
    let (o, ob) = wheel("other", "0.1", WheelSpec::default());
    std::fs::write(dist.join(&o), &ob).unwrap();
    std::fs::write(dist.join("notes.txt"), "not a distribution").unwrap();
    airlock_in(dir.path()).args(["index", "dist", "--out", "site"]).env("SOURCE_DATE_EPOCH", "0").assert().success();
    let site = dir.path().join("site");
    assert_eq!(listed(&site, "my-pkg"), ["my_pkg-1.0-py3-none-any.whl", "my_pkg-1.0.tar.gz"]);
    assert_eq!(listed(&site, "other"), ["other-0.1-py3-none-any.whl"]);
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.join("simple/my-pkg/index.v1_json")).unwrap()).unwrap();
    assert_eq!(page["files"][0]["requires-python"], ">=3.9", "read from the wheel's METADATA");
    assert!(page["files"][0]["core-metadata"]["sha256"].is_string());
    assert_eq!(page["files"][1]["core-metadata"], false, "sdists have no PEP 658 metadata");
    let first = tree(&site);
    // Re-indexing the same directory gives the same bytes.
    airlock_in(dir.path()).args(["index", "dist", "--out", "site"]).env("SOURCE_DATE_EPOCH", "0").assert().success();
    assert!(tree(&site) == first);
    // The third run is built inside the first run's tree (the one its swap
    // removes): a file gone from the directory is gone from the tree, a
    // file replaced under its name serves its new bytes, and the tree is
    // the one a fresh output gets, byte for byte.
    std::fs::remove_file(dist.join(&o)).unwrap();
    std::fs::remove_file(dist.join(&w)).unwrap();
    let (_, newer) = wheel("My.Pkg", "1.0", WheelSpec { requires_python: Some(">=3.8"), ..Default::default() });
    std::fs::write(dist.join(&w), &newer).unwrap();
    airlock_in(dir.path()).args(["index", "dist", "--out", "site"]).env("SOURCE_DATE_EPOCH", "0").assert().success();
    let verbose = airlock_in(dir.path())
        .args(["-v", "--color", "never", "index", "dist", "--out", "fresh"])
        .env("SOURCE_DATE_EPOCH", "0")
        .assert()
        .success();
    // `-v` times each stage: wall clock, peak memory and cpu.
    let log = String::from_utf8_lossy(&verbose.get_output().stderr).into_owned();
    let lap = log.lines().find(|l| l.contains("stage render: ")).unwrap_or_else(|| panic!("no render lap in {log}"));
    assert!(lap.contains(", peak RSS so far ") && lap.contains("s user + ") && lap.ends_with("s system"), "{lap}");
    assert!(!site.join("packages/other").exists() && !site.join("simple/other").exists());
    assert_eq!(std::fs::read(site.join("packages/my-pkg").join(&w)).unwrap(), newer);
    assert!(tree(&site) == tree(&dir.path().join("fresh")), "a recycled tree is a fresh tree");
    // pip installs from it via file://.
    let py = crate::support::tools::venv(&dir.path().join("venv"));
    let url = format!("file://{}/simple/", std::fs::canonicalize(&site).unwrap().display());
    let out = crate::support::tools::pip_install(&py, &url, &["my.pkg"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn index_command_summarises_odd_files_lists_copies_once_and_refuses_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("copy")).unwrap();
    let (w, wb) = wheel("good", "1.0", WheelSpec::default());
    std::fs::write(dist.join(&w), &wb).unwrap();
    std::fs::write(dist.join("copy").join(&w), &wb).unwrap();
    for n in ["a-1.0-py2.7.egg", "b-1.0.win32.exe", "c.dmg", "notes.txt", "Quick.tar.gz"] {
        std::fs::write(dist.join(n), n).unwrap();
    }
    for v in ["1.0", "1.1", "1.2", "1.3"] {
        std::fs::write(dist.join(format!("broken-{v}-py3-none-any.whl")), b"not a zip").unwrap();
    }
    let index =
        || airlock_in(dir.path()).args(["index", "dist", "--out", "site"]).env("SOURCE_DATE_EPOCH", "0").assert();
    let out = index().success();
    let err = stderr(&out);
    // Many odd files make one warning each kind, with a count and examples.
    assert_eq!(err.matches("skipping").count(), 1, "{err}");
    assert!(err.contains("skipping 5 file(s) that are not wheels or sdists"), "{err}");
    assert!(err.contains("no PEP 658 metadata for 4 wheel(s)"), "{err}");
    let site = dir.path().join("site");
    assert_eq!(listed(&site, "good"), [w.as_str()], "the same file twice is listed once");
    assert_eq!(listed(&site, "broken").len(), 4, "a wheel without readable METADATA is still listed");
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.join("simple/broken/index.v1_json")).unwrap()).unwrap();
    assert_eq!(page["files"][0]["core-metadata"], false);
    // Reruns keep the served tree and the one before it, no more.
    index().success();
    index().success();
    let trees = std::fs::read_dir(dir.path().join(".site.airlock"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("tree-"))
        .count();
    assert_eq!(trees, 2);
    // Two different files of one name cannot both be served: the run fails
    // naming both, and the served tree stays.
    let served = tree(&site);
    std::fs::create_dir_all(dist.join("other")).unwrap();
    std::fs::write(dist.join("other").join(&w), b"other bytes").unwrap();
    let out = index().failure();
    let err = stderr(&out);
    assert!(err.contains("same filename but different contents") && err.contains("other/"), "{err}");
    assert!(tree(&site) == served);
}

#[test]
fn credentials_are_sent_but_never_printed() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("private", FakeFile::new(wheel("private", "1.0", WheelSpec::default())));
    let url = env.upstream.index_url().replace("http://", "http://alice:s3cr3t-t0ken@");
    std::fs::write(
        env.path("mirror.toml"),
        format!(
            "[mirror]\nupstream = \"{url}\"\npublish_partial = true\n[select]\npackages = [\"private\", \"missing\"]\n"
        ),
    )
    .unwrap();
    let out = env.build().code(1);
    let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.get_output().stdout));
    assert!(all.contains("project `missing` not found"), "{all}");
    assert!(!all.contains("s3cr3t") && !all.contains("alice"), "credentials leaked: {all}");
    let basic =
        format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:s3cr3t-t0ken"));
    let auth = env.upstream.authorizations();
    assert!(!auth.is_empty() && auth.iter().all(|a| a.as_deref() == Some(basic.as_str())), "{auth:?}");
    let landing = std::fs::read_to_string(env.public().join("index.html")).unwrap();
    assert!(!landing.contains("s3cr3t"));
}

#[test]
fn netrc_credentials_are_used() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("private", FakeFile::new(wheel("private", "1.0", WheelSpec::default())));
    std::fs::write(env.path("netrc"), "machine 127.0.0.1 login bob password hunter2\n").unwrap();
    env.manifest("[select]\npackages = [\"private\"]\n");
    env.airlock().arg("build").env("NETRC", env.path("netrc")).assert().success();
    let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:hunter2"));
    assert!(env.upstream.authorizations().iter().all(|a| a.as_deref() == Some(basic.as_str())));
}

#[test]
fn http_proxy_and_no_proxy_are_honoured() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("proxied", FakeFile::new(wheel("proxied", "1.0", WheelSpec::default())));
    // The index host does not exist: only a proxy can reach it.
    std::fs::write(env.path("mirror.toml"), "[mirror]\nupstream = \"http://index.airlock-test.invalid/simple/\"\nretries = 0\n[select]\npackages = [\"proxied\"]\n").unwrap();
    let proxy = format!("http://127.0.0.1:{}", env.upstream.port);
    env.airlock().arg("build").env("HTTP_PROXY", &proxy).env("NO_PROXY", "127.0.0.1").assert().success();
    assert_eq!(listed(&env.public(), "proxied"), ["proxied-1.0-py3-none-any.whl"]);
    assert!(env.upstream.proxied() >= 2, "page and file both went through the proxy");
    let before = env.upstream.requests().len();
    let out =
        env.airlock().arg("build").env("HTTP_PROXY", &proxy).env("NO_PROXY", "airlock-test.invalid").assert().code(1);
    assert_eq!(env.upstream.requests().len(), before, "NO_PROXY host bypassed the proxy: {}", stderr(&out));
}
