//! pip-format requirements files: names, specifiers, markers, `-r`/`-c`
//! includes, comments, line continuations and `${VAR}` expansion.
//!
//! A mirror only needs *what* to mirror, so options that steer an installer
//! (`--index-url`, `--hash`, `--pre`, ...) are accepted and ignored, while
//! entries that cannot come from an index (editables, URLs, local paths) are
//! refused with the file and line, because silently dropping them would leave
//! a mirror that cannot install the file it was built from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use uv_pep508::{Requirement, VersionOrUrl};

/// Where a requirement came from, for messages: `path:line` or `path:key`.
pub type Origin = String;

#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{origin}: invalid requirement {text:?}: {message}")]
    Invalid { origin: Origin, text: String, message: String },
    #[error("{origin}: {message}")]
    Unsupported { origin: Origin, message: String },
    #[error("{origin}: `-r {path}` includes a file that is already being read (include cycle)")]
    Cycle { origin: Origin, path: String },
    #[error("{origin}: cannot read {path}: {error}")]
    Include { origin: Origin, path: String, error: std::io::Error },
}

/// One requirement and where it was written.
#[derive(Debug, Clone)]
pub struct RequirementLine {
    pub requirement: Requirement,
    pub origin: Origin,
    /// From a `-c` constraints file: narrows versions, never adds a project.
    pub constraint: bool,
}

/// Parse one PEP 508 requirement string as written in a manifest or file.
pub fn parse_requirement(text: &str, origin: &str) -> Result<Requirement, RequirementsError> {
    let req = Requirement::from_str(text).map_err(|e| RequirementsError::Invalid {
        origin: origin.to_string(),
        text: text.to_string(),
        message: e.message.to_string(),
    })?;
    if let Some(VersionOrUrl::Url(_)) = req.version_or_url {
        return Err(RequirementsError::Unsupported {
            origin: origin.to_string(),
            message: format!("{text:?} is a direct URL reference; a mirror can only take projects from its index"),
        });
    }
    Ok(req)
}

/// Read a requirements file and everything it includes.
pub fn read_file(path: &Path) -> Result<Vec<RequirementLine>, RequirementsError> {
    let mut out = Vec::new();
    let mut stack = BTreeSet::new();
    read_into(path, false, &mut stack, &mut out)?;
    Ok(out)
}

fn read_into(
    path: &Path,
    constraint: bool,
    stack: &mut BTreeSet<PathBuf>,
    out: &mut Vec<RequirementLine>,
) -> Result<(), RequirementsError> {
    let text = fs_err::read_to_string(path)?;
    let key = fs_err::canonicalize(path)?;
    stack.insert(key.clone());
    let dir = path.parent().unwrap_or(Path::new("."));
    for (line_no, line) in logical_lines(&text) {
        let origin = format!("{}:{}", path.display(), line_no);
        let line = expand_env(&line);
        let line = strip_comment(&line).trim();
        if line.is_empty() {
            continue;
        }
        if let Some((flag, arg)) = split_option(line) {
            match flag {
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    let arg = arg.ok_or_else(|| RequirementsError::Unsupported {
                        origin: origin.clone(),
                        message: format!("{flag} needs a file name"),
                    })?;
                    let child = dir.join(arg);
                    let child_key = std::fs::canonicalize(&child).map_err(|error| RequirementsError::Include {
                        origin: origin.clone(),
                        path: child.display().to_string(),
                        error,
                    })?;
                    if stack.contains(&child_key) {
                        return Err(RequirementsError::Cycle { origin, path: arg.to_string() });
                    }
                    let is_constraint = constraint || flag.starts_with("-c") || flag == "--constraint";
                    read_into(&child, is_constraint, stack, out)?;
                }
                "-e" | "--editable" => {
                    return Err(RequirementsError::Unsupported {
                        origin,
                        message: "editable requirements cannot be mirrored".into(),
                    });
                }
                _ => tracing::debug!("{origin}: ignoring installer option {flag}"),
            }
            continue;
        }
        let spec = strip_line_options(line);
        if spec.starts_with('.') || spec.starts_with('/') || spec.contains("://") {
            return Err(RequirementsError::Unsupported {
                origin,
                message: format!("{spec:?} is a path or URL; a mirror can only take projects from its index"),
            });
        }
        let requirement = parse_requirement(spec, &origin)?;
        out.push(RequirementLine { requirement, origin, constraint });
    }
    stack.remove(&key);
    Ok(())
}

/// Join `\`-continued lines, keeping the number of the first physical line.
pub(crate) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut buf) = current.take().unwrap_or((i + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(cont) => {
                buf.push_str(cont);
                current = Some((start, buf));
            }
            None => {
                buf.push_str(raw);
                out.push((start, buf));
            }
        }
    }
    if let Some(last) = current {
        out.push(last);
    }
    out
}

/// pip: a `#` at the start of a line or after whitespace starts a comment.
pub(crate) fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// `${NAME}` from the environment, as pip does; unknown names stay as written.
fn expand_env(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if after[..end].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') => {
                let name = &after[..end];
                match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => out.push_str(&rest[start..start + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A line that is an option (`-r x`, `--requirement=x`, `--index-url ...`).
fn split_option(line: &str) -> Option<(&str, Option<&str>)> {
    if !line.starts_with('-') {
        return None;
    }
    if let Some((flag, arg)) = line.split_once('=').filter(|(f, _)| f.starts_with("--") && !f.contains(' ')) {
        return Some((flag, Some(arg.trim())));
    }
    match line.split_once(char::is_whitespace) {
        Some((flag, arg)) => Some((flag, Some(arg.trim()))),
        // `-rfile`: the flag is `-` and one character, which may be multi-byte.
        None if line.chars().count() > 2 && !line.starts_with("--") => {
            let at = 1 + line[1..].chars().next().map_or(0, char::len_utf8);
            Some((&line[..at], Some(line[at..].trim())))
        }
        None => Some((line, None)),
    }
}

/// Per-requirement installer options (`--hash=...`, `--config-settings`) follow
/// the requirement after whitespace.
fn strip_line_options(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'-') && bytes[i - 1].is_ascii_whitespace() {
            return line[..i].trim_end();
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_names_specifiers_markers_includes_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.txt", "# base\nsix==1.16.0 --hash=sha256:abc\n");
        write(dir.path(), "pins.txt", "flask<3\n");
        let top = write(
            dir.path(),
            "req.txt",
            "-r base.txt\n--index-url https://example.invalid/simple\nrequests>=2.31 \\\n  ; python_version >= \"3.8\"  # trailing\n\n   # indented comment\n-c pins.txt\nZope.Interface\n",
        );
        let lines = read_file(&top).unwrap();
        let names: Vec<_> = lines.iter().map(|l| (l.requirement.name.to_string(), l.constraint)).collect();
        assert_eq!(
            names,
            [
                ("six".to_string(), false),
                ("requests".to_string(), false),
                ("flask".to_string(), true),
                ("zope-interface".to_string(), false)
            ]
        );
        assert!(lines[1].origin.ends_with("req.txt:3"), "{}", lines[1].origin);
        assert!(!lines[1].requirement.marker.is_true());
        assert_eq!(lines[0].requirement.version_or_url.as_ref().unwrap().to_string(), "==1.16.0");
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "req.txt", "six\nfoo>>>1\n");
        let err = read_file(&p).unwrap_err().to_string();
        assert!(err.contains("req.txt:2") && err.contains("foo>>>1"), "{err}");
        let p = write(dir.path(), "e.txt", "-e ./local\n");
        assert!(read_file(&p).unwrap_err().to_string().contains("e.txt:1"));
        let p = write(dir.path(), "u.txt", "pkg @ https://example.invalid/pkg.whl\n");
        assert!(read_file(&p).unwrap_err().to_string().contains("URL"));
        let p = write(dir.path(), "loop.txt", "-r loop.txt\n");
        assert!(matches!(read_file(&p), Err(RequirementsError::Cycle { .. })));
        let p = write(dir.path(), "missing.txt", "pkg\n-r nope.txt\n");
        let err = read_file(&p).unwrap_err().to_string();
        assert!(err.contains("missing.txt:2: cannot read ") && err.contains("nope.txt: No such file"), "{err}");
        assert!(!err.contains("canonicalize"), "{err}");
    }

    #[test]
    fn env_expansion() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("AIRLOCK_TEST_PIN", "2.0") };
        assert_eq!(expand_env("pkg==${AIRLOCK_TEST_PIN}"), "pkg==2.0");
        assert_eq!(expand_env("pkg==${AIRLOCK_UNSET_X}"), "pkg==${AIRLOCK_UNSET_X}");
    }
}
