//! Lock files as selection (`[select] lockfiles`): PEP 751 `pylock.toml`,
//! uv's `uv.lock`, and pip requirements files pinned with `--hash`. Each is
//! read into the packages it locks, the files it names (by filename and
//! sha256) and when each package applies: a PEP 508 marker (pylock, pip),
//! or reachability from the workspace through marked edges (uv.lock).
//!
//! Wire structs (`Py*`, `Uv*`) mirror the TOML and tolerate unknown keys
//! (lock formats grow); the domain form is what selection needs. Nothing in
//! a lock file is trusted: names are normalized, filenames pass the same
//! allowlist as upstream ones, and hashes must be well-formed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uv_pep508::{MarkerEnvironment, MarkerTree};

use crate::dist::Version;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Which format a lock file is in (by its name, as uv and pip name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Pylock,
    UvLock,
    Requirements,
}

/// A file a lock names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedFile {
    pub filename: String,
    pub sha256: Sha256,
}

/// One locked package.
#[derive(Debug, Clone)]
pub struct LockedPackage {
    pub name: ProjectName,
    pub version: Option<Version>,
    /// When it applies (pylock's and pip's markers; always true in uv.lock,
    /// where the graph decides).
    pub marker: MarkerTree,
    /// The files it names.
    pub files: Vec<LockedFile>,
    /// `--hash` values of a pip requirement (files named by hash only).
    pub hashes: Vec<Sha256>,
    /// The line it is locked on (pip requirements), for messages.
    pub line: Option<usize>,
    /// pylock's `attestation-identities`: the publishers it pins (any of them).
    pub publishers: Vec<crate::provenance::Publisher>,
}

/// A uv.lock edge: from a package to another, when a marker holds.
#[derive(Debug, Clone)]
struct Edge {
    to: usize,
    marker: MarkerTree,
}

#[derive(Debug, Clone)]
pub struct LockFile {
    pub path: PathBuf,
    pub kind: LockKind,
    pub packages: Vec<LockedPackage>,
    /// uv.lock: the workspace packages (not mirrored) the graph starts from,
    /// and every package's edges.
    roots: Vec<usize>,
    edges: Vec<Vec<Edge>>,
}

impl LockFile {
    /// Read a lock file, its kind told by its name: `pylock.toml` or
    /// `pylock.*.toml`, `uv.lock`, anything else a pip requirements file.
    pub fn read(path: &Path) -> Result<LockFile, LockError> {
        let text = fs_err::read_to_string(path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let invalid = |message: String| LockError::Invalid { path: path.display().to_string(), message };
        if name == "uv.lock" {
            parse_uv(&text, path).map_err(invalid)
        } else if name.starts_with("pylock") && name.ends_with(".toml") {
            parse_pylock(&text, path).map_err(invalid)
        } else {
            parse_requirements(&text, path).map_err(invalid)
        }
    }

    /// The packages that apply in an environment.
    pub fn packages_for(&self, env: &MarkerEnvironment) -> Vec<&LockedPackage> {
        if self.kind != LockKind::UvLock {
            return self.packages.iter().filter(|p| p.marker.evaluate(env, &[])).collect();
        }
        // Reachable from the workspace through edges whose markers hold.
        let mut seen: BTreeSet<usize> = self.roots.iter().copied().collect();
        let mut stack: Vec<usize> = self.roots.clone();
        while let Some(i) = stack.pop() {
            for e in &self.edges[i] {
                if e.marker.evaluate(env, &[]) && seen.insert(e.to) {
                    stack.push(e.to);
                }
            }
        }
        let roots: BTreeSet<usize> = self.roots.iter().copied().collect();
        seen.into_iter().filter(|i| !roots.contains(i)).map(|i| &self.packages[i]).collect()
    }
}

fn sha256_of(value: &str, what: &str) -> Result<Sha256, String> {
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    hex.parse().map_err(|e| format!("{what}: {e}"))
}

/// A file's name: as given, else the last segment of its URL.
fn filename_of(name: Option<&str>, url: Option<&str>, package: &ProjectName) -> Result<String, String> {
    let raw = match (name, url) {
        (Some(n), _) => n.to_string(),
        (None, Some(u)) => {
            let path = u.split(['?', '#']).next().unwrap_or(u);
            let last = path.rsplit('/').next().unwrap_or(path);
            percent_encoding::percent_decode_str(last).decode_utf8_lossy().into_owned()
        }
        (None, None) => return Err(format!("{package}: a file with neither a name nor a URL")),
    };
    DistFilename::parse(&raw, Some(package)).map_err(|e| format!("{package}: {e}"))?;
    Ok(raw)
}

fn parse_version(v: Option<&str>, package: &ProjectName) -> Result<Option<Version>, String> {
    v.map(|v| v.parse::<Version>().map_err(|e| format!("{package}: version {v:?}: {e}"))).transpose()
}

fn parse_marker(m: Option<&str>, package: &str) -> Result<MarkerTree, String> {
    match m {
        None => Ok(MarkerTree::TRUE),
        Some(m) => m.parse::<MarkerTree>().map_err(|e| format!("{package}: marker {m:?}: {e}")),
    }
}

fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(l) => format!("line {l}: {}", e.message().trim()),
        None => e.message().trim().to_string(),
    }
}

// ------------------------------------------------------------- pylock.toml

#[derive(Deserialize)]
struct PyLock {
    #[serde(rename = "lock-version")]
    lock_version: Option<String>,
    #[serde(default)]
    packages: Vec<PyPackage>,
}

#[derive(Deserialize)]
struct PyPackage {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    sdist: Option<PyFile>,
    #[serde(default)]
    wheels: Vec<PyFile>,
    /// PEP 751: the PEP 740 publishers its files must be attested by.
    #[serde(default, rename = "attestation-identities")]
    attestation_identities: Vec<crate::provenance::wire::Publisher>,
}

#[derive(Deserialize)]
struct PyFile {
    name: Option<String>,
    url: Option<String>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

fn parse_pylock(text: &str, path: &Path) -> Result<LockFile, String> {
    let lock: PyLock = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
    if lock.lock_version.as_deref().is_some_and(|v| !v.starts_with("1.")) {
        return Err(format!("lock-version {:?} is not supported (1.x is)", lock.lock_version.unwrap_or_default()));
    }
    let mut packages = Vec::new();
    for p in lock.packages {
        let name: ProjectName = p.name.parse().map_err(|e: crate::dist::names::InvalidNameError| e.to_string())?;
        let mut files = Vec::new();
        for f in p.sdist.iter().chain(&p.wheels) {
            let filename = filename_of(f.name.as_deref(), f.url.as_deref(), &name)?;
            let Some(hash) = f.hashes.get("sha256") else {
                return Err(format!("{name}: {filename} has no sha256 hash: it cannot be checked"));
            };
            files.push(LockedFile { sha256: sha256_of(hash, &filename)?, filename });
        }
        packages.push(LockedPackage {
            version: parse_version(p.version.as_deref(), &name)?,
            marker: parse_marker(p.marker.as_deref(), name.as_str())?,
            name,
            files,
            hashes: Vec::new(),
            line: None,
            publishers: p.attestation_identities.iter().map(crate::provenance::Publisher::from_wire).collect(),
        });
    }
    Ok(LockFile { path: path.to_path_buf(), kind: LockKind::Pylock, packages, roots: Vec::new(), edges: Vec::new() })
}

// ----------------------------------------------------------------- uv.lock

#[derive(Deserialize)]
struct UvLock {
    #[serde(default)]
    package: Vec<UvPackage>,
}

#[derive(Deserialize)]
struct UvPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, toml::Value>,
    #[serde(default)]
    dependencies: Vec<UvDep>,
    #[serde(default, rename = "optional-dependencies")]
    optional: BTreeMap<String, Vec<UvDep>>,
    #[serde(default, rename = "dev-dependencies")]
    dev: BTreeMap<String, Vec<UvDep>>,
    sdist: Option<UvFile>,
    #[serde(default)]
    wheels: Vec<UvFile>,
}

#[derive(Deserialize)]
struct UvDep {
    name: String,
    version: Option<String>,
    marker: Option<String>,
}

#[derive(Deserialize)]
struct UvFile {
    url: Option<String>,
    filename: Option<String>,
    hash: Option<String>,
}

/// The index of the package an edge names (by name, and version when the
/// lock holds several versions of it).
fn edge_target(packages: &[UvPackage], dep: &UvDep) -> Option<usize> {
    let name = dep.name.parse::<ProjectName>().ok()?;
    packages.iter().position(|p| {
        p.name.parse::<ProjectName>().is_ok_and(|n| n == name)
            && dep.version.as_ref().is_none_or(|v| p.version.as_ref() == Some(v))
    })
}

fn parse_uv(text: &str, path: &Path) -> Result<LockFile, String> {
    let lock: UvLock = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
    let mut packages = Vec::new();
    let mut roots = Vec::new();
    let mut edges = Vec::new();
    for (i, p) in lock.package.iter().enumerate() {
        let name: ProjectName = p.name.parse().map_err(|e: crate::dist::names::InvalidNameError| e.to_string())?;
        // Workspace members (virtual, editable, directory) are where the graph starts; only
        // registry packages come from an index.
        if !p.source.contains_key("registry") {
            roots.push(i);
        }
        let mut files = Vec::new();
        if p.source.contains_key("registry") {
            for f in p.sdist.iter().chain(&p.wheels) {
                let filename = filename_of(f.filename.as_deref(), f.url.as_deref(), &name)?;
                let Some(hash) = &f.hash else {
                    return Err(format!("{name}: {filename} has no hash: it cannot be checked"));
                };
                files.push(LockedFile { sha256: sha256_of(hash, &filename)?, filename });
            }
        }
        let mut out = Vec::new();
        for dep in p.dependencies.iter().chain(p.optional.values().flatten()).chain(p.dev.values().flatten()) {
            let Some(to) = edge_target(&lock.package, dep) else {
                return Err(format!("{name}: depends on {} which the lock does not hold", dep.name));
            };
            out.push(Edge { to, marker: parse_marker(dep.marker.as_deref(), &dep.name)? });
        }
        edges.push(out);
        packages.push(LockedPackage {
            version: parse_version(p.version.as_deref(), &name)?,
            name,
            marker: MarkerTree::TRUE,
            files,
            hashes: Vec::new(),
            line: None,
            publishers: Vec::new(),
        });
    }
    Ok(LockFile { path: path.to_path_buf(), kind: LockKind::UvLock, packages, roots, edges })
}

// ---------------------------------------------------- requirements --hash

fn parse_requirements(text: &str, path: &Path) -> Result<LockFile, String> {
    let mut packages = Vec::new();
    for (line_no, line) in super::requirements::logical_lines(text) {
        let at = |m: String| format!("line {line_no}: {m}");
        let line = super::requirements::strip_comment(&line).trim().to_string();
        if line.is_empty() || line.starts_with('-') {
            continue;
        }
        let mut hashes = Vec::new();
        let mut spec = Vec::new();
        for word in line.split_whitespace() {
            match word.strip_prefix("--hash=").or_else(|| word.strip_prefix("--hash:")) {
                Some(h) if h.starts_with("sha256:") => hashes.push(sha256_of(h, "--hash").map_err(at)?),
                Some(_) => {}
                None => spec.push(word),
            }
        }
        let spec = spec.join(" ");
        let req = super::requirements::parse_requirement(&spec, &format!("{}:{line_no}", path.display()))
            .map_err(|e| e.to_string())?;
        let name = ProjectName::from(&req.name);
        let version = match &req.version_or_url {
            Some(uv_pep508::VersionOrUrl::VersionSpecifier(s)) => s
                .iter()
                .find(|s| matches!(s.operator(), uv_pep440::Operator::Equal | uv_pep440::Operator::ExactEqual))
                .map(|s| s.version().clone()),
            _ => None,
        };
        let Some(version) = version else {
            return Err(at(format!("{spec:?} is not pinned with ==: a lock pins every package")));
        };
        if hashes.is_empty() {
            return Err(at(format!("{spec:?} has no --hash=sha256:...: it cannot be checked")));
        }
        packages.push(LockedPackage {
            name,
            version: Some(version),
            marker: req.marker,
            files: Vec::new(),
            hashes,
            line: Some(line_no),
            publishers: Vec::new(),
        });
    }
    Ok(LockFile {
        path: path.to_path_buf(),
        kind: LockKind::Requirements,
        packages,
        roots: Vec::new(),
        edges: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(sys: &str, machine: &str) -> MarkerEnvironment {
        MarkerEnvironment::try_from(uv_pep508::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: "3.12.0",
            os_name: if sys == "win32" { "nt" } else { "posix" },
            platform_machine: machine,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: if sys == "win32" { "Windows" } else { "Linux" },
            platform_version: "",
            python_full_version: "3.12.0",
            python_version: "3.12",
            sys_platform: sys,
        })
        .unwrap()
    }

    const SHA: &str = "1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2";

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn uv_lock_follows_marked_edges_from_the_workspace() {
        let text = format!(
            r#"version = 1
[[package]]
name = "demo"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "colorama", marker = "sys_platform == 'win32'" }}, {{ name = "Idna" }}]
[[package]]
name = "idna"
version = "3.10"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [{{ url = "https://files.example/idna-3.10-py3-none-any.whl", hash = "sha256:{SHA}" }}]
[[package]]
name = "colorama"
version = "0.4.6"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.example/colorama-0.4.6.tar.gz", hash = "sha256:{SHA}" }}
"#
        );
        let (_d, p) = write("uv.lock", &text);
        let lock = LockFile::read(&p).unwrap();
        let names = |e: &MarkerEnvironment| -> Vec<String> {
            lock.packages_for(e).iter().map(|p| p.name.to_string()).collect()
        };
        assert_eq!(names(&env("linux", "x86_64")), ["idna"]);
        assert_eq!(names(&env("win32", "AMD64")), ["idna", "colorama"]);
        assert_eq!(lock.packages[1].files[0].filename, "idna-3.10-py3-none-any.whl");
    }

    #[test]
    fn pylock_markers_and_hashes() {
        let text = format!(
            r#"lock-version = "1.0"
[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
wheels = [{{ url = "https://files.example/colorama-0.4.6-py2.py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]
[[packages]]
name = "pysocks"
version = "1.7.1"
wheels = [{{ name = "pysocks-1.7.1-py3-none-any.whl", url = "https://files.example/PySocks-1.7.1-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]
"#
        );
        let (_d, p) = write("pylock.toml", &text);
        let lock = LockFile::read(&p).unwrap();
        assert_eq!(lock.packages_for(&env("linux", "x86_64")).len(), 1);
        assert_eq!(lock.packages_for(&env("win32", "AMD64")).len(), 2);
        assert_eq!(lock.packages[1].files[0].filename, "pysocks-1.7.1-py3-none-any.whl");
    }

    #[test]
    fn requirements_with_hashes_and_errors_name_the_line() {
        let (_d, p) = write(
            "req.lock.txt",
            &format!("idna==3.10 \\\n    --hash=sha256:{SHA}\nsix==1.0 ; python_version < '3'\n"),
        );
        let err = LockFile::read(&p).unwrap_err().to_string();
        assert!(err.contains("req.lock.txt") && err.contains("line 3") && err.contains("--hash"), "{err}");
        let (_d, p) = write("req.lock.txt", &format!("idna==3.10 --hash=sha256:{SHA}\n"));
        let lock = LockFile::read(&p).unwrap();
        assert_eq!(lock.packages[0].hashes.len(), 1);
        let (_d, p) = write(
            "pylock.toml",
            "[[packages]]\nname = \"x\"\nwheels = [{ url = \"https://e/../../etc-1.0-py3-none-any.whl\", hashes = { sha256 = \"00\" } }]\n",
        );
        assert!(LockFile::read(&p).is_err());
        let (_d, p) = write("uv.lock", "[[package]]\nname = 3\n");
        assert!(LockFile::read(&p).unwrap_err().to_string().contains("line 2"));
    }
}
