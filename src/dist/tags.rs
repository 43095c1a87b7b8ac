//! Wheel tag matching for the Pythons and platforms a mirror serves.
//!
//! The rules follow what `packaging.tags` would generate on each target
//! (CPython): `cpXY` with its own ABI, `abi3` from older CPythons, `pyX`/`pyXY`
//! with `none`, and platform families with version ordering (manylinux glibc,
//! musllinux, macOS) so that a target of `manylinux_2_17_x86_64` accepts a
//! `manylinux2010_x86_64` wheel but not a `manylinux_2_28_x86_64` one.

use std::fmt;
use std::str::FromStr;

use super::filename::WheelFilename;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("invalid python {0:?}: expected MAJOR.MINOR such as \"3.12\"")]
    Python(String),
    #[error(
        "invalid platform tag {0:?}: expected a wheel platform tag such as \"manylinux_2_17_x86_64\", \"macosx_11_0_arm64\" or \"win_amd64\""
    )]
    Platform(String),
    #[error("unknown platform {tag:?}{}", suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownPlatform { tag: String, suggestion: Option<String> },
    #[error("{0:?} is not a CPython release: 2.7, or 3.0 to 3.{MAX_MINOR}")]
    UnknownPython(String),
}

/// The newest CPython feature release a manifest may name (3.15 is out,
/// 3.16 is in development as of this airlock).
pub const MAX_MINOR: u8 = 16;

/// What a platform target may be, said once after all the platform errors
/// of a manifest.
pub fn platform_forms() -> String {
    format!(
        "platform tags are manylinux_<glibc major>_<minor>_<arch> (manylinux_2_17_x86_64, manylinux_2_28_aarch64; or manylinux2014_x86_64), musllinux_<major>_<minor>_<arch> (musllinux_1_2_x86_64), macosx_<major>_<minor>_<arch> (macosx_11_0_arm64, macosx_10_12_x86_64), win_amd64, win32, win_arm64, or linux_<arch>; arch is one of {}",
        LINUX_ARCHES.join(", ")
    )
}

/// The nearest of `known` to `word`, if one is near.
fn nearest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(d, k)| *d > 0 && *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// A suggestion for a platform tag that is almost one.
fn suggest_platform(s: &str) -> Option<String> {
    let arch_fix = |prefix: &str, rest: &str, arches: &[&str]| -> Option<String> {
        let mut it = rest.splitn(3, '_');
        let (major, minor, arch) = (it.next()?, it.next()?, it.next()?);
        if arches.contains(&arch) {
            return None;
        }
        Some(format!("{prefix}{major}_{minor}_{}", nearest(arch, arches.iter().copied())?))
    };
    if let Some(rest) = s.strip_prefix("manylinux_") {
        return arch_fix("manylinux_", rest, LINUX_ARCHES);
    }
    if let Some(rest) = s.strip_prefix("musllinux_") {
        return arch_fix("musllinux_", rest, LINUX_ARCHES);
    }
    if let Some(rest) = s.strip_prefix("macosx_") {
        return arch_fix("macosx_", rest, MAC_ARCHES);
    }
    let linux: Vec<String> = LINUX_ARCHES.iter().map(|a| format!("linux_{a}")).collect();
    let common = ["manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_11_0_arm64"];
    let known = WINDOWS.iter().copied().chain(linux.iter().map(String::as_str)).chain(common);
    if let Some(k) = nearest(s, known) {
        return Some(k.to_string());
    }
    match s {
        "linux" | "manylinux" => Some("manylinux_2_17_x86_64".into()),
        "windows" | "win" | "win64" => Some("win_amd64".into()),
        "mac" | "macos" | "darwin" | "osx" => Some("macosx_11_0_arm64".into()),
        _ => None,
    }
}

/// Architectures of Linux wheel tags (PEP 599/600/656 and what PyPI serves).
const LINUX_ARCHES: &[&str] =
    &["x86_64", "aarch64", "i686", "armv7l", "ppc64le", "s390x", "ppc64", "riscv64", "armv6l", "loongarch64"];
/// Architectures and binary formats of macOS wheel tags.
const MAC_ARCHES: &[&str] =
    &["arm64", "x86_64", "universal2", "intel", "universal", "i386", "ppc64", "ppc", "fat64", "fat32", "fat"];
/// Windows platform tags.
const WINDOWS: &[&str] = &["win32", "win_amd64", "win_arm64", "win_ia64"];

impl PlatformTarget {
    /// A platform a manifest targets: a tag pip would generate for some
    /// machine. Stricter than parsing a wheel's tag: a word such as
    /// `windows` or `linux` is refused with the forms accepted, instead of
    /// becoming a target that matches no wheel.
    pub fn target(s: &str) -> Result<PlatformTarget, TagError> {
        let unknown = || TagError::UnknownPlatform { tag: s.to_string(), suggestion: suggest_platform(s) };
        let t: PlatformTarget = s.parse().map_err(|_| unknown())?;
        let known = match &t {
            PlatformTarget::Manylinux(_, arch) | PlatformTarget::Musllinux(_, arch) => {
                LINUX_ARCHES.contains(&arch.as_str())
            }
            PlatformTarget::Macos(_, arch) => MAC_ARCHES.contains(&arch.as_str()),
            PlatformTarget::Exact(tag) => {
                WINDOWS.contains(&tag.as_str())
                    || tag.strip_prefix("linux_").is_some_and(|a| LINUX_ARCHES.contains(&a))
                    || tag.starts_with("ios_")
                    || tag.starts_with("android_")
            }
        };
        if known { Ok(t) } else { Err(unknown()) }
    }
}

/// A CPython feature release, such as 3.12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PythonTarget {
    pub major: u8,
    pub minor: u8,
}

impl FromStr for PythonTarget {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TagError::Python(s.to_string());
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        let major: u8 = major.parse().map_err(|_| err())?;
        let minor: u8 = minor.parse().map_err(|_| err())?;
        if !(2..=3).contains(&major) {
            return Err(err());
        }
        Ok(PythonTarget { major, minor })
    }
}

impl PythonTarget {
    /// A Python a manifest targets: a CPython feature release that exists
    /// (or is in development), not any MAJOR.MINOR.
    pub fn target(s: &str) -> Result<PythonTarget, TagError> {
        let t: PythonTarget = s.parse()?;
        let known = (t.major == 3 && t.minor <= MAX_MINOR) || (t.major == 2 && t.minor == 7);
        if known { Ok(t) } else { Err(TagError::UnknownPython(s.to_string())) }
    }
}

impl fmt::Display for PythonTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl PythonTarget {
    fn accepts(&self, python: &str, abi: &str) -> bool {
        let (major, minor) = (self.major, self.minor);
        let cp_own = format!("cp{major}{minor}");
        if python == cp_own {
            // Pythons up to 3.7 used the `m` (pymalloc) ABI suffix.
            return abi == cp_own
                || abi == "abi3"
                || abi == "none"
                || (major == 3 && minor <= 7 && abi == format!("{cp_own}m"));
        }
        if abi == "abi3" {
            // abi3 wheels built for an older CPython 3 run on newer ones.
            return major == 3
                && python
                    .strip_prefix("cp3")
                    .and_then(|m| m.parse::<u8>().ok())
                    .is_some_and(|m| (2..=minor).contains(&m));
        }
        if abi == "none" {
            let Some(rest) = python.strip_prefix("py") else {
                return false;
            };
            if rest == major.to_string() {
                return true;
            }
            return rest
                .strip_prefix(&major.to_string())
                .and_then(|m| m.parse::<u8>().ok())
                .is_some_and(|m| m <= minor);
        }
        false
    }
}

/// A platform family with a version that orders compatibility.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PlatformTarget {
    /// glibc (major, minor) and architecture.
    Manylinux((u16, u16), String),
    /// musl (major, minor) and architecture.
    Musllinux((u16, u16), String),
    /// macOS (major, minor) and architecture.
    Macos((u16, u16), String),
    /// Any other tag (`win_amd64`, `linux_x86_64`, ...): matched exactly.
    Exact(String),
}

fn split_ver_arch(rest: &str) -> Option<((u16, u16), String)> {
    let mut it = rest.splitn(3, '_');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let arch = it.next()?;
    (!arch.is_empty()).then(|| ((major, minor), arch.to_string()))
}

impl fmt::Display for PlatformTarget {
    /// The canonical tag (a legacy `manylinux2014_*` alias shows as `manylinux_2_17_*`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformTarget::Manylinux((a, b), arch) => write!(f, "manylinux_{a}_{b}_{arch}"),
            PlatformTarget::Musllinux((a, b), arch) => write!(f, "musllinux_{a}_{b}_{arch}"),
            PlatformTarget::Macos((a, b), arch) => write!(f, "macosx_{a}_{b}_{arch}"),
            PlatformTarget::Exact(t) => f.write_str(t),
        }
    }
}

impl FromStr for PlatformTarget {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TagError::Platform(s.to_string());
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(err());
        }
        // PEP 600 legacy aliases.
        for (alias, glibc) in [("manylinux1_", (2, 5)), ("manylinux2010_", (2, 12)), ("manylinux2014_", (2, 17))] {
            if let Some(arch) = s.strip_prefix(alias) {
                return Ok(PlatformTarget::Manylinux(glibc, arch.to_string()));
            }
        }
        if let Some(rest) = s.strip_prefix("manylinux_") {
            let (v, a) = split_ver_arch(rest).ok_or_else(err)?;
            return Ok(PlatformTarget::Manylinux(v, a));
        }
        if let Some(rest) = s.strip_prefix("musllinux_") {
            let (v, a) = split_ver_arch(rest).ok_or_else(err)?;
            return Ok(PlatformTarget::Musllinux(v, a));
        }
        if let Some(rest) = s.strip_prefix("macosx_") {
            let (v, a) = split_ver_arch(rest).ok_or_else(err)?;
            return Ok(PlatformTarget::Macos(v, a));
        }
        if s == "any" {
            return Err(err());
        }
        Ok(PlatformTarget::Exact(s.to_string()))
    }
}

/// Binary formats a macOS machine of `arch` can load (packaging's `_mac_binary_formats`).
fn mac_formats(arch: &str) -> &'static [&'static str] {
    match arch {
        "arm64" => &["arm64", "universal2"],
        "x86_64" => &["x86_64", "intel", "fat64", "fat32", "universal2", "universal"],
        "i386" => &["i386", "intel", "fat32", "fat", "universal"],
        "ppc64" => &["ppc64", "fat64", "universal"],
        "ppc" => &["ppc", "fat32", "fat", "universal"],
        _ => &[],
    }
}

impl PlatformTarget {
    /// Does a wheel built for platform tag `tag` run on this target?
    pub fn accepts(&self, tag: &str) -> bool {
        if tag == "any" {
            return true;
        }
        let Ok(wheel) = tag.parse::<PlatformTarget>() else {
            return false;
        };
        match (self, &wheel) {
            (PlatformTarget::Manylinux(tv, ta), PlatformTarget::Manylinux(wv, wa))
            | (PlatformTarget::Musllinux(tv, ta), PlatformTarget::Musllinux(wv, wa)) => ta == wa && wv <= tv,
            (PlatformTarget::Macos(tv, ta), PlatformTarget::Macos(wv, wa)) => {
                wv <= tv && (ta == wa || mac_formats(ta).contains(&wa.as_str()))
            }
            (PlatformTarget::Exact(t), PlatformTarget::Exact(w)) => t == w,
            _ => false,
        }
    }
}

/// Which wheels a project's selection accepts. `None` means "every".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter {
    pub pythons: Option<Vec<PythonTarget>>,
    pub platforms: Option<Vec<PlatformTarget>>,
}

impl TagFilter {
    /// A wheel matches when one of its expanded tag triples runs on one of the
    /// targets: a listed Python and a listed platform.
    pub fn matches(&self, wheel: &WheelFilename) -> bool {
        let py_ok = |py: &str, abi: &str| match &self.pythons {
            None => true,
            Some(targets) => targets.iter().any(|t| t.accepts(py, abi)),
        };
        let plat_ok = |plat: &str| match &self.platforms {
            None => true,
            Some(targets) => plat == "any" || targets.iter().any(|t| t.accepts(plat)),
        };
        wheel
            .python
            .iter()
            .any(|py| wheel.abi.iter().any(|abi| py_ok(py, abi)) && wheel.platform.iter().any(|p| plat_ok(p)))
    }
}

/// How much an installer on one target prefers a wheel: lower is better,
/// in the order of `packaging.tags.sys_tags()` (which pip and uv follow):
/// the interpreter's own ABI, then `abi3`, then `none`, on the most
/// specific platform first (the newest glibc, macOS or musl version the
/// target runs); older `abi3` builds; `pyXY`/`py3` on a platform; then
/// `any` last. `None` when the wheel does not run there at all.
pub fn rank(python: PythonTarget, platform: &PlatformTarget, wheel: &WheelFilename) -> Option<(u32, u32)> {
    let filter = TagFilter { pythons: Some(vec![python]), platforms: Some(vec![platform.clone()]) };
    if !filter.matches(wheel) {
        return None;
    }
    let (major, minor) = (u32::from(python.major), u32::from(python.minor));
    let own = format!("cp{major}{minor}");
    let python_rank = |py: &str, abi: &str, any: bool| -> Option<u32> {
        let base = if any { 10_000 } else { 0 };
        let older = |p: &str, prefix: &str| p.strip_prefix(prefix).and_then(|m| m.parse::<u32>().ok());
        let r = match (py, abi) {
            (p, a) if p == own && a == own => 0,
            (p, "abi3") if p == own => 1,
            (p, "none") if p == own => 2,
            (p, "abi3") => 3 + minor.checked_sub(older(p, &format!("cp{major}"))?)?,
            (p, "none") if p == format!("py{major}{minor}") => 100,
            (p, "none") if p == format!("py{major}") => 101,
            (p, "none") => 102 + minor.checked_sub(older(p, &format!("py{major}"))?)?,
            (p, a) if p == own && a == format!("{own}m") => 0,
            _ => return None,
        };
        // `cpXY-none-any` comes before `pyXY-none-any`, after every platform.
        Some(base + if any && r == 2 { 0 } else { r })
    };
    let platform_rank = |tag: &str| -> Option<u32> {
        let w: PlatformTarget = tag.parse().ok()?;
        Some(match (platform, &w) {
            (PlatformTarget::Manylinux(t, _), PlatformTarget::Manylinux(v, _))
            | (PlatformTarget::Musllinux(t, _), PlatformTarget::Musllinux(v, _))
            | (PlatformTarget::Macos(t, _), PlatformTarget::Macos(v, _)) => {
                // The target's own version first, then older ones (a
                // wheel newer than the target does not run there at all).
                let key = |(a, b): (u16, u16)| u32::from(a) * 1000 + u32::from(b);
                let newer = key(*t).saturating_sub(key(*v));
                let format = match (platform, &w) {
                    (PlatformTarget::Macos(_, ta), PlatformTarget::Macos(_, wa)) if ta != wa => {
                        1 + mac_formats(ta).iter().position(|f| f == wa).unwrap_or(9) as u32
                    }
                    _ => 0,
                };
                newer * 16 + format
            }
            _ => 0,
        })
    };
    let mut best: Option<(u32, u32)> = None;
    for py in &wheel.python {
        for abi in &wheel.abi {
            for plat in &wheel.platform {
                let any = plat == "any";
                if !any && !platform.accepts(plat) {
                    continue;
                }
                let Some(p) = python_rank(py, abi, any) else { continue };
                let q = if any { 0 } else { platform_rank(plat).unwrap_or(u32::MAX) };
                best = Some(best.map_or((p, q), |b| b.min((p, q))));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_wheel_ranks_first() {
        let py: PythonTarget = "3.12".parse().unwrap();
        let linux: PlatformTarget = "manylinux_2_28_x86_64".parse().unwrap();
        let r = |tags: &str| rank(py, &linux, &wheel(tags));
        let order = [
            "cp312-cp312-manylinux_2_28_x86_64",
            "cp312-cp312-manylinux_2_17_x86_64",
            "cp312-abi3-manylinux_2_28_x86_64",
            "cp39-abi3-manylinux_2_17_x86_64",
            "py3-none-manylinux_2_17_x86_64",
            "cp312-none-any",
            "py312-none-any",
            "py3-none-any",
            "py38-none-any",
        ];
        for pair in order.windows(2) {
            assert!(r(pair[0]) < r(pair[1]), "{} before {}: {:?} {:?}", pair[0], pair[1], r(pair[0]), r(pair[1]));
        }
        assert_eq!(r("cp311-cp311-manylinux_2_17_x86_64"), None);
        assert_eq!(r("cp312-cp312-manylinux_2_34_x86_64"), None);
        let mac: PlatformTarget = "macosx_14_0_arm64".parse().unwrap();
        let m = |tags: &str| rank(py, &mac, &wheel(tags));
        assert!(m("cp312-cp312-macosx_14_0_arm64") < m("cp312-cp312-macosx_12_0_arm64"));
        assert!(m("cp312-cp312-macosx_12_0_arm64") < m("cp312-cp312-macosx_10_9_universal2"));
        assert!(m("cp312-cp312-macosx_11_0_arm64") < m("cp312-cp312-macosx_11_0_universal2"));
        assert!(m("cp312-cp312-macosx_10_9_universal2") < m("py3-none-any"));
    }

    fn filter(py: &[&str], plat: &[&str]) -> TagFilter {
        TagFilter {
            pythons: (!py.is_empty()).then(|| py.iter().map(|p| p.parse().unwrap()).collect()),
            platforms: (!plat.is_empty()).then(|| plat.iter().map(|p| p.parse().unwrap()).collect()),
        }
    }

    fn wheel(tags: &str) -> WheelFilename {
        format!("pkg-1.0-{tags}.whl").parse().unwrap()
    }

    #[test]
    fn python_tags() {
        let f = filter(&["3.11"], &[]);
        for ok in [
            "cp311-cp311-linux_x86_64",
            "cp38-abi3-manylinux_2_17_x86_64",
            "py3-none-any",
            "py2.py3-none-any",
            "py311-none-any",
            "py38-none-any",
            "cp311-none-any",
        ] {
            assert!(f.matches(&wheel(ok)), "{ok} rejected");
        }
        for no in [
            "cp312-cp312-linux_x86_64",
            "cp310-cp310-linux_x86_64",
            "cp312-abi3-linux_x86_64",
            "py2-none-any",
            "py312-none-any",
            "cp311-cp311t-linux_x86_64",
            "pp310-pypy310_pp73-linux_x86_64",
        ] {
            assert!(!f.matches(&wheel(no)), "{no} accepted");
        }
        assert!(filter(&["3.7"], &[]).matches(&wheel("cp37-cp37m-win_amd64")));
    }

    #[test]
    fn manylinux_glibc_ordering_and_aliases() {
        let f = filter(&[], &["manylinux_2_17_x86_64"]);
        for ok in [
            "cp311-cp311-manylinux_2_17_x86_64",
            "cp311-cp311-manylinux2014_x86_64",
            "cp311-cp311-manylinux2010_x86_64",
            "cp311-cp311-manylinux1_x86_64",
            "cp311-cp311-manylinux_2_5_x86_64",
            "cp311-cp311-manylinux_2_28_x86_64.manylinux_2_12_x86_64",
            "py3-none-any",
        ] {
            assert!(f.matches(&wheel(ok)), "{ok} rejected");
        }
        for no in [
            "cp311-cp311-manylinux_2_28_x86_64",
            "cp311-cp311-manylinux2014_aarch64",
            "cp311-cp311-musllinux_1_1_x86_64",
            "cp311-cp311-linux_x86_64",
            "cp311-cp311-win_amd64",
        ] {
            assert!(!f.matches(&wheel(no)), "{no} accepted");
        }
        // A legacy alias as the target means its glibc.
        assert!(filter(&[], &["manylinux2014_x86_64"]).matches(&wheel("cp3-none-manylinux_2_17_x86_64")));
        assert!(!filter(&[], &["manylinux2010_x86_64"]).matches(&wheel("py3-none-manylinux_2_17_x86_64")));
    }

    #[test]
    fn musllinux_macos_windows() {
        let f = filter(&[], &["musllinux_1_2_x86_64"]);
        assert!(f.matches(&wheel("py3-none-musllinux_1_1_x86_64")));
        assert!(!f.matches(&wheel("py3-none-musllinux_1_3_x86_64")));
        let f = filter(&[], &["macosx_11_0_arm64"]);
        assert!(f.matches(&wheel("py3-none-macosx_11_0_arm64")));
        assert!(f.matches(&wheel("py3-none-macosx_10_9_universal2")));
        assert!(!f.matches(&wheel("py3-none-macosx_12_0_arm64")));
        assert!(!f.matches(&wheel("py3-none-macosx_10_9_x86_64")));
        let f = filter(&[], &["macosx_10_15_x86_64"]);
        assert!(f.matches(&wheel("py3-none-macosx_10_9_intel")));
        assert!(f.matches(&wheel("py3-none-macosx_10_9_universal2")));
        assert!(!f.matches(&wheel("py3-none-macosx_11_0_x86_64")));
        let f = filter(&[], &["win_amd64"]);
        assert!(f.matches(&wheel("cp311-cp311-win_amd64")));
        assert!(!f.matches(&wheel("cp311-cp311-win32")));
    }

    #[test]
    fn both_axes_must_hold_on_one_triple() {
        let f = filter(&["3.12"], &["win_amd64"]);
        assert!(f.matches(&wheel("cp312-cp312-win_amd64")));
        assert!(!f.matches(&wheel("cp312-cp312-manylinux_2_17_x86_64")));
        assert!(!f.matches(&wheel("cp311-cp311-win_amd64")));
    }

    #[test]
    fn bad_targets_are_errors() {
        assert!("3".parse::<PythonTarget>().is_err());
        assert!("3.x".parse::<PythonTarget>().is_err());
        assert!("many linux".parse::<PlatformTarget>().is_err());
        assert!("manylinux_2_x86_64".parse::<PlatformTarget>().is_err());
        assert!("any".parse::<PlatformTarget>().is_err());
    }
}
