//! `reports/installability.json`, schema `airlock.installability/v1`: per
//! target environment, what installs from the mirror and what cannot and
//! why (docs/installability.schema.json).

use serde::Serialize;

use crate::select::installable::{Installability, Reason};

pub const SCHEMA: &str = "airlock.installability/v1";

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    generated_at: String,
    /// Whether the check ran (it runs when dependencies are followed or
    /// lock files are given).
    checked: bool,
    unchecked_reason: Option<&'a str>,
    requirements: &'a [String],
    summary: Summary,
    environments: Vec<Env>,
    /// Projects installing at different versions in different
    /// environments: version -> environments.
    differing: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Serialize)]
struct Summary {
    environments: usize,
    installable: usize,
    failing: Vec<String>,
}

#[derive(Serialize)]
struct Env {
    name: String,
    python: String,
    platform: String,
    installable: bool,
    installs: Vec<Install>,
    problems: Vec<Problem>,
    explanation: Option<String>,
}

#[derive(Serialize)]
struct Install {
    name: String,
    version: String,
    file: String,
    /// Installs from an sdist: built on install, its dependencies may differ.
    sdist: bool,
}

#[derive(Serialize)]
struct Problem {
    project: String,
    reason: Reason,
    message: String,
}

pub fn render(i: &Installability, generated_at: &jiff::Timestamp) -> Vec<u8> {
    let environments: Vec<Env> = i
        .envs
        .iter()
        .map(|e| Env {
            name: e.env.name(),
            python: e.env.python.to_string(),
            platform: e.env.platform.to_string(),
            installable: e.ok(),
            installs: e
                .installs
                .iter()
                .map(|(p, v)| Install {
                    name: p.to_string(),
                    version: v.version.to_string(),
                    file: v.file.clone(),
                    sdist: v.sdist,
                })
                .collect(),
            problems: e
                .problems
                .iter()
                .map(|(p, r)| Problem { project: p.to_string(), reason: *r, message: r.describe(&e.env.name()) })
                .collect(),
            explanation: e.explanation.clone(),
        })
        .collect();
    let report = Report {
        schema: SCHEMA,
        generated_at: generated_at.to_string(),
        checked: i.unchecked.is_none(),
        unchecked_reason: i.unchecked.as_deref(),
        requirements: &i.requirements,
        summary: Summary {
            environments: environments.len(),
            installable: environments.iter().filter(|e| e.installable).count(),
            failing: environments.iter().filter(|e| !e.installable).map(|e| e.name.clone()).collect(),
        },
        environments,
        differing: i
            .differing()
            .into_iter()
            .map(|(p, vs)| (p.to_string(), vs.into_iter().map(|(v, e)| (v.to_string(), e)).collect()))
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&report).unwrap_or_default();
    out.push(b'\n');
    out
}
