//! Selection: which of an upstream's files a project's requirements and
//! options keep.
//!
//! Order of the rules, each documented in README.md: file kind and wheel tags,
//! Requires-Python against the listed Pythons, version specifiers (a union
//! over the project's requirement lines, intersected with `-c` constraints),
//! pre-releases (PEP 440: only when allowed or explicitly asked for), yanked
//! files (PEP 592: only when allowed or pinned with `==`), then the newest N
//! versions by upload time.

use std::collections::BTreeMap;

use uv_pep440::{Operator, Version, VersionSpecifiers};
use uv_pep508::{Requirement, VersionOrUrl};

use crate::dist::file::RequiresPython;
use crate::dist::filename::DistFilename;
use crate::dist::tags::PythonTarget;
use crate::manifest::SelectOptions;
use crate::manifest::requirements::RequirementLine;
use crate::upstream::listing::{Listing, UpstreamFile};

fn specifiers(req: &Requirement) -> Option<&VersionSpecifiers> {
    match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(s)) => Some(s),
        _ => None,
    }
}

/// Does one requirement line admit `version`, given the pre-release option?
fn admits(req: &Requirement, version: &Version, prereleases: bool) -> bool {
    let specs = specifiers(req);
    if version.any_prerelease() && !prereleases {
        // PEP 440: a specifier that names a pre-release opts in to pre-releases.
        let asked = specs.is_some_and(|s| s.iter().any(|s| s.version().any_prerelease()));
        if !asked {
            return false;
        }
    }
    specs.is_none_or(|s| s.contains(version))
}

/// Is `version` pinned exactly (`==X` without wildcard, or `===X`)?
fn pins(req: &Requirement, version: &Version) -> bool {
    specifiers(req).is_some_and(|s| {
        s.iter().any(|s| matches!(s.operator(), Operator::Equal | Operator::ExactEqual) && s.contains(version))
    })
}

/// Could a file declaring `requires_python` install on one of the Pythons?
fn python_ok(requires_python: Option<&RequiresPython>, pythons: Option<&[PythonTarget]>) -> bool {
    let (Some(rp), Some(pythons)) = (requires_python, pythons) else {
        return true;
    };
    // pip ignores an invalid Requires-Python, so a mirror must keep the file.
    pythons.iter().any(|py| {
        // Any patch release of the feature release counts.
        [0u64, 99].iter().any(|patch| rp.admits(&Version::new([u64::from(py.major), u64::from(py.minor), *patch])))
    })
}

/// Apply a project's requirement lines and options to its listing.
pub fn select(listing: &Listing, lines: &[&RequirementLine], opts: &SelectOptions) -> Vec<UpstreamFile> {
    let (constraints, wanted): (Vec<&RequirementLine>, Vec<&RequirementLine>) =
        lines.iter().partition(|l| l.constraint);
    if wanted.is_empty() {
        return Vec::new();
    }
    let version_ok = |v: &Version| {
        wanted.iter().any(|l| admits(&l.requirement, v, opts.prereleases))
            && constraints.iter().all(|c| admits(&c.requirement, v, true))
    };
    let pinned = |v: &Version| wanted.iter().any(|l| pins(&l.requirement, v));

    let mut by_version: BTreeMap<&Version, Vec<&UpstreamFile>> = BTreeMap::new();
    for f in listing.files.iter() {
        let kind_ok = match &f.filename {
            DistFilename::Wheel(w) => opts.tags.matches(w),
            DistFilename::Sdist(_) => opts.sdists,
        };
        let v = f.filename.version();
        if kind_ok
            && python_ok(f.facts.requires_python.as_ref(), opts.tags.pythons.as_deref())
            && version_ok(v)
            && (!f.facts.yanked.is_yanked() || opts.yanked || pinned(v))
        {
            by_version.entry(v).or_default().push(f);
        }
    }

    let mut versions: Vec<&Version> = by_version.keys().copied().collect();
    if opts.latest > 0 && versions.len() > opts.latest {
        // A version's upload time is its earliest file's (its release), taken
        // over the whole listing. Without upload times (PEP 503 upstreams),
        // PEP 440 order decides.
        let released = |v: &Version| {
            listing.files.iter().filter(|f| f.filename.version() == v).filter_map(|f| f.facts.upload_time).min()
        };
        versions.sort_by(|a, b| released(b).cmp(&released(a)).then_with(|| b.cmp(a)));
        versions.truncate(opts.latest);
    }
    let mut out: Vec<UpstreamFile> = versions.iter().flat_map(|v| by_version[v].iter().map(|f| (*f).clone())).collect();
    // Stable, PEP 440 then filename order: plans and pages never depend on
    // upstream listing order.
    out.sort_by(|a, b| {
        a.filename.version().cmp(b.filename.version()).then_with(|| a.filename.as_str().cmp(b.filename.as_str()))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::file::{FileFacts, Yanked};
    use crate::dist::tags::TagFilter;
    use crate::manifest::requirements::parse_requirement;
    use crate::select::env::{applies, environments};

    fn listing(files: &[(&str, Option<&str>, Option<&str>, &str)]) -> Listing {
        Listing {
            files: std::sync::Arc::new(
                files
                    .iter()
                    .map(|(name, yanked, rp, time)| UpstreamFile {
                        filename: DistFilename::parse(name, None).unwrap(),
                        url: url::Url::parse(&format!("https://x.invalid/{name}")).unwrap(),
                        sha256: None,
                        size: None,
                        facts: FileFacts {
                            requires_python: rp.map(RequiresPython::new),
                            yanked: Yanked::from_reason(*yanked),
                            upload_time: Some(time.parse().unwrap()),
                            provenance: None,
                        },
                        metadata: Default::default(),
                    })
                    .collect(),
            ),
            status: None,
        }
    }

    fn line(s: &str, constraint: bool) -> RequirementLine {
        RequirementLine { requirement: parse_requirement(s, "t").unwrap(), origin: "t".into(), constraint }
    }

    fn names(files: &[UpstreamFile]) -> Vec<&str> {
        files.iter().map(|f| f.filename.as_str()).collect()
    }

    fn sample() -> Listing {
        listing(&[
            ("pkg-1.0.tar.gz", None, None, "2020-01-01T00:00:00Z"),
            ("pkg-1.0-py3-none-any.whl", None, None, "2020-01-01T00:00:00Z"),
            ("pkg-1.1-cp311-cp311-manylinux_2_17_x86_64.whl", None, None, "2021-01-01T00:00:00Z"),
            ("pkg-1.1-cp312-cp312-win_amd64.whl", None, None, "2021-01-01T00:00:00Z"),
            ("pkg-1.2.tar.gz", Some("broken"), None, "2022-01-01T00:00:00Z"),
            ("pkg-2.0rc1.tar.gz", None, None, "2023-01-01T00:00:00Z"),
            ("pkg-0.9.tar.gz", None, Some("<3"), "2024-06-01T00:00:00Z"),
        ])
    }

    #[test]
    fn specifiers_prereleases_yanked() {
        let l = sample();
        let o = SelectOptions::default();
        let all = line("pkg", false);
        assert_eq!(
            names(&select(&l, &[&all], &o)),
            [
                "pkg-0.9.tar.gz",
                "pkg-1.0-py3-none-any.whl",
                "pkg-1.0.tar.gz",
                "pkg-1.1-cp311-cp311-manylinux_2_17_x86_64.whl",
                "pkg-1.1-cp312-cp312-win_amd64.whl"
            ]
        );
        let pre = line("pkg>=2.0rc1", false);
        assert_eq!(names(&select(&l, &[&pre], &o)), ["pkg-2.0rc1.tar.gz"]);
        let pin = line("pkg==1.2", false);
        assert_eq!(names(&select(&l, &[&pin], &o)), ["pkg-1.2.tar.gz"], "a == pin takes a yanked file");
        let range = line("pkg>=1.2", false);
        assert!(select(&l, &[&range], &o).is_empty(), "yanked and pre-release both excluded");
        let o2 = SelectOptions { prereleases: true, yanked: true, ..SelectOptions::default() };
        assert_eq!(names(&select(&l, &[&range], &o2)), ["pkg-1.2.tar.gz", "pkg-2.0rc1.tar.gz"]);
        let c = line("pkg<1.1", true);
        assert_eq!(names(&select(&l, &[&all, &c], &o)).len(), 3, "constraint intersects");
        assert!(select(&l, &[&c], &o).is_empty(), "a constraint alone adds nothing");
    }

    #[test]
    fn tags_sdists_requires_python_latest() {
        let l = sample();
        let all = line("pkg", false);
        let o = SelectOptions {
            tags: TagFilter {
                pythons: Some(vec!["3.11".parse().unwrap()]),
                platforms: Some(vec!["manylinux_2_28_x86_64".parse().unwrap()]),
            },
            sdists: false,
            ..SelectOptions::default()
        };
        assert_eq!(
            names(&select(&l, &[&all], &o)),
            ["pkg-1.0-py3-none-any.whl", "pkg-1.1-cp311-cp311-manylinux_2_17_x86_64.whl"]
        );
        let o = SelectOptions {
            tags: TagFilter { pythons: Some(vec!["3.11".parse().unwrap()]), platforms: None },
            ..SelectOptions::default()
        };
        assert!(!names(&select(&l, &[&all], &o)).contains(&"pkg-0.9.tar.gz"), "requires-python <3 excluded");
        // latest by upload time: 0.9 was uploaded last, so it wins over 1.1.
        let o = SelectOptions { latest: 2, ..SelectOptions::default() };
        assert_eq!(
            names(&select(&l, &[&all], &o)),
            ["pkg-0.9.tar.gz", "pkg-1.1-cp311-cp311-manylinux_2_17_x86_64.whl", "pkg-1.1-cp312-cp312-win_amd64.whl"]
        );
    }

    #[test]
    fn markers_evaluate_against_targets() {
        let win_only = parse_requirement("pkg; sys_platform == 'win32'", "t").unwrap();
        let linux = TagFilter { pythons: None, platforms: Some(vec!["manylinux_2_17_x86_64".parse().unwrap()]) };
        assert!(!applies(&win_only, &environments(&linux), &[]));
        assert!(applies(&win_only, &environments(&TagFilter::default()), &[]));
        let old = parse_requirement("pkg; python_version < '3.8'", "t").unwrap();
        let py312 = TagFilter { pythons: Some(vec!["3.12".parse().unwrap()]), platforms: None };
        assert!(!applies(&old, &environments(&py312), &[]));
    }
}
