//! The tree of a fixed mirror, file by file (path and sha256), against a
//! listing committed before the wave's refactors: a change of structure
//! must not change one byte of what is published. The upstream's URL (its
//! port changes every run) is replaced in the few files that name it.
//! `AIRLOCK_UPDATE_GOLDEN=1` rewrites the listing, for a deliberate change
//! of the output.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::Digest;

use crate::support::*;

fn build() -> (Env, BTreeMap<String, String>) {
    let env = Env::new(Flavour::Json);
    let up = &env.upstream;
    let at = "2024-01-02T03:04:05Z";
    up.add(
        "Demo.Pkg",
        FakeFile::new(wheel("Demo.Pkg", "1.0", WheelSpec { requires_python: Some(">=3.8"), ..Default::default() }))
            .uploaded(at),
    );
    up.add("Demo.Pkg", FakeFile::new(sdist("Demo.Pkg", "1.0")).uploaded(at));
    up.add("Demo.Pkg", FakeFile::new(wheel("Demo.Pkg", "0.9", WheelSpec::default())).yanked("use 1.0").uploaded(at));
    up.add(
        "lib",
        FakeFile::new(wheel(
            "lib",
            "2.0",
            WheelSpec { tag: "cp312-cp312-manylinux_2_17_x86_64", ..Default::default() },
        ))
        .uploaded(at),
    );
    up.add("lib", FakeFile::new(wheel("lib", "2.0", WheelSpec::default())).uploaded(at));
    up.add(
        "app",
        FakeFile::new(wheel(
            "app",
            "1.0",
            WheelSpec { requires: &["lib>=2", "demo.pkg; extra == 'x'"], ..Default::default() },
        ))
        .uploaded(at),
    );
    for v in ["1.0", "2.0"] {
        up.add("vulnlib", FakeFile::new(wheel("vulnlib", v, WheelSpec::default())).uploaded(at));
    }
    up.add("nosev", FakeFile::new(wheel("nosev", "1.0", WheelSpec::default())).uploaded(at));
    // The snapshot records where its source was read; a path relative to
    // the mirror keeps the bytes the same in any checkout.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv/policy");
    let local = env.dir.path().join("osv");
    std::fs::create_dir_all(&local).unwrap();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), local.join(entry.file_name())).unwrap();
    }
    env.airlock()
        .args(["advisories", "build", "osv"])
        .args(["-o", ".airlock/advisories.sqlite.zst"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .assert()
        .success();
    env.manifest("[select]\npackages = [\"demo.pkg\", \"lib\", \"app\", \"vulnlib\", \"nosev\"]\nyanked = true\n[advisories]\nmax_age_days = 36500\n");
    env.airlock().arg("build").env("SOURCE_DATE_EPOCH", "1700000000").assert().success();
    let upstream = env.upstream.index_url();
    let base = upstream.trim_end_matches("simple/");
    let files = tree(&env.public())
        .into_iter()
        .map(|(path, bytes)| {
            let text = String::from_utf8(bytes.clone()).ok().filter(|t| t.contains(base));
            let bytes = text.map_or(bytes, |t| t.replace(base, "http://UPSTREAM/").into_bytes());
            (path, hex::encode(sha2::Sha256::digest(&bytes)))
        })
        .collect();
    (env, files)
}

#[test]
fn a_fixed_mirror_publishes_the_same_bytes() {
    let (_env, files) = build();
    let listing: String = files.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-tree.txt");
    if std::env::var_os("AIRLOCK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &listing).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).expect("tests/fixtures/golden-tree.txt (AIRLOCK_UPDATE_GOLDEN=1 writes it)");
    if want != listing {
        let want: BTreeMap<&str, &str> = want.lines().filter_map(|l| l.split_once("  ").map(|(h, p)| (p, h))).collect();
        let got: BTreeMap<&str, &str> =
            listing.lines().filter_map(|l| l.split_once("  ").map(|(h, p)| (p, h))).collect();
        let differ: Vec<&&str> = want.keys().chain(got.keys()).filter(|p| want.get(*p) != got.get(*p)).collect();
        panic!("the published tree changed: {differ:?}");
    }
}
