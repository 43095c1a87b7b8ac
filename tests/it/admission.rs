//! The admission gate: a release enters only when it is old enough, still
//! offered upstream and not quarantined. Upload times are set relative to
//! "now", which `SOURCE_DATE_EPOCH` fixes for each run.

use std::path::Path;

use crate::support::*;

/// 2026-03-24T12:00:00Z, the runs' clock unless a test moves it.
const NOW: i64 = 1_774_353_600;

fn at(offset_hours: i64) -> String {
    jiff::Timestamp::from_second(NOW + offset_hours * 3600).unwrap().to_string()
}

fn whl(up: &Upstream, name: &str, version: &str, uploaded: Option<&str>) -> FakeFile {
    let mut f =
        FakeFile::new(wheel(name, version, WheelSpec { tag: "py3-none-any", requires: &[], requires_python: None }));
    if let Some(t) = uploaded {
        f = f.uploaded(t);
    }
    up.add(name, f.clone());
    f
}

fn build_at(env: &Env, hours: i64) -> assert_cmd::assert::Assert {
    env.airlock().arg("build").env("SOURCE_DATE_EPOCH", (NOW + hours * 3600).to_string()).assert()
}

fn security(public: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(public.join("reports/security.json")).unwrap()).unwrap()
}

fn versions(public: &Path, project: &str) -> Vec<String> {
    listed(public, project)
}

#[test]
fn a_young_release_is_held_until_due_and_then_enters() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "pkg", "1.0", Some(&at(-24 * 30)));
    whl(&env.upstream, "pkg", "1.1", Some(&at(-3)));
    whl(&env.upstream, "nodate", "1.0", None);
    env.manifest("[select]\npackages = [\"pkg\", \"nodate\"]\nmin_age = \"1d\"\n");
    let a = build_at(&env, 0).success();
    let err = stderr(&a);
    assert!(err.contains("held: pkg 1.1 is not served (younger than `min_age`); due 2026-03-25T09:00:00Z"), "{err}");
    assert!(err.contains("held: nodate 1.0 is not served (the upstream gives no upload time"), "{err}");
    let public = env.public();
    assert_eq!(versions(&public, "pkg"), ["pkg-1.0-py3-none-any.whl"]);
    assert!(!public.join("packages/pkg/pkg-1.1-py3-none-any.whl").exists(), "no file of a held release");
    assert!(versions(&public, "nodate").is_empty());
    let held = security(&public)["held"].clone();
    assert_eq!(held[0]["project"], "nodate");
    assert_eq!(held[0]["reason"], "no-upload-time");
    assert_eq!(held[0]["due"], serde_json::Value::Null);
    assert_eq!(held[1]["project"], "pkg");
    assert_eq!(held[1]["version"], "1.1");
    assert_eq!(held[1]["reason"], "young");
    assert_eq!(held[1]["due"], "2026-03-25T09:00:00Z");
    // Every report says it: changes.json, the feed, summary.md, the HTML
    // report and the landing page.
    let read = |rel: &str| std::fs::read_to_string(public.join(rel)).unwrap();
    let changes: serde_json::Value = serde_json::from_str(&read("reports/changes.json")).unwrap();
    assert_eq!(changes["held"][1], serde_json::json!({"project": "pkg", "version": "1.1"}));
    assert!(read("reports/feed.xml").contains("held (not yet admitted):\n  nodate 1.0\n  pkg 1.1"));
    assert!(read("reports/summary.md").contains("| pkg | 1.1 | young | 2026-03-25T09:00:00Z |"));
    assert!(read("reports/security.html").contains(
        "<td>pkg</td><td>1.1</td><td><span class=\"tag blocked\">young</span></td><td>2026-03-25T09:00:00Z</td>"
    ));
    assert!(read("index.html").contains("<b>2</b><span>held releases</span>"));
    // `airlock audit` plans nothing, and still reports the same holds.
    env.airlock().arg("audit").env("SOURCE_DATE_EPOCH", (NOW + 60).to_string()).assert().success();
    assert_eq!(security(&public)["held"], held.clone(), "audit keeps the build's holds");
    let plan = env.airlock().arg("plan").env("SOURCE_DATE_EPOCH", NOW.to_string()).assert().success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(text.contains("held: pkg 1.1") && text.contains("due 2026-03-25T09:00:00Z"), "{text}");

    // A day later the release is due: it enters with no change upstream.
    build_at(&env, 22).success();
    assert_eq!(versions(&public, "pkg"), ["pkg-1.0-py3-none-any.whl", "pkg-1.1-py3-none-any.whl"]);
    assert_eq!(security(&public)["held"].as_array().map(Vec::len), Some(1), "only nodate stays held");
}

#[test]
fn admit_entries_let_in_until_they_expire_and_a_fix_for_a_served_version_bypasses_the_hold() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "pkg", "1.0", Some(&at(-24 * 30)));
    whl(&env.upstream, "pkg", "2.0", Some(&at(-1)));
    let entry = |expires: &str| {
        format!(
            "[select]\npackages = [\"pkg\"]\nmin_age = \"3d\"\n[[select.admit]]\nproject = \"pkg\"\nversion = \"2.0\"\nreason = \"vendor hotfix, diff reviewed\"\nexpires = \"{expires}\"\n"
        )
    };
    env.manifest(&entry("2026-03-23"));
    let a = build_at(&env, 0).success();
    assert!(stderr(&a).contains("expired on 2026-03-23 and admits nothing"), "{}", stderr(&a));
    assert_eq!(versions(&env.public(), "pkg"), ["pkg-1.0-py3-none-any.whl"]);
    env.manifest(&entry("2026-04-01"));
    let a = build_at(&env, 0).success();
    assert!(
        stderr(&a).contains("admitted early: pkg 2.0 (vendor hotfix, diff reviewed), until 2026-04-01"),
        "{}",
        stderr(&a)
    );
    assert_eq!(versions(&env.public(), "pkg"), ["pkg-1.0-py3-none-any.whl", "pkg-2.0-py3-none-any.whl"]);
    let admitted = &security(&env.public())["admitted"];
    assert_eq!(admitted[0]["version"], "2.0");
    assert_eq!(admitted[0]["reason"], "vendor hotfix, diff reviewed");
    assert_eq!(admitted[0]["expires"], "2026-04-01");

    // The bypass: an advisory affects the served 1.0 and 1.5 fixes it.
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "pkg", "1.0", Some(&at(-24 * 30)));
    whl(&env.upstream, "pkg", "1.5", Some(&at(-2)));
    let osv = env.path("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("PYSEC-2026-9.json"),
        r#"{"id":"PYSEC-2026-9","modified":"2026-03-20T00:00:00Z","summary":"bad","affected":[{"package":{"ecosystem":"PyPI","name":"pkg"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.5"}]}]}]}"#,
    )
    .unwrap();
    let m = "[select]\npackages = [\"pkg\"]\nmin_age = \"3d\"\n[advisories]\nsources = [\"osv\"]\n";
    env.manifest(m);
    env.airlock().args(["advisories", "update"]).assert().success();
    // First run: nothing is served yet, so nothing is fixed; 1.5 waits.
    build_at(&env, 0).success();
    assert_eq!(versions(&env.public(), "pkg"), ["pkg-1.0-py3-none-any.whl"]);
    // Next run: 1.0 is served and affected, 1.5 fixes it: in at once.
    let a = build_at(&env, 1).code(0);
    assert!(stderr(&a).contains("admitted early: pkg 1.5 (fixes PYSEC-2026-9)"), "{}", stderr(&a));
    assert_eq!(versions(&env.public(), "pkg"), ["pkg-1.0-py3-none-any.whl", "pkg-1.5-py3-none-any.whl"]);
    assert_eq!(security(&env.public())["admitted"][0]["reason"], "fixes PYSEC-2026-9");
}

#[test]
fn what_the_upstream_withdraws_leaves_the_tree_and_an_outage_withdraws_nothing() {
    let env = Env::new(Flavour::Json);
    for p in ["gone-file", "gone-project", "quar", "arch", "flaky"] {
        whl(&env.upstream, p, "1.0", Some(&at(-100)));
        whl(&env.upstream, p, "1.1", Some(&at(-50)));
    }
    let m = "max_removed = \"100%\"\n[select]\npackages = [\"gone-file\", \"gone-project\", \"quar\", \"arch\", \"flaky\"]\n";
    env.manifest(m);
    build_at(&env, 0).success();
    let public = env.public();
    env.upstream.remove("gone-file", "gone_file-1.1-py3-none-any.whl");
    env.upstream.fault("/simple/gone-project/", Fault::Always(410));
    env.upstream.set_status("quar", "quarantined", Some("malware"));
    env.upstream.set_status("arch", "archived", Some("moved to arch2"));
    env.upstream.fault("/simple/flaky/", Fault::Always(503));
    let a = build_at(&env, 1).code(1); // the outage fails the run (and withdraws nothing)
    let err = stderr(&a);
    assert!(err.contains("withdrawn: gone-file/gone_file-1.1-py3-none-any.whl leaves the served tree"), "{err}");
    assert!(err.contains("withdrawn: gone-project (the whole project)"), "{err}");
    assert!(
        err.contains(
            "withdrawn: quar (the whole project) leaves the served tree (the upstream marks the project quarantined)"
        ),
        "{err}"
    );
    assert_eq!(versions(&public, "gone-file"), ["gone_file-1.0-py3-none-any.whl"]);
    assert!(versions(&public, "gone-project").is_empty());
    assert!(versions(&public, "quar").is_empty());
    assert_eq!(versions(&public, "arch").len(), 2, "archived keeps its files");
    assert_eq!(versions(&public, "flaky").len(), 2, "an outage withdraws nothing");
    let sec = security(&public);
    let withdrawn: Vec<(String, String, String)> = sec["withdrawn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["project"].as_str().unwrap().into(),
                w["filename"].as_str().unwrap_or("-").into(),
                w["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        withdrawn,
        [
            ("gone-file".into(), "gone_file-1.1-py3-none-any.whl".into(), "removed-upstream".into()),
            ("gone-project".into(), "-".into(), "removed-upstream".into()),
            ("quar".into(), "-".into(), "quarantined".into()),
        ]
    );
    // The bytes stay in the store for forensics, however many runs pass.
    for h in 2..6 {
        build_at(&env, h).code(1);
    }
    assert!(env.path(".airlock/store/gone-project/gone_project-1.0-py3-none-any.whl").is_file());
    assert!(env.path(".airlock/store/quar/quar-1.1-py3-none-any.whl").is_file());
    // PEP 792 passes through: status on the JSON and HTML pages, api-version 1.4.
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/arch/index.v1_json")).unwrap()).unwrap();
    assert_eq!(page["meta"]["api-version"], "1.4");
    assert_eq!(page["project-status"]["status"], "archived");
    assert_eq!(page["project-status"]["reason"], "moved to arch2");
    let html = std::fs::read_to_string(public.join("simple/arch/index.html")).unwrap();
    assert!(html.contains(r#"<meta name="pypi:project-status" content="archived">"#), "{html}");
    assert!(html.contains(r#"<meta name="pypi:repository-version" content="1.4">"#), "{html}");
    let quar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/quar/index.v1_json")).unwrap()).unwrap();
    assert_eq!(quar["project-status"]["status"], "quarantined");
    assert_eq!(quar["files"].as_array().map(Vec::len), Some(0));
}

#[test]
fn upstream_removed_keep_keeps_and_a_404_for_everything_trips_the_removal_guard() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "a", "1.0", Some(&at(-100)));
    whl(&env.upstream, "b", "1.0", Some(&at(-100)));
    env.manifest("[select]\npackages = [\"a\", \"b\"]\n[policy]\nupstream_removed = \"keep\"\n");
    build_at(&env, 0).success();
    env.upstream.remove("a", "a-1.0-py3-none-any.whl");
    env.upstream.fault("/simple/b/", Fault::Always(404));
    build_at(&env, 1).success();
    assert_eq!(versions(&env.public(), "a"), ["a-1.0-py3-none-any.whl"]);
    assert_eq!(versions(&env.public(), "b"), ["b-1.0-py3-none-any.whl"]);
    // Withdrawing counts against `max_removed`: a proxy answering 404 for
    // everything must not empty the mirror.
    env.manifest("[select]\npackages = [\"a\", \"b\"]\n");
    let a = build_at(&env, 2).code(1);
    assert!(stderr(&a).contains("--allow-removals"), "{}", stderr(&a));
    assert_eq!(versions(&env.public(), "b"), ["b-1.0-py3-none-any.whl"]);
}

#[test]
fn a_freeze_withdraws_a_served_release_uploaded_after_it() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "pkg", "1.0", Some(&at(-100)));
    whl(&env.upstream, "pkg", "1.1", Some(&at(-10)));
    env.manifest("max_removed = \"100%\"\n[select]\npackages = [\"pkg\"]\n");
    build_at(&env, 0).success();
    assert_eq!(versions(&env.public(), "pkg").len(), 2);
    env.manifest(&format!("max_removed = \"100%\"\n[select]\npackages = [\"pkg\"]\nfreeze = \"{}\"\n", at(-20)));
    let a = build_at(&env, 1).success();
    assert!(stderr(&a).contains("held: pkg 1.1 is not served (uploaded after `freeze`)"), "{}", stderr(&a));
    assert_eq!(versions(&env.public(), "pkg"), ["pkg-1.0-py3-none-any.whl"]);
    let sec = security(&env.public());
    assert_eq!(sec["held"][0]["reason"], "frozen");
    assert_eq!(sec["withdrawn"][0]["reason"], "frozen");
    assert_eq!(sec["withdrawn"][0]["version"], "1.1");
}

/// Every member path of a zstd tar bundle.
fn bundle_paths(bundle: &Path) -> Vec<String> {
    let dec = zstd::stream::Decoder::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut ar = tar::Archive::new(dec);
    ar.entries().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect()
}

#[test]
fn a_held_release_is_in_no_tree_no_bundle_and_no_bucket_and_its_url_is_a_404() {
    let env = Env::new(Flavour::Json);
    whl(&env.upstream, "pkg", "1.0", Some(&at(-24 * 30)));
    let young = whl(&env.upstream, "pkg", "1.1", Some(&at(-3)));
    env.manifest("[select]\npackages = [\"pkg\"]\nmin_age = \"1d\"\n");
    build_at(&env, 0).success();
    let url = format!("packages/pkg/{}", young.filename);
    let served = crate::support::tools::Served::start(&env.public());
    let get = |path: &str| reqwest::blocking::get(format!("{}{path}", served.url)).unwrap().status().as_u16();
    assert_eq!(get("packages/pkg/pkg-1.0-py3-none-any.whl"), 200);
    assert_eq!(get(&url), 404, "a lock file naming the held release's URL gets nothing");
    let bundle = env.path("full.tar.zst");
    env.airlock().args(["export", "--full", "-o"]).arg(&bundle).assert().success();
    let paths = bundle_paths(&bundle);
    assert!(paths.iter().any(|p| p.ends_with("pkg-1.0-py3-none-any.whl")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("pkg-1.1")), "{paths:?}");
    for s3 in crate::support::s3::S3::both() {
        let bucket = format!("gate-{}", s3.name());
        s3.create_bucket(&bucket);
        env.manifest(&format!(
            "[select]\npackages = [\"pkg\"]\nmin_age = \"1d\"\n[publish]\nto = \"s3://{bucket}/site\"\ndelete_after_hours = 0\n"
        ));
        let mut cmd = env.airlock();
        cmd.arg("publish").env("SOURCE_DATE_EPOCH", NOW.to_string());
        s3.env(&mut cmd);
        cmd.assert().success();
        let keys = s3.keys(&bucket, "site/");
        assert!(keys.contains_key("site/packages/pkg/pkg-1.0-py3-none-any.whl"), "{}: {keys:?}", s3.name());
        assert!(!keys.keys().any(|k| k.contains("pkg-1.1")), "{}: {keys:?}", s3.name());
    }
}

/// The LiteLLM timeline of March 2026: a bad release uploaded at T, yanked
/// and reported (a MAL- record) at T+5h; nightly runs at T+2h and T+26h with
/// `min_age = "1d"`. No tree ever serves it, no bundle ever carries it.
#[test]
fn a_litellm_shaped_compromise_never_reaches_a_tree_or_a_bundle() {
    let env = Env::new(Flavour::Json);
    let t = 0;
    whl(&env.upstream, "litellm", "1.82.6", Some(&at(t - 24 * 10)));
    let bad = whl(&env.upstream, "litellm", "1.82.7", Some(&at(t)));
    let osv = env.path("osv");
    std::fs::create_dir_all(&osv).unwrap();
    env.manifest("[select]\npackages = [\"litellm\"]\nmin_age = \"1d\"\n[advisories]\nsources = [\"osv\"]\n");
    // An unrelated record, so the snapshot is not empty before the report.
    std::fs::write(
        osv.join("PYSEC-2026-1.json"),
        r#"{"id":"PYSEC-2026-1","modified":"2026-03-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"other"},"versions":["1.0"]}]}"#,
    )
    .unwrap();
    env.airlock().args(["advisories", "update"]).assert().success();

    // Nightly at T+2h: the bad release is two hours old, held.
    let a = build_at(&env, t + 2).success();
    assert!(stderr(&a).contains("held: litellm 1.82.7"), "{}", stderr(&a));
    let mut bundles = vec![env.path("night1.tar.zst")];
    env.airlock().args(["export", "--full", "-o"]).arg(&bundles[0]).assert().success();
    assert_eq!(versions(&env.public(), "litellm"), ["litellm-1.82.6-py3-none-any.whl"]);

    // T+5h: PyPI yanks it and a MAL- record names it.
    env.upstream.add("litellm", bad.clone().yanked("compromised"));
    std::fs::write(
        osv.join("MAL-2026-7.json"),
        r#"{"id":"MAL-2026-7","modified":"2026-03-24T17:00:00Z","summary":"credential stealer in a .pth file","affected":[{"package":{"ecosystem":"PyPI","name":"litellm"},"versions":["1.82.7"]}]}"#,
    )
    .unwrap();
    env.airlock().args(["advisories", "update"]).assert().success();

    // Nightly at T+26h: old enough now, but yanked and named malicious:
    // never selected, never fetched.
    env.upstream.clear_requests();
    let a = build_at(&env, t + 26).success();
    assert!(!stderr(&a).contains("held: litellm 1.82.7"), "{}", stderr(&a));
    assert!(!env.upstream.file_requests().iter().any(|r| r.contains("1.82.7")), "never requested");
    bundles.push(env.path("night2.tar.zst"));
    env.airlock().args(["export", "--full", "-o"]).arg(&bundles[1]).assert().success();
    assert_eq!(versions(&env.public(), "litellm"), ["litellm-1.82.6-py3-none-any.whl"]);
    for b in &bundles {
        assert!(!bundle_paths(b).iter().any(|p| p.contains("1.82.7")), "{}", b.display());
    }
    assert!(!env.path(".airlock/store/litellm").join(&bad.filename).exists(), "never stored");
}

/// With serials, the removal event in PyPI's changelog is what brings the
/// withdrawal: the one project's page is asked for, no other.
#[test]
fn a_removal_in_the_changelog_withdraws_without_a_full_check() {
    let env = Env::new(Flavour::Json);
    env.upstream.serve_serials(true);
    for p in ["a", "b", "c"] {
        whl(&env.upstream, p, "1.0", Some(&at(-100)));
        whl(&env.upstream, p, "1.1", Some(&at(-50)));
    }
    env.manifest("max_removed = \"100%\"\n[select]\npackages = [\"a\", \"b\", \"c\"]\n");
    build_at(&env, 0).success();
    env.upstream.remove("b", "b-1.1-py3-none-any.whl");
    env.upstream.clear_requests();
    let a = build_at(&env, 1).success();
    assert!(stderr(&a).contains("withdrawn: b/b-1.1-py3-none-any.whl"), "{}", stderr(&a));
    let pages: Vec<String> = env.upstream.requests().into_iter().filter(|r| r.starts_with("/simple/")).collect();
    assert_eq!(pages, ["/simple/b/"], "only the project the changelog names");
    assert_eq!(versions(&env.public(), "b"), ["b-1.0-py3-none-any.whl"]);
}
