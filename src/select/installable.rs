//! Installability: for every target environment, whether the requested
//! requirements install from the tree about to be published, and if not,
//! what cannot and why. Produced by the pipeline's installability check;
//! reported in `reports/installability.json`, the landing page's matrix and
//! summary.md.

use std::collections::BTreeMap;

use super::env::TargetEnv;
use super::resolve::Missing;
use crate::dist::Version;
use crate::dist::names::ProjectName;

/// Why a project does not install in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No wheel for the environment's platform.
    NoWheel,
    /// Files exist for the platform, but Requires-Python excludes the Python.
    RequiresPython,
    /// Only an sdist, which the mirror does not hold.
    SdistOnly,
    /// The project is not in the mirror at all.
    Missing,
    /// Versions exist, but none satisfies every requirement at once.
    Conflict,
}

impl From<Missing> for Reason {
    fn from(m: Missing) -> Reason {
        match m {
            Missing::NoWheel => Reason::NoWheel,
            Missing::RequiresPython => Reason::RequiresPython,
            Missing::SdistOnly => Reason::SdistOnly,
            Missing::Absent => Reason::Missing,
        }
    }
}

impl Reason {
    pub fn describe(self, env: &str) -> String {
        match self {
            Reason::NoWheel => format!("no wheel for {env}"),
            Reason::RequiresPython => format!("Requires-Python excludes {env}"),
            Reason::SdistOnly => "only an sdist exists, and the mirror takes no sdists".into(),
            Reason::Missing => "not in the mirror".into(),
            Reason::Conflict => "the requirements conflict (see the explanation)".into(),
        }
    }
}

/// One environment's verdict.
#[derive(Debug, Clone)]
pub struct EnvCheck {
    pub env: TargetEnv,
    /// What installs (empty when nothing resolves).
    pub installs: BTreeMap<ProjectName, Installed>,
    /// Projects that cannot install, and why.
    pub problems: BTreeMap<ProjectName, Reason>,
    /// The solver's explanation when the environment does not resolve.
    pub explanation: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Installed {
    pub version: Version,
    pub file: String,
    /// Installs from an sdist (built on install).
    pub sdist: bool,
}

impl EnvCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.explanation.is_none()
    }
}

/// The verdict for every environment (none when not checked).
#[derive(Debug, Clone, Default)]
pub struct Installability {
    /// Why nothing was checked, if so.
    pub unchecked: Option<String>,
    /// The requirements checked, as written.
    pub requirements: Vec<String>,
    pub envs: Vec<EnvCheck>,
}

impl Installability {
    pub fn failing(&self) -> impl Iterator<Item = &EnvCheck> {
        self.envs.iter().filter(|e| !e.ok())
    }

    /// Projects that install at different versions in different
    /// environments: each version with the environments it installs in.
    pub fn differing(&self) -> BTreeMap<ProjectName, BTreeMap<Version, Vec<String>>> {
        let mut by: BTreeMap<ProjectName, BTreeMap<Version, Vec<String>>> = BTreeMap::new();
        for e in &self.envs {
            for (p, i) in &e.installs {
                by.entry(p.clone()).or_default().entry(i.version.clone()).or_default().push(e.env.name());
            }
        }
        by.retain(|_, versions| versions.len() > 1);
        by
    }

    /// The verdict in one line, for the console.
    pub fn summary(&self) -> Option<String> {
        if self.unchecked.is_some() || self.envs.is_empty() {
            return None;
        }
        let ok = self.envs.iter().filter(|e| e.ok()).count();
        let mut line = format!("installability: {ok} of {} environment(s) install the requirements", self.envs.len());
        let failing: Vec<String> = self.failing().map(|e| e.env.name()).collect();
        if !failing.is_empty() {
            line.push_str(&format!(" (not: {})", failing.join(", ")));
        }
        for (p, versions) in self.differing().iter().take(3) {
            let parts: Vec<String> = versions
                .iter()
                .map(|(v, envs)| {
                    let on = if envs.len() > 2 { format!("{} environments", envs.len()) } else { envs.join(", ") };
                    format!("{v} on {on}")
                })
                .collect();
            line.push_str(&format!("; {p} differs by environment: {}", parts.join(", ")));
        }
        Some(line)
    }
}
