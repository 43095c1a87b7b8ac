//! The admission gate: which of a project's releases may enter the mirror
//! now. A release younger than `min_age` (by the upstream's PEP 700 upload
//! time; a release's time is its newest file's), or uploaded after
//! `freeze`, is held; with a hold in force, a release without an upload time
//! is held too (fail closed: never the time airlock first saw it). A held
//! release is let in early by a `[[select.admit]]` entry that has not
//! expired, or by the security bypass (it fixes an advisory affecting a
//! mirrored version).
//!
//! PEP 740 holds the release that offers no provenance where an earlier
//! release of the project did (`provenance-missing`), every release with a
//! file that offers none under `provenance = "require"`
//! (`provenance-required`), and a release a file of which an earlier fetch
//! found signed by another publisher than the project's pin
//! (`publisher-changed`; the first encounter is the fetch stage's, which
//! alone verifies). Only an admit entry lets these in: the security bypass
//! never admits a release from an unexpected publisher.
//!
//! Decided from the upstream's listing, the clock and the recorded pins
//! alone, so two runners with the same inputs decide alike
//! (`SOURCE_DATE_EPOCH` fixes the clock).

use std::collections::BTreeMap;

use jiff::Timestamp;

pub use crate::diagnostics::HoldReason;
use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::manifest::{Admit, SelectOptions};
use crate::provenance::Publisher;
use crate::upstream::listing::{Listing, UpstreamFile};

/// One held release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub version: Version,
    pub reason: HoldReason,
    /// When it will be admitted if nothing changes (`None`: not by time).
    pub due: Option<Timestamp>,
    /// The release's upload time, when known.
    pub uploaded: Option<Timestamp>,
    /// A `[[select.admit]]` entry for it that has expired.
    pub expired: Option<Admit>,
    /// What a provenance hold found.
    pub note: Option<String>,
}

/// One release let in early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Early {
    pub version: Version,
    /// The entry's reason, or `fixes <advisory id>`.
    pub reason: String,
    /// The entry's last day (`None` for the security bypass).
    pub expires: Option<jiff::civil::Date>,
    /// What would have held it.
    pub held: HoldReason,
}

/// The gate's decision on one project's listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    pub held: Vec<Hold>,
    pub admitted: Vec<Early>,
}

impl Judgement {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.admitted.is_empty()
    }

    /// The listing without the files of held releases.
    pub fn filter(&self, listing: &Listing) -> Listing {
        if self.held.is_empty() {
            return listing.clone();
        }
        let files: Vec<UpstreamFile> = listing
            .files
            .iter()
            .filter(|f| !self.held.iter().any(|h| &h.version == f.filename.version()))
            .cloned()
            .collect();
        Listing { files: std::sync::Arc::new(files), status: listing.status.clone() }
    }
}

/// The security bypass's question: which advisory (affecting a mirrored
/// version) a release of a project fixes, if any.
pub type Fixes<'a> = dyn Fn(&ProjectName, &Version) -> Option<String> + Sync + 'a;

/// What the gate knows besides a project's listing and options.
pub struct Gate<'a> {
    pub now: Timestamp,
    pub admits: &'a [Admit],
    /// The security bypass: the advisory a release of a project fixes for a
    /// mirrored version, if any (`None` when the bypass is off).
    pub fixes: Option<&'a Fixes<'a>>,
    /// The PEP 740 holds (`None` under `provenance = "off"`).
    pub provenance: Option<&'a Pins>,
}

/// The publishers a project accepts (any one of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin(pub Vec<Publisher>);

impl Pin {
    pub fn one(p: Publisher) -> Pin {
        Pin(vec![p])
    }

    pub fn accepts(&self, signed: &Publisher) -> bool {
        self.0.iter().any(|p| p.accepts(signed))
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What the PEP 740 holds read, fixed once per run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    /// `provenance = "require"`.
    pub require: bool,
    /// `publisher_pinning`: a release without provenance after one with it
    /// is held, and the recorded pins hold other publishers.
    pub pinning: bool,
    /// Each project's pin: its manifest `publisher`, else the publishers a
    /// lock file's `attestation-identities` name, else the recorded one.
    pub pins: BTreeMap<ProjectName, Pin>,
    /// Files an earlier fetch found signed by a publisher the pin refused.
    pub refused: BTreeMap<(ProjectName, String), Publisher>,
}

impl Pins {
    /// What of these a project's selection depends on, as one line.
    pub fn key(&self, project: &ProjectName) -> String {
        let mut out = format!("provenance require={} pinning={}", self.require, self.pinning);
        if let Some(p) = self.pins.get(project) {
            out.push_str(&format!(" pin={p}"));
        }
        for ((_, f), p) in self.refused.range((project.clone(), String::new())..).take_while(|((q, _), _)| q == project)
        {
            out.push_str(&format!(" refused={f}:{p}"));
        }
        out
    }

    /// Why a release is held for its provenance, and what was found.
    fn hold(
        &self,
        project: &ProjectName,
        files: &[&UpstreamFile],
        earlier_attested: bool,
    ) -> Option<(HoldReason, String)> {
        let pin = self.pins.get(project);
        for f in files {
            if let Some(signed) = self.refused.get(&(project.clone(), f.filename.to_string()))
                && pin.is_some_and(|p| !p.accepts(signed))
            {
                let pin = pin.map(ToString::to_string).unwrap_or_default();
                return Some((
                    HoldReason::PublisherChanged,
                    format!("{} is signed by {signed}, pinned is {pin}", f.filename),
                ));
            }
        }
        let bare: Vec<&str> =
            files.iter().filter(|f| f.facts.provenance.is_none()).map(|f| f.filename.as_str()).collect();
        if self.require && !bare.is_empty() {
            return Some((HoldReason::ProvenanceRequired, format!("no provenance for {}", bare.join(", "))));
        }
        if (self.pinning || pin.is_some()) && bare.len() == files.len() && earlier_attested {
            return Some((HoldReason::ProvenanceMissing, format!("no provenance for {}", bare.join(", "))));
        }
        None
    }
}

/// Judge one project's releases.
pub fn judge(project: &ProjectName, listing: &Listing, opts: &SelectOptions, gate: &Gate<'_>) -> Judgement {
    let mut out = Judgement::default();
    if !opts.gated() && gate.provenance.is_none() {
        return out;
    }
    // A release's files, in version order.
    let mut releases: BTreeMap<&Version, Vec<&UpstreamFile>> = BTreeMap::new();
    for f in listing.files.iter() {
        releases.entry(f.filename.version()).or_default().push(f);
    }
    let today = gate.now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut earlier_attested = false;
    for (version, files) in releases {
        // A release's time is its newest file's; `None` when no file has one.
        let uploaded = files.iter().filter_map(|f| f.facts.upload_time).max();
        let by_time = if opts.gated() { hold(opts, uploaded, gate.now).map(|(r, d)| (r, d, None)) } else { None };
        let by_provenance =
            gate.provenance.and_then(|p| p.hold(project, &files, earlier_attested)).map(|(r, n)| (r, None, Some(n)));
        earlier_attested |= files.iter().any(|f| f.facts.provenance.is_some());
        let Some((reason, due, note)) = by_provenance.or(by_time) else { continue };
        let entry = gate.admits.iter().find(|a| &a.project == project && &a.version == version);
        if let Some(a) = entry.filter(|a| a.expires >= today) {
            out.admitted.push(Early {
                version: version.clone(),
                reason: a.reason.clone(),
                expires: Some(a.expires),
                held: reason,
            });
            continue;
        }
        // The bypass lets a fix in early, never one from an unexpected publisher.
        if let Some(id) = gate.fixes.filter(|_| note.is_none()).and_then(|f| f(project, version)) {
            out.admitted.push(Early {
                version: version.clone(),
                reason: format!("fixes {id}"),
                expires: None,
                held: reason,
            });
            continue;
        }
        out.held.push(Hold { version: version.clone(), reason, due, uploaded, expired: entry.cloned(), note });
    }
    out
}

/// Whether a release uploaded at `uploaded` is held now, why, and until when.
fn hold(opts: &SelectOptions, uploaded: Option<Timestamp>, now: Timestamp) -> Option<(HoldReason, Option<Timestamp>)> {
    let Some(at) = uploaded else { return Some((HoldReason::NoUploadTime, None)) };
    if opts.freeze.is_some_and(|f| at > f) {
        return Some((HoldReason::Frozen, None));
    }
    let due = at.checked_add(opts.min_age).unwrap_or(Timestamp::MAX);
    (!opts.min_age.is_zero() && due > now).then_some((HoldReason::Young, Some(due)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::file::FileFacts;
    use crate::dist::filename::DistFilename;

    fn listing(files: &[(&str, Option<&str>)]) -> Listing {
        let p: ProjectName = "pkg".parse().unwrap();
        let files = files
            .iter()
            .map(|(name, t)| UpstreamFile {
                filename: DistFilename::parse(name, Some(&p)).unwrap(),
                url: url::Url::parse("https://x.invalid/f").unwrap(),
                sha256: None,
                size: None,
                facts: FileFacts { upload_time: t.map(|t| t.parse().unwrap()), ..FileFacts::default() },
                metadata: Default::default(),
            })
            .collect();
        Listing { files: std::sync::Arc::new(files), status: None }
    }

    fn opts(min_age_hours: i64, freeze: Option<&str>) -> SelectOptions {
        SelectOptions {
            min_age: jiff::SignedDuration::from_hours(min_age_hours),
            freeze: freeze.map(|f| f.parse().unwrap()),
            ..SelectOptions::default()
        }
    }

    #[test]
    fn a_release_is_as_young_as_its_newest_file_and_no_time_is_held() {
        let l = listing(&[
            ("pkg-1.0.tar.gz", Some("2026-01-01T00:00:00Z")),
            ("pkg-1.1.tar.gz", Some("2026-01-01T00:00:00Z")),
            ("pkg-1.1-py3-none-any.whl", Some("2026-01-09T22:00:00Z")),
            ("pkg-1.2.tar.gz", None),
        ]);
        let gate = Gate { now: "2026-01-10T00:00:00Z".parse().unwrap(), admits: &[], fixes: None, provenance: None };
        let p: ProjectName = "pkg".parse().unwrap();
        let j = judge(&p, &l, &opts(24, None), &gate);
        let held: Vec<(String, HoldReason, Option<String>)> =
            j.held.iter().map(|h| (h.version.to_string(), h.reason, h.due.map(|d| d.to_string()))).collect();
        assert_eq!(
            held,
            vec![
                ("1.1".into(), HoldReason::Young, Some("2026-01-10T22:00:00Z".into())),
                ("1.2".into(), HoldReason::NoUploadTime, None)
            ]
        );
        let filtered = j.filter(&l);
        let kept: Vec<&str> = filtered.files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(kept, ["pkg-1.0.tar.gz"]);
        assert!(judge(&p, &l, &opts(0, None), &gate).is_empty(), "no hold configured, nothing held");
    }

    #[test]
    fn admit_entries_expire_freeze_holds_old_releases_and_the_bypass_admits_fixes() {
        let l = listing(&[
            ("pkg-1.0.tar.gz", Some("2026-01-01T00:00:00Z")),
            ("pkg-2.0.tar.gz", Some("2026-03-01T00:00:00Z")),
        ]);
        let p: ProjectName = "pkg".parse().unwrap();
        let now = "2026-03-01T01:00:00Z".parse().unwrap();
        let entry = |expires: &str| Admit {
            project: p.clone(),
            version: "2.0".parse().unwrap(),
            reason: "reviewed".into(),
            expires: expires.parse().unwrap(),
        };
        let live = [entry("2026-03-01")];
        let j = judge(&p, &l, &opts(24, None), &Gate { now, admits: &live, fixes: None, provenance: None });
        assert!(j.held.is_empty());
        assert_eq!(j.admitted[0].reason, "reviewed");
        let stale = [entry("2026-02-28")];
        let j = judge(&p, &l, &opts(24, None), &Gate { now, admits: &stale, fixes: None, provenance: None });
        assert_eq!(j.held[0].expired.as_ref().map(|a| a.reason.as_str()), Some("reviewed"));
        let frozen = judge(
            &p,
            &l,
            &opts(0, Some("2026-02-01T00:00:00Z")),
            &Gate { now, admits: &[], fixes: None, provenance: None },
        );
        assert_eq!(frozen.held[0].reason, HoldReason::Frozen);
        assert_eq!(frozen.held[0].due, None);
        let fixes = |_: &ProjectName, v: &Version| (v.to_string() == "2.0").then(|| "GHSA-1".to_string());
        let j = judge(&p, &l, &opts(24, None), &Gate { now, admits: &[], fixes: Some(&fixes), provenance: None });
        assert_eq!(j.admitted[0].reason, "fixes GHSA-1");
    }
}
