//! `locks/<name>`: the lock files a mirror was built from, rewritten so
//! that every file they name that the tree serves is fetched from the tree
//! (`uv pip install -r locks/pylock.toml`, `uv sync --frozen` with the
//! rewritten uv.lock, inside the air gap, with the network off).
//!
//! Where the tree is served (`[mirror] base_url`), locks name absolute URLs
//! into it. Without one, pylock.toml names paths relative to itself (PEP
//! 751 allows it), which hold wherever the tree is copied; uv.lock, which
//! is used from a project's directory, names the published tree's absolute
//! path, as uv itself writes locks against a local index. Hashed
//! requirements files are copied as they are: they name hashes, not URLs.
//!
//! The rewrite is textual (each URL a lock names is replaced where it is
//! written), so everything else in the file stays byte for byte; a file the
//! tree does not serve keeps its URL.

use std::collections::BTreeMap;

use url::Url;

use crate::dist::names::ProjectName;
use crate::manifest::lockfile::LockKind;

/// Where the rewritten locks point.
#[derive(Debug, Clone)]
pub enum Base {
    /// `[mirror] base_url`: the tree's URL.
    Url(Url),
    /// The published tree's absolute path (its `output` link).
    Path(std::path::PathBuf),
}

/// A rewritten lock and what changed in it.
#[derive(Debug)]
pub struct Rewritten {
    pub text: String,
    /// File references pointed into the tree.
    pub rewritten: usize,
    /// Files the tree does not serve (another platform, sdists off): kept as they were.
    pub kept: usize,
}

/// A quoted TOML basic string as a lock writes it.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The last segment of a URL or path, percent-decoded: the file's name.
fn file_name(reference: &str) -> String {
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let last = path.rsplit('/').next().unwrap_or(path);
    percent_encoding::percent_decode_str(last).decode_utf8_lossy().into_owned()
}

/// One file reference of a lock: its package, its filename, and the
/// `key = "value"` it is written as.
struct Reference {
    project: ProjectName,
    filename: String,
    key: &'static str,
    value: String,
}

fn references(value: &toml::Value, kind: LockKind) -> (Vec<Reference>, Vec<String>) {
    let (list, files_key) = match kind {
        LockKind::UvLock => ("package", "wheels"),
        LockKind::Pylock => ("packages", "wheels"),
        LockKind::Requirements => return (Vec::new(), Vec::new()),
    };
    let mut refs = Vec::new();
    let mut indexes = Vec::new();
    for p in value.get(list).and_then(toml::Value::as_array).into_iter().flatten() {
        let Some(project) = p.get("name").and_then(toml::Value::as_str).and_then(|n| n.parse::<ProjectName>().ok())
        else {
            continue;
        };
        let index = match kind {
            LockKind::UvLock => p.get("source").and_then(|s| s.get("registry")),
            _ => p.get("index"),
        };
        if let Some(i) = index.and_then(toml::Value::as_str) {
            indexes.push(i.to_string());
        }
        let files = p.get(files_key).and_then(toml::Value::as_array).into_iter().flatten().chain(p.get("sdist"));
        for f in files {
            for key in ["url", "path"] {
                if let Some(v) = f.get(key).and_then(toml::Value::as_str) {
                    let name = f.get("name").and_then(toml::Value::as_str).map(str::to_string);
                    let filename = name.unwrap_or_else(|| file_name(v));
                    refs.push(Reference { project: project.clone(), filename, key, value: v.to_string() });
                }
            }
        }
    }
    indexes.sort();
    indexes.dedup();
    (refs, indexes)
}

/// Rewrite one lock file's `text`: every file the tree serves (`served`)
/// is referred to in the tree. A lock that does not parse is copied as is.
pub fn rewrite(text: &str, kind: LockKind, served: &dyn Fn(&ProjectName, &str) -> bool, base: &Base) -> Rewritten {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Rewritten { text: text.to_string(), rewritten: 0, kept: 0 };
    };
    let value = toml::Value::Table(table);
    let (refs, indexes) = references(&value, kind);
    let mut replace: BTreeMap<String, String> = BTreeMap::new();
    let (mut rewritten, mut kept) = (0, 0);
    for r in &refs {
        if !served(&r.project, &r.filename) {
            kept += 1;
            continue;
        }
        let rel = format!("packages/{}/{}", r.project, r.filename);
        let (key, value) = match (base, kind) {
            (Base::Url(u), _) => ("url", u.join(&rel).map(|u| u.to_string()).unwrap_or_default()),
            (Base::Path(_), LockKind::Pylock) => ("path", format!("../{rel}")),
            (Base::Path(root), _) => ("path", root.join(&rel).display().to_string()),
        };
        if value.is_empty() {
            kept += 1;
            continue;
        }
        replace.insert(format!("{} = {}", r.key, quoted(&r.value)), format!("{key} = {}", quoted(&value)));
        rewritten += 1;
    }
    let index = match base {
        Base::Url(u) => u.join("simple/").ok().map(|u| u.to_string()),
        Base::Path(root) if kind == LockKind::UvLock => Some(format!("{}/", root.join("simple").display())),
        Base::Path(_) => None,
    };
    if let Some(index) = index.filter(|_| rewritten > 0) {
        let key = if kind == LockKind::UvLock { "registry" } else { "index" };
        for old in indexes {
            replace.insert(format!("{key} = {}", quoted(&old)), format!("{key} = {}", quoted(&index)));
        }
    }
    let mut out = text.to_string();
    for (from, to) in &replace {
        out = out.replace(from, to);
    }
    Rewritten { text: out, rewritten, kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UV: &str = r#"version = 1
[[package]]
name = "idna"
version = "3.10"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/idna-3.10.tar.gz", hash = "sha256:00" }
wheels = [
    { url = "https://files.example/idna-3.10-py3-none-any.whl", hash = "sha256:00" },
]
"#;

    #[test]
    fn uv_lock_points_into_the_tree_and_keeps_what_it_does_not_serve() {
        let served = |p: &ProjectName, f: &str| p.as_str() == "idna" && f.ends_with(".whl");
        let base = Base::Url(Url::parse("https://pypi.internal/").unwrap());
        let r = rewrite(UV, LockKind::UvLock, &served, &base);
        assert_eq!((r.rewritten, r.kept), (1, 1));
        assert!(r.text.contains(r#"{ url = "https://pypi.internal/packages/idna/idna-3.10-py3-none-any.whl", hash"#));
        assert!(r.text.contains(r#"registry = "https://pypi.internal/simple/""#), "{}", r.text);
        assert!(r.text.contains("https://files.example/idna-3.10.tar.gz"), "an sdist the tree lacks keeps its URL");
        let local = Base::Path("/srv/public".into());
        let r = rewrite(UV, LockKind::UvLock, &served, &local);
        assert!(r.text.contains(r#"{ path = "/srv/public/packages/idna/idna-3.10-py3-none-any.whl""#), "{}", r.text);
        assert!(r.text.contains(r#"registry = "/srv/public/simple/""#), "{}", r.text);
    }

    #[test]
    fn pylock_is_relative_to_itself_without_a_base_url() {
        let text = "lock-version = \"1.0\"\n[[packages]]\nname = \"six\"\nversion = \"1.16.0\"\nindex = \"https://pypi.org/simple\"\nwheels = [{ url = \"https://f.example/six-1.16.0-py2.py3-none-any.whl\", hashes = { sha256 = \"00\" } }]\n";
        let r = rewrite(text, LockKind::Pylock, &|_, _| true, &Base::Path("/srv/public".into()));
        assert!(r.text.contains(r#"{ path = "../packages/six/six-1.16.0-py2.py3-none-any.whl", hashes"#), "{}", r.text);
        assert!(r.text.contains("index = \"https://pypi.org/simple\""), "unchanged without a URL");
        assert!(toml::from_str::<toml::Table>(&r.text).is_ok());
        assert_eq!(
            rewrite("not = [toml", LockKind::Pylock, &|_, _| true, &Base::Path("/x".into())).text,
            "not = [toml"
        );
    }
}
