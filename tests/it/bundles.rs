//! Air-gap bundles: export, import, incrementals in order, and hostile
//! bundles refused with the target untouched.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::support::*;

fn mirror_with(projects: &[&str]) -> Env {
    let env = Env::new(Flavour::Json);
    for p in ["alpha", "beta", "gamma"] {
        env.upstream.add(p, FakeFile::new(wheel(p, "1.0", WheelSpec::default())));
    }
    set_projects(&env, projects);
    env
}

fn set_projects(env: &Env, projects: &[&str]) {
    let list: Vec<String> = projects.iter().map(|p| format!("\"{p}\"")).collect();
    // Dropping projects is what these tests do: the removal guard has tests of its own.
    env.manifest(&format!("keep_runs = 0\nmax_removed = \"100%\"\n[select]\npackages = [{}]\n", list.join(", ")));
}

fn export(env: &Env, name: &str, args: &[&str]) -> PathBuf {
    let out = env.path(name);
    env.airlock().args(["export", "-o"]).arg(&out).args(args).assert().success();
    out
}

fn import(env: &Env, bundle: &Path, into: &Path) -> assert_cmd::assert::Assert {
    env.airlock().arg("import").arg(bundle).arg("--into").arg(into).assert()
}

/// Read a bundle's members (manifest first), to forge hostile variants.
pub(crate) fn members(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let dec = zstd::stream::Decoder::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut ar = tar::Archive::new(dec);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

pub(crate) enum Kind {
    File,
    Symlink(&'static str),
}

/// Write a bundle from raw members; paths are written as given (even `..`).
pub(crate) fn forge(out: &Path, members: &[(String, Vec<u8>, Kind)]) {
    let enc = zstd::stream::Encoder::new(std::fs::File::create(out).unwrap(), 3).unwrap();
    let mut tar = tar::Builder::new(enc);
    for (path, data, kind) in members {
        let mut h = tar::Header::new_gnu();
        {
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..path.len()].copy_from_slice(path.as_bytes());
        }
        h.set_mode(0o644);
        match kind {
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(target).unwrap();
                h.set_size(0);
            }
        }
        h.set_cksum();
        tar.append(&h, &data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

pub(crate) fn manifest_of(members: &[(String, Vec<u8>)]) -> serde_json::Value {
    assert_eq!(members[0].0, "airlock-bundle.json");
    serde_json::from_slice(&members[0].1).unwrap()
}

pub(crate) fn files(m: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>, Kind)> {
    m.into_iter().map(|(p, d)| (p, d, Kind::File)).collect()
}

#[test]
fn full_export_imports_byte_identical_and_installs() {
    let env = mirror_with(&["alpha", "beta"]);
    env.build().success();
    let bundle = export(&env, "full.tar.zst", &["--full"]);
    let into = env.path("airgap/pypi");
    import(&env, &bundle, &into).success();
    assert!(tree(&env.public()) == tree(&into), "the imported tree differs from the source");
    assert!(tree(&into).len() > 8);
    // pip installs from it, over file:// and over http.
    let py = crate::support::tools::venv(&env.path("venv"));
    let url = format!("file://{}/simple/", std::fs::canonicalize(&into).unwrap().display());
    let out = crate::support::tools::pip_install(&py, &url, &["alpha", "beta"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let served = crate::support::tools::Served::start(&into);
    let (out, _) = crate::support::tools::uv_install(env.dir.path(), &format!("{}simple/", served.url), &["alpha"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Exporting the same tree again gives the same bytes (with the clock pinned).
    let pinned = |name: &str| {
        let out = env.path(name);
        env.airlock()
            .args(["export", "--full", "-o"])
            .arg(&out)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .assert()
            .success();
        std::fs::read(out).unwrap()
    };
    assert!(pinned("a.tar.zst") == pinned("b.tar.zst"));
}

#[test]
fn incrementals_apply_in_order_and_gaps_and_replays_are_refused() {
    let env = mirror_with(&["alpha", "beta"]);
    env.build().success();
    let full = export(&env, "1-full.tar.zst", &[]); // no export yet: full
    assert_eq!(manifest_of(&members(&full))["from_run"], serde_json::Value::Null);

    set_projects(&env, &["alpha", "gamma"]); // add gamma, remove beta
    env.build().success();
    let inc1 = export(&env, "2-inc.tar.zst", &[]); // since the last export
    let m = manifest_of(&members(&inc1));
    assert_eq!(m["from_run"], 1);
    let carried: Vec<&str> = m["members"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(carried.iter().any(|p| p.starts_with("packages/gamma/")), "{carried:?}");
    assert!(!carried.iter().any(|p| p.starts_with("packages/alpha/")), "unchanged files are not carried: {carried:?}");
    assert!(m["delete"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("packages/beta/")), "{m}");

    env.upstream.add("alpha", FakeFile::new(wheel("alpha", "2.0", WheelSpec::default())));
    env.build().success();
    let inc2 = export(&env, "3-inc.tar.zst", &[]);

    let into = env.path("airgap");
    // Gap: the second incremental before the first.
    let a = import(&env, &inc1, &into).code(1);
    assert!(stderr(&a).contains("gap: it continues run 1, and nothing is imported yet"), "{}", stderr(&a));
    import(&env, &full, &into).success();
    let a = import(&env, &inc2, &into).code(1);
    assert!(
        stderr(&a).contains("gap") && stderr(&a).contains("import the bundle covering runs 1..2 first"),
        "{}",
        stderr(&a)
    );
    // It unlists beta, half of what the air gap serves: refused until allowed.
    let a = import(&env, &inc1, &into).code(1);
    assert!(
        stderr(&a).contains("it unlists 1 of the 2 file(s)") && stderr(&a).contains("--allow-removals"),
        "{}",
        stderr(&a)
    );
    env.airlock().arg("import").arg(&inc1).arg("--into").arg(&into).arg("--allow-removals").assert().success();
    assert!(!into.join("packages/beta").exists() && into.join("packages/gamma").exists());
    // Replay: the same bundle again, or the full one.
    let a = import(&env, &inc1, &into).code(1);
    assert!(stderr(&a).contains("replay"), "{}", stderr(&a));
    let a = import(&env, &full, &into).code(1);
    assert!(stderr(&a).contains("replay"), "{}", stderr(&a));
    import(&env, &inc2, &into).success();
    assert!(tree(&env.public()) == tree(&into), "after the incrementals the trees differ");
    // Nothing new: no bundle.
    let a = env.airlock().args(["export", "-o"]).arg(env.path("4.tar.zst")).assert().success();
    assert!(stderr(&a).contains("nothing to export") && !env.path("4.tar.zst").exists());
}

#[test]
fn hostile_bundles_are_refused_and_leave_the_target_untouched() {
    let env = mirror_with(&["alpha"]);
    env.build().success();
    let good = export(&env, "good.tar.zst", &["--full"]);
    let into = env.path("target");
    import(&env, &good, &into).success();
    let before = tree(&into);
    let original = members(&good);

    // A tampered member: same size, one byte changed.
    let mut tampered = original.clone();
    let victim = tampered.iter().position(|(p, _)| p.ends_with(".whl")).unwrap();
    let last = tampered[victim].1.len() - 1;
    tampered[victim].1[last] ^= 0xff;
    let victim_name = tampered[victim].0.clone();
    // A manifest that adds a `../` member, and the member itself.
    let mut dotdot_manifest = manifest_of(&original);
    dotdot_manifest["to_run"] = serde_json::json!(99);
    let mut dotdot = files(original.clone());
    dotdot.push(("../escape.txt".into(), b"x".to_vec(), Kind::File));
    // A symlink member.
    let mut symlink = files(original.clone());
    symlink.insert(1, ("simple/link".into(), Vec::new(), Kind::Symlink("/etc/passwd")));
    // A duplicate member.
    let mut duplicate = files(original.clone());
    duplicate.push(original[victim].clone().into_file());
    // A member the manifest does not list.
    let mut unlisted = files(original.clone());
    unlisted.push(("simple/extra.html".into(), b"<p>".to_vec(), Kind::File));
    // A bomb: 200 MiB of zeros, honestly declared.
    let zeros = vec![0u8; 200 << 20];
    let mut bomb_manifest = manifest_of(&original);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&zeros));
    bomb_manifest["tree"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"path": "packages/zzz/bomb.whl", "sha256": sha, "size": zeros.len()}));
    bomb_manifest["members"].as_array_mut().unwrap().push(serde_json::json!("packages/zzz/bomb.whl"));
    let digest = airlock::tree::listing_digest(
        &serde_json::from_value::<Vec<airlock::tree::TreeEntry>>(bomb_manifest["tree"].clone()).unwrap(),
    );
    bomb_manifest["to_listing"] = serde_json::json!(digest);
    let mut bomb = vec![("airlock-bundle.json".to_string(), serde_json::to_vec(&bomb_manifest).unwrap(), Kind::File)];
    bomb.extend(files(original[1..].to_vec()));
    bomb.push(("packages/zzz/bomb.whl".into(), zeros, Kind::File));

    type Forged = Vec<(String, Vec<u8>, Kind)>;
    let cases: Vec<(&str, Forged, String)> = vec![
        ("tampered", files(tampered), format!("member {victim_name:?}: sha256 mismatch")),
        ("dotdot", dotdot, "member \"../escape.txt\": unsafe path".to_string()),
        ("symlink", symlink, "member \"simple/link\": a symbolic link: refused".to_string()),
        ("duplicate", duplicate, "appears twice: refused".to_string()),
        ("unlisted", unlisted, "member \"simple/extra.html\": not listed in airlock-bundle.json".to_string()),
        ("bomb", bomb, "refused as a decompression bomb".to_string()),
    ];
    for (name, members, want) in cases {
        // Each hostile bundle claims a newer run, so only its content can fail it.
        let mut members = members;
        let mut m: serde_json::Value = serde_json::from_slice(&members[0].1).unwrap();
        m["to_run"] = serde_json::json!(50);
        members[0].1 = serde_json::to_vec(&m).unwrap();
        let path = env.path(&format!("{name}.tar.zst"));
        forge(&path, &members);
        let a = import(&env, &path, &into).code(1);
        assert!(stderr(&a).contains(&want), "{name}: {}", stderr(&a));
        assert!(stderr(&a).contains(&path.display().to_string()), "{name}: the error names the bundle");
        assert!(tree(&into) == before, "{name}: the target changed");
        assert!(!env.dir.path().join("escape.txt").exists());
        let staging = std::fs::read_dir(env.path(".target.airlock"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("staging-"))
            .count();
        assert_eq!(staging, 0, "{name}: staging left behind");
    }
    // A fresh target stays absent when the first bundle is hostile.
    let fresh = env.path("fresh");
    let a = import(&env, &env.path("tampered.tar.zst"), &fresh).code(1);
    assert!(stderr(&a).contains("sha256 mismatch"));
    assert!(!fresh.exists());
    // Not a bundle at all.
    std::fs::write(env.path("junk.tar.zst"), b"junk").unwrap();
    let a = import(&env, &env.path("junk.tar.zst"), &into).code(1);
    assert!(stderr(&a).contains("junk.tar.zst"), "{}", stderr(&a));
}

trait IntoFile {
    fn into_file(self) -> (String, Vec<u8>, Kind);
}

impl IntoFile for (String, Vec<u8>) {
    fn into_file(self) -> (String, Vec<u8>, Kind) {
        (self.0, self.1, Kind::File)
    }
}

#[test]
fn publish_to_a_directory_is_atomic_and_complete() {
    let env = mirror_with(&["alpha", "beta"]);
    env.build().success();
    let dest = env.path("www/pypi");
    env.airlock().args(["publish", "--to"]).arg(&dest).assert().success();
    assert!(tree(&env.public()) == tree(&dest));
    assert!(std::fs::symlink_metadata(&dest).unwrap().file_type().is_symlink());
}
