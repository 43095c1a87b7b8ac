//! Entry points for fuzzing every parser of untrusted input: bytes in,
//! nothing out, and never a panic. The coverage-guided fuzzer (`fuzz/`,
//! driven by `scripts/fuzz.sh`) calls [`run`] with the target named in
//! `AIRLOCK_FUZZ_TARGET`; the test suite replays every saved input
//! (`tests/fixtures/fuzz/<target>/`) through the same function, so a crash
//! found once stays fixed.
//!
//! Parsers that read files get the bytes through a temporary file, as they
//! would from a download or a carried bundle.

use std::io::Cursor;
use std::path::Path;
use std::str::FromStr;

use crate::dist::filename::{DistFilename, WheelFilename};

/// Every target, as named on the command line and in the corpus directories.
pub const TARGETS: &[&str] = &[
    "filename",
    "manifest",
    "requirements",
    "pep691",
    "pep503",
    "metadata",
    "wheel",
    "sdist",
    "osv",
    "osv-zip",
    "snapshot",
    "bundle",
    "pylock",
    "uv-lock",
    "plan",
    "xmlrpc",
    "provenance",
    "readme",
];

/// Feed `data` to the parser `target` names; an unknown target is ignored.
pub fn run(target: &str, data: &[u8]) {
    let text = || String::from_utf8_lossy(data);
    match target {
        "filename" => filename(&text()),
        "manifest" => {
            let _ = crate::manifest::Manifest::parse(&text(), Path::new("fuzz/mirror.toml"));
        }
        "requirements" => in_file("requirements.txt", data, |p| {
            let _ = crate::manifest::requirements::read_file(p);
        }),
        "pep691" => {
            if let Ok(page) = crate::upstream::wire::parse_json_page(data, "https://fuzz.invalid/simple/p/") {
                listing(&page);
            }
        }
        "pep503" => {
            let base = url::Url::parse("https://fuzz.invalid/simple/p/").expect("a URL");
            listing(&crate::upstream::wire::parse_html_page(data, &base, "p"));
        }
        "metadata" => {
            let _ = crate::dist::metadata::CoreMetadata::parse(data);
        }
        "wheel" => {
            let wheel = WheelFilename::from_str("pkg-1.0-py3-none-any.whl").expect("a wheel name");
            let _ = crate::dist::metadata::wheel_metadata_from(Cursor::new(data), "fuzz.whl", &wheel);
        }
        "sdist" => {
            for name in ["pkg-1.0.tar.gz", "pkg-1.0.zip"] {
                let Ok(DistFilename::Sdist(sdist)) = DistFilename::from_str(name) else { continue };
                in_file(name, data, |p| {
                    let _ = crate::dist::metadata::sdist_metadata(p, &sdist);
                });
            }
        }
        "osv" => {
            for name in ["record.json", "record.yaml"] {
                in_file(name, data, |p| {
                    let _ = crate::advisories::source::read(p);
                });
            }
        }
        "osv-zip" => in_file("all.zip", data, |p| {
            let _ = crate::advisories::source::read(p);
        }),
        "snapshot" => in_file("advisories.sqlite.zst", data, |p| {
            if let Ok(s) = crate::advisories::snapshot::Snapshot::open(p) {
                let _ = s.check("jinja2", "2.10");
            }
        }),
        "bundle" => in_file("bundle.tar.zst", data, |p| {
            if let Some(dir) = p.parent() {
                let _ = crate::bundle::import(p, &dir.join("into"), (false, crate::manifest::DEFAULT_MAX_REMOVED));
            }
        }),
        "pylock" => in_file("pylock.toml", data, lock),
        "uv-lock" => in_file("uv.lock", data, lock),
        "plan" => in_file("plan.json", data, |p| {
            let _ = crate::commands::shard::read_shard(p, crate::commands::shard::Shard { index: 1, count: 3 });
        }),
        "xmlrpc" => {
            if let Ok(value) = crate::upstream::serial::parse_response(data) {
                let _ = crate::upstream::serial::changes(&value);
            }
        }
        "provenance" => {
            // The verifier is built once: its roots parse the same every time.
            static ROOT: std::sync::OnceLock<Option<crate::provenance::TrustRoot>> = std::sync::OnceLock::new();
            if let Some(root) = ROOT.get_or_init(|| crate::provenance::TrustRoot::production().ok()) {
                let sha = crate::util::hashing::Sha256::of(data);
                let _ = crate::provenance::verify_provenance(data, "pkg-1.0.tar.gz", &sha, root, None);
            }
        }
        "readme" => {
            // What a project page reads of a METADATA never panics, and
            // whatever it says, its rendered README runs nothing.
            let _ = crate::browse::view::Metadata::parse(data);
            let (text, markup) = crate::browse::readme::description(data).unwrap_or_else(|| {
                (String::from_utf8_lossy(data).into_owned(), crate::browse::readme::Markup::Markdown)
            });
            safe_html(&crate::browse::readme::render(&text, markup));
        }
        _ => {}
    }
}

/// Rendered README HTML runs nothing: no script, image, frame, form or
/// event attribute in any tag, and every link's scheme one that only
/// navigates (read as a browser reads it: case and whitespace ignored).
fn safe_html(html: &str) {
    let lower = html.to_ascii_lowercase();
    for tag in lower.split('<').skip(1).map(|t| t.split('>').next().unwrap_or_default()) {
        let name = tag.split([' ', '/', '\n', '\t']).next().unwrap_or_default();
        assert!(
            !matches!(
                name,
                "script" | "img" | "iframe" | "object" | "embed" | "form" | "input" | "svg" | "style" | "base"
            ),
            "<{tag}> in {html}"
        );
        for attr in tag.split_whitespace().skip(1) {
            assert!(!(attr.starts_with("on") && attr.contains('=')), "event attribute in <{tag}>: {html}");
            if let Some(value) = attr.strip_prefix("href=\"") {
                let seen: String = value.chars().filter(|c| !c.is_ascii_whitespace() && !c.is_control()).collect();
                // What precedes the first colon is a scheme only when it is
                // one by RFC 3986's letters; otherwise the URL is relative.
                let scheme = seen.split_once(':').map(|(s, _)| s).filter(|s| {
                    s.starts_with(|c: char| c.is_ascii_alphabetic())
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                });
                assert!(
                    scheme.is_none_or(|s| matches!(s, "http" | "https" | "mailto" | "ftp")),
                    "href {value} in {html}"
                );
            }
        }
    }
}

fn filename(text: &str) {
    if let Ok(f) = DistFilename::from_str(text) {
        // What parses must print back and parse again to the same thing.
        let again = DistFilename::from_str(&f.to_string());
        assert!(again.is_ok_and(|g| g == f), "{text:?} does not round-trip");
    }
}

fn listing(page: &crate::upstream::wire::ProjectPage) {
    let url = url::Url::parse("https://fuzz.invalid/simple/p/").expect("a URL");
    let project = crate::dist::names::ProjectName::from_str("p").expect("a name");
    let _ = crate::upstream::listing::Listing::from_wire(page, &url, &project);
}

fn lock(p: &Path) {
    if let Ok(lock) = crate::manifest::lockfile::LockFile::read(p) {
        for env in crate::select::env::targets(&Default::default()) {
            let _ = lock.packages_for(&env.markers);
        }
    }
}

/// Run `f` on `data` written to a file named `name` in a scratch directory.
fn in_file(name: &str, data: &[u8], f: impl FnOnce(&Path)) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(name);
    if std::fs::write(&path, data).is_ok() {
        f(&path);
    }
}
