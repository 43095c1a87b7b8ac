//! Shared test support: a scratch mirror directory wired to a fake upstream,
//! the real `airlock` binary with an isolated environment, and tree readers.

pub mod dist;
pub mod upstream;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use dist::{WheelSpec, described_wheel, heavy_wheel, sdist, wheel};
pub use upstream::{FakeFile, Fault, Flavour, Upstream};

/// A scratch directory with a manifest pointing at a fake upstream.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub upstream: Upstream,
}

impl Env {
    pub fn new(flavour: Flavour) -> Env {
        Env { dir: tempfile::tempdir().unwrap(), upstream: Upstream::start(flavour) }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn public(&self) -> PathBuf {
        self.path("public")
    }

    /// Write `mirror.toml`: `[mirror]` with the fake upstream, then `rest`
    /// (which may set `jobs` itself).
    pub fn manifest(&self, rest: &str) {
        let jobs = if rest.contains("jobs =") { "" } else { "jobs = 4\n" };
        let text = format!(
            "[mirror]\nname = \"test mirror\"\nupstream = \"{}\"\n{jobs}retries = 3\ntimeout = 10\n{rest}\n",
            self.upstream.index_url()
        );
        std::fs::write(self.path("mirror.toml"), text).unwrap();
    }

    /// The binary, run in the scratch directory with an isolated environment.
    pub fn airlock(&self) -> assert_cmd::Command {
        airlock_in(self.dir.path())
    }

    pub fn build(&self) -> assert_cmd::assert::Assert {
        self.airlock().arg("build").assert()
    }

    /// The advisory snapshot of tests/fixtures/osv/policy, built where the
    /// manifest looks by default (`.airlock/advisories.sqlite.zst`).
    pub fn policy_snapshot(&self) {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv/policy");
        self.airlock()
            .args(["advisories", "build"])
            .arg(fixtures)
            .arg("-o")
            .arg(self.path(".airlock/advisories.sqlite.zst"))
            .assert()
            .success();
    }
}

pub fn airlock_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("airlock").unwrap();
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("HOME", dir)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("AIRLOCK_CACHE_DIR")
        .env("NETRC", dir.join("no-netrc"))
        .env("NO_COLOR", "1")
        .env("AIRLOCK_BACKOFF_MS", "5")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY");
    cmd
}

/// Every regular file under `dir` (following the published symlink), by relative path.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let root = std::fs::canonicalize(dir).unwrap();
    walkdir::WalkDir::new(&root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Filenames listed in a project's PEP 691 page, in page order.
pub fn listed(public: &Path, project: &str) -> Vec<String> {
    let path = public.join("simple").join(project).join("index.v1_json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    page["files"].as_array().unwrap().iter().map(|f| f["filename"].as_str().unwrap().to_string()).collect()
}

/// Filenames linked from a project's PEP 503 page.
pub fn listed_html(public: &Path, project: &str) -> Vec<String> {
    let path = public.join("simple").join(project).join("index.html");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            l.split_once("\">").and_then(|(_, rest)| rest.split_once("</a>")).map(|(name, _)| name.to_string())
        })
        .collect()
}

pub fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}
pub mod s3;
pub mod tools;
