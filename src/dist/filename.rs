//! Distribution filenames: wheels (PEP 427 / 491) and source distributions.
//!
//! An upstream chooses the filenames we write to disk, so every name is first
//! checked against a strict character allowlist: nothing that could be a path
//! separator, a parent reference, a NUL or markup ever reaches the file system
//! or a page. Parsing never guesses: a name that does not parse is reported and
//! the file is skipped by the caller.

use std::fmt;
use std::str::FromStr;

use uv_pep440::Version;

use super::names::ProjectName;

/// Why a filename was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilenameError {
    #[error("unsafe filename {0:?}: only letters, digits and `._+!-` are allowed, and it must not start with a dot")]
    Unsafe(String),
    #[error("{0:?} is not a wheel or sdist (.whl, .tar.gz, .zip, .tar.bz2, .tar.xz, .tgz)")]
    Unsupported(String),
    #[error("invalid wheel filename {filename:?}: {reason}")]
    InvalidWheel { filename: String, reason: String },
    #[error("invalid sdist filename {filename:?}: {reason}")]
    InvalidSdist { filename: String, reason: String },
    #[error("filename {filename:?} does not belong to project `{project}`")]
    WrongProject { filename: String, project: String },
}

/// Longest filename most file systems accept.
const MAX_FILENAME: usize = 255;

/// Refuse any filename that could escape its directory or carry markup.
pub fn check_safe(filename: &str) -> Result<(), FilenameError> {
    let ok = !filename.is_empty()
        && filename.len() <= MAX_FILENAME
        && !filename.starts_with('.')
        && filename.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'!' | b'-'));
    if ok { Ok(()) } else { Err(FilenameError::Unsafe(filename.to_string())) }
}

/// Source distribution archive formats pip accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SdistFormat {
    TarGz,
    Zip,
    TarBz2,
    TarXz,
    Tgz,
}

impl SdistFormat {
    const ALL: [(SdistFormat, &'static str); 5] = [
        (SdistFormat::TarGz, ".tar.gz"),
        (SdistFormat::Zip, ".zip"),
        (SdistFormat::TarBz2, ".tar.bz2"),
        (SdistFormat::TarXz, ".tar.xz"),
        (SdistFormat::Tgz, ".tgz"),
    ];

    fn split(filename: &str) -> Option<(&str, SdistFormat)> {
        Self::ALL.iter().find_map(|(fmt, ext)| filename.strip_suffix(ext).map(|stem| (stem, *fmt)))
    }
}

/// A parsed wheel filename: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WheelFilename {
    raw: String,
    pub name: ProjectName,
    pub version: Version,
    pub build: Option<String>,
    /// Compressed tag sets (`py2.py3`) expanded.
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

/// A parsed source distribution filename: `{name}-{version}.{ext}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SdistFilename {
    raw: String,
    pub name: ProjectName,
    pub version: Version,
    pub format: SdistFormat,
}

/// A wheel or an sdist. Displays as the exact original filename.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DistFilename {
    Wheel(WheelFilename),
    Sdist(SdistFilename),
}

impl DistFilename {
    /// Parse a filename, checking that it belongs to `project` when given.
    ///
    /// Legacy sdist names may contain `-` inside the project name
    /// (`python-dateutil-2.8.2.tar.gz`); with the project known, the split
    /// point is exact. Without it (local directories), the first split whose
    /// remainder is a valid PEP 440 version wins.
    pub fn parse(filename: &str, project: Option<&ProjectName>) -> Result<Self, FilenameError> {
        check_safe(filename)?;
        let parsed = if let Some(stem) = filename.strip_suffix(".whl") {
            DistFilename::Wheel(parse_wheel(filename, stem)?)
        } else if let Some((stem, format)) = SdistFormat::split(filename) {
            DistFilename::Sdist(parse_sdist(filename, stem, format, project)?)
        } else {
            return Err(FilenameError::Unsupported(filename.to_string()));
        };
        if let Some(project) = project
            && parsed.name() != project
        {
            return Err(FilenameError::WrongProject { filename: filename.to_string(), project: project.to_string() });
        }
        Ok(parsed)
    }

    pub fn name(&self) -> &ProjectName {
        match self {
            DistFilename::Wheel(w) => &w.name,
            DistFilename::Sdist(s) => &s.name,
        }
    }

    pub fn version(&self) -> &Version {
        match self {
            DistFilename::Wheel(w) => &w.version,
            DistFilename::Sdist(s) => &s.version,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DistFilename::Wheel(w) => &w.raw,
            DistFilename::Sdist(s) => &s.raw,
        }
    }

    pub fn is_wheel(&self) -> bool {
        matches!(self, DistFilename::Wheel(_))
    }
}

impl fmt::Display for DistFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DistFilename {
    type Err = FilenameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DistFilename::parse(s, None)
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for WheelFilename {
    type Err = FilenameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match DistFilename::parse(s, None)? {
            DistFilename::Wheel(w) => Ok(w),
            DistFilename::Sdist(_) => {
                Err(FilenameError::InvalidWheel { filename: s.to_string(), reason: "not a .whl".into() })
            }
        }
    }
}

fn parse_wheel(filename: &str, stem: &str) -> Result<WheelFilename, FilenameError> {
    let bad = |reason: &str| FilenameError::InvalidWheel { filename: filename.to_string(), reason: reason.to_string() };
    let parts: Vec<&str> = stem.split('-').collect();
    let (name, version, build, tags) = match parts.as_slice() {
        [n, v, py, abi, plat] => (*n, *v, None, [*py, *abi, *plat]),
        [n, v, b, py, abi, plat] => {
            // PEP 427: the build tag must start with a digit.
            if !b.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad("build tag must start with a digit"));
            }
            (*n, *v, Some((*b).to_string()), [*py, *abi, *plat])
        }
        _ => return Err(bad("expected 5 or 6 dash-separated parts")),
    };
    let name = ProjectName::new(name.to_string()).map_err(|_| bad("invalid project name"))?;
    let version = Version::from_str(version).map_err(|e| bad(&format!("invalid version: {e}")))?;
    let expand = |set: &str| -> Result<Vec<String>, FilenameError> {
        let tags: Vec<String> = set.split('.').map(str::to_string).collect();
        if tags.iter().any(String::is_empty) {
            return Err(bad("empty tag"));
        }
        Ok(tags)
    };
    Ok(WheelFilename {
        raw: filename.to_string(),
        name,
        version,
        build,
        python: expand(tags[0])?,
        abi: expand(tags[1])?,
        platform: expand(tags[2])?,
    })
}

fn parse_sdist(
    filename: &str,
    stem: &str,
    format: SdistFormat,
    project: Option<&ProjectName>,
) -> Result<SdistFilename, FilenameError> {
    let bad = |reason: &str| FilenameError::InvalidSdist { filename: filename.to_string(), reason: reason.to_string() };
    let candidates = stem.match_indices('-').map(|(i, _)| i);
    for split in candidates {
        let (name, version) = (&stem[..split], &stem[split + 1..]);
        let Ok(name) = ProjectName::new(name.to_string()) else {
            continue;
        };
        if project.is_some_and(|p| *p != name) {
            continue;
        }
        if let Ok(version) = Version::from_str(version) {
            return Ok(SdistFilename { raw: filename.to_string(), name, version, format });
        }
    }
    Err(match project {
        Some(p) => bad(&format!("no `{p}-<version>` split with a valid PEP 440 version")),
        None => bad("no `<name>-<version>` split with a valid PEP 440 version"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ProjectName {
        ProjectName::new(s.to_string()).unwrap()
    }

    #[test]
    fn parses_wheels_with_compressed_tags_and_build() {
        let w: WheelFilename =
            "zope.interface-6.0-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl".parse().unwrap();
        assert_eq!(w.name.as_ref(), "zope-interface");
        assert_eq!(w.version.to_string(), "6.0");
        assert_eq!(w.build.as_deref(), Some("1"));
        assert_eq!(w.platform, ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]);
        let w: WheelFilename = "six-1.16.0-py2.py3-none-any.whl".parse().unwrap();
        assert_eq!(w.python, ["py2", "py3"]);
        assert_eq!(w.to_string(), "six-1.16.0-py2.py3-none-any.whl");
    }

    #[test]
    fn legacy_sdist_split_is_exact_with_project() {
        let f = DistFilename::parse("python-dateutil-2.8.2.tar.gz", Some(&name("python-dateutil"))).unwrap();
        assert_eq!(f.version().to_string(), "2.8.2");
        let f: DistFilename = "python-dateutil-2.8.2.tar.gz".parse().unwrap();
        assert_eq!(f.name().as_ref(), "python-dateutil");
        let f: DistFilename = "Zope.Interface-4.0.zip".parse().unwrap();
        assert_eq!(f.name().as_ref(), "zope-interface");
    }

    #[test]
    fn refuses_hostile_and_unparseable_names() {
        for bad in [
            "../evil-1.0.tar.gz",
            "/etc/passwd-1.0.tar.gz",
            "a\0b-1.0.tar.gz",
            ".hidden-1.0.tar.gz",
            "x<script>-1.0.tar.gz",
            "pkg-1.0-py3-none-any.whl/../../x",
            "nicolas nester-1.0.0.zip",
            "circbuf-0.1b1-py32, py33, py34-none-any.whl",
        ] {
            assert!(matches!(DistFilename::parse(bad, None), Err(FilenameError::Unsafe(_))), "{bad:?}");
        }
        assert!(matches!(
            DistFilename::parse("pkg-notaversion-py3-none-any.whl", None),
            Err(FilenameError::InvalidWheel { .. })
        ));
        assert!(matches!(DistFilename::parse("pkg-1.0.egg", None), Err(FilenameError::Unsupported(_))));
        assert!(matches!(
            DistFilename::parse("other-1.0.tar.gz", Some(&name("pkg"))),
            Err(FilenameError::InvalidSdist { .. })
        ));
        assert!(matches!(
            DistFilename::parse("other-1.0-py3-none-any.whl", Some(&name("pkg"))),
            Err(FilenameError::WrongProject { .. })
        ));
    }

    /// Every real PyPI wheel/sdist name either parses or is refused; none panics,
    /// and what parses displays as exactly the original name.
    #[test]
    fn real_filename_corpus_round_trips() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/pypi-filenames/package-list-huge.txt");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipping: {path} is absent");
            return;
        };
        let (mut ok, mut wheels) = (0, 0);
        for line in text.lines() {
            if let Ok(f) = DistFilename::parse(line, None) {
                assert_eq!(f.to_string(), line);
                ok += 1;
                wheels += usize::from(f.is_wheel());
            }
        }
        assert!(wheels > 11_000, "only {wheels} wheels parsed");
        assert!(ok > 60_000, "only {ok} filenames parsed");
    }
}
