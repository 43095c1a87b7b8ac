//! Every input that once crashed a parser, replayed on every test run
//! through the fuzzer's own entry point (`airlock::fuzz::run`), and the two
//! panics of issue 12 where a user meets them.

use std::path::Path;

use crate::support::*;

/// Every saved input of every target runs without a panic.
#[test]
fn saved_fuzz_inputs_do_not_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut replayed = 0;
    for target in airlock::fuzz::TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else { continue };
        for entry in dir {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| airlock::fuzz::run(target, &data));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 4, "the regression inputs are there ({replayed})");
    // The directories are named after real targets.
    for entry in std::fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(airlock::fuzz::TARGETS.contains(&name.as_str()), "tests/fixtures/fuzz/{name} is no target");
        }
    }
}

/// `alpha../../x==1.0` from a manifest, a requirements file and an
/// upstream wheel's Requires-Dist: a named error or a skipped line, never a
/// crash (pep508_rs 0.9.2 panicked on it: exit 101 for every mirror that
/// followed such an upstream).
#[test]
fn a_dotted_requirement_name_is_an_error_not_a_crash() {
    let env = Env::new(Flavour::Json);
    env.manifest("[select]\npackages = [\"alpha../../x==1.0\"]\n");
    let a = env.build().code(1);
    assert!(stderr(&a).contains("mirror.toml:"), "{}", stderr(&a));
    std::fs::write(env.path("req.txt"), "alpha../../x==1.0\n-\u{e9}\n").unwrap();
    env.manifest("[select]\nrequirements = [\"req.txt\"]\n");
    let a = env.build().code(1);
    assert!(stderr(&a).contains("req.txt:1"), "{}", stderr(&a));

    env.upstream.add(
        "app",
        FakeFile::new(wheel("app", "1.0", WheelSpec { requires: &["alpha../../x==1.0", "dep"], ..Default::default() })),
    );
    env.upstream.add("dep", FakeFile::new(wheel("dep", "1.0", WheelSpec::default())));
    for mode in ["\"resolve\"", "\"all\""] {
        env.manifest(&format!("[select]\npackages = [\"app\"]\ndependencies = {mode}\n"));
        let a = env.build().success();
        assert!(stderr(&a).contains("alpha../../x==1.0"), "{mode}: the bad line is named: {}", stderr(&a));
        assert_eq!(listed(&env.public(), "dep"), ["dep-1.0-py3-none-any.whl"], "{mode}");
    }
}

/// Seeds for every target: small valid inputs of each format, built here so
/// the smoke run needs nothing outside the repository.
fn seeds(scratch: &Path) -> std::collections::BTreeMap<&'static str, Vec<Vec<u8>>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let osv: Vec<Vec<u8>> = ["policy", "records", "hostile"]
        .iter()
        .flat_map(|d| std::fs::read_dir(fixtures.join("osv").join(d)).unwrap())
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let (_, whl) = wheel(
        "pkg",
        "1.0",
        WheelSpec { requires: &["q>=1; extra == 'x'", "r; sys_platform == 'win32'"], ..Default::default() },
    );
    let (_, tgz) = sdist("pkg", "1.0");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (i, record) in osv.iter().take(3).enumerate() {
        zip.start_file(format!("r{i}.json"), zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, record).unwrap();
    }
    let osv_zip = zip.finish().unwrap().into_inner();
    let snapshot = scratch.join("seed.sqlite.zst");
    airlock_in(scratch)
        .args(["advisories", "build"])
        .arg(fixtures.join("osv/policy"))
        .arg("-o")
        .arg(&snapshot)
        .assert()
        .success();
    let text = |items: &[&str]| items.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let mut out = std::collections::BTreeMap::new();
    out.insert(
        "filename",
        text(&[
            "requests-2.32.3-py3-none-any.whl",
            "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "Django-5.0.tar.gz",
            "pkg-1.0.zip",
        ]),
    );
    out.insert("manifest", vec![std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("mirror.toml")).unwrap()]);
    out.insert(
        "requirements",
        text(&[
            "requests>=2.31\nflask[async]; python_version >= \"3.8\" \\\n  --hash=sha256:00\n",
            "-rother.txt\n",
            "-c pins.txt\n",
        ]),
    );
    out.insert("pep691", text(&[r#"{"meta":{"api-version":"1.1"},"name":"p","versions":["1.0"],"files":[{"filename":"p-1.0-py3-none-any.whl","url":"../../p-1.0-py3-none-any.whl","hashes":{"sha256":"00"},"requires-python":">=3.8","core-metadata":{"sha256":"00"},"yanked":"bad","size":3,"upload-time":"2024-01-01T00:00:00Z"}]}"#]));
    out.insert("pep503", text(&[r#"<!DOCTYPE html><html><head><base href="/x/"></head><body><a href="../../p-1.0.tar.gz#sha256=00" data-requires-python="&gt;=3.8" data-yanked="" data-core-metadata="sha256=00">p-1.0.tar.gz</a></body></html>"#]));
    out.insert("metadata", text(&["Metadata-Version: 2.1\nName: p\nVersion: 1.0\nRequires-Python: >=3.8\nRequires-Dist: q>=1; extra == \"x\"\nProvides-Extra: x\n\nbody\n"]));
    out.insert(
        "readme",
        text(&[
            "Metadata-Version: 2.1\nName: p\nDescription-Content-Type: text/markdown\n\n# T\n\n<script>x</script>\n[a](javascript:x)\n![i](https://x/i.png)\n",
            "Metadata-Version: 1.2\nName: p\nDescription: line\n        |  more\n",
        ]),
    );
    out.insert("wheel", vec![whl]);
    out.insert("sdist", vec![tgz]);
    out.insert("osv", osv);
    out.insert("osv-zip", vec![osv_zip]);
    out.insert("snapshot", vec![std::fs::read(&snapshot).unwrap()]);
    out.insert("bundle", vec![zstd::encode_all(&b"airlock"[..], 3).unwrap()]);
    out.insert("pylock", text(&["lock-version = \"1.0\"\ncreated-by = \"uv\"\n[[packages]]\nname = \"p\"\nversion = \"1.0\"\nmarker = \"sys_platform == 'linux'\"\n[[packages.wheels]]\nname = \"p-1.0-py3-none-any.whl\"\nurl = \"https://x/p-1.0-py3-none-any.whl\"\nhashes = {sha256 = \"00\"}\n"]));
    out.insert("plan", text(&[r#"{"schema":"airlock.plan/v1","upstream":"https://x/simple/","bytes":3,"files":[{"project":"p","filename":"p-1.0-py3-none-any.whl","url":"https://x/p-1.0-py3-none-any.whl","sha256":"0000000000000000000000000000000000000000000000000000000000000000","size":3}]}"#]));
    out.insert("uv-lock", text(&["version = 1\nrequires-python = \">=3.11\"\n[[package]]\nname = \"demo\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\ndependencies = [{ name = \"p\", marker = \"sys_platform == 'win32'\" }]\n[[package]]\nname = \"p\"\nversion = \"1.0\"\nsource = { registry = \"https://x/simple\" }\nwheels = [{ url = \"https://x/p-1.0-py3-none-any.whl\", hash = \"sha256:00\", size = 3 }]\n"]));
    let mut provenance = text(&[
        "{\"version\":1,\"attestation_bundles\":[{\"publisher\":{\"kind\":\"GitHub\",\"repository\":\"o/r\",\"workflow\":\"w.yml\"},\"attestations\":[{\"version\":1,\"verification_material\":{\"certificate\":\"AAAA\",\"transparency_entries\":[{}]},\"envelope\":{\"statement\":\"e30=\",\"signature\":\"AAAA\"}}]}]}",
    ]);
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/pep740/attestations/sampleproject-4.0.0.tar.gz.provenance");
    provenance.extend(std::fs::read(real).ok());
    out.insert("provenance", provenance);
    out.insert(
        "xmlrpc",
        text(&[
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data><value><array><data><value><string>p</string></value><value><string>1.0</string></value><value><int>1700000000</int></value><value><string>new release</string></value><value><int>42</int></value></data></array></value></data></array></value></param></params></methodResponse>",
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><int>42</int></value></param></params></methodResponse>",
            "<?xml version=\"1.0\"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member></struct></value></fault></methodResponse>",
        ]),
    );
    out
}

/// One random edit of `data`: flip, insert, delete, duplicate or splice in
/// bytes from another seed (the mutations libFuzzer starts with).
fn mutate(rng: &mut fastrand::Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let at = |rng: &mut fastrand::Rng, len: usize| if len == 0 { 0 } else { rng.usize(..len) };
    match rng.u8(..6) {
        0 if !data.is_empty() => {
            let i = at(rng, data.len());
            data[i] ^= 1 << rng.u8(..8);
        }
        1 => {
            let i = at(rng, data.len() + 1).min(data.len());
            // Separators, quotes, multi-byte characters, huge numbers.
            let tokens: [&[u8]; 18] = [
                b"\0",
                b"\"",
                b"'",
                b"\\",
                b"\n",
                b"=",
                b";",
                b"[",
                b"{",
                b"<",
                b"-",
                b"..",
                "\u{e9}".as_bytes(),
                "\u{20ac}".as_bytes(),
                "\u{1d54f}".as_bytes(),
                b"\xff",
                b"99999999999999999999",
                b"-1",
            ];
            let token = tokens[rng.usize(..tokens.len())];
            data.splice(i..i, token.iter().copied());
        }
        2 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.usize(1..=16).min(data.len() - i);
            data.drain(i..i + n);
        }
        3 if !data.is_empty() => {
            let i = at(rng, data.len());
            let n = rng.usize(1..=32).min(data.len() - i);
            let chunk: Vec<u8> = data[i..i + n].to_vec();
            let j = at(rng, data.len());
            data.splice(j..j, chunk);
        }
        4 if !others.is_empty() => {
            let other = &others[rng.usize(..others.len())];
            if !other.is_empty() {
                let i = at(rng, other.len());
                let n = rng.usize(1..=64).min(other.len() - i);
                let j = at(rng, data.len());
                data.splice(j..j, other[i..i + n].iter().copied());
            }
        }
        _ => {
            let n = at(rng, data.len() + 1);
            data.truncate(n);
        }
    }
}

/// The CI smoke run: every target, a few hundred seeded mutations of valid
/// inputs each, without instrumentation (it needs no extra build). Any
/// panic fails the suite and prints the input to save as a regression.
/// `scripts/fuzz.sh` is the coverage-guided search.
#[test]
fn every_parser_survives_a_mutation_smoke_run() {
    let scratch = tempfile::tempdir().unwrap();
    let seeds = seeds(scratch.path());
    for target in airlock::fuzz::TARGETS {
        let corpus = seeds.get(target).unwrap_or_else(|| panic!("no seeds for the target {target}"));
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for i in 0..1000 {
            let mut data = corpus[i % corpus.len()].clone();
            for _ in 0..=rng.usize(..4) {
                mutate(&mut rng, &mut data, corpus);
            }
            let outcome = std::panic::catch_unwind(|| airlock::fuzz::run(target, &data));
            assert!(
                outcome.is_ok(),
                "{target}: mutation {i} panics; save it as tests/fixtures/fuzz/{target}/<name>: {data:?}"
            );
        }
    }
}
