//! The OSV evaluation rules, exactly (osv-schema "Evaluation"):
//!
//! - a version is affected if it is in `versions` (compared by canonical PEP
//!   440 form, so `1.0` equals `1.0.0`; strings that are not PEP 440 compare
//!   as written) or inside one of the ranges;
//! - a range applies only to versions below at least one of its `limit`
//!   events (none means no limit; `*` is infinity);
//! - within a range, events are sorted by PEP 440 order (`introduced: "0"`
//!   first) and replayed: `introduced <= v` sets affected, `fixed <= v` and
//!   `last_affected < v` clear it;
//! - GIT ranges (commit hashes) are skipped, without ending the evaluation
//!   of the record's other ranges and versions.
//!
//! This is ordering, not specifiers: `5.11.0rc1 < 5.11.0`, so a pre-release
//! of a fixed version is affected, which PEP 440 specifier matching would
//! have excluded. Unparseable event versions are skipped, never a panic.

use std::cmp::Ordering;
use std::str::FromStr;

use uv_pep440::Version;

use super::osv;

/// An event's version: "0" before everything, `*` after everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Zero,
    At(Version),
    Infinity,
}

impl Bound {
    fn parse(s: &str) -> Option<Bound> {
        match s.trim() {
            "0" => Some(Bound::Zero),
            "*" => Some(Bound::Infinity),
            v => Version::from_str(v).ok().map(Bound::At),
        }
    }

    fn cmp_version(&self, v: &Version) -> Ordering {
        match self {
            Bound::Zero => Ordering::Less,
            Bound::At(b) => b.cmp(v),
            Bound::Infinity => Ordering::Greater,
        }
    }
}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Bound::Zero, Bound::Zero) | (Bound::Infinity, Bound::Infinity) => Ordering::Equal,
            (Bound::Zero, _) | (_, Bound::Infinity) => Ordering::Less,
            (_, Bound::Zero) | (Bound::Infinity, _) => Ordering::Greater,
            (Bound::At(a), Bound::At(b)) => a.cmp(b),
        }
    }
}

/// Declared in the order events at the same version are replayed: a range
/// closing and another opening at one version (`fixed: 3.1.1`, `introduced:
/// 3.1.1`) are adjacent intervals, so the version must end up affected. The
/// OSV pseudocode leaves ties unordered; this is the reading under which
/// adjacent intervals join, and the one osv.dev's computed lists agree with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    Fixed,
    LastAffected,
    Introduced,
}

/// A range ready to evaluate: events sorted, limits apart.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRange {
    pub events: Vec<(Bound, EventKind)>,
    pub limits: Vec<Bound>,
}

/// One `affected` entry of one advisory, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledAffected {
    /// Index of the advisory in the snapshot.
    pub advisory: usize,
    /// Parsed `versions` (canonical comparison), sorted for binary search.
    pub versions: Vec<Version>,
    /// `versions` entries that are not PEP 440 (compared as written).
    pub raw_versions: Vec<String>,
    pub ranges: Vec<CompiledRange>,
}

/// Counts of what compilation had to skip (reported by the snapshot build).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skips {
    pub git_ranges: usize,
    pub bad_events: usize,
}

impl CompiledRange {
    /// Compile an ECOSYSTEM or SEMVER range; `None` for GIT and unknown types.
    pub fn compile(range: &osv::Range, skips: &mut Skips) -> Option<CompiledRange> {
        if !matches!(range.kind.as_str(), "ECOSYSTEM" | "SEMVER") {
            skips.git_ranges += 1;
            return None;
        }
        let mut events = Vec::new();
        let mut limits = Vec::new();
        for e in &range.events {
            let pairs = [
                (e.introduced.as_deref(), Some(EventKind::Introduced)),
                (e.fixed.as_deref(), Some(EventKind::Fixed)),
                (e.last_affected.as_deref(), Some(EventKind::LastAffected)),
                (e.limit.as_deref(), None),
            ];
            for (value, kind) in pairs {
                let Some(value) = value else { continue };
                match (Bound::parse(value), kind) {
                    (Some(b), Some(k)) => events.push((b, k)),
                    (Some(b), None) => limits.push(b),
                    (None, _) => skips.bad_events += 1,
                }
            }
        }
        // Stable sort by version; at equal versions the kinds keep a fixed order.
        events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        Some(CompiledRange { events, limits })
    }

    /// osv-schema `BeforeLimits` and the event replay.
    pub fn contains(&self, v: &Version) -> bool {
        if !self.limits.is_empty() && !self.limits.iter().any(|l| l.cmp_version(v) == Ordering::Greater) {
            return false;
        }
        let mut affected = false;
        for (bound, kind) in &self.events {
            let ord = bound.cmp_version(v); // bound vs v
            match kind {
                EventKind::Introduced if ord != Ordering::Greater => affected = true,
                EventKind::Fixed if ord != Ordering::Greater => affected = false,
                EventKind::LastAffected if ord == Ordering::Less => affected = false,
                _ => {}
            }
        }
        affected
    }

    /// The lowest `fixed` event above `v`, if any.
    pub fn fixed_after(&self, v: &Version) -> Option<&Version> {
        self.events.iter().find_map(|(b, k)| match (b, k) {
            (Bound::At(f), EventKind::Fixed) if f > v => Some(f),
            _ => None,
        })
    }
}

/// How a version was matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub advisory: usize,
    /// Lowest fixed version above the matched version, per matching range.
    pub fixed_in: Vec<Version>,
}

impl CompiledAffected {
    pub fn compile(advisory: usize, affected: &osv::Affected, skips: &mut Skips) -> CompiledAffected {
        let mut versions = Vec::new();
        let mut raw_versions = Vec::new();
        for v in &affected.versions {
            match Version::from_str(v.trim()) {
                Ok(p) => versions.push(p),
                Err(_) => raw_versions.push(v.trim().to_string()),
            }
        }
        versions.sort();
        let ranges = affected.ranges.iter().filter_map(|r| CompiledRange::compile(r, skips)).collect();
        CompiledAffected { advisory, versions, raw_versions, ranges }
    }

    /// Evaluate a version given as text (parsed once by the caller).
    pub fn check(&self, raw: &str, parsed: Option<&Version>) -> Option<Hit> {
        let listed = match parsed {
            Some(v) => self.versions.binary_search(v).is_ok(),
            None => self.raw_versions.iter().any(|x| x == raw.trim()),
        };
        let mut in_range = false;
        let mut fixed_in = Vec::new();
        if let Some(v) = parsed {
            for r in &self.ranges {
                if r.contains(v) {
                    in_range = true;
                    if let Some(f) = r.fixed_after(v) {
                        fixed_in.push(f.clone());
                    }
                }
            }
            if listed && !in_range {
                // Listed explicitly but outside every range: the fix is still
                // the lowest fixed event above the version, if the ranges say.
                fixed_in.extend(self.ranges.iter().filter_map(|r| r.fixed_after(v)).min().cloned());
            }
        }
        (listed || in_range).then(|| {
            fixed_in.sort();
            fixed_in.dedup();
            Hit { advisory: self.advisory, fixed_in }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, v: &str) -> osv::Event {
        let mut e = osv::Event::default();
        match kind {
            "introduced" => e.introduced = Some(v.into()),
            "fixed" => e.fixed = Some(v.into()),
            "last_affected" => e.last_affected = Some(v.into()),
            _ => e.limit = Some(v.into()),
        }
        e
    }

    fn affected(ranges: Vec<(&str, Vec<osv::Event>)>, versions: &[&str]) -> CompiledAffected {
        let a = osv::Affected {
            package: None,
            ranges: ranges.into_iter().map(|(k, events)| osv::Range { kind: k.into(), events }).collect(),
            versions: versions.iter().map(|s| s.to_string()).collect(),
            severity: Vec::new(),
            database_specific: None,
        };
        CompiledAffected::compile(0, &a, &mut Skips::default())
    }

    fn hit(a: &CompiledAffected, v: &str) -> bool {
        a.check(v, Version::from_str(v).ok().as_ref()).is_some()
    }

    #[test]
    fn introduced_zero_and_fixed() {
        let a = affected(vec![("ECOSYSTEM", vec![ev("introduced", "0"), ev("fixed", "2.7.2")])], &[]);
        for v in ["0.1", "2.7.1", "2.7.2rc1", "2.7.2.dev0", "1!0.1"[2..].as_ref()] {
            assert!(hit(&a, v), "{v}");
        }
        for v in ["2.7.2", "2.7.2.post1", "3.0", "2.7.2+local"] {
            assert!(!hit(&a, v), "{v}");
        }
        let h = a.check("2.0", Some(&"2.0".parse().unwrap())).unwrap();
        assert_eq!(h.fixed_in, ["2.7.2".parse::<Version>().unwrap()]);
    }

    #[test]
    fn prerelease_of_fixed_version_is_affected() {
        let a = affected(vec![("ECOSYSTEM", vec![ev("introduced", "5.0"), ev("fixed", "5.11.0")])], &[]);
        assert!(hit(&a, "5.11.0rc1"));
        assert!(!hit(&a, "5.11.0"));
        assert!(!hit(&a, "4.9"));
    }

    #[test]
    fn multiple_ranges_in_unsorted_events() {
        let a = affected(
            vec![(
                "ECOSYSTEM",
                vec![ev("fixed", "3.2.5"), ev("introduced", "3.0.0"), ev("fixed", "1.0.2"), ev("introduced", "1.0.0")],
            )],
            &[],
        );
        for (v, want) in [
            ("0.9", false),
            ("1.0.0", true),
            ("1.0.1", true),
            ("1.0.2", false),
            ("2.0", false),
            ("3.1", true),
            ("3.2.5", false),
        ] {
            assert_eq!(hit(&a, v), want, "{v}");
        }
        assert_eq!(
            a.check("3.1", Some(&"3.1".parse().unwrap())).unwrap().fixed_in,
            ["3.2.5".parse::<Version>().unwrap()]
        );
    }

    #[test]
    fn adjacent_intervals_at_one_version_join() {
        let a = affected(
            vec![(
                "ECOSYSTEM",
                vec![ev("introduced", "0"), ev("fixed", "3.1.1"), ev("introduced", "3.1.1"), ev("fixed", "3.1.3")],
            )],
            &[],
        );
        assert!(hit(&a, "3.1.0") && hit(&a, "3.1.1") && hit(&a, "3.1.2") && !hit(&a, "3.1.3"));
        let b = affected(
            vec![("ECOSYSTEM", vec![ev("introduced", "1.0"), ev("last_affected", "2.0"), ev("introduced", "2.0")])],
            &[],
        );
        assert!(hit(&b, "2.0") && hit(&b, "2.5"), "[1.0, 2.0] and [2.0, ...) join");
    }

    #[test]
    fn last_affected_is_inclusive() {
        let a = affected(vec![("ECOSYSTEM", vec![ev("introduced", "1.0"), ev("last_affected", "1.11.0")])], &[]);
        assert!(hit(&a, "1.11.0") && hit(&a, "1.11") && hit(&a, "1.0"));
        assert!(!hit(&a, "1.11.1") && !hit(&a, "0.9"));
        assert!(
            a.check("1.5", Some(&"1.5".parse().unwrap())).unwrap().fixed_in.is_empty(),
            "no fixed event, no fixed_in"
        );
    }

    #[test]
    fn limit_bounds_the_range() {
        let a = affected(vec![("ECOSYSTEM", vec![ev("introduced", "0"), ev("limit", "2.0")])], &[]);
        assert!(hit(&a, "1.9") && !hit(&a, "2.0") && !hit(&a, "3.0"));
        let a = affected(vec![("ECOSYSTEM", vec![ev("introduced", "1.0"), ev("limit", "*")])], &[]);
        assert!(hit(&a, "99") && !hit(&a, "0.5"));
        let a = affected(vec![("ECOSYSTEM", vec![ev("introduced", "0"), ev("limit", "1.0"), ev("limit", "3.0")])], &[]);
        assert!(hit(&a, "2.0"), "below one of several limits");
    }

    #[test]
    fn versions_list_compares_canonically() {
        let a = affected(vec![], &["1.0", "2.0.0", "not-pep440"]);
        assert!(hit(&a, "1.0.0") && hit(&a, "2.0") && hit(&a, "2") && hit(&a, "1.0"));
        assert!(hit(&a, "not-pep440"), "unparseable strings compare as written");
        assert!(!hit(&a, "1.0.1") && !hit(&a, "not-pep440x"));
    }

    #[test]
    fn git_ranges_are_skipped_not_fatal() {
        let mut skips = Skips::default();
        let a = osv::Affected {
            package: None,
            ranges: vec![
                osv::Range { kind: "GIT".into(), events: vec![ev("introduced", "abc123"), ev("fixed", "def456")] },
                osv::Range { kind: "ECOSYSTEM".into(), events: vec![ev("introduced", "0"), ev("fixed", "1.5")] },
            ],
            versions: vec!["9.9".into()],
            severity: Vec::new(),
            database_specific: None,
        };
        let c = CompiledAffected::compile(0, &a, &mut skips);
        assert_eq!(skips.git_ranges, 1);
        assert!(hit(&c, "1.0") && hit(&c, "9.9") && !hit(&c, "2.0"));
    }

    #[test]
    fn invalid_versions_never_panic() {
        let mut skips = Skips::default();
        let a = osv::Affected {
            package: None,
            ranges: vec![osv::Range {
                kind: "ECOSYSTEM".into(),
                events: vec![ev("introduced", "banana"), ev("introduced", "1.0"), ev("fixed", "??")],
            }],
            versions: vec![],
            severity: Vec::new(),
            database_specific: None,
        };
        let c = CompiledAffected::compile(0, &a, &mut skips);
        assert_eq!(skips.bad_events, 2);
        assert!(hit(&c, "1.5"));
        assert!(c.check("garbage", None).is_none());
    }
}

/// All of one package's affected entries, precomputed for O(log n) lookups.
///
/// Within a package, whether a range contains `v` can only change at the
/// versions its events name. Sorting every such version into `points` splits
/// the version line into positions: `2i + 1` is exactly `points[i]`, `2i` is
/// strictly between `points[i-1]` and `points[i]`. Every comparison the OSV
/// rules make is then a comparison of positions, so each position's result
/// is computed once here and a lookup is a binary search.
#[derive(Debug, Clone, Default)]
pub struct PackageIndex {
    points: Vec<Version>,
    /// Per position: (entry, lowest `fixed` point above) for each matching range.
    slots: Vec<Vec<(u32, Option<u32>)>>,
    /// Listed versions, sorted, with their entry.
    listed: Vec<(Version, u32)>,
    raw_listed: Vec<(String, u32)>,
    /// Per entry: its `fixed` points, sorted.
    entry_fixed: Vec<Vec<u32>>,
    /// Per entry: the advisory it belongs to.
    advisories: Vec<usize>,
}

/// A bound as a position (see [`PackageIndex`]); `Zero`/`Infinity` at the ends.
fn position(bound: &Bound, points: &[Version]) -> i64 {
    match bound {
        Bound::Zero => i64::MIN,
        Bound::Infinity => i64::MAX,
        Bound::At(v) => 2 * points.binary_search(v).expect("every bound is a point") as i64 + 1,
    }
}

impl PackageIndex {
    pub fn build(entries: &[CompiledAffected]) -> PackageIndex {
        let mut points: Vec<Version> = entries
            .iter()
            .flat_map(|e| e.ranges.iter())
            .flat_map(|r| r.events.iter().map(|(b, _)| b).chain(r.limits.iter()))
            .filter_map(|b| match b {
                Bound::At(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        points.sort();
        points.dedup();
        let positions = 2 * points.len() + 1;
        let mut slots: Vec<Vec<(u32, Option<u32>)>> = vec![Vec::new(); positions];
        let mut entry_fixed = Vec::with_capacity(entries.len());
        for (ei, e) in entries.iter().enumerate() {
            let mut fixed_all: Vec<u32> = Vec::new();
            for r in &e.ranges {
                let events: Vec<(i64, EventKind)> = r.events.iter().map(|(b, k)| (position(b, &points), *k)).collect();
                let limits: Vec<i64> = r.limits.iter().map(|b| position(b, &points)).collect();
                let fixed: Vec<i64> = events.iter().filter(|(_, k)| *k == EventKind::Fixed).map(|(p, _)| *p).collect();
                fixed_all.extend(fixed.iter().map(|p| ((p - 1) / 2) as u32));
                for (pos, slot) in slots.iter_mut().enumerate() {
                    let pos = pos as i64;
                    if !limits.is_empty() && !limits.iter().any(|&l| l > pos) {
                        continue;
                    }
                    let mut affected = false;
                    for &(b, k) in &events {
                        match k {
                            EventKind::Introduced if b <= pos => affected = true,
                            EventKind::Fixed if b <= pos => affected = false,
                            EventKind::LastAffected if b < pos => affected = false,
                            _ => {}
                        }
                    }
                    if affected {
                        let next_fixed = fixed.iter().filter(|&&f| f > pos).min().map(|p| ((p - 1) / 2) as u32);
                        slot.push((ei as u32, next_fixed));
                    }
                }
            }
            fixed_all.sort_unstable();
            fixed_all.dedup();
            entry_fixed.push(fixed_all);
        }
        let mut listed: Vec<(Version, u32)> = entries
            .iter()
            .enumerate()
            .flat_map(|(ei, e)| e.versions.iter().map(move |v| (v.clone(), ei as u32)))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let raw_listed = entries
            .iter()
            .enumerate()
            .flat_map(|(ei, e)| e.raw_versions.iter().map(move |v| (v.clone(), ei as u32)))
            .collect();
        PackageIndex {
            points,
            slots,
            listed,
            raw_listed,
            entry_fixed,
            advisories: entries.iter().map(|e| e.advisory).collect(),
        }
    }

    /// The hits for a version, one per matching entry, in entry order.
    pub fn lookup(&self, raw: &str, parsed: Option<&Version>) -> Vec<Hit> {
        let mut by_entry: std::collections::BTreeMap<u32, Vec<u32>> = std::collections::BTreeMap::new();
        match parsed {
            Some(v) => {
                let i = self.points.partition_point(|p| p < v);
                let pos = if self.points.get(i).is_some_and(|p| p == v) { 2 * i + 1 } else { 2 * i };
                for &(e, fixed) in &self.slots[pos] {
                    by_entry.entry(e).or_default().extend(fixed);
                }
                let start = self.listed.partition_point(|(x, _)| x < v);
                for (_, e) in self.listed[start..].iter().take_while(|(x, _)| x == v) {
                    by_entry.entry(*e).or_insert_with(|| {
                        // Listed but in no range: the fix is the lowest fixed event above.
                        let above = self.entry_fixed[*e as usize].iter().find(|&&f| 2 * f as usize + 1 > pos);
                        above.copied().into_iter().collect()
                    });
                }
            }
            None => {
                for (x, e) in &self.raw_listed {
                    if x == raw.trim() {
                        by_entry.entry(*e).or_default();
                    }
                }
            }
        }
        by_entry
            .into_iter()
            .map(|(e, mut fixed)| {
                fixed.sort_unstable();
                fixed.dedup();
                Hit {
                    advisory: self.advisories[e as usize],
                    fixed_in: fixed.iter().map(|&f| self.points[f as usize].clone()).collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_version() -> impl Strategy<Value = String> {
        (
            0u8..4,
            0u8..4,
            prop::option::of(0u8..3),
            prop::sample::select(vec!["", "rc1", "a2", ".post1", ".dev0", "+loc"]),
        )
            .prop_map(|(a, b, c, suffix)| match c {
                Some(c) => format!("{a}.{b}.{c}{suffix}"),
                None => format!("{a}.{b}{suffix}"),
            })
    }

    fn arb_entry() -> impl Strategy<Value = osv::Affected> {
        let event = (0u8..4, arb_version()).prop_map(|(k, v)| {
            let mut e = osv::Event::default();
            match k {
                0 => e.introduced = Some(if v.starts_with("0.0") { "0".into() } else { v }),
                1 => e.fixed = Some(v),
                2 => e.last_affected = Some(v),
                _ => e.limit = Some(v),
            }
            e
        });
        (prop::collection::vec(prop::collection::vec(event, 1..6), 0..3), prop::collection::vec(arb_version(), 0..4))
            .prop_map(|(ranges, versions)| osv::Affected {
                package: None,
                ranges: ranges.into_iter().map(|events| osv::Range { kind: "ECOSYSTEM".into(), events }).collect(),
                versions,
                severity: Vec::new(),
                database_specific: None,
            })
    }

    proptest! {
        /// The precomputed index answers exactly what direct evaluation does.
        #[test]
        fn index_agrees_with_direct_evaluation(entries in prop::collection::vec(arb_entry(), 1..6), probes in prop::collection::vec(arb_version(), 1..20)) {
            let compiled: Vec<CompiledAffected> = entries.iter().enumerate().map(|(i, a)| CompiledAffected::compile(i, a, &mut Skips::default())).collect();
            let index = PackageIndex::build(&compiled);
            for probe in &probes {
                let parsed = Version::from_str(probe).ok();
                let direct: Vec<Hit> = compiled.iter().filter_map(|c| c.check(probe, parsed.as_ref())).collect();
                prop_assert_eq!(index.lookup(probe, parsed.as_ref()), direct, "probe {}", probe);
            }
        }
    }
}
