//! The facts a distribution file carries from the upstream listing, through
//! the state, to the rendered page: one typed record, `FileFacts`.
//!
//! Every stage that holds a file (the listing's `UpstreamFile`, the state's
//! `Artifact`, the site's `SiteFile`) embeds the same `FileFacts`, so a new
//! per-file fact is one field here, its parse at the trust boundary
//! (`upstream::listing`), its column in the state (`store::state::artifacts`)
//! and its output (`index::render`); the conversions between stages copy the
//! record whole and never name its fields.

use std::str::FromStr;
use std::sync::OnceLock;

use uv_pep440::{Version, VersionSpecifiers};

/// Per-file facts the upstream states and the mirror republishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// PEP 345 `Requires-Python`, as the upstream wrote it.
    pub requires_python: Option<RequiresPython>,
    /// PEP 592.
    pub yanked: Yanked,
    /// PEP 700 `upload-time`.
    pub upload_time: Option<jiff::Timestamp>,
    /// PEP 740: where the upstream serves the file's provenance (absolute).
    pub provenance: Option<String>,
}

impl FileFacts {
    /// The facts as one line of text for cache keys: explicit, so a key
    /// changes only when a fact does (never with a `Debug` format).
    pub fn key(&self) -> String {
        format!(
            "rp={}\tyanked={}\tuploaded={}{}",
            self.requires_python.as_ref().map_or("-".to_string(), |r| format!("{:?}", r.as_str())),
            self.yanked.reason().map_or("-".to_string(), |r| format!("{r:?}")),
            self.upload_time.map_or("-".to_string(), |t| t.to_string()),
            // Only when offered, so keys without provenance stay as they were.
            self.provenance.as_ref().map_or(String::new(), |p| format!("\tprovenance={p:?}")),
        )
    }

    /// Could a Python of `version` install the file?
    pub fn admits_python(&self, version: &Version) -> bool {
        self.requires_python.as_ref().is_none_or(|rp| rp.admits(version))
    }
}

/// A `Requires-Python` value: its text kept byte-exact for the pages we
/// render, parsed once on first use for the filters that read it.
#[derive(Debug, Clone)]
pub struct RequiresPython {
    raw: String,
    parsed: OnceLock<Option<VersionSpecifiers>>,
}

impl RequiresPython {
    pub fn new(raw: impl Into<String>) -> RequiresPython {
        RequiresPython { raw: raw.into(), parsed: OnceLock::new() }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed specifiers; `None` when the text does not parse.
    pub fn specifiers(&self) -> Option<&VersionSpecifiers> {
        self.parsed.get_or_init(|| VersionSpecifiers::from_str(&self.raw).ok()).as_ref()
    }

    /// Could a Python of `version` install the file? An invalid value admits
    /// everything: pip ignores it, so a mirror must keep the file.
    pub fn admits(&self, version: &Version) -> bool {
        self.specifiers().is_none_or(|s| s.contains(version))
    }
}

impl PartialEq for RequiresPython {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RequiresPython {}

/// PEP 592: whether a file is yanked, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Yanked {
    #[default]
    No,
    /// Yanked; the reason may be empty.
    Yes(String),
}

impl Yanked {
    pub fn is_yanked(&self) -> bool {
        matches!(self, Yanked::Yes(_))
    }

    /// `None` when not yanked, else the reason (possibly empty).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Yanked::No => None,
            Yanked::Yes(r) => Some(r),
        }
    }

    pub fn from_reason(reason: Option<impl Into<String>>) -> Yanked {
        reason.map_or(Yanked::No, |r| Yanked::Yes(r.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_python_keeps_its_text_and_admits_on_nonsense() {
        let rp = RequiresPython::new(">=3.8, <4");
        assert_eq!(rp.as_str(), ">=3.8, <4");
        assert!(rp.admits(&Version::new([3, 12, 0])));
        assert!(!rp.admits(&Version::new([3, 7, 99])));
        let bad = RequiresPython::new(">=3.x");
        assert!(bad.specifiers().is_none());
        assert!(bad.admits(&Version::new([2, 7, 0])));
    }

    #[test]
    fn yanked_round_trips_its_reason() {
        assert_eq!(Yanked::from_reason(None::<String>), Yanked::No);
        assert_eq!(Yanked::from_reason(Some("")).reason(), Some(""));
        assert!(Yanked::from_reason(Some("broken")).is_yanked());
    }
}
