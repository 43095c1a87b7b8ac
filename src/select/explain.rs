//! The nodes of a resolution graph (`Pkg`) and why a resolution failed, in
//! the operator's words: "`app 1.0` needs `lib-core>=2`; you asked for
//! `lib-core<1`", not PubGrub's derivation steps. Ranges are written as
//! PEP 440 specifiers, so each clause reads like a requirement line.
//!
//! Kept apart from `resolve` (the provider) and `solver` (the loop), which
//! both depend on `Pkg`, so neither depends on the other through it.

use std::collections::BTreeSet;
use std::ops::Bound;

use pubgrub::{DerivationTree, External, Ranges};
use uv_normalize::ExtraName;
use uv_pep440::Version;

use crate::dist::names::ProjectName;

/// A node of the resolution graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    /// The requested requirements.
    Root,
    Project(ProjectName),
    /// A project with one extra: it depends on the project at the same
    /// version and on what the extra adds.
    Extra(ProjectName, ExtraName),
}

impl std::fmt::Display for Pkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pkg::Root => f.write_str("the requested requirements"),
            Pkg::Project(p) => write!(f, "{p}"),
            Pkg::Extra(p, e) => write!(f, "{p}[{e}]"),
        }
    }
}

/// A range as PEP 440 specifiers: `==1.0`, `>=2`, `>=1, <2`; a union of
/// intervals joined with ` or `; the full range as an empty string.
pub fn specifiers(range: &Ranges<Version>) -> String {
    if let Some(v) = range.as_singleton() {
        return format!("=={v}");
    }
    let parts: Vec<String> = range
        .iter()
        .map(|(lo, hi)| {
            let mut clauses = Vec::new();
            match lo {
                Bound::Included(v) => clauses.push(format!(">={v}")),
                Bound::Excluded(v) => clauses.push(format!(">{v}")),
                Bound::Unbounded => {}
            }
            match hi {
                Bound::Included(v) => clauses.push(format!("<={v}")),
                Bound::Excluded(v) => clauses.push(format!("<{v}")),
                Bound::Unbounded => {}
            }
            clauses.join(", ")
        })
        .collect();
    if range.is_empty() {
        return " (no version)".into();
    }
    parts.join(" or ")
}

/// `name` with a version range: `app 1.0`, `app>=1, <2`, `app` for any.
fn versioned(pkg: &Pkg, range: &Ranges<Version>) -> String {
    match range.as_singleton() {
        Some(v) => format!("`{pkg} {v}`"),
        None => format!("`{pkg}{}`", specifiers(range)),
    }
}

/// One fact the solver's conflict rests on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Clause {
    /// What the manifest asks for (first: what the operator wrote).
    Asked(String),
    /// A dependency of a project version.
    Needs(String),
    /// Nothing available in a range, or a version unusable, and why.
    Unavailable(String),
}

impl Clause {
    fn text(&self) -> &str {
        match self {
            Clause::Asked(s) | Clause::Needs(s) | Clause::Unavailable(s) => s,
        }
    }
}

/// Projects whose dependencies the tree names: "no version of `app`
/// matching `>1.0`" says nothing once "`app 1.0` needs ..." is said.
fn dependents<'a>(tree: &'a DerivationTree<Pkg, Ranges<Version>, String>, out: &mut BTreeSet<&'a Pkg>, depth: usize) {
    if depth > 256 {
        return;
    }
    match tree {
        DerivationTree::Derived(d) => {
            dependents(&d.cause1, out, depth + 1);
            dependents(&d.cause2, out, depth + 1);
        }
        DerivationTree::External(External::FromDependencyOf(p, ..)) => {
            out.insert(p);
        }
        DerivationTree::External(_) => {}
    }
}

fn collect(
    tree: &DerivationTree<Pkg, Ranges<Version>, String>,
    known: &BTreeSet<&Pkg>,
    out: &mut BTreeSet<Clause>,
    depth: usize,
) {
    // The trees of real conflicts are shallow; a bound keeps a pathological
    // one from recursing without end.
    if depth > 256 {
        return;
    }
    match tree {
        DerivationTree::Derived(d) => {
            collect(&d.cause1, known, out, depth + 1);
            collect(&d.cause2, known, out, depth + 1);
        }
        DerivationTree::External(e) => match e {
            External::NotRoot(..) => {}
            // Asking for a project at all explains nothing; a range does.
            External::FromDependencyOf(Pkg::Root, _, _, range) if *range == Ranges::full() => {}
            External::FromDependencyOf(Pkg::Root, _, dep, range) => {
                out.insert(Clause::Asked(format!("you asked for {}", versioned(dep, range))));
            }
            External::FromDependencyOf(Pkg::Extra(p, _), _, Pkg::Project(dep), _) if p == dep => {
                // An extra's tie to its own project's version says nothing.
            }
            External::FromDependencyOf(p, vs, dep, range) => {
                out.insert(Clause::Needs(format!("{} needs {}", versioned(p, vs), versioned(dep, range))));
            }
            External::NoVersions(p, _) if known.contains(p) => {}
            External::NoVersions(p, range) => {
                let what = if *range == Ranges::full() {
                    format!("no version of `{p}` can be installed here")
                } else {
                    format!("no version of `{p}` matching `{}` can be installed here", specifiers(range).trim())
                };
                out.insert(Clause::Unavailable(what));
            }
            External::Custom(p, vs, why) => {
                out.insert(Clause::Unavailable(format!("{} cannot be used: {why}", versioned(p, vs))));
            }
        },
    }
}

/// Clauses shown at most; the rest are counted.
const SHOWN: usize = 8;

/// Why a resolution failed, as the facts it rests on: what was asked,
/// what the chosen versions need, what is not available, in that order.
pub fn plainly(tree: &DerivationTree<Pkg, Ranges<Version>, String>) -> String {
    let mut known = BTreeSet::new();
    dependents(tree, &mut known, 0);
    let mut clauses = BTreeSet::new();
    collect(tree, &known, &mut clauses, 0);
    // What the operator wrote comes last, where it reads as the answer to
    // what the projects need: "app 1.0 needs lib-core>=2; you asked for lib-core<1".
    let mut ordered: Vec<&Clause> = clauses.iter().filter(|c| !matches!(c, Clause::Asked(_))).collect();
    ordered.extend(clauses.iter().filter(|c| matches!(c, Clause::Asked(_))));
    if ordered.is_empty() {
        return "the requirements conflict".into();
    }
    let mut text: Vec<&str> = ordered.iter().take(SHOWN).map(|c| c.text()).collect();
    let more = ordered.len().saturating_sub(SHOWN);
    let rest;
    if more > 0 {
        rest = format!("and {more} more (`-v` shows the solver's derivation)");
        text.push(&rest);
    }
    text.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_read_as_specifiers() {
        assert_eq!(specifiers(&Ranges::singleton(v("1.0"))), "==1.0");
        assert_eq!(specifiers(&Ranges::higher_than(v("2"))), ">=2");
        assert_eq!(specifiers(&Ranges::strictly_lower_than(v("1"))), "<1");
        assert_eq!(specifiers(&Ranges::between(v("1"), v("2"))), ">=1, <2");
        let union = Ranges::strictly_lower_than(v("1")).union(&Ranges::higher_than(v("2")));
        assert_eq!(specifiers(&union), "<1 or >=2");
        assert_eq!(specifiers(&Ranges::full()), "");
    }
}
