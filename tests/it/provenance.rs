//! PEP 740 verification against real data: every real distribution of
//! `../shared/data/pep740` with its real PyPI provenance or attestation,
//! verified offline, with the reference verifier's verdicts (SOURCE.md's
//! oracle table); the tampered copies each refused at the step they break.

use std::path::{Path, PathBuf};

use airlock::provenance::verify::{Publisher, Step, TrustRoot, verify_attestation, verify_bundle, verify_provenance};
use airlock::provenance::wire;
use airlock::util::hashing::Sha256;

fn data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pep740");
    if dir.join("SOURCE.md").is_file() {
        Some(dir)
    } else {
        eprintln!("skipping: {} is absent (the real PEP 740 data)", dir.display());
        None
    }
}

/// What the object is.
#[derive(Clone, Copy)]
enum Obj {
    /// A provenance object, verified against the publisher it claims (and a pin, when given).
    Provenance,
    /// A single attestation, verified against the expected publisher.
    Attestation,
    /// A Sigstore bundle.
    Bundle,
}

struct Case {
    name: &'static str,
    obj: Obj,
    file: &'static str,
    dist: &'static str,
    staging: bool,
    /// The publisher: a pin for provenance objects, the expected identity otherwise.
    publisher: Option<Publisher>,
    /// `None`: verifies; `Some(step)`: refused there.
    refused: Option<Step>,
}

fn gh(repo: &str, wf: &str, env: Option<&str>) -> Option<Publisher> {
    Some(Publisher::github(repo, wf, env))
}

const SAMPLE: &str = "attestations/sampleproject-4.0.0.tar.gz.provenance";
const SAMPLE_SDIST: &str = "dists/sampleproject-4.0.0.tar.gz";
const GOOGLE: &str = "919436158236-compute@developer.gserviceaccount.com";
const OAUTH: &str = "https://github.com/login/oauth";

fn circleci(pipeline: &str) -> Option<Publisher> {
    Some(Publisher::other(
        "CircleCI",
        &[
            ("project_id", "fdd9283f-e619-46af-8f9c-851f7d3e8b2b"),
            ("pipeline_definition_id", pipeline),
            ("vcs_origin", "github.com/CircleCI-Public/sign-and-publish-examples"),
            ("vcs_ref", "refs/heads/pypi"),
        ],
    ))
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Obj::*;
    let c = |name, obj, file, dist, staging, publisher, refused| Case { name, obj, file, dist, staging, publisher, refused };
    let att = |f: &str| -> &'static str { Box::leak(format!("attestations/{f}").into_boxed_str()) };
    let dist = |f: &str| -> &'static str { Box::leak(format!("dists/{f}").into_boxed_str()) };
    let neg = |f: &str| -> &'static str { Box::leak(format!("negative/sampleproject-4.0.0.tar.gz.provenance.{f}").into_boxed_str()) };
    let pa = "pypi_attestations-0.0.19.tar.gz";
    let rfc = "rfc8785-0.1.2-py3-none-any.whl";
    let models = "pypi_attestation_models-0.0.4a2.tar.gz";
    let circle = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl";
    let wheel = "sampleproject-4.0.0-py3-none-any.whl";
    vec![
        c("sampleproject-4.0.0-sdist-provenance", Provenance, SAMPLE, SAMPLE_SDIST, false, None, None),
        c("sampleproject-4.0.0-wheel-attestation", Attestation, att(&format!("{wheel}.publish.attestation")), dist(wheel), false, gh("pypa/sampleproject", "release.yml", None), None),
        c("sampleproject-3.0.0-google-attestation", Attestation, att("sampleproject-3.0.0.tar.gz.publish.attestation"), dist("sampleproject-3.0.0.tar.gz"), false, Some(Publisher::google(GOOGLE)), None),
        c("gcb_attestation_test-0.0.0-google-provenance", Provenance, att("gcb_attestation_test-0.0.0.tar.gz.provenance"), dist("gcb_attestation_test-0.0.0.tar.gz"), false, None, None),
        c("pypi_attestations-0.0.19-provenance", Provenance, att(&format!("{pa}.provenance")), dist(pa), false, None, None),
        c("pypi_attestations-0.0.19-publish-attestation", Attestation, att(&format!("{pa}.publish.attestation")), dist(pa), false, gh("trailofbits/pypi-attestations", "release.yml", None), None),
        c("pypi_attestations-0.0.19-slsa-attestation", Attestation, att(&format!("{pa}.slsa.attestation")), dist(pa), false, gh("trailofbits/pypi-attestations", "release.yml", None), None),
        c("pypi_attestations-0.0.16-attestation", Attestation, att("pypi_attestations-0.0.16.tar.gz.attestation"), dist("pypi_attestations-0.0.16.tar.gz"), false, gh("trailofbits/pypi-attestations", "release.yml", None), None),
        c("pypi_attestations-0.0.30-wheel-provenance", Provenance, att("pypi_attestations-0.0.30-py3-none-any.whl.provenance"), dist("pypi_attestations-0.0.30-py3-none-any.whl"), false, gh("pypi/pypi-attestations", "release.yml", Some("pypi")), None),
        c("juwunit-0.1.3-wheel-attestation", Attestation, att("juwunit-0.1.3-cp310-abi3-macosx_10_12_x86_64.whl.publish.attestation"), dist("juwunit-0.1.3-cp310-abi3-macosx_10_12_x86_64.whl"), false, gh("astral-sh/juwunit", "publish.yml", Some("pypi")), None),
        c("pypi_attestation_models-0.0.4a2-attestation", Attestation, att(&format!("{models}.attestation")), dist(models), false, gh("trailofbits/pypi-attestation-models", "release.yml", None), None),
        c("pypi_attestation_models-0.0.4a2-sigstore-bundle", Bundle, att(&format!("{models}.sigstore")), dist(models), false, gh("trailofbits/pypi-attestation-models", "release.yml", None), None),
        c("gitlab_oidc_project-0.0.3-gitlab-attestation", Attestation, att("gitlab_oidc_project-0.0.3.tar.gz.publish.attestation"), dist("gitlab_oidc_project-0.0.3.tar.gz"), false, Some(Publisher::gitlab("facutuesca/gitlab-oidc-project", ".gitlab-ci.yml")), None),
        c("circleci_example-0.0.1.dev137-provenance", Provenance, att(&format!("{circle}.provenance")), dist(circle), false, None, None),
        c("circleci_example-0.0.1.dev137-attestation", Attestation, att(&format!("{circle}.publish.attestation")), dist(circle), false, circleci("8e4f8ab2-8d7c-4827-9f15-de076d6d647f"), None),
        c("rfc8785-0.1.2-staging-attestation", Attestation, att(&format!("{rfc}.attestation")), dist(rfc), true, Some(Publisher::email("william@yossarian.net", OAUTH)), None),
        c("rfc8785-0.1.2-staging-publish-attestation", Attestation, att(&format!("{rfc}.publish.attestation")), dist(rfc), true, Some(Publisher::email("william@yossarian.net", OAUTH)), None),
        c("rfc8785-0.1.2-staging-sigstore-bundle", Bundle, att(&format!("{rfc}.sigstore")), dist(rfc), true, Some(Publisher::email("william@yossarian.net", OAUTH)), None),
        c("pypi_attestations-0.0.19-with-timestamp", Attestation, att(&format!("{pa}.publish.attestation.with_timestamp")), dist(pa), false, Some(Publisher::email("jku@goto.fi", OAUTH)), None),
        // The refusals.
        c("neg-a-dist-one-byte-changed", Provenance, SAMPLE, "negative/byteflip/sampleproject-4.0.0.tar.gz", false, None, Some(Step::Subject)),
        c("neg-b-signature-altered", Provenance, neg("badsig"), SAMPLE_SDIST, false, None, Some(Step::Signature)),
        c("neg-b2-signature-base64-char-altered", Provenance, neg("badsig-b64char"), SAMPLE_SDIST, false, None, Some(Step::Signature)),
        c("neg-c-wrong-repository", Provenance, SAMPLE, SAMPLE_SDIST, false, gh("pypa/sampleproject-fork", "release.yml", None), Some(Step::Publisher)),
        c("neg-c2-wrong-workflow", Provenance, SAMPLE, SAMPLE_SDIST, false, gh("pypa/sampleproject", "publish.yml", None), Some(Step::Publisher)),
        c("neg-c3-wrong-kind-google", Provenance, SAMPLE, SAMPLE_SDIST, false, Some(Publisher::google(GOOGLE)), Some(Step::Publisher)),
        c("neg-c4-google-wrong-email", Attestation, att("sampleproject-3.0.0.tar.gz.publish.attestation"), dist("sampleproject-3.0.0.tar.gz"), false, Some(Publisher::google("someone-else@developer.gserviceaccount.com")), Some(Step::Identity)),
        c("neg-c5-gitlab-wrong-workflow", Attestation, att("gitlab_oidc_project-0.0.3.tar.gz.publish.attestation"), dist("gitlab_oidc_project-0.0.3.tar.gz"), false, Some(Publisher::gitlab("facutuesca/gitlab-oidc-project", "release.yml")), Some(Step::Identity)),
        c("neg-c6-circleci-wrong-pipeline", Attestation, att(&format!("{circle}.publish.attestation")), dist(circle), false, circleci("00000000-0000-0000-0000-000000000000"), Some(Step::Identity)),
        // The one verdict that differs from the reference verifier's, on
        // purpose: it does not check the GitHub environment; airlock does.
        c("neg-c7-env-not-checked", Provenance, att("pypi_attestations-0.0.30-py3-none-any.whl.provenance"), dist("pypi_attestations-0.0.30-py3-none-any.whl"), false, gh("pypi/pypi-attestations", "release.yml", Some("other-env")), Some(Step::Publisher)),
        c("neg-d-statement-altered", Provenance, neg("badstatement"), SAMPLE_SDIST, false, None, Some(Step::Signature)),
        c("neg-e-integrated-time-altered", Provenance, neg("badtime"), SAMPLE_SDIST, false, None, Some(Step::Log)),
        c("neg-f-inclusion-proof-hash-altered", Provenance, neg("badproof"), SAMPLE_SDIST, false, None, Some(Step::Log)),
        c("neg-g-certificate-swapped", Provenance, neg("othercert"), SAMPLE_SDIST, false, None, Some(Step::Certificate)),
        c("neg-h-claimed-publisher-altered", Provenance, neg("claimed-evil"), SAMPLE_SDIST, false, None, Some(Step::Identity)),
        c("neg-i-attestation-for-other-file", Attestation, att(&format!("{wheel}.publish.attestation")), SAMPLE_SDIST, false, gh("pypa/sampleproject", "release.yml", None), Some(Step::Subject)),
        // Against the other root, the log key is the first thing unknown.
        c("neg-j-prod-attestation-vs-staging-root", Provenance, SAMPLE, SAMPLE_SDIST, true, None, Some(Step::Log)),
        c("neg-k-staging-attestation-vs-prod-root", Attestation, att(&format!("{rfc}.attestation")), dist(rfc), false, Some(Publisher::email("william@yossarian.net", OAUTH)), Some(Step::Log)),
        c("neg-l-wrong-email-identity", Attestation, att(&format!("{pa}.publish.attestation.with_timestamp")), dist(pa), false, Some(Publisher::email("someone@example.com", OAUTH)), Some(Step::Identity)),
    ]
}

fn run(dir: &Path, case: &Case, prod: &TrustRoot, staging: &TrustRoot) -> Result<(), (Step, String)> {
    let root = if case.staging { staging } else { prod };
    let obj = std::fs::read(dir.join(case.file)).unwrap();
    let dist = std::fs::read(dir.join(case.dist)).unwrap();
    let file = Path::new(case.dist).file_name().unwrap().to_str().unwrap();
    let sha = Sha256::of(&dist);
    let expected = || case.publisher.clone().unwrap();
    let r = match case.obj {
        Obj::Provenance => verify_provenance(&obj, file, &sha, root, case.publisher.as_ref()).map(|_| ()),
        Obj::Attestation => {
            let a: wire::Attestation = serde_json::from_slice(&obj).unwrap();
            verify_attestation(&a, file, &sha, root, &expected()).map(|_| ())
        }
        Obj::Bundle => {
            let b = sigstore_verify::types::Bundle::from_json(std::str::from_utf8(&obj).unwrap()).unwrap();
            verify_bundle(&b, file, &sha, root, &expected()).map(|_| ())
        }
    };
    r.map_err(|e| {
        assert!(e.to_string().starts_with(&format!("{file}: provenance fails at the {} step", e.step.as_str())), "{e}");
        (e.step, e.to_string())
    })
}

#[test]
fn real_pep_740_provenance_verifies_offline_and_every_tampering_is_refused_at_its_step() {
    let Some(dir) = data() else { return };
    let prod = TrustRoot::production().unwrap();
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    assert!(TrustRoot::from_json(&read("trust/prod/trusted_root.json")).is_ok(), "the shipped production root parses");
    let staging = TrustRoot::from_json(&read("trust/staging/trusted_root.json")).unwrap();
    let mut wrong = Vec::new();
    for case in cases() {
        let got = run(&dir, &case, &prod, &staging);
        let ok = match (&got, case.refused) {
            (Ok(()), None) => true,
            (Err((step, _)), Some(want)) => *step == want,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{}: expected {:?}, got {got:?}", case.name, case.refused));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The publisher airlock reports is read from the certificate, not the claim.
#[test]
fn the_verified_publisher_comes_from_the_certificate() {
    let Some(dir) = data() else { return };
    let prod = TrustRoot::production().unwrap();
    let dist = std::fs::read(dir.join("dists/pypi_attestations-0.0.30-py3-none-any.whl")).unwrap();
    let prov = std::fs::read(dir.join("attestations/pypi_attestations-0.0.30-py3-none-any.whl.provenance")).unwrap();
    let v =
        verify_provenance(&prov, "pypi_attestations-0.0.30-py3-none-any.whl", &Sha256::of(&dist), &prod, None).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].publisher, Publisher::github("pypi/pypi-attestations", "release.yml", Some("pypi")));
    assert_eq!(v[0].publisher.to_string(), "github:pypi/pypi-attestations@release.yml (environment pypi)");
    assert_eq!(v[0].predicate_type, "https://docs.pypi.org/attestations/publish/v1");
    assert!(v[0].integrated_time.is_some());
    // Not JSON, or no attestation at all: a parse refusal naming the file.
    let e = verify_provenance(b"{", "x-1.0.tar.gz", &Sha256::of(b""), &prod, None).unwrap_err();
    assert_eq!(e.step, Step::Parse);
    assert!(e.to_string().starts_with("x-1.0.tar.gz: provenance fails at the parse step"), "{e}");
    let e =
        verify_provenance(br#"{"version":1,"attestation_bundles":[]}"#, "x-1.0.tar.gz", &Sha256::of(b""), &prod, None)
            .unwrap_err();
    assert!(e.message.contains("no attestation"), "{e}");
}

/// End to end: the fake upstream offers real distributions with their real
/// PyPI provenance; a file whose provenance is tampered is never served.
#[test]
fn a_build_serves_verified_provenance_beside_its_file_and_refuses_a_tampered_one() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    let real = |name: &str, prov: &str| FakeFile {
        provenance: Some(read(prov)),
        ..FakeFile::new((name.to_string(), read(&format!("dists/{name}"))))
    };
    let env = Env::new(Flavour::Json);
    let good = real("pypi_attestations-0.0.19.tar.gz", "attestations/pypi_attestations-0.0.19.tar.gz.provenance");
    env.upstream.add("pypi-attestations", good.clone());
    env.upstream.add(
        "sampleproject",
        real("sampleproject-4.0.0.tar.gz", "negative/sampleproject-4.0.0.tar.gz.provenance.badsig"),
    );
    env.manifest(
        "base_url = \"https://mirror.example/\"\n[select]\npackages = [\"pypi-attestations\", \"sampleproject\"]\nsdists = true\n",
    );
    let a = env.build().success();
    let err = stderr(&a);
    assert!(
        err.contains("sampleproject-4.0.0.tar.gz: provenance fails at the signature step")
            && err.contains("the file is refused and never served"),
        "{err}"
    );
    let public = env.public();
    assert!(listed(&public, "sampleproject").is_empty());
    assert!(!public.join("packages/sampleproject/sampleproject-4.0.0.tar.gz").exists());
    assert!(!env.path(".airlock/store/sampleproject/sampleproject-4.0.0.tar.gz").exists(), "not kept in the store");
    let served =
        std::fs::read(public.join("packages/pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance")).unwrap();
    assert_eq!(served, good.provenance.clone().unwrap(), "the upstream's bytes, byte for byte");
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("simple/pypi-attestations/index.v1_json")).unwrap()).unwrap();
    assert_eq!(page["meta"]["api-version"], "1.4");
    assert_eq!(
        page["files"][0]["provenance"],
        "https://mirror.example/packages/pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance"
    );
    let html = std::fs::read_to_string(public.join("simple/pypi-attestations/index.html")).unwrap();
    assert!(html.contains(" data-provenance=\"https://mirror.example/packages/pypi-attestations/pypi_attestations-0.0.19.tar.gz.provenance\""), "{html}");
    assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.4\">"), "{html}");
    let sec = std::fs::read_to_string(public.join("reports/security.json")).unwrap();
    assert!(sec.contains("provenance-refused"), "reported");
    // The project page names the verified publisher, for the project and the file.
    let people = std::fs::read_to_string(public.join("projects/pypi-attestations/index.html")).unwrap();
    assert!(
        people.contains("<h2>Verified publisher</h2><ul><li>✓ github:trailofbits/pypi-attestations@release.yml</li>"),
        "{people}"
    );
    assert!(
        people.contains("<td class=\"hide-narrow\">✓ github:trailofbits/pypi-attestations@release.yml</td>"),
        "{people}"
    );
    // A rerun asks for no provenance it has.
    env.upstream.clear_requests();
    env.build().success();
    let asked: Vec<String> = env.upstream.requests().into_iter().filter(|r| r.ends_with(".provenance")).collect();
    assert_eq!(asked, ["/files/sampleproject-4.0.0.tar.gz.provenance"], "only the refused file is tried again");
}

/// A real distribution from shared/data/pep740 with its real provenance.
fn attested(dir: &Path, name: &str, prov: &str) -> crate::support::FakeFile {
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    crate::support::FakeFile {
        provenance: Some(read(prov)),
        ..crate::support::FakeFile::new((name.to_string(), read(&format!("dists/{name}"))))
    }
}

/// The real sampleproject 4.0.0 sdist, with its real PyPI provenance.
const SAMPLE_FILE: &str = "sampleproject-4.0.0.tar.gz";
const SAMPLE_SELECT: &str = "[select]\npackages = [\"sampleproject\"]\nsdists = true\n";

fn sample(dir: &Path) -> crate::support::FakeFile {
    attested(dir, SAMPLE_FILE, SAMPLE)
}

/// A mirror of sampleproject's attested sdist, its manifest written.
fn sample_mirror(dir: &Path) -> crate::support::Env {
    let env = crate::support::Env::new(crate::support::Flavour::Json);
    env.upstream.add("sampleproject", sample(dir));
    env.manifest(SAMPLE_SELECT);
    env
}

/// A pylock.toml locking sampleproject's sdist (by `sha`), expecting the
/// publishers `identities` (TOML inline tables).
fn sample_pylock(sha: &str, identities: &str) -> String {
    format!(
        "lock-version = \"1.0\"\ncreated-by = \"test\"\n[[packages]]\nname = \"sampleproject\"\nversion = \"4.0.0\"\nsdist = {{ name = \"{SAMPLE_FILE}\", url = \"https://files.example/{SAMPLE_FILE}\", hashes = {{ sha256 = \"{sha}\" }} }}\nattestation-identities = [{identities}]\n"
    )
}

fn held(public: &Path) -> Vec<(String, String, String)> {
    let sec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("reports/security.json")).unwrap()).unwrap();
    sec["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["project"].as_str().unwrap().to_string(),
                h["version"].as_str().unwrap().to_string(),
                h["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// pypi-attestations moved from trailofbits/ to pypi/ between 0.0.19 and
/// 0.0.30 (real PyPI provenance): a mirror pinned by the first release
/// holds the second until an admit entry lets it in, which moves the pin.
#[test]
fn a_release_from_another_publisher_is_held_until_admitted() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = Env::new(Flavour::Json);
    env.upstream.add(
        "pypi-attestations",
        attested(&dir, "pypi_attestations-0.0.19.tar.gz", "attestations/pypi_attestations-0.0.19.tar.gz.provenance"),
    );
    let select = "[select]\npackages = [\"pypi-attestations\"]\nsdists = true\n";
    env.manifest(select);
    env.build().success();
    let public = env.public();
    assert_eq!(listed(&public, "pypi-attestations"), ["pypi_attestations-0.0.19.tar.gz"]);
    let new = "pypi_attestations-0.0.30-py3-none-any.whl";
    env.upstream.add(
        "pypi-attestations",
        attested(&dir, new, "attestations/pypi_attestations-0.0.30-py3-none-any.whl.provenance"),
    );
    let a = env.build().success();
    let err = stderr(&a);
    assert!(
        err.contains("held: pypi-attestations 0.0.30 is not served (its PEP 740 publisher is not the project's pinned one: pypi_attestations-0.0.30-py3-none-any.whl is signed by github:pypi/pypi-attestations@release.yml (environment pypi), pinned is github:trailofbits/pypi-attestations@release.yml)"),
        "{err}"
    );
    assert_eq!(listed(&public, "pypi-attestations"), ["pypi_attestations-0.0.19.tar.gz"], "held, not served");
    assert!(!env.path(&format!(".airlock/store/pypi-attestations/{new}")).exists(), "not kept in the store");
    assert_eq!(held(&public), [("pypi-attestations".into(), "0.0.30".into(), "publisher-changed".into())]);
    // The next run holds it from what the state knows, asking nothing.
    env.upstream.clear_requests();
    let a = env.build().success();
    assert!(stderr(&a).contains("held: pypi-attestations 0.0.30"), "{}", stderr(&a));
    assert!(env.upstream.requests().iter().all(|r| !r.contains("0.0.30")), "{:?}", env.upstream.requests());
    assert_eq!(held(&public).len(), 1);
    // An admit entry lets it in and moves the pin to the new publisher.
    env.manifest(&format!(
        "{select}[[select.admit]]\nproject = \"pypi-attestations\"\nversion = \"0.0.30\"\nreason = \"moved to the pypi org\"\nexpires = 2999-01-01\n"
    ));
    let a = env.build().success();
    assert!(stderr(&a).contains("admitted early: pypi-attestations 0.0.30 (moved to the pypi org)"), "{}", stderr(&a));
    assert_eq!(listed(&public, "pypi-attestations"), ["pypi_attestations-0.0.19.tar.gz", new]);
    assert!(held(&public).is_empty());
    assert!(public.join(format!("packages/pypi-attestations/{new}.provenance")).is_file());
    // Who published each file, in every report.
    let sec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(public.join("reports/security.json")).unwrap()).unwrap();
    let versions = &sec["projects"][0]["versions"];
    assert_eq!(
        versions[0]["provenance"]["pypi_attestations-0.0.19.tar.gz"]["publisher"]["repository"],
        "trailofbits/pypi-attestations"
    );
    assert_eq!(versions[1]["provenance"][new]["verified"], true);
    assert_eq!(versions[1]["provenance"][new]["publisher"]["environment"], "pypi");
    let html = std::fs::read_to_string(public.join("reports/security.html")).unwrap();
    assert!(html.contains("2 of 2 served files carry PEP 740 provenance"), "{html}");
    assert!(html.contains("<code>github:pypi/pypi-attestations@release.yml (environment pypi)</code>"), "{html}");
    let landing = std::fs::read_to_string(public.join("index.html")).unwrap();
    assert!(landing.contains("<b>2 of 2</b><span>files with verified provenance</span>"), "{landing}");
}

/// A project whose manifest names another publisher holds its real,
/// correctly signed release; a release without provenance after one with
/// it is held; `provenance = "require"` holds a release without any.
#[test]
fn a_pinned_publisher_a_missing_provenance_and_a_required_one_each_hold() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = Env::new(Flavour::Json);
    env.upstream.add("sampleproject", sample(&dir));
    env.upstream.add(
        "pypi-attestations",
        attested(&dir, "pypi_attestations-0.0.19.tar.gz", "attestations/pypi_attestations-0.0.19.tar.gz.provenance"),
    );
    // A token thief's upload: no provenance, after releases that had it.
    env.upstream.add("pypi-attestations", FakeFile::new(sdist("pypi-attestations", "0.0.20")));
    env.upstream.add("plain", FakeFile::new(sdist("plain", "1.0")));
    let select = "[select]\npackages = [\"sampleproject\", \"pypi-attestations\", \"plain\"]\nsdists = true\n[select.project.sampleproject]\npublisher = \"github:someone/else\"\n";
    env.manifest(select);
    let a = env.build().success();
    let err = stderr(&a);
    let public = env.public();
    assert!(err.contains("sampleproject-4.0.0.tar.gz is signed by github:pypa/sampleproject@release.yml, pinned is github:someone/else"), "{err}");
    assert!(listed(&public, "sampleproject").is_empty());
    assert_eq!(listed(&public, "pypi-attestations"), ["pypi_attestations-0.0.19.tar.gz"]);
    assert_eq!(listed(&public, "plain"), ["plain-1.0.tar.gz"], "never attested: nothing missing");
    assert_eq!(
        held(&public),
        [
            ("pypi-attestations".into(), "0.0.20".into(), "provenance-missing".into()),
            ("sampleproject".into(), "4.0.0".into(), "publisher-changed".into()),
        ]
    );
    // The right pin serves it; an admit entry serves the unattested release.
    env.manifest(&format!(
        "{}\n[[select.admit]]\nproject = \"pypi-attestations\"\nversion = \"0.0.20\"\nreason = \"reviewed\"\nexpires = 2999-01-01\n",
        select.replace("github:someone/else", "github:pypa/sampleproject@release.yml")
    ));
    env.build().success();
    assert_eq!(listed(&public, "sampleproject"), ["sampleproject-4.0.0.tar.gz"]);
    assert_eq!(listed(&public, "pypi-attestations").len(), 2);
    assert!(held(&public).is_empty());
    // Under "require", a release without provenance is held.
    env.manifest("[select]\npackages = [\"plain\"]\nsdists = true\n[policy]\nprovenance = \"require\"\n");
    let a = env.airlock().args(["build", "--allow-removals"]).assert().success();
    assert!(
        stderr(&a).contains("and it has no PEP 740 provenance: no provenance for plain-1.0.tar.gz)"),
        "{}",
        stderr(&a)
    );
    assert!(listed(&public, "plain").is_empty(), "held, so no longer served");
    assert_eq!(held(&public), [("plain".into(), "1.0".into(), "provenance-required".into())]);
}

#[test]
fn a_publisher_key_is_checked_at_load() {
    use crate::support::*;
    let env = Env::new(Flavour::Json);
    env.manifest(
        "[select]\npackages = [\"a\"]\npublisher = \"github:x/y\"\n[select.project.a]\npublisher = \"github:nobody\"\n",
    );
    let a = env.airlock().arg("plan").assert().failure();
    let err = stderr(&a);
    assert!(err.contains("mirror.toml:9:13: `publisher` names one project's publisher"), "{err}");
    assert!(err.contains("mirror.toml:11:13: `publisher`: \"github:nobody\": expected kind:owner/repo"), "{err}");
}

/// A bundle carries provenance and the import verifies it again, offline:
/// a bundle forged consistently (the `.provenance` and the manifest's
/// sha256 of it both changed) is refused, naming the member and the step.
#[test]
fn an_import_verifies_provenance_again_and_refuses_a_forged_one() {
    use crate::bundles::{files, forge, manifest_of, members};
    use crate::support::*;
    use sha2::Digest;
    let Some(dir) = data() else { return };
    let env = sample_mirror(&dir);
    env.build().success();
    let bundle = env.path("full.tar.zst");
    env.airlock().args(["export", "--full", "-o"]).arg(&bundle).assert().success();
    let into = env.path("airgap");
    env.airlock().arg("import").arg(&bundle).arg("--into").arg(&into).assert().success();
    let prov = "packages/sampleproject/sampleproject-4.0.0.tar.gz.provenance";
    assert_eq!(std::fs::read(into.join(prov)).unwrap(), std::fs::read(env.public().join(prov)).unwrap());

    let bad = std::fs::read(dir.join("negative/sampleproject-4.0.0.tar.gz.provenance.badsig")).unwrap();
    let mut m = members(&bundle);
    let mut manifest = manifest_of(&m);
    for e in manifest["tree"].as_array_mut().unwrap() {
        if e["path"] == prov {
            e["sha256"] = serde_json::json!(hex::encode(sha2::Sha256::digest(&bad)));
            e["size"] = serde_json::json!(bad.len());
        }
    }
    let listing = serde_json::to_vec(&manifest["tree"]).unwrap();
    manifest["to_listing"] = serde_json::json!(hex::encode(sha2::Sha256::digest(&listing)));
    m[0].1 = serde_json::to_vec(&manifest).unwrap();
    m.iter_mut().find(|(p, _)| p == prov).unwrap().1 = bad;
    let forged = env.path("forged.tar.zst");
    forge(&forged, &files(m));
    let fresh = env.path("airgap2");
    let a = env.airlock().arg("import").arg(&forged).arg("--into").arg(&fresh).assert().failure();
    let err = stderr(&a);
    assert!(
        err.contains(&format!("member \"{prov}\": sampleproject-4.0.0.tar.gz: provenance fails at the signature step")),
        "{err}"
    );
    assert!(!fresh.join("current").exists() && !fresh.join(prov).exists(), "nothing imported");
}

/// `airlock verify` verifies the served provenance again: clean against
/// the root it was verified with, refused against another.
#[test]
fn verify_checks_the_served_provenance_again() {
    let Some(dir) = data() else { return };
    let env = sample_mirror(&dir);
    let select = SAMPLE_SELECT;
    env.build().success();
    env.airlock().arg("verify").assert().success();
    let staging = dir.join("trust/staging/trusted_root.json");
    env.manifest(&format!("{select}[policy]\ntrusted_root = \"{}\"\n", staging.display()));
    let a = env.airlock().arg("verify").assert().failure();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        out.contains("provenance  packages/sampleproject/sampleproject-4.0.0.tar.gz.provenance: sampleproject-4.0.0.tar.gz: provenance fails at the transparency log step"),
        "{out}"
    );
}

/// The served `.provenance` is the upstream's, byte for byte, and the
/// reference verifier (pypi-attestations, offline) accepts it against the
/// served file.
#[test]
fn the_reference_verifier_accepts_the_served_provenance() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = Env::new(Flavour::Json);
    let pairs = [
        ("sampleproject", "sampleproject-4.0.0.tar.gz", "https://github.com/pypa/sampleproject"),
        ("pypi-attestations", "pypi_attestations-0.0.19.tar.gz", "https://github.com/trailofbits/pypi-attestations"),
    ];
    for (project, file, _) in pairs {
        env.upstream.add(project, attested(&dir, file, &format!("attestations/{file}.provenance")));
    }
    env.manifest("[select]\npackages = [\"sampleproject\", \"pypi-attestations\"]\nsdists = true\n");
    env.build().success();
    let public = env.public();
    for (project, file, repository) in pairs {
        let served = public.join(format!("packages/{project}/{file}"));
        let provenance = public.join(format!("packages/{project}/{file}.provenance"));
        assert_eq!(
            std::fs::read(&provenance).unwrap(),
            std::fs::read(dir.join(format!("attestations/{file}.provenance"))).unwrap()
        );
        let out = tools::pypi_attestations_verify(&served, &provenance, repository);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains(&format!("OK: {file}")), "{said}");
        // And it refuses the served provenance against another file.
        let other = public.join(format!("packages/{project}/{file}.provenance"));
        let out = tools::pypi_attestations_verify(&other, &provenance, repository);
        assert!(!out.status.success(), "the reference verifier must refuse a mismatched pair");
    }
}

/// A pylock.toml's `attestation-identities` pin its package: the real
/// release, signed by its real publisher, is held when the lock names
/// another, and served when the lock names it.
#[test]
fn a_lock_files_attestation_identities_pin_the_publisher() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = Env::new(Flavour::Json);
    let file = SAMPLE_FILE;
    let f = sample(&dir);
    let sha = f.sha256();
    env.upstream.add("sampleproject", f);
    let lock = |repo: &str| {
        sample_pylock(&sha, &format!("{{ kind = \"GitHub\", repository = \"{repo}\", workflow = \"release.yml\" }}"))
    };
    std::fs::write(env.path("pylock.toml"), lock("someone/else")).unwrap();
    env.manifest("[select]\nlockfiles = [\"pylock.toml\"]\nsdists = true\n");
    let a = env.build().success();
    assert!(
        stderr(&a)
            .contains("is signed by github:pypa/sampleproject@release.yml, pinned is github:someone/else@release.yml"),
        "{}",
        stderr(&a)
    );
    assert!(listed(&env.public(), "sampleproject").is_empty());
    std::fs::write(env.path("pylock.toml"), lock("pypa/sampleproject")).unwrap();
    env.build().success();
    assert_eq!(listed(&env.public(), "sampleproject"), [file]);
}

/// `scan --format cyclonedx` against a mirror names each component's
/// publisher as the mirror verified it, and the identities a lock expects.
#[test]
fn cyclonedx_from_scan_names_the_verified_publisher() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = Env::new(Flavour::Json);
    let f = sample(&dir);
    let sha = f.sha256();
    env.upstream.add("sampleproject", f);
    env.policy_snapshot();
    env.manifest("[select]\npackages = [\"sampleproject\"]\nsdists = true\n[advisories]\nmax_age_days = 36500\n");
    env.build().success();
    std::fs::write(
        env.path("pylock.toml"),
        sample_pylock(&sha, "{ kind = \"GitHub\", repository = \"pypa/sampleproject\" }"),
    )
    .unwrap();
    let url = format!("file://{}/simple/", env.public().display());
    let a = env
        .airlock()
        .args(["scan", "--index-url", &url, "--lock", "pylock.toml", "--format", "cyclonedx"])
        .assert()
        .success();
    let bom: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    let props = &bom["components"][0]["properties"];
    assert_eq!(
        props,
        &serde_json::json!([
            {"name": "airlock:pep740:publisher", "value": "github:pypa/sampleproject@release.yml"},
            {"name": "airlock:pep740:attestation-identity", "value": "github:pypa/sampleproject"},
        ]),
        "{bom}"
    );
}

/// A stored file the state does not record (a killed run's, a shard's) is
/// adopted only with its provenance beside it, verified again; without
/// it, it is fetched again, provenance and all.
#[test]
fn an_attested_file_is_adopted_only_with_its_verified_provenance() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = sample_mirror(&dir);
    let file = SAMPLE_FILE;
    env.build().success();
    let forget = || {
        for f in ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm"] {
            let _ = std::fs::remove_file(env.path(&format!(".airlock/{f}")));
        }
    };
    forget();
    env.upstream.clear_requests();
    let a = env.build().success();
    assert!(stderr(&a).contains(&format!("adopted {file} from the store")), "{}", stderr(&a));
    assert!(env.upstream.requests().iter().all(|r| !r.starts_with("/files/")), "{:?}", env.upstream.requests());
    assert_eq!(listed(&env.public(), "sampleproject"), [file]);
    forget();
    std::fs::remove_file(env.path(&format!(".airlock/store/sampleproject/{file}.provenance"))).unwrap();
    env.upstream.clear_requests();
    env.build().success();
    let asked: Vec<String> = env.upstream.requests().into_iter().filter(|r| r.starts_with("/files/")).collect();
    assert_eq!(asked, [format!("/files/{file}"), format!("/files/{file}.provenance")]);
    assert!(env.path(&format!(".airlock/store/sampleproject/{file}.provenance")).is_file());
}

/// Sharded fetches carry provenance: the plan names each file's provenance
/// URL, the shard fetches and verifies it beside the file, and the offline
/// build adopts the file with it.
#[test]
fn a_sharded_fetch_brings_the_provenance_the_offline_build_adopts() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = sample_mirror(&dir);
    let file = SAMPLE_FILE;
    env.airlock().args(["plan", "-o", "plan.json"]).assert().success();
    let plan = std::fs::read_to_string(env.path("plan.json")).unwrap();
    assert!(plan.contains(&format!("{file}.provenance\"")), "the plan names the provenance URL: {plan}");
    env.airlock().args(["fetch", "--plan", "plan.json", "--shard", "0/1"]).assert().success();
    assert!(env.path(&format!(".airlock/store/sampleproject/{file}.provenance")).is_file());
    let a = env.airlock().args(["build", "--offline"]).assert().success();
    assert!(stderr(&a).contains(&format!("adopted {file}")), "{}", stderr(&a));
    assert_eq!(listed(&env.public(), "sampleproject"), [file]);
    assert!(env.public().join(format!("packages/sampleproject/{file}.provenance")).is_file());
}

/// With an object-store store, a file's provenance goes up beside it; an
/// empty runner brings it back, verifies it again and serves it; an
/// altered copy in the bucket is never served. Against moto and s3s-fs.
#[test]
fn the_object_store_keeps_provenance_and_an_altered_copy_is_not_served() {
    use crate::support::s3::S3;
    use crate::support::*;
    let Some(dir) = data() else { return };
    let file = SAMPLE_FILE;
    let key = format!("store/sampleproject/{file}.provenance");
    for s3 in S3::both() {
        let env = Env::new(Flavour::Json);
        env.upstream.add("sampleproject", sample(&dir));
        s3.create_bucket("mirror");
        env.manifest("store = \"s3://mirror/store\"\n[select]\npackages = [\"sampleproject\"]\nsdists = true\n");
        let build = || {
            let mut cmd = env.airlock();
            cmd.arg("build");
            s3.env(&mut cmd);
            cmd.assert()
        };
        let empty = || {
            for d in [".airlock", ".public.airlock", "public"] {
                std::fs::remove_dir_all(env.path(d)).ok();
            }
            std::fs::remove_file(env.public()).ok();
        };
        build().success();
        assert!(s3.has("mirror", &key), "{}: the provenance is in the bucket: {:?}", s3.name(), s3.keys("mirror", ""));
        empty();
        env.upstream.clear_requests();
        build().success();
        assert!(env.upstream.requests().iter().all(|r| !r.starts_with("/files/")), "{}: from the bucket", s3.name());
        assert!(env.public().join(format!("packages/sampleproject/{file}.provenance")).is_file(), "{}", s3.name());
        // The bucket's copy altered behind airlock's back.
        let bad = std::fs::read(dir.join("negative/sampleproject-4.0.0.tar.gz.provenance.badsig")).unwrap();
        s3.put("mirror", &key, &bad);
        empty();
        let a = build();
        let err = stderr(&a);
        assert!(
            err.contains("provenance fails at the signature step") && err.contains("not served"),
            "{}: {err}",
            s3.name()
        );
        assert!(!env.public().join(format!("packages/sampleproject/{file}.provenance")).exists(), "{}", s3.name());
    }
}

/// A pruned file's provenance leaves the store with it.
#[test]
fn a_pruned_file_takes_its_provenance_with_it() {
    use crate::support::*;
    let Some(dir) = data() else { return };
    let env = Env::new(Flavour::Json);
    let file = SAMPLE_FILE;
    env.upstream.add("sampleproject", sample(&dir));
    env.upstream.add("plain", FakeFile::new(sdist("plain", "1.0")));
    env.manifest(
        "keep_runs = 0\nmax_removed = \"100%\"\n[select]\npackages = [\"sampleproject\", \"plain\"]\nsdists = true\n",
    );
    env.build().success();
    let kept = env.path(&format!(".airlock/store/sampleproject/{file}.provenance"));
    assert!(kept.is_file());
    env.manifest("keep_runs = 0\nmax_removed = \"100%\"\n[select]\npackages = [\"plain\"]\nsdists = true\n");
    env.build().success();
    assert!(!env.path(&format!(".airlock/store/sampleproject/{file}")).exists(), "pruned");
    assert!(!kept.exists(), "its provenance went with it");
}
