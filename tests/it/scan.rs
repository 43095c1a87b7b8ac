//! `airlock scan` (issue 14): offline audits of requirements, lock files and
//! installed environments, from a snapshot file, a mirror's published one,
//! or the manifest's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::*;

fn normalize(name: &str) -> String {
    crate::support::dist::collapse(&name.to_lowercase(), '-')
}

/// Pins drawn from the pypa advisory database agree with `advisories
/// check` pin by pin, in pip-audit's JSON layout.
#[test]
fn scan_agrees_with_advisories_check_on_real_pins() {
    let Some(vulns) = crate::advisories::pypa_dir() else { return };
    let env = Env::new(Flavour::Json);
    let snapshot = env.path("advisories.sqlite.zst");
    env.airlock().args(["advisories", "build"]).arg(&vulns).arg("-o").arg(&snapshot).assert().success();
    // The first listed version of every 10th record, and a version no record lists.
    let mut pins: BTreeSet<(String, String)> = BTreeSet::new();
    let mut files: Vec<_> = walkdir::WalkDir::new(&vulns)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for f in files.iter().step_by(10) {
        let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(&std::fs::read_to_string(f).unwrap()) else { continue };
        for a in v["affected"].as_array().into_iter().flatten() {
            let name = a["package"]["name"].as_str().unwrap_or_default();
            // Requirements files take PEP 440 versions only.
            let first = a["versions"].as_array().and_then(|vs| vs.first()).and_then(|x| x.as_str());
            if let Some(ver) = first.filter(|v| v.parse::<uv_pep440::Version>().is_ok()) {
                pins.insert((name.to_string(), ver.to_string()));
            }
        }
    }
    pins.insert(("requests".into(), "999.0".into()));
    assert!(pins.len() > 100, "{} pins", pins.len());
    let reqs: String = pins.iter().map(|(n, v)| format!("{n}=={v}\n")).collect();
    std::fs::write(env.path("requirements.txt"), reqs).unwrap();
    let out = env
        .airlock()
        .args(["scan", "--snapshot"])
        .arg(&snapshot)
        .args(["-r", "requirements.txt", "--format", "json", "--fail-on", "none"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(report["fixes"].as_array().is_some(), "pip-audit's layout");
    let mut scanned: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in report["dependencies"].as_array().unwrap() {
        let mut ids: Vec<String> =
            d["vulns"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        for v in d["vulns"].as_array().unwrap() {
            assert!(v["fix_versions"].is_array() && v["aliases"].is_array() && v["description"].is_string(), "{v}");
        }
        scanned.insert((d["name"].as_str().unwrap().to_string(), d["version"].as_str().unwrap().to_string()), ids);
    }
    let input: String = pins.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    let out =
        env.airlock().args(["advisories", "check", "--snapshot"]).arg(&snapshot).write_stdin(input).assert().success();
    let mut found = 0;
    for line in String::from_utf8_lossy(&out.get_output().stdout).lines() {
        let l: serde_json::Value = serde_json::from_str(line).unwrap();
        // Versions as PEP 440 prints them (`2015.04.28` is `2015.4.28`), as pip-audit does.
        let version = l["version"].as_str().unwrap().parse::<uv_pep440::Version>().unwrap().to_string();
        let key = (normalize(l["name"].as_str().unwrap()), version);
        let mut want: Vec<String> =
            l["advisories"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
        want.sort();
        found += want.len();
        assert_eq!(scanned.get(&key), Some(&want), "{key:?}");
    }
    assert!(found > 100, "real pins have real advisories ({found})");
    assert_eq!(scanned[&("requests".to_string(), "999.0".to_string())], Vec::<String>::new());
}

/// A mirror of vulnlib 1.0 (critical) and 2.0 (clean), with the policy
/// fixtures' snapshot.
fn mirror() -> Env {
    let env = Env::new(Flavour::Json);
    for v in ["1.0", "2.0"] {
        env.upstream.add("vulnlib", FakeFile::new(wheel("vulnlib", v, WheelSpec::default())));
    }
    env.policy_snapshot();
    env.manifest("[select]\npackages = [\"vulnlib\"]\n[advisories]\nmax_age_days = 36500\n");
    env.build().success();
    env
}

/// `--path` on a venv where pip installed a vulnerable version from the
/// mirror finds it (exit 3); unpinned requirement lines are named as not
/// auditable; `--fail-on` above the finding exits 0.
#[test]
fn scan_finds_what_pip_installed_and_names_what_it_cannot_audit() {
    let env = mirror();
    let py = crate::support::tools::venv(&env.path("venv"));
    let index = format!("file://{}/simple/", env.public().display());
    let out = crate::support::tools::pip_install(&py, &index, &["vulnlib==1.0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = env.airlock().args(["scan", "--path", "venv"]).assert().code(3);
    let table = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(table.starts_with("Name"), "{table}");
    assert!(table.contains("vulnlib") && table.contains("GHSA-crit-crit-crit"), "{table}");
    assert!(stderr(&a).contains("found"), "{}", stderr(&a));

    std::fs::write(env.path("req.txt"), "vulnlib>=1\nvulnlib==2.0\n").unwrap();
    let a = env.airlock().args(["scan", "-r", "req.txt", "--format", "json"]).assert().code(0);
    let r: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    let deps = r["dependencies"].as_array().unwrap();
    assert!(deps.iter().any(|d| d["skip_reason"].as_str().is_some_and(|s| s.contains("not pinned"))), "{r}");
    assert!(deps.iter().any(|d| d["version"] == "2.0" && d["vulns"].as_array().unwrap().is_empty()), "{r}");
    env.airlock().args(["scan", "--path", "venv", "--fail-on", "none"]).assert().code(0);
    std::fs::write(
        env.path("pylock.toml"),
        "lock-version = \"1.0\"\ncreated-by = \"uv\"\n[[packages]]\nname = \"vulnlib\"\nversion = \"1.0\"\n[[packages.wheels]]\nname = \"vulnlib-1.0-py3-none-any.whl\"\nurl = \"https://x/vulnlib-1.0-py3-none-any.whl\"\nhashes = {sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"}\n",
    )
    .unwrap();
    let a = env.airlock().args(["scan", "--lock", "pylock.toml", "--fail-on", "critical"]).assert().code(3);
    assert!(String::from_utf8_lossy(&a.get_output().stdout).contains("GHSA-crit-crit-crit"));
    env.airlock().args(["scan"]).assert().code(2);
}

/// Inside the air gap: an imported bundle is all `scan --index-url` needs.
#[test]
fn scan_uses_the_snapshot_an_imported_mirror_publishes() {
    let env = mirror();
    env.airlock().args(["export", "--full", "-o", "mirror.tar.zst"]).assert().success();
    let gap = tempfile::tempdir().unwrap();
    let into = gap.path().join("pypi");
    airlock_in(gap.path()).arg("import").arg(env.path("mirror.tar.zst")).arg("--into").arg(&into).assert().success();
    std::fs::write(gap.path().join("req.txt"), "vulnlib==1.0\n").unwrap();
    for url in [format!("file://{}/simple/", into.display()), into.display().to_string()] {
        let a = airlock_in(gap.path())
            .args(["scan", "--index-url", &url, "-r", "req.txt", "--format", "markdown"])
            .assert()
            .code(3);
        let md = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
        assert!(md.contains("| vulnlib | 1.0 | GHSA-crit-crit-crit |"), "{url}: {md}");
    }
}

fn json_file(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// CycloneDX 1.5 (validated against the schema in tests/fixtures) and
/// SARIF 2.1.0 (likewise): every auditable pin a component, each
/// vulnerability once with what it affects, an ignore from the manifest as
/// its VEX analysis and as a SARIF suppression, results at the requirement
/// line that names the pin.
#[test]
fn scan_writes_cyclonedx_and_sarif_that_validate() {
    let env = mirror();
    env.manifest(
        "[select]\npackages = [\"vulnlib\"]\n[advisories]\nmax_age_days = 36500\n[policy]\nblock = \"none\"\n\
         [[policy.ignore]]\nid = \"PYSEC-2099-2\"\nreason = \"not reachable here\"\n",
    );
    std::fs::write(env.path("req.txt"), "# pins\nvulnlib==1.0\nnosev>=1\nvulnlib==1.0+local.1\n").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for format in ["cyclonedx", "sarif"] {
        env.airlock()
            .args(["scan", "-c", "mirror.toml", "-r", "req.txt", "--format", format, "-o"])
            .arg(format)
            .assert()
            .code(3);
    }
    let schema = |p: &str| json_file(&root.join(p));
    let cdx_resources = [
        ("http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json", "cyclonedx/spdx.schema.json"),
        ("http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json", "cyclonedx/jsf-0.82.schema.json"),
    ];
    let cdx_validator = cdx_resources
        .iter()
        .fold(jsonschema::options(), |o, (uri, path)| {
            o.with_resource(*uri, jsonschema::Resource::from_contents(schema(path)).unwrap())
        })
        .build(&schema("cyclonedx/bom-1.5.schema.json"))
        .unwrap();
    let sarif_validator = jsonschema::validator_for(&schema("sarif-schema-2.1.0.json")).unwrap();
    for (validator, doc) in [(&cdx_validator, "cyclonedx"), (&sarif_validator, "sarif")] {
        let instance = json_file(&env.path(doc));
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{doc}: {errors:#?}");
    }
    // The validator catches a broken document (so the check above means something).
    let mut broken = json_file(&env.path("cyclonedx"));
    broken["components"][0]["type"] = serde_json::json!("not-a-type");
    assert!(!cdx_validator.is_valid(&broken));

    let bom = json_file(&env.path("cyclonedx"));
    assert_eq!(bom["specVersion"], "1.5");
    let purls: Vec<&str> = bom["components"].as_array().unwrap().iter().map(|c| c["purl"].as_str().unwrap()).collect();
    assert_eq!(purls, ["pkg:pypi/vulnlib@1.0", "pkg:pypi/vulnlib@1.0%2Blocal.1"]);
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    let crit = vulns.iter().find(|v| v["id"] == "GHSA-crit-crit-crit").unwrap();
    assert_eq!(crit["ratings"][0]["severity"], "critical");
    assert_eq!(crit["analysis"]["state"], "in_triage");
    assert_eq!(crit["affects"].as_array().unwrap().len(), 2, "{crit}");
    let ignored = vulns.iter().find(|v| v["id"] == "PYSEC-2099-2").unwrap();
    assert_eq!(ignored["analysis"]["response"][0], "will_not_fix");
    assert!(ignored["analysis"]["detail"].as_str().unwrap().contains("not reachable here"));

    let sarif = json_file(&env.path("sarif"));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let at = |id: &str| results.iter().find(|r| r["ruleId"] == id).unwrap();
    let loc = &at("GHSA-crit-crit-crit")["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "req.txt");
    assert_eq!(loc["region"]["startLine"], 2);
    assert_eq!(at("PYSEC-2099-2")["suppressions"][0]["justification"], "not reachable here");
    assert!(at("GHSA-crit-crit-crit").get("suppressions").is_none());
}
