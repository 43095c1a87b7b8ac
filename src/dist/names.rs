//! Project names.
//!
//! airlock keys every project by its PEP 503 normalized name. The normalized
//! form only ever contains `[a-z0-9-]`, which is what makes it safe to use as a
//! path segment under `simple/` and `packages/` whatever an upstream sends.
//! We reuse `uv_normalize::PackageName` (uv's normalization, the one uv's
//! requirement parser produces) rather than keep a second implementation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uv_normalize::PackageName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid project name {0:?}: names are letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit"
)]
pub struct InvalidNameError(pub String);

/// A PEP 503 normalized, non-empty project name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProjectName(PackageName);

impl ProjectName {
    pub fn new(raw: String) -> Result<Self, InvalidNameError> {
        if raw.is_empty() {
            return Err(InvalidNameError(raw));
        }
        PackageName::from_owned(raw.clone()).map(ProjectName).map_err(|_| InvalidNameError(raw))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// uv's form of the name, for requirements built from data.
    pub fn package_name(&self) -> &PackageName {
        &self.0
    }

    /// The name as written in wheel filenames and `.dist-info` directories.
    pub fn as_dist_info_name(&self) -> std::borrow::Cow<'_, str> {
        self.0.as_dist_info_name()
    }
}

impl From<&PackageName> for ProjectName {
    /// Names inside parsed PEP 508 requirements are never empty.
    fn from(name: &PackageName) -> Self {
        ProjectName(name.clone())
    }
}

impl FromStr for ProjectName {
    type Err = InvalidNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProjectName::new(s.to_string())
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ProjectName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<'de> Deserialize<'de> for ProjectName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep_503() {
        for (raw, want) in [
            ("Zope.Interface", "zope-interface"),
            ("ruamel.yaml", "ruamel-yaml"),
            ("typing_extensions", "typing-extensions"),
            ("Friendly-Bard", "friendly-bard"),
            ("FRIENDLY__._BARD", "friendly-bard"),
        ] {
            assert_eq!(raw.parse::<ProjectName>().unwrap().as_ref(), want);
        }
    }

    #[test]
    fn rejects_path_like_names() {
        for raw in ["../etc", "a/b", "", "-a", "a b", "a\0b", ".hidden"] {
            assert!(raw.parse::<ProjectName>().is_err(), "{raw:?} accepted");
        }
    }
}
