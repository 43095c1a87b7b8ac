//! Severity ratings and policy thresholds.
//!
//! One ordered scale shared by the advisory matcher, the policy and every
//! report, so that "high" means the same thing everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A qualitative rating (CVSS v3/v4 scale), or `Unknown` when no vector is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const RATED: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The rating for a CVSS base score (0.0 counts as low: an advisory exists).
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            _ => Severity::Low,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid severity {0:?}: expected one of none, low, medium, high, critical")]
pub struct SeverityError(pub String);

/// A policy threshold: `none` never triggers, otherwise "at or above".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threshold {
    #[default]
    Never,
    AtOrAbove(Severity),
}

impl Threshold {
    pub fn triggered_by(self, severity: Severity) -> bool {
        match self {
            Threshold::Never => false,
            Threshold::AtOrAbove(min) => severity >= min,
        }
    }
}

impl FromStr for Threshold {
    type Err = SeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => Threshold::Never,
            "low" => Threshold::AtOrAbove(Severity::Low),
            "medium" => Threshold::AtOrAbove(Severity::Medium),
            "high" => Threshold::AtOrAbove(Severity::High),
            "critical" => Threshold::AtOrAbove(Severity::Critical),
            other => return Err(SeverityError(other.to_string())),
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Never => f.write_str("none"),
            Threshold::AtOrAbove(s) => s.fmt(f),
        }
    }
}
