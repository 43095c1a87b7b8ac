//! The security join, policy and reports through `airlock build` and
//! `airlock audit`: exit codes, blocking in both simple formats, ignores and
//! their expiry, required advisories, hostile advisory text, schema
//! validation and determinism.

use std::path::{Path, PathBuf};

use crate::support::*;

fn osv(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv").join(dir)
}

/// 2024-06-01T00:00:00Z: the clock of every test here unless it moves it.
const NOW: &str = "1717200000";

/// Build the policy fixtures' snapshot where the manifest looks for it, at `epoch`.
fn policy_snapshot(env: &Env, extra_sources: &[&Path], epoch: &str) {
    let snapshot = env.path(".airlock/advisories.sqlite.zst");
    let mut cmd = env.airlock();
    cmd.args(["advisories", "build"])
        .arg(osv("policy"))
        .args(extra_sources)
        .arg("-o")
        .arg(&snapshot)
        .env("SOURCE_DATE_EPOCH", epoch);
    cmd.assert().success();
}

/// A mirror of vulnlib 1.0 (critical), 1.1 (medium), 2.0 (clean) and nosev
/// 1.0 (no CVSS), with a snapshot of the policy fixtures built "now".
fn vulnerable_mirror(extra_sources: &[&Path]) -> Env {
    let env = Env::new(Flavour::Json);
    for v in ["1.0", "1.1", "2.0"] {
        env.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", v, WheelSpec::default())));
    }
    env.upstream.add("nosev", FakeFile::new(wheel("nosev", "1.0", WheelSpec::default())));
    policy_snapshot(&env, extra_sources, NOW);
    env
}

/// A snapshot of `source` alone where the manifest looks for it, built "now".
fn snapshot_of(env: &Env, source: &Path) -> PathBuf {
    let snapshot = env.path(".airlock/advisories.sqlite.zst");
    let mut cmd = env.airlock();
    cmd.args(["advisories", "build"]).arg(source).arg("-o").arg(&snapshot).env("SOURCE_DATE_EPOCH", NOW);
    cmd.assert().success();
    snapshot
}

/// A manifest for `project` whose severity policy blocks and fails on
/// nothing: only the malicious policy (`policy`) can act.
fn manifest_without_severity_policy(env: &Env, project: &str, policy: &str) {
    env.manifest(&format!(
        "[select]\npackages = [\"{project}\"]\n[advisories]\nmax_age_days = 30\n[policy]\nblock = \"none\"\nfail_on = \"none\"\n{policy}\n"
    ));
}

fn manifest_with_policy(env: &Env, policy: &str) {
    env.manifest(&format!(
        "[select]\npackages = [\"vulnlib\", \"nosev\"]\n[advisories]\nmax_age_days = 30\n[policy]\n{policy}\n"
    ));
}

fn build_at(env: &Env, epoch: &str) -> assert_cmd::assert::Assert {
    env.airlock().arg("build").env("SOURCE_DATE_EPOCH", epoch).assert()
}

fn report(env: &Env) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(env.public().join("reports/security.json")).unwrap()).unwrap()
}

fn version<'a>(r: &'a serde_json::Value, project: &str, version: &str) -> &'a serde_json::Value {
    let p = r["projects"].as_array().unwrap().iter().find(|p| p["name"] == project).unwrap();
    p["versions"].as_array().unwrap().iter().find(|v| v["version"] == version).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["advisories"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn fail_on_sets_the_exit_code() {
    let env = vulnerable_mirror(&[]);
    manifest_with_policy(&env, "fail_on = \"none\"");
    build_at(&env, NOW).code(0);
    manifest_with_policy(&env, "fail_on = \"critical\"");
    let a = build_at(&env, NOW).code(3);
    assert!(
        stderr(&a).contains("vulnlib 1.0 has GHSA-crit-crit-crit (critical) at or above fail_on = critical"),
        "{}",
        stderr(&a)
    );
    // Unknown severity ranks as `unknown_severity` (default high): nosev breaches fail_on = high.
    manifest_with_policy(&env, "fail_on = \"high\"\nunknown_severity = \"low\"");
    let a = build_at(&env, NOW).code(3);
    let err = stderr(&a);
    assert!(
        !err.lines().any(|l| l.contains("policy:") && l.contains("nosev")),
        "unknown ranked low stays under high: {err}"
    );
    manifest_with_policy(&env, "fail_on = \"high\"");
    let a = build_at(&env, NOW).code(3);
    assert!(stderr(&a).contains("nosev 1.0 has PYSEC-2099-3 (unknown, ranked high)"), "{}", stderr(&a));
    // The reports are there whatever the exit code.
    let r = report(&env);
    assert_eq!(ids(version(&r, "vulnlib", "1.0")), ["GHSA-crit-crit-crit", "PYSEC-2099-2"]);
    assert_eq!(
        r["summary"]["by_severity"],
        serde_json::json!({"critical": 1, "high": 0, "medium": 2, "low": 0, "unknown": 1})
    );
    assert_eq!(r["summary"]["vulnerable_versions"], 3);
}

#[test]
fn block_removes_exactly_the_blocked_versions_from_both_formats() {
    let env = vulnerable_mirror(&[]);
    manifest_with_policy(&env, "block = \"medium\"\nunknown_severity = \"low\"");
    build_at(&env, NOW).success();
    let public = env.public();
    assert_eq!(listed(&public, "vulnlib"), ["vulnlib-2.0-py3-none-any.whl"]);
    assert_eq!(listed_html(&public, "vulnlib"), ["vulnlib-2.0-py3-none-any.whl"]);
    assert_eq!(listed(&public, "nosev"), ["nosev-1.0-py3-none-any.whl"], "unknown ranked low is under the block");
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/vulnlib/index.v1_json")).unwrap()).unwrap();
    assert_eq!(page["versions"], serde_json::json!(["2.0"]));
    assert!(!public.join("packages/vulnlib/vulnlib-1.0-py3-none-any.whl").exists(), "blocked files leave the tree");
    assert!(env.path(".airlock/store/vulnlib/vulnlib-1.0-py3-none-any.whl").exists(), "and stay in the store");
    let r = report(&env);
    assert_eq!(version(&r, "vulnlib", "1.0")["blocked"], true);
    assert_eq!(version(&r, "vulnlib", "1.1")["blocked"], true);
    assert_eq!(version(&r, "vulnlib", "2.0")["blocked"], false);
    assert_eq!(r["summary"]["blocked_versions"], 2);
    let landing = std::fs::read_to_string(public.join("index.html")).unwrap();
    assert!(landing.contains("1.0: 2 · critical · blocked") && landing.contains("reports/security.html"), "{landing}");

    // Relaxing the policy brings them back without fetching anything.
    env.upstream.clear_requests();
    manifest_with_policy(&env, "block = \"critical\"\nunknown_severity = \"low\"");
    build_at(&env, NOW).success();
    assert_eq!(listed(&public, "vulnlib"), ["vulnlib-1.1-py3-none-any.whl", "vulnlib-2.0-py3-none-any.whl"]);
    assert!(env.upstream.file_requests().is_empty());
}

#[test]
fn ignores_apply_until_they_expire() {
    let env = vulnerable_mirror(&[]);
    // Ignore the critical one by its CVE alias, until 2025-01-31.
    let policy = "fail_on = \"critical\"\n[[policy.ignore]]\nid = \"CVE-2099-0001\"\nreason = \"not reachable in our use\"\nexpires = \"2025-01-31\"";
    manifest_with_policy(&env, policy);
    build_at(&env, NOW).code(0);
    let r = report(&env);
    let crit = &version(&r, "vulnlib", "1.0")["advisories"][0];
    assert_eq!(crit["id"], "GHSA-crit-crit-crit");
    assert_eq!(crit["ignored"], serde_json::json!({"reason": "not reachable in our use", "expires": "2025-01-31"}));
    assert_eq!(r["summary"]["by_severity"]["critical"], 0, "ignored findings are not counted");
    assert_eq!(r["ignores"][0]["applied"], 1);
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/security.sarif")).unwrap()).unwrap();
    let suppressed =
        sarif["runs"][0]["results"].as_array().unwrap().iter().filter(|r| r.get("suppressions").is_some()).count();
    assert_eq!(suppressed, 1);

    // 2025-02-01: expired. It no longer applies, and the reports say so.
    let a = build_at(&env, "1738368000").code(3);
    assert!(stderr(&a).contains("the ignore of CVE-2099-0001 expired on 2025-01-31"), "{}", stderr(&a));
    let r = report(&env);
    assert!(version(&r, "vulnlib", "1.0")["advisories"][0]["ignored"].is_null());
    assert_eq!(r["ignores"][0]["expired"], true);
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    assert!(md.contains("Expired ignores") && md.contains("`CVE-2099-0001` expired 2025-01-31"), "{md}");
    let html = std::fs::read_to_string(env.public().join("reports/security.html")).unwrap();
    assert!(html.contains("expired: no longer applied"));
}

#[test]
fn required_advisories_missing_or_stale_exit_4_and_otherwise_warn() {
    let env = Env::new(Flavour::Json);
    env.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", "1.0", WheelSpec::default())));
    env.manifest(
        "[select]\npackages = [\"vulnlib\"]\n[advisories]\nmax_age_days = 7\n[policy]\nrequire_advisories = true\n",
    );
    let a = build_at(&env, NOW).code(4);
    assert!(stderr(&a).contains("require_advisories") && stderr(&a).contains("no advisory snapshot"), "{}", stderr(&a));
    assert!(!env.public().exists() && env.upstream.requests().is_empty(), "fails before touching anything");

    // Built 2024-06-01, checked 2024-07-01: 30 days old, older than 7.
    let snapshot = env.path(".airlock/advisories.sqlite.zst");
    policy_snapshot(&env, &[], NOW);
    let a = build_at(&env, "1719792000").code(4);
    assert!(stderr(&a).contains("older than max_age_days = 7"), "{}", stderr(&a));

    // Not required: a loud warning and a STALE banner in every report.
    env.manifest("[select]\npackages = [\"vulnlib\"]\n[advisories]\nmax_age_days = 7\n");
    let a = build_at(&env, "1719792000").code(0);
    assert!(stderr(&a).contains("STALE"), "{}", stderr(&a));
    let r = report(&env);
    assert_eq!(r["status"], "stale");
    assert!(r["banner"].as_str().unwrap().starts_with("STALE: "));
    for f in ["reports/security.html", "reports/summary.md", "reports/security.sarif", "index.html"] {
        assert!(std::fs::read_to_string(env.public().join(f)).unwrap().contains("STALE: "), "{f}");
    }
    // No snapshot at all: UNAUDITED, and the JSON says nothing was checked.
    std::fs::remove_file(&snapshot).unwrap();
    build_at(&env, NOW).code(0);
    let r = report(&env);
    assert_eq!(r["status"], "unaudited");
    assert!(r["snapshot"].is_null());
    assert!(std::fs::read_to_string(env.public().join("reports/security.html")).unwrap().contains("UNAUDITED: "));

    // A corrupt snapshot is unaudited too, never a crash; exit 4 where required.
    std::fs::write(&snapshot, b"garbage").unwrap();
    let a = build_at(&env, NOW).code(0);
    assert!(stderr(&a).contains("is corrupt or truncated"), "{}", stderr(&a));
    env.manifest(
        "[select]\npackages = [\"vulnlib\"]\n[advisories]\nmax_age_days = 7\n[policy]\nrequire_advisories = true\n",
    );
    let a = build_at(&env, NOW).code(4);
    assert!(stderr(&a).contains("is corrupt or truncated") && !stderr(&a).contains("panicked"), "{}", stderr(&a));
}

#[test]
fn hostile_advisory_text_renders_inert() {
    let env = vulnerable_mirror(&[&osv("hostile")]);
    manifest_with_policy(&env, "");
    build_at(&env, NOW).success();
    let html = std::fs::read_to_string(env.public().join("reports/security.html")).unwrap();
    for payload in [
        "alert('summary')",
        "alert('details')",
        "alert('escape')",
        "alert('alias')",
        "alert('kind')",
        "alert('url')",
        "alert('data')",
    ] {
        for (i, _) in html.match_indices(payload) {
            let before = &html[..i];
            // Every occurrence is inside escaped text: the nearest `<` opens a real tag, not the payload's.
            let tag_open = before.rfind('<').unwrap();
            let tag = &html[tag_open..i];
            assert!(!tag.starts_with("<script") && !tag.starts_with("<img"), "{payload} is live markup: {tag}");
        }
    }
    assert!(!html.contains("<img"), "no image tag at all");
    assert_eq!(html.matches("<script>").count(), 1, "only the page's own script");
    assert!(!html.to_lowercase().contains("href=\"javascript:") && !html.contains("href=\"data:"), "no script links");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;summary&#39;)&lt;&#x2F;script&gt;")
            || html.contains("&lt;script&gt;alert("),
        "escaped text is shown"
    );
    assert!(html.contains("Content-Security-Policy") && html.contains("script-src 'sha256-"));
    // The CSP hash is the real hash of the inline script.
    let script = html.split("<script>").nth(1).unwrap().split("</script>").next().unwrap();
    let hash = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        <sha2::Sha256 as sha2::Digest>::digest(script.as_bytes()),
    );
    assert!(html.contains(&format!("'sha256-{hash}'")));
    // The markdown summary escapes it too.
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    assert!(!md.contains("<script>"), "{md}");
}

#[test]
fn sarif_and_json_validate_against_their_schemas() {
    let env = vulnerable_mirror(&[&osv("hostile")]);
    manifest_with_policy(&env, "block = \"critical\"\n[[policy.ignore]]\nid = \"PYSEC-2099-2\"\nreason = \"accepted\"");
    build_at(&env, NOW).success();
    let load = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (schema, doc) in [
        (root.join("tests/fixtures/sarif-schema-2.1.0.json"), env.public().join("reports/security.sarif")),
        (root.join("docs/security.schema.json"), env.public().join("reports/security.json")),
        (root.join("docs/installability.schema.json"), env.public().join("reports/installability.json")),
    ] {
        let validator = jsonschema::validator_for(&load(&schema)).unwrap();
        let instance = load(&doc);
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", doc.display());
    }
    // One SARIF result per vulnerability per version, aliases grouped.
    let sarif = load(&env.public().join("reports/security.sarif"));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let r = report(&env);
    let findings: usize = r["projects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["versions"].as_array().unwrap())
        .map(|v| v["advisories"].as_array().unwrap().len())
        .sum();
    assert_eq!(results.len(), findings);
    assert!(results.iter().all(|r| r["ruleId"] != "CVE-2099-0001"), "an alias is never its own result");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    let crit = rules.iter().find(|r| r["id"] == "GHSA-crit-crit-crit").unwrap();
    assert_eq!(crit["helpUri"], "https://osv.dev/vulnerability/GHSA%2Dcrit%2Dcrit%2Dcrit");
    assert_eq!(crit["properties"]["security-severity"], "9.8");
}

#[test]
fn reports_are_byte_identical_for_identical_inputs() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let env = vulnerable_mirror(&[]);
        manifest_with_policy(&env, "block = \"critical\"");
        build_at(&env, NOW).success();
        let port = env.upstream.port.to_string();
        let reports: Vec<String> = ["security.html", "security.json", "security.sarif", "summary.md"]
            .iter()
            .map(|f| std::fs::read_to_string(env.public().join("reports").join(f)).unwrap().replace(&port, "PORT"))
            .collect();
        runs.push(reports);
    }
    assert!(runs[0] == runs[1]);
    assert!(runs[0][1].contains("\"generated_at\": \"2024-06-01T00:00:00Z\""));
}

#[test]
fn audit_rejoins_a_new_snapshot_without_fetching() {
    let env = Env::new(Flavour::Json);
    for v in ["1.0", "2.0"] {
        env.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", v, WheelSpec::default())));
    }
    env.upstream.add("nosev", FakeFile::new(wheel("nosev", "1.0", WheelSpec::default())));
    manifest_with_policy(&env, "block = \"critical\"\nunknown_severity = \"low\"");
    build_at(&env, NOW).success();
    assert_eq!(report(&env)["status"], "unaudited");
    assert_eq!(listed(&env.public(), "vulnlib").len(), 2);

    // New advisories, same packages: audit fetches nothing and re-renders.
    policy_snapshot(&env, &[], NOW);
    env.upstream.clear_requests();
    env.airlock().arg("audit").env("SOURCE_DATE_EPOCH", NOW).assert().success();
    assert!(env.upstream.requests().is_empty(), "{:?}", env.upstream.requests());
    let r = report(&env);
    assert_eq!(r["status"], "audited");
    assert_eq!(ids(version(&r, "vulnlib", "1.0")), ["GHSA-crit-crit-crit", "PYSEC-2099-2"]);
    assert_eq!(listed(&env.public(), "vulnlib"), ["vulnlib-2.0-py3-none-any.whl"], "the block applies at once");
    // fail_on through audit, too.
    manifest_with_policy(&env, "fail_on = \"medium\"\nunknown_severity = \"low\"");
    env.airlock().arg("audit").env("SOURCE_DATE_EPOCH", NOW).assert().code(3);
    assert_eq!(listed(&env.public(), "vulnlib").len(), 2);
}

/// With the real pypa database: the report lists exactly what `advisories
/// check` gives for each mirrored version of real vulnerable projects.
#[test]
fn report_matches_advisories_check_on_real_data() {
    let Some(vulns) = crate::advisories::pypa_dir() else { return };
    let env = Env::new(Flavour::Json);
    let versions =
        [("Jinja2", "2.10"), ("Jinja2", "3.1.4"), ("urllib3", "1.24.1"), ("Django", "3.2"), ("Django", "4.2.1")];
    for (p, v) in versions {
        env.upstream.add(p, FakeFile::new(wheel(p, v, WheelSpec::default())));
    }
    let snapshot = env.path(".airlock/advisories.sqlite.zst");
    env.airlock()
        .args(["advisories", "build"])
        .arg(&vulns)
        .arg("-o")
        .arg(&snapshot)
        .env("SOURCE_DATE_EPOCH", NOW)
        .assert()
        .success();
    env.manifest("[select]\npackages = [\"jinja2\", \"urllib3\", \"django\"]\n[advisories]\nmax_age_days = 30\n[policy]\nfail_on = \"none\"\n");
    build_at(&env, NOW).code(0);
    let r = report(&env);
    let input: String = versions.iter().map(|(p, v)| format!("{p} {v}\n")).collect();
    let out =
        env.airlock().args(["advisories", "check", "--snapshot"]).arg(&snapshot).write_stdin(input).assert().success();
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.get_output().stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut total = 0;
    for ((p, v), line) in versions.iter().zip(&lines) {
        let reported = version(&r, &p.to_lowercase(), v);
        let want: Vec<String> =
            line["advisories"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
        assert_eq!(ids(reported), want, "{p} {v}");
        for a in reported["advisories"].as_array().unwrap() {
            assert_eq!(a["aliases"], line["aliases"][a["id"].as_str().unwrap()], "{p} {v}");
        }
        total += want.len();
    }
    assert!(total > 20, "real versions have real advisories ({total})");
    assert!(ids(version(&r, "jinja2", "2.10")).contains(&"PYSEC-2019-217".to_string()));
    // Every vulnerable version's upgrade_to is affected by none of its advisories.
    let mut upgrades = Vec::new();
    for p in r["projects"].as_array().unwrap() {
        for v in p["versions"].as_array().unwrap() {
            if !v["advisories"].as_array().unwrap().is_empty() {
                assert!(v["upgrade_to"].is_string(), "{} {}: no upgrade_to", p["name"], v["version"]);
                let up = v["upgrade_to"].as_str().unwrap().to_string();
                upgrades.push((p["name"].as_str().unwrap().to_string(), up.clone(), ids(v)));
                let mirrored = p["versions"].as_array().unwrap().iter().any(|w| w["version"] == up.as_str());
                assert_eq!(v["upgrade_mirrored"], mirrored, "{} {}", p["name"], v["version"]);
            } else {
                assert!(v["upgrade_to"].is_null());
            }
        }
    }
    assert!(upgrades.len() >= 4, "{upgrades:?}");
    let input: String = upgrades.iter().map(|(p, v, _)| format!("{p} {v}\n")).collect();
    let out =
        env.airlock().args(["advisories", "check", "--snapshot"]).arg(&snapshot).write_stdin(input).assert().success();
    for ((p, v, had), line) in upgrades.iter().zip(String::from_utf8_lossy(&out.get_output().stdout).lines()) {
        let l: serde_json::Value = serde_json::from_str(line).unwrap();
        let now: Vec<&str> = l["advisories"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert!(
            !had.iter().any(|id| now.contains(&id.as_str())),
            "{p} {v} is still affected by one of {had:?}: {now:?}"
        );
    }
    // fail_on = high: pypa records mostly carry no CVSS, and unknown ranks high.
    env.manifest("[select]\npackages = [\"jinja2\", \"urllib3\", \"django\"]\n[advisories]\nmax_age_days = 30\n[policy]\nfail_on = \"high\"\n");
    build_at(&env, NOW).code(3);
}

/// The report in a real headless browser: no console message, the script
/// runs, and the page is complete without it (scripts/check-report.sh).
#[test]
fn report_passes_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        eprintln!("skipping: chromium is not installed (.ci/run installs it: apt-get install chromium)");
        return;
    };
    let env = vulnerable_mirror(&[&osv("hostile")]);
    manifest_with_policy(&env, "block = \"critical\"\n[[policy.ignore]]\nid = \"PYSEC-2099-2\"\nreason = \"accepted\"");
    build_at(&env, NOW).success();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-report.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(env.public().join("reports/security.html"))
        .arg(env.path("shot.png"))
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("renders without console messages (4 vulnerable versions"), "{text}");
    assert!(std::fs::metadata(env.path("shot.png")).unwrap().len() > 10_000, "a real screenshot");
}

/// Triage: one row per vulnerable version (its advisories worst first), the
/// Status column always filled, "unknown" explained, a summary taken from
/// the details not said twice and cut at a word, long reference lists
/// collapsed.
#[test]
fn report_groups_by_version_and_explains_what_it_shows() {
    let env = vulnerable_mirror(&[]);
    let extra = env.path("osv-extra");
    std::fs::create_dir_all(&extra).unwrap();
    let words = "Crafted archives make vulnlib extract files outside the target directory when ".repeat(4);
    let record = serde_json::json!({
        "id": "PYSEC-2099-9",
        "details": format!("{words}it unpacks them.\n\nMore text."),
        "affected": [{"package": {"ecosystem": "PyPI", "name": "vulnlib"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}],
        "references": (0..9).map(|i| serde_json::json!({"type": "WEB", "url": format!("https://example.invalid/{i}")})).collect::<Vec<_>>(),
    });
    std::fs::write(extra.join("PYSEC-2099-9.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    policy_snapshot(&env, &[&extra], NOW);
    manifest_with_policy(&env, "block = \"critical\"\n[[policy.ignore]]\nid = \"PYSEC-2099-2\"\nreason = \"accepted\"");
    build_at(&env, NOW).success();
    let html = std::fs::read_to_string(env.public().join("reports/security.html")).unwrap();
    let r = report(&env);
    let vulnerable: usize = r["projects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["versions"].as_array().unwrap())
        .filter(|v| !v["advisories"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(html.matches(" data-rank=").count(), vulnerable, "one row per vulnerable version");
    // vulnlib 1.0: critical (blocked) with three more advisories in one row.
    let row_start = html.find("id=\"v-vulnlib-1.0\"").expect("a row anchored for the landing page");
    let row = &html[row_start..html[row_start..].find("</tr>").unwrap() + row_start];
    assert!(row.contains("GHSA-crit-crit-crit") && row.contains("PYSEC-2099-9"), "{row}");
    assert!(row.contains("<span class=\"tag blocked\">blocked</span>"), "{row}");
    assert!(row.contains("1.1 (mirrored)") || row.contains("2.0 (mirrored)"), "upgrade target: {row}");
    assert_eq!(
        html.matches("<span class=\"tag served\">").count()
            + html.matches("<span class=\"tag blocked\">").count()
            + html.matches("<td data-key=\"0\"><span class=\"tag ignored\">").count(),
        vulnerable,
        "every row has a status"
    );
    // Unknown severity is explained.
    assert!(html.contains("id=\"unknown-severity\""), "the note on unknown severity");
    assert!(html.contains("publishes no CVSS scores"));
    // The details-derived summary: cut at a word, not repeated above the details.
    let summary = version(&r, "vulnlib", "1.0")["advisories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "PYSEC-2099-9")
        .unwrap()["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.ends_with("…") && summary.chars().count() <= 200, "{summary}");
    let cut = summary.trim_end_matches('…');
    assert!(words.starts_with(cut) && words[cut.len()..].starts_with(' '), "cut at a word: {summary}");
    let section = &html[html.find("id=\"adv-PYSEC-2099-9\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(!section.contains("<strong>"), "no summary above the details it repeats: {section}");
    assert!(section.contains("4 more references</summary>"), "{section}");
}

/// The run's diagnostics (a failed fetch, a skipped upstream file, a
/// blocked version, a file pruned from the store, a requirement that
/// selects nothing) reach security.json's `run` section, SARIF's tool
/// notifications and summary.md, from one stream.
#[test]
fn run_diagnostics_reach_every_report() {
    let env = vulnerable_mirror(&[]);
    env.upstream.add("gone", FakeFile::new(wheel("gone", "1.0", WheelSpec::default())));
    env.manifest(
        "keep_runs = 0\npublish_partial = true\n[select]\npackages = [\"vulnlib\", \"nosev\", \"gone\"]\n[advisories]\nmax_age_days = 30\n",
    );
    build_at(&env, NOW).success();
    let broken = FakeFile::new(wheel("broken", "1.0", WheelSpec::default()));
    env.upstream.fault(&format!("/files/{}", broken.filename), Fault::Corrupt);
    env.upstream.add("broken", broken);
    env.upstream
        .add("vulnlib", FakeFile { filename: "vulnlib-9.9-BAD.whl".into(), ..FakeFile::new(sdist("vulnlib", "9.9")) });
    env.upstream.add("nothing", FakeFile::new(wheel("nothing", "1.0", WheelSpec::default())));
    env.manifest(
        "keep_runs = 0\npublish_partial = true\n[select]\npackages = [\"vulnlib\", \"nosev\", \"broken\", \"nothing>=2\"]\n[advisories]\nmax_age_days = 30\n[policy]\nblock = \"critical\"\n",
    );
    build_at(&env, NOW).code(1);

    let r = report(&env);
    let diags = r["run"]["diagnostics"].as_array().unwrap();
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    for code in ["fetch-failed", "skipped", "blocked", "pruned", "selects-nothing"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    assert_eq!(diags[0]["level"], "error", "errors sort first: {diags:?}");
    let failed = diags.iter().find(|d| d["code"] == "fetch-failed").unwrap();
    assert_eq!(failed["project"], "broken");
    assert!(failed["message"].as_str().unwrap().contains("sha256 mismatch"), "{failed}");
    let blocked = diags.iter().find(|d| d["code"] == "blocked").unwrap();
    assert_eq!((blocked["project"].as_str(), blocked["version"].as_str()), (Some("vulnlib"), Some("1.0")));
    let pruned = diags.iter().find(|d| d["code"] == "pruned").unwrap();
    assert_eq!(pruned["file"], "gone-1.0-py3-none-any.whl");
    let nothing = diags.iter().find(|d| d["code"] == "selects-nothing").unwrap();
    assert!(nothing["message"].as_str().unwrap().contains("`nothing>=2`"), "{nothing}");

    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/security.sarif")).unwrap()).unwrap();
    let invocation = &sarif["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let notes = invocation["toolExecutionNotifications"].as_array().unwrap();
    let ids: Vec<&str> = notes.iter().filter_map(|n| n["descriptor"]["id"].as_str()).collect();
    for code in ["fetch-failed", "skipped", "blocked", "pruned", "selects-nothing"] {
        assert!(ids.contains(&code), "{code} missing from SARIF notifications {ids:?}");
    }

    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    let section = md.split("### This run").nth(1).expect("summary.md has a run section");
    assert!(section.contains("`fetch-failed`") && section.contains("sha256 mismatch"), "{section}");
    assert!(section.contains("`pruned`") && section.contains("gone-1.0-py3-none-any.whl"), "{section}");
    let html = std::fs::read_to_string(env.public().join("reports/security.html")).unwrap();
    assert!(html.contains("<h2>This run</h2>") && html.contains("fetch-failed"), "the HTML report lists them too");
}

/// `audit` says what it found: counts by severity, the top findings and
/// where the report is; not fetch statistics, and no line twice.
#[test]
fn audit_prints_its_findings() {
    let env = vulnerable_mirror(&[]);
    manifest_with_policy(&env, "fail_on = \"critical\"\nunknown_severity = \"low\"");
    build_at(&env, NOW).code(3);
    for _ in 0..2 {
        let a = env.airlock().arg("audit").env("SOURCE_DATE_EPOCH", NOW).assert().code(3);
        let err = stderr(&a);
        assert!(
            err.contains("audited: 4 version(s) of 2 project(s), 3 vulnerable, 0 blocked; findings: critical 1, high 0, medium 2, low 0, unknown 1"),
            "{err}"
        );
        let critical = err.find("vulnlib 1.0: critical: GHSA-crit-crit-crit, PYSEC-2099-2").expect("the worst first");
        assert!(critical < err.find("nosev 1.0: unknown, ranks as low: PYSEC-2099-3").unwrap(), "{err}");
        assert!(err.contains("report: public/reports/security.html"), "{err}");
        assert!(!err.contains("fetched") && !err.contains("added 0"), "no fetch statistics: {err}");
        let lines: Vec<&str> = err.lines().collect();
        let unique: std::collections::BTreeSet<&str> = lines.iter().copied().collect();
        assert_eq!(unique.len(), lines.len(), "a line said twice: {err}");
        // One line per breach, then the verdict once.
        assert_eq!(err.matches("ERROR").count(), 2, "{err}");
        assert!(
            err.contains("ERROR policy: vulnlib 1.0 has GHSA-crit-crit-crit (critical) at or above fail_on = critical"),
            "{err}"
        );
    }
}

/// The landing page: each vulnerable version shows its count and highest
/// severity, linked to its findings in the report; a project that selects
/// nothing is listed with the warning; `[mirror] base_url` fills in the
/// install commands.
#[test]
fn landing_links_findings_and_shows_what_selected_nothing() {
    let env = vulnerable_mirror(&[]);
    env.manifest(
        "base_url = \"https://pypi.example.org/mirror\"\n[select]\npackages = [\"vulnlib\", \"nosev\", \"nosev>=9\", \"ghost-pkg>=5\"]\n[advisories]\nmax_age_days = 30\n[policy]\nunknown_severity = \"low\"\n",
    );
    env.upstream.add("ghost-pkg", FakeFile::new(wheel("ghost-pkg", "1.0", WheelSpec::default())));
    build_at(&env, NOW).success();
    let landing = std::fs::read_to_string(env.public().join("index.html")).unwrap();
    let report = std::fs::read_to_string(env.public().join("reports/security.html")).unwrap();
    assert!(landing.contains("pip install --index-url https://pypi.example.org/mirror/simple/ PACKAGE"), "{landing}");
    assert!(!landing.contains("HOST/PATH"), "{landing}");
    let pill = "<a class=\"sev sev-critical\" href=\"reports/security.html#v-vulnlib-1.0\"";
    assert!(landing.contains(pill), "{landing}");
    assert!(landing.contains(">1.0: 2 · critical</a>"), "{landing}");
    assert!(report.contains("<tr id=\"v-vulnlib-1.0\""), "the link's target exists");
    assert!(
        landing.contains("<td>ghost-pkg</td>") && landing.contains("ghost-pkg: no file of the upstream matches"),
        "{landing}"
    );
}

/// A malicious-package record (OSV `MAL-...`, no CVSS) blocks the version
/// it names with `block = "none"` and `fail_on = "none"`: never mirrored,
/// named in the log and the report; `malicious = "report"` only lists it.
#[test]
fn a_malicious_release_is_never_mirrored() {
    let env = Env::new(Flavour::Json);
    for v in ["1.0", "1.1"] {
        env.upstream.add("evilpkg", FakeFile::new(wheel("evilpkg", v, WheelSpec::default())));
    }
    let snapshot = snapshot_of(&env, &osv("malicious"));
    let manifest = |policy: &str| manifest_without_severity_policy(&env, "evilpkg", policy);
    manifest("");
    let a = build_at(&env, NOW).code(0);
    assert!(
        stderr(&a).contains("MALICIOUS: evilpkg 1.0 is a known malicious release (MAL-2099-1); it is never mirrored"),
        "{}",
        stderr(&a)
    );
    assert_eq!(listed(&env.public(), "evilpkg"), ["evilpkg-1.1-py3-none-any.whl"]);
    assert!(!env.public().join("packages/evilpkg/evilpkg-1.0-py3-none-any.whl").exists());
    let r = report(&env);
    let v = version(&r, "evilpkg", "1.0");
    assert_eq!(v["blocked"], true);
    assert_eq!(v["advisories"][0]["malicious"], true);
    assert_eq!(v["advisories"][0]["id"], "MAL-2099-1");
    assert_eq!(version(&r, "evilpkg", "1.1")["blocked"], false);
    // The tree carries the snapshot it was audited with, for `scan` and
    // `advisories check` inside an air gap.
    let published = env.public().join("reports/advisories.sqlite.zst");
    assert_eq!(std::fs::read(&published).unwrap(), std::fs::read(&snapshot).unwrap());
    let out = env
        .airlock()
        .args(["advisories", "check", "--snapshot"])
        .arg(&published)
        .args(["evilpkg", "1.0"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("MAL-2099-1"));

    manifest("malicious = \"report\"");
    build_at(&env, NOW).code(0);
    assert_eq!(listed(&env.public(), "evilpkg"), ["evilpkg-1.0-py3-none-any.whl", "evilpkg-1.1-py3-none-any.whl"]);
    assert_eq!(version(&report(&env), "evilpkg", "1.0")["advisories"][0]["malicious"], true);

    manifest("malicious = \"allow\"");
    let a = build_at(&env, NOW).code(1);
    assert!(stderr(&a).contains("`malicious` is \"block\" or \"report\", not \"allow\""), "{}", stderr(&a));
}

/// A record of the malicious-packages feed merged under a non-`MAL-` id is
/// still malicious (by `database_specific.malicious-packages-origins`), and
/// a file its `package_integrity` names by sha256 is refused whatever its
/// name: here a wheel of an unrelated, unaffected project.
#[test]
fn malicious_origins_block_and_listed_hashes_are_refused_under_any_name() {
    let env = Env::new(Flavour::Json);
    let files: Vec<FakeFile> =
        ["1.0", "2.0", "3.0"].iter().map(|v| FakeFile::new(wheel("goodpkg", v, WheelSpec::default()))).collect();
    let trojan = files[1].sha256();
    for f in files {
        env.upstream.add("goodpkg", f);
    }
    let record = serde_json::json!({
        "id": "OSV-2099-7",
        "modified": "2099-01-02T00:00:00Z",
        "summary": "Malicious code in goodpkg (PyPI)",
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "goodpkg"},
            "versions": ["3.0"],
            "database_specific": {"indicators": {"package_integrity": [
                {"filename": "trojan-0.1.tar.gz", "sha256": trojan.to_uppercase()},
                {"filename": "not-a-digest.tar.gz", "sha256": "1234"},
                42
            ]}}
        }],
        "database_specific": {"malicious-packages-origins": [{"source": "test", "versions": ["3.0"]}]}
    });
    let dir = env.path("osv-merged");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("OSV-2099-7.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    snapshot_of(&env, &dir);
    let manifest = |policy: &str| manifest_without_severity_policy(&env, "goodpkg", policy);
    manifest("");
    let a = build_at(&env, NOW).code(0);
    let err = stderr(&a);
    assert!(err.contains("MALICIOUS: goodpkg 3.0 is a known malicious release (OSV-2099-7)"), "{err}");
    assert!(
        err.contains(&format!(
            "MALICIOUS FILE: goodpkg/goodpkg-2.0-py3-none-any.whl has sha256 {trojan}, which OSV-2099-7 names"
        )),
        "{err}"
    );
    assert_eq!(listed(&env.public(), "goodpkg"), ["goodpkg-1.0-py3-none-any.whl"]);
    assert_eq!(listed_html(&env.public(), "goodpkg"), ["goodpkg-1.0-py3-none-any.whl"]);
    let r = report(&env);
    assert_eq!(version(&r, "goodpkg", "3.0")["advisories"][0]["malicious"], true);
    let p = r["projects"].as_array().unwrap().iter().find(|p| p["name"] == "goodpkg").unwrap();
    assert!(p["versions"].as_array().unwrap().iter().all(|v| v["version"] != "2.0"), "{p}");
    let diags = r["run"]["diagnostics"].to_string();
    assert!(diags.contains("malicious-file"), "{diags}");
    // The diagnostic's code is one the published schema knows.
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&r).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");

    manifest("malicious = \"report\"");
    let a = build_at(&env, NOW).code(0);
    assert!(stderr(&a).contains("listed (`malicious = \"report\"`)"), "{}", stderr(&a));
    assert_eq!(
        listed(&env.public(), "goodpkg"),
        ["goodpkg-1.0-py3-none-any.whl", "goodpkg-2.0-py3-none-any.whl", "goodpkg-3.0-py3-none-any.whl"]
    );
}

/// What changed: a new upstream version between two builds is in
/// changes.json and in feed.xml (a valid Atom feed, parsed here by Python's
/// XML parser), newest first; a new advisory joined by `audit` is listed as
/// newly affecting the versions it names.
#[test]
fn changes_and_the_feed_say_what_each_run_changed() {
    let env = vulnerable_mirror(&[]);
    manifest_with_policy(&env, "fail_on = \"none\"");
    build_at(&env, NOW).success();
    let changes = |env: &Env| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(env.public().join("reports/changes.json")).unwrap()).unwrap()
    };
    assert_eq!(changes(&env)["first"], true);
    env.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", "3.0", WheelSpec::default())));
    build_at(&env, "1717200100").success();
    let c = changes(&env);
    assert_eq!(c["schema"], "airlock.changes/v1");
    assert_eq!(c["first"], false);
    assert_eq!(c["added"], serde_json::json!([{"project": "vulnlib", "version": "3.0"}]), "{c}");
    assert_eq!(c["removed"], serde_json::json!([]));
    // summary.md leads with the delta, before the totals.
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    let delta = md.find("### What changed").expect("a delta section");
    assert!(delta < md.find("| critical |").unwrap(), "{md}");
    assert!(md.contains("- 1 version(s) added: vulnlib 3.0\n"), "{md}");

    // A new advisory, joined without fetching: newly affected, not added.
    policy_snapshot(&env, &[&osv("hostile")], NOW);
    env.airlock().arg("audit").env("SOURCE_DATE_EPOCH", "1717200200").assert().success();
    let c = changes(&env);
    let new: Vec<(String, String)> = c["newly_affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["version"].as_str().unwrap().to_string(), f["id"].as_str().unwrap().to_string()))
        .collect();
    assert!(new.contains(&("3.0".to_string(), "GHSA-evil-evil-evil".to_string())), "{c}");
    assert_eq!(c["added"], serde_json::json!([]));

    let feed = env.public().join("reports/feed.xml");
    let check = r#"
import sys, xml.etree.ElementTree as ET
ns = {"a": "http://www.w3.org/2005/Atom"}
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2005/Atom}feed", root.tag
for req in ("a:id", "a:title", "a:updated"):
    assert root.find(req, ns) is not None, req
for e in root.findall("a:entry", ns):
    print(e.find("a:title", ns).text, "|", e.find("a:id", ns).text, "|", e.find("a:updated", ns).text)
"#;
    let out =
        std::process::Command::new(crate::support::tools::python()).args(["-c", check]).arg(&feed).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries[0].starts_with("run 3: 0 added, 0 removed, ") && entries[0].contains("new advisory"),
        "{entries:?}"
    );
    assert!(entries[1].starts_with("run 2: 1 added, 0 removed"), "{entries:?}");
    assert!(entries[1].contains("2024-06-01T00:01:40Z"), "{entries:?}");
}

#[test]
fn the_first_tree_reports_its_findings_and_a_blocked_breach_is_no_breach() {
    let env = vulnerable_mirror(&[]);
    // Every offending version is blocked, so none is served: exit 0,
    // the blocked versions listed.
    manifest_with_policy(&env, "block = \"high\"\nfail_on = \"high\"\nunknown_severity = \"low\"");
    let a = build_at(&env, NOW).success();
    assert!(stderr(&a).contains("blocked by policy: vulnlib 1.0"), "{}", stderr(&a));
    let r = report(&env);
    assert_eq!(version(&r, "vulnlib", "1.0")["blocked"], true);
    assert_eq!(r["summary"]["blocked_versions"], 1);
    // A first tree has no before: what it serves vulnerable is news.
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/changes.json")).unwrap()).unwrap();
    assert_eq!(changes["first"], true);
    let ids: Vec<&str> =
        changes["newly_affected"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"GHSA-crit-crit-crit") && ids.contains(&"PYSEC-2099-3"), "{changes}");
    assert_eq!(changes["blocked"], serde_json::json!([{"project": "vulnlib", "version": "1.0"}]));
    let md = std::fs::read_to_string(env.public().join("reports/summary.md")).unwrap();
    assert!(md.contains("new advisory finding(s)"), "{md}");
    // A served version at the threshold still breaches.
    manifest_with_policy(&env, "block = \"critical\"\nfail_on = \"medium\"\nunknown_severity = \"low\"");
    build_at(&env, NOW).code(3);
}

#[test]
fn a_malicious_release_is_never_requested_from_the_upstream() {
    let env = Env::new(Flavour::Json);
    for v in ["1.0", "1.1"] {
        env.upstream.add("evilpkg", FakeFile::new(wheel("evilpkg", v, WheelSpec::default())));
    }
    snapshot_of(&env, &osv("malicious"));
    manifest_without_severity_policy(&env, "evilpkg", "");
    build_at(&env, NOW).success();
    let files = env.upstream.file_requests();
    assert!(!files.iter().any(|f| f.contains("evilpkg-1.0")), "{files:?}");
    assert!(files.iter().any(|f| f.contains("evilpkg-1.1")), "{files:?}");
    assert!(!env.path(".airlock/store/evilpkg/evilpkg-1.0-py3-none-any.whl").exists());
    // A rerun says it again, and still asks for nothing of it.
    env.upstream.clear_requests();
    let a = build_at(&env, NOW).success();
    assert!(stderr(&a).contains("MALICIOUS: evilpkg 1.0"), "{}", stderr(&a));
    assert!(env.upstream.file_requests().is_empty(), "{:?}", env.upstream.file_requests());
}

#[test]
fn findings_that_leave_are_reported_as_resolved_with_why() {
    let env = vulnerable_mirror(&[]);
    manifest_with_policy(&env, "fail_on = \"none\"");
    build_at(&env, NOW).success();
    // vulnlib 1.0 leaves while 1.1 and 2.0 (its fixes) stay; nosev's
    // advisory is withdrawn from the snapshot.
    env.manifest(
        "[select]\npackages = [\"vulnlib>=1.1\", \"nosev\"]\n[advisories]\nmax_age_days = 30\n[policy]\nfail_on = \"none\"\n",
    );
    let fewer = env.path("fewer");
    std::fs::create_dir_all(&fewer).unwrap();
    for f in ["GHSA-crit-crit-crit.json", "PYSEC-2099-2.json"] {
        std::fs::copy(osv("policy").join(f), fewer.join(f)).unwrap();
    }
    snapshot_of(&env, &fewer);
    env.airlock().args(["build", "--allow-removals"]).env("SOURCE_DATE_EPOCH", NOW).assert().success();
    let changes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.public().join("reports/changes.json")).unwrap()).unwrap();
    let resolved: Vec<(String, String, String)> = changes["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!("{} {}", r["project"].as_str().unwrap(), r["version"].as_str().unwrap()),
                r["id"].as_str().unwrap().to_string(),
                r["why"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        resolved.contains(&("vulnlib 1.0".into(), "GHSA-crit-crit-crit".into(), "fixed-version-mirrored".into())),
        "{changes}"
    );
    assert!(resolved.contains(&("nosev 1.0".into(), "PYSEC-2099-3".into(), "advisory-withdrawn".into())), "{changes}");
    let feed = std::fs::read_to_string(env.public().join("reports/feed.xml")).unwrap();
    assert!(feed.contains("resolved (no longer affected)"), "{feed}");
}
