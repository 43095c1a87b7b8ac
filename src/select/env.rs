//! Target environments: the marker environment of each (Python, platform)
//! target a manifest names, for evaluating PEP 508 markers the way pip
//! would on that machine.

use uv_normalize::ExtraName;
use uv_pep508::{MarkerEnvironment, MarkerEnvironmentBuilder, Requirement};

use crate::dist::tags::{PlatformTarget, PythonTarget, TagFilter};

/// Representative Pythons and platforms when a manifest lists none, so that
/// markers still evaluate to "applies somewhere".
const ALL_PYTHONS: [&str; 8] = ["3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"];
const ALL_PLATFORMS: [&str; 5] =
    ["manylinux_2_17_x86_64", "manylinux_2_17_aarch64", "macosx_11_0_arm64", "macosx_10_9_x86_64", "win_amd64"];

/// One target environment: a CPython feature release on one platform, as
/// pip or uv would see it on that machine.
#[derive(Debug, Clone)]
pub struct TargetEnv {
    pub python: PythonTarget,
    pub platform: PlatformTarget,
    pub markers: MarkerEnvironment,
}

impl TargetEnv {
    /// Named in output like `cp312-manylinux_2_28_aarch64`.
    pub fn name(&self) -> String {
        format!("cp{}{}-{}", self.python.major, self.python.minor, self.platform)
    }

    /// The tag filter of this environment alone.
    pub fn tags(&self) -> TagFilter {
        TagFilter { pythons: Some(vec![self.python]), platforms: Some(vec![self.platform.clone()]) }
    }

    /// The Python version the environment runs (`3.12.0`: the lowest patch
    /// release, as `uv pip compile --python-version 3.12` assumes).
    pub fn python_version(&self) -> uv_pep440::Version {
        uv_pep440::Version::new([u64::from(self.python.major), u64::from(self.python.minor), 0])
    }
}

/// The marker fields of a platform: (sys_platform, platform_system,
/// platform_machine, os_name).
fn platform_markers(plat: &PlatformTarget) -> (&str, &str, &str, &str) {
    match plat {
        PlatformTarget::Manylinux(_, arch) | PlatformTarget::Musllinux(_, arch) => ("linux", "Linux", arch, "posix"),
        PlatformTarget::Macos(_, arch) => ("darwin", "Darwin", arch, "posix"),
        PlatformTarget::Exact(t) if t == "win_amd64" => ("win32", "Windows", "AMD64", "nt"),
        PlatformTarget::Exact(t) if t == "win_arm64" => ("win32", "Windows", "ARM64", "nt"),
        PlatformTarget::Exact(t) if t == "win32" => ("win32", "Windows", "x86", "nt"),
        PlatformTarget::Exact(t) => match t.split_once('_') {
            Some(("linux", arch)) => ("linux", "Linux", arch, "posix"),
            _ => ("", "", "", ""),
        },
    }
}

/// Every (Python, platform) target of a tag filter; where it lists none,
/// representative ones, so that markers still evaluate to "applies somewhere".
pub fn targets(tags: &TagFilter) -> Vec<TargetEnv> {
    let pythons: Vec<PythonTarget> = match &tags.pythons {
        Some(p) => p.clone(),
        None => ALL_PYTHONS.iter().filter_map(|p| p.parse().ok()).collect(),
    };
    let platforms: Vec<PlatformTarget> = match &tags.platforms {
        Some(p) => p.clone(),
        None => ALL_PLATFORMS.iter().filter_map(|p| p.parse().ok()).collect(),
    };
    let mut out = Vec::new();
    for py in &pythons {
        for plat in &platforms {
            let (sys_platform, system, machine, os_name) = platform_markers(plat);
            let version = py.to_string();
            let full = format!("{version}.0");
            let env = MarkerEnvironmentBuilder {
                implementation_name: "cpython",
                implementation_version: &full,
                os_name,
                platform_machine: machine,
                platform_python_implementation: "CPython",
                platform_release: "",
                platform_system: system,
                platform_version: "",
                python_full_version: &full,
                python_version: &version,
                sys_platform,
            };
            if let Ok(markers) = MarkerEnvironment::try_from(env) {
                out.push(TargetEnv { python: *py, platform: plat.clone(), markers });
            }
        }
    }
    out
}

/// The marker environments of every (Python, platform) target.
pub fn environments(tags: &TagFilter) -> Vec<MarkerEnvironment> {
    targets(tags).into_iter().map(|t| t.markers).collect()
}

/// Does a requirement's marker hold on at least one target?
pub fn applies(req: &Requirement, envs: &[MarkerEnvironment], extras: &[ExtraName]) -> bool {
    req.marker.is_true() || envs.iter().any(|env| req.marker.evaluate(env, extras))
}
