//! Advisory snapshot: building from JSON, YAML and zip sources, the OSV
//! rules end to end through the CLI, corrupt snapshots, and the real
//! pypa/advisory-database as an oracle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use airlock::advisories::matcher::{CompiledAffected, Skips};
use airlock::advisories::osv::{Affected, Record};
use airlock::advisories::{Snapshot, source};
use uv_pep440::Version;

use crate::support::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}

pub fn pypa_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pypa-advisory-database/vulns");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}

fn build_snapshot(dir: &Path, sources: &[&Path]) -> PathBuf {
    let out = dir.join("adv.sqlite.zst");
    let mut cmd = airlock_in(dir);
    cmd.args(["advisories", "build"]).args(sources).arg("-o").arg(&out).env("SOURCE_DATE_EPOCH", "1700000000");
    cmd.assert().success();
    out
}

/// `advisories check` batch mode over `pairs`; one parsed JSON value per pair.
fn check_batch(dir: &Path, snapshot: &Path, pairs: &[(String, String)]) -> Vec<serde_json::Value> {
    let input: String = pairs.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    let out =
        airlock_in(dir).args(["advisories", "check", "--snapshot"]).arg(snapshot).write_stdin(input).assert().success();
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.get_output().stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), pairs.len());
    lines
}

/// Every id a batch line reports: the findings' ids and their aliases.
fn reported(line: &serde_json::Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for id in line["advisories"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        ids.insert(id.to_string());
        for a in line["aliases"][id].as_array().unwrap() {
            ids.insert(a.as_str().unwrap().to_string());
        }
    }
    ids
}

fn ids(line: &serde_json::Value) -> Vec<&str> {
    line["advisories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

#[test]
fn fixtures_cover_every_rule_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    // YAML and JSON records in one directory, one more record in a zip, one broken file.
    let zip_path = dir.path().join("extra.zip");
    {
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        zw.start_file("GHSA-zip1-zip1-zip1.json", zip::write::SimpleFileOptions::default()).unwrap();
        zw.write_all(&std::fs::read(fixtures().join("zipped/GHSA-zip1-zip1-zip1.json")).unwrap()).unwrap();
        zw.finish().unwrap();
    }
    let snap = build_snapshot(dir.path(), &[&fixtures().join("records"), &zip_path]);
    let pairs: Vec<(String, String)> = [
        ("demo", "1.4"),        // introduced 0, fixed 1.5 (YAML)
        ("demo", "1.5rc1"),     // a pre-release of the fixed version is affected
        ("demo", "1.5"),        // fixed
        ("demo", "1.0.0"),      // listed as "1.0": canonical equality
        ("Demo", "3.2"),        // second range [3.0, 3.5) and name normalization
        ("demo", "2.0"),        // between the ranges
        ("demo", "9.9-legacy"), // listed, not PEP 440: matched as written
        ("lastaff", "2.1"),     // last_affected is inclusive (JSON)
        ("lastaff", "2.1.1"),
        ("limited", "1.9"), // below the limit
        ("limited", "2.0"), // at the limit: not affected
        ("gitonly", "1.2"), // GIT range skipped; the ECOSYSTEM range still applies
        ("gone", "1.0"),    // withdrawn: never matches
        ("zipped", "0.5"),  // from the zip source
        ("demo", "not-a-version"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let lines = check_batch(dir.path(), &snap, &pairs);
    let got: Vec<Vec<&str>> = lines.iter().map(ids).collect();
    assert_eq!(got[0], ["PYSEC-0000-1"]);
    assert_eq!(got[1], ["PYSEC-0000-1"]);
    assert!(got[2].is_empty());
    assert_eq!(got[3], ["PYSEC-0000-1"]);
    assert_eq!(got[4], ["PYSEC-0000-1"]);
    assert!(got[5].is_empty());
    assert_eq!(got[6], ["PYSEC-0000-1"]);
    assert_eq!(got[7], ["GHSA-last-affe-cted"]);
    assert!(got[8].is_empty());
    assert_eq!(got[9], ["PYSEC-0000-3"]);
    assert!(got[10].is_empty());
    assert_eq!(got[11], ["PYSEC-0000-4"]);
    assert!(got[12].is_empty(), "withdrawn");
    assert_eq!(got[13], ["GHSA-zip1-zip1-zip1"]);
    assert!(got[14].is_empty());
    // Aliases grouped transitively: GHSA-dup names CVE-0000-1, which PYSEC-0000-1 also names.
    assert_eq!(reported(&lines[0]), ["CVE-0000-1", "GHSA-dupe-dupe-dupe", "PYSEC-0000-1"].map(String::from).into());

    // The single query shows severity (from the GHSA alias's CVSS vector), fixed-in and aliases.
    let out = airlock_in(dir.path())
        .args(["advisories", "check", "--snapshot"])
        .arg(&snap)
        .args(["demo", "1.4"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("PYSEC-0000-1 critical 9.8, fixed in 1.5 (CVE-0000-1, GHSA-dupe-dupe-dupe)"), "{text}");
    let out = airlock_in(dir.path())
        .args(["advisories", "check", "--snapshot"])
        .arg(&snap)
        .args(["demo", "3.2"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("fixed in 3.5"));

    // info names the sources, counts and sha256; the broken record was reported and skipped.
    let out = airlock_in(dir.path()).args(["advisories", "info"]).arg(&snap).assert().success();
    let info = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&snap).unwrap()));
    assert!(info.contains(&format!("sha256     {sha}")), "{info}");
    assert!(info.contains("advisories 7") && info.contains("withdrawn 1"), "{info}");
    assert!(info.contains("1 unparseable"), "{info}");
    assert!(info.contains("built      2023-11-14T22:13:20Z"), "{info}");
}

#[test]
fn unparseable_records_are_named_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("adv.sqlite.zst");
    let a = airlock_in(dir.path())
        .args(["advisories", "build"])
        .arg(fixtures().join("records"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let err = stderr(&a);
    assert!(err.contains("broken.yaml") && err.contains("skipping"), "{err}");
    assert!(err.contains("1 parse error(s)"), "{err}");
}

#[test]
fn corrupt_or_truncated_snapshots_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let snap = build_snapshot(dir.path(), &[&fixtures().join("records")]);
    let bytes = std::fs::read(&snap).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("garbage", b"this is not a snapshot".to_vec()),
        ("empty", Vec::new()),
        ("zstd of text", zstd::encode_all(&b"hello"[..], 3).unwrap()),
    ];
    for (what, body) in cases {
        let bad = dir.path().join(format!("{}.sqlite.zst", what.replace(' ', "-")));
        std::fs::write(&bad, body).unwrap();
        for args in [vec!["advisories", "info"], vec!["advisories", "check", "--snapshot"]] {
            let mut cmd = airlock_in(dir.path());
            cmd.args(&args).arg(&bad);
            if args.len() == 3 {
                cmd.args(["demo", "1.0"]);
            }
            let a = cmd.assert().code(1);
            let err = stderr(&a);
            assert!(
                err.contains("is corrupt or truncated") && err.contains(&bad.display().to_string()),
                "{what}: {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
        }
    }
    let a = airlock_in(dir.path()).args(["advisories", "info", "missing.sqlite.zst"]).assert().code(1);
    assert!(stderr(&a).contains("missing.sqlite.zst"));
}

#[test]
fn identical_sources_give_identical_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_snapshot(dir.path(), &[&fixtures().join("records")]);
    let first = std::fs::read(&a).unwrap();
    let b = build_snapshot(dir.path(), &[&fixtures().join("records")]);
    assert!(first == std::fs::read(&b).unwrap());
}

// ---------------------------------------------------------------- the oracle

fn package(a: &Affected) -> String {
    airlock::dist::names::ProjectName::new(a.package.as_ref().unwrap().name.clone()).unwrap().to_string()
}

fn in_ranges(a: &Affected, v: &str) -> bool {
    let ranges_only = Affected { versions: Vec::new(), ..a.clone() };
    CompiledAffected::compile(0, &ranges_only, &mut Skips::default())
        .check(v, Version::from_str(v).ok().as_ref())
        .is_some()
}

/// Listed versions a record's own ranges exclude: (id, package, version, reason).
fn listed_outside_ranges(records: &[Record]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.withdrawn.is_none()) {
        for a in &r.affected {
            for v in &a.versions {
                if in_ranges(a, v) {
                    continue;
                }
                let reason = if Version::from_str(v).is_err() {
                    "not a PEP 440 version: no range can order it; matched as written".to_string()
                } else {
                    let events: Vec<String> = a
                        .ranges
                        .iter()
                        .filter(|r| r.kind == "ECOSYSTEM")
                        .flat_map(|r| r.events.iter())
                        .map(|e| match (&e.introduced, &e.fixed, &e.last_affected, &e.limit) {
                            (Some(v), ..) => format!("introduced {v}"),
                            (_, Some(v), ..) => format!("fixed {v}"),
                            (_, _, Some(v), _) => format!("last_affected {v}"),
                            (.., Some(v)) => format!("limit {v}"),
                            _ => String::new(),
                        })
                        .collect();
                    format!("outside the record's ranges ({})", events.join(", "))
                };
                out.push((r.id.clone(), package(a), v.clone(), reason));
            }
        }
    }
    out.sort();
    out
}

const ORACLE_DOC: &str = "docs/advisory-oracle.md";

/// The pypa database as an oracle: every listed version is reported for its
/// record; versions other records list, outside this record's ranges, are
/// never attributed to it; and the listed versions the ranges exclude are
/// exactly those docs/advisory-oracle.md explains.
#[test]
fn pypa_advisory_database_oracle() {
    let Some(vulns) = pypa_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let snap_path = build_snapshot(dir.path(), &[&vulns]);
    let records = source::read(&vulns).unwrap().records;
    assert!(records.len() > 2600);

    // Every (package, listed version) pair, once, through the CLI batch mode.
    let mut listed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.withdrawn.is_none()) {
        for a in &r.affected {
            for v in &a.versions {
                listed.entry((package(a), v.clone())).or_default().insert(r.id.clone());
            }
        }
    }
    let pairs: Vec<(String, String)> = listed.keys().cloned().collect();
    let lines = check_batch(dir.path(), &snap_path, &pairs);
    let mut missing = Vec::new();
    for (line, ((pkg, v), want)) in lines.iter().zip(&listed) {
        let got = reported(line);
        for id in want {
            if !got.contains(id) {
                missing.push(format!("{id} {pkg} {v}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} listed versions not reported, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // Versions listed by other records of the package but outside this
    // record's list and ranges are never attributed to this record.
    let snapshot = Snapshot::open(&snap_path).unwrap();
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (pkg, v) in listed.keys() {
        known.entry(pkg.clone()).or_default().insert(v.clone());
    }
    let mut wrongly = Vec::new();
    let mut checked = 0usize;
    for r in records.iter().filter(|r| r.withdrawn.is_none()) {
        let me = snapshot.advisories.iter().position(|a| a.id == r.id).unwrap();
        for a in &r.affected {
            let pkg = package(a);
            for v in known.get(&pkg).into_iter().flatten() {
                if a.versions.contains(v) || in_ranges(a, v) {
                    continue;
                }
                checked += 1;
                if snapshot.check(&pkg, v).iter().any(|f| f.matched.contains(&me)) {
                    wrongly.push(format!("{} {pkg} {v}", r.id));
                }
            }
        }
    }
    assert!(checked > 10_000, "only {checked} negative cases");
    assert!(wrongly.is_empty(), "{wrongly:?}");

    // Withdrawn records never match.
    for r in records.iter().filter(|r| r.withdrawn.is_some()) {
        for a in &r.affected {
            for v in &a.versions {
                assert!(
                    !snapshot.check(&package(a), v).iter().any(|f| snapshot.id(f) == r.id),
                    "withdrawn {} matched",
                    r.id
                );
            }
        }
    }

    // The documented exceptions are exactly the listed versions the ranges exclude.
    let exceptions = listed_outside_ranges(&records);
    let rows: Vec<String> =
        exceptions.iter().map(|(id, p, v, why)| format!("| {id} | {p} | `{v}` | {why} |")).collect();
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(ORACLE_DOC);
    if std::env::var_os("AIRLOCK_UPDATE_ORACLE").is_some() {
        let head = std::fs::read_to_string(&doc_path).unwrap_or_default();
        let head = head.split("<!-- table -->").next().unwrap().to_string();
        std::fs::write(&doc_path, format!("{head}<!-- table -->\n| record | package | version | why the ranges exclude it |\n|---|---|---|---|\n{}\n", rows.join("\n"))).unwrap();
    }
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let documented: BTreeSet<&str> =
        doc.lines().filter(|l| l.starts_with("| PYSEC") || l.starts_with("| GHSA")).collect();
    let expected: BTreeSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(documented, expected, "{ORACLE_DOC} is out of date: rerun with AIRLOCK_UPDATE_ORACLE=1");
}

fn zip_of_records() -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zw = zip::ZipWriter::new(&mut buf);
        for entry in std::fs::read_dir(fixtures().join("records")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                zw.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
                zw.write_all(&std::fs::read(&path).unwrap()).unwrap();
            }
        }
        zw.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn update_is_conditional_and_keeps_the_old_snapshot_when_unreachable() {
    let env = Env::new(Flavour::Json);
    env.upstream.put_raw("all.zip", zip_of_records());
    let url = format!("http://127.0.0.1:{}/raw/all.zip", env.upstream.port);
    env.manifest(&format!("[advisories]\nsources = [\"{url}\", \"{}\"]\n", fixtures().join("zipped").display()));
    env.airlock().args(["advisories", "update"]).assert().success();
    let snap = env.path(".airlock/advisories.sqlite.zst");
    let out = env.airlock().args(["advisories", "info"]).arg(&snap).assert().success();
    let info = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(info.contains(&format!("source     {url} (zip, 3 records, etag ")), "{info}");
    assert!(info.contains("(dir, 1 records"), "{info}");

    // Unchanged upstream: a conditional request, answered 304 from the cache.
    env.airlock().args(["advisories", "update"]).assert().success();
    assert_eq!(env.upstream.not_modified(), 1);
    let out = env
        .airlock()
        .args(["advisories", "check", "--snapshot"])
        .arg(&snap)
        .args(["lastaff", "2.1"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("GHSA-last-affe-cted"));

    // Unreachable: the old snapshot stays, byte for byte, and the warning says how old it is.
    let before = std::fs::read(&snap).unwrap();
    env.upstream.fault("/raw/all.zip", Fault::Always(503));
    let a = env.airlock().args(["advisories", "update"]).assert().code(1);
    let err = stderr(&a);
    assert!(
        err.contains("keeping the existing snapshot") && err.contains("day(s) old") && err.contains("HTTP 503"),
        "{err}"
    );
    assert!(std::fs::read(&snap).unwrap() == before);
}

/// Opening keeps a decompressed copy by the snapshot's sha256 (what makes a
/// small check fast); a copy that is truncated or not a database is passed
/// over and the snapshot file decides; `AIRLOCK_CACHE_DIR=""` keeps none.
#[test]
fn the_decompressed_cache_never_changes_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = build_snapshot(dir.path(), &[&fixtures().join("records")]);
    let pairs = vec![("demo".to_string(), "1.0".to_string()), ("demo".to_string(), "3.1".to_string())];
    let first = check_batch(dir.path(), &snapshot, &pairs);
    assert_eq!(ids(&first[0]), ["PYSEC-0000-1"], "{first:?}");
    let cache = dir.path().join(".cache/airlock/snapshots");
    let copies: Vec<PathBuf> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(check_batch(dir.path(), &snapshot, &pairs), first, "from the cached copy");
    // Truncated after the SQLite header: passed over.
    let bytes = std::fs::read(&copies[0]).unwrap();
    std::fs::write(&copies[0], &bytes[..200]).unwrap();
    assert_eq!(check_batch(dir.path(), &snapshot, &pairs), first, "a truncated copy is passed over");
    let info = airlock_in(dir.path()).args(["advisories", "info"]).arg(&snapshot).assert().success();
    assert!(String::from_utf8_lossy(&info.get_output().stdout).contains("advisories"));
    std::fs::remove_dir_all(&cache).unwrap();
    let input = "demo 1.0\n";
    airlock_in(dir.path())
        .args(["advisories", "check", "--snapshot"])
        .arg(&snapshot)
        .env("AIRLOCK_CACHE_DIR", "")
        .write_stdin(input)
        .assert()
        .success();
    assert!(!cache.exists(), "no cache when turned off");
}
