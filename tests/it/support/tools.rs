//! Real clients for end-to-end tests: pip (in fresh virtual environments),
//! uv, and the tree served over loopback by `airlock serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The real Python interpreter (not a pyenv shim), for creating venvs.
pub fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for end-to-end tests");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// uv, installed by `.ci/run` (`pip install uv`).
pub fn uv() -> PathBuf {
    for candidate in ["uv"] {
        if Command::new(candidate).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return PathBuf::from(candidate);
        }
    }
    panic!("uv is needed for end-to-end tests: `python3 -m pip install uv` (as .ci/run does)");
}

/// A fresh venv with pip; returns its interpreter.
pub fn venv(dir: &Path) -> PathBuf {
    let status = Command::new(python()).args(["-m", "venv"]).arg(dir).status().unwrap();
    assert!(status.success(), "python -m venv failed");
    dir.join("bin/python")
}

/// `pip install` isolated from user config and environment (no find-links, no cache).
pub fn pip_install(python: &Path, index_url: &str, packages: &[&str]) -> std::process::Output {
    Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            index_url,
        ])
        .args(packages)
        .env_remove("PIP_FIND_LINKS")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap()
}

/// `uv pip install` into a fresh uv-made venv; returns (output, interpreter).
pub fn uv_install(dir: &Path, index_url: &str, packages: &[&str]) -> (std::process::Output, PathBuf) {
    let venv = dir.join("uv-venv");
    let cache = dir.join("uv-cache");
    let status = Command::new(uv())
        .args(["venv", "--no-config", "--python"])
        .arg(python())
        .arg(&venv)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "uv venv failed");
    let py = venv.join("bin/python");
    let out = Command::new(uv())
        .args(["pip", "install", "--no-config", "--python"])
        .arg(&py)
        .args(["--index-url", index_url])
        .args(packages)
        .env("UV_CACHE_DIR", &cache)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    (out, py)
}

/// Run `code` in an interpreter and return its stdout.
pub fn run_python(python: &Path, code: &str) -> String {
    let out = Command::new(python).args(["-c", code]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `airlock serve DIR --port 0`, killed on drop.
pub struct Served {
    child: Child,
    pub url: String,
}

impl Served {
    pub fn start(dir: &Path) -> Served {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
            .args(["serve"])
            .arg(dir)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .split(" at ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("serve prints its URL")
            .to_string();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference PEP 740 verifier, `pypi-attestations` (installed by
/// `.ci/run` from PyPI), run offline with an empty home: its verdict on a
/// served file and the served provenance beside it.
pub fn pypi_attestations_verify(file: &Path, provenance: &Path, repository: &str) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(python())
        .args(["-m", "pypi_attestations", "verify", "pypi", "--offline", "--repository", repository])
        .arg("--provenance-file")
        .arg(provenance)
        .arg(file)
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap();
    let missing = String::from_utf8_lossy(&out.stderr).contains("No module named pypi_attestations");
    assert!(!missing, "pypi-attestations is needed: `python3 -m pip install pypi-attestations` (as .ci/run does)");
    out
}
