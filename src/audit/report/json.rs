//! `reports/security.json`, schema `airlock.security/v1`: wire structs,
//! converted explicitly from the audit. Field order and sorting are part of
//! the format (docs/security-report.md, docs/security.schema.json).

use serde::Serialize;

use super::admission::{AdmittedView, HeldView, WithdrawnView};
use super::provenance::Publishers;
use super::views::{DiagnosticView, Inputs, TamperingView};
use crate::advisories::severity::Severity;
use crate::audit::{IgnoreStatus, IgnoreUse, Status};

pub const SCHEMA: &str = "airlock.security/v1";

#[derive(Serialize)]
pub struct Report<'a> {
    pub schema: &'static str,
    pub generated_at: String,
    pub mirror: Mirror<'a>,
    pub snapshot: Option<Snapshot<'a>>,
    /// airlock extension: `audited`, `stale` or `unaudited`.
    pub status: Status,
    /// airlock extension: the STALE / UNAUDITED banner, when there is one.
    pub banner: Option<&'a str>,
    pub summary: Summary,
    pub projects: Projects<'a>,
    /// airlock extension: every `[[policy.ignore]]`, expired ones included.
    pub ignores: &'a [IgnoreStatus],
    /// airlock extension: files whose upstream sha256 changed after mirroring.
    pub tampering: Vec<TamperingView>,
    /// Releases the admission gate holds out of the tree, with when they are due.
    pub held: Vec<HeldView>,
    /// Held releases let in early (`[[select.admit]]`, the security bypass).
    pub admitted: Vec<AdmittedView>,
    /// What left the tree because the upstream no longer offers it (or the freeze).
    pub withdrawn: Vec<WithdrawnView>,
    /// airlock extension: what the run that published this tree had to say.
    pub run: Run,
}

#[derive(Serialize)]
pub struct Run {
    /// Failures, skipped upstream files, tampering, blocked versions and
    /// pruned files, sorted.
    pub diagnostics: Vec<DiagnosticView>,
}

#[derive(Serialize)]
pub struct Mirror<'a> {
    pub name: &'a str,
    pub upstream: Option<&'a str>,
}

#[derive(Serialize)]
pub struct Snapshot<'a> {
    pub sources: &'a [String],
    pub built_at: &'a str,
    pub advisories: usize,
    pub sha256: &'a str,
}

#[derive(Serialize)]
pub struct Summary {
    pub projects: usize,
    pub versions: usize,
    pub files: usize,
    pub vulnerable_versions: usize,
    pub blocked_versions: usize,
    pub by_severity: BySeverity,
}

#[derive(Serialize)]
pub struct BySeverity {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub unknown: usize,
}

/// Every audited version, grouped by project, serialized as it is read:
/// the report of a large mirror is written without a copy of its versions.
pub struct Projects<'a>(&'a [crate::audit::AuditedVersion], &'a Publishers);

/// One project's run of versions.
struct Project<'a>(&'a [crate::audit::AuditedVersion], &'a Publishers);

/// One project's versions, each converted as it is written.
struct Versions<'a>(&'a [crate::audit::AuditedVersion], &'a Publishers);

impl Serialize for Projects<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The versions are sorted by project, so each project is one run.
        s.collect_seq(self.0.chunk_by(|a, b| a.project == b.project).map(|v| Project(v, self.1)))
    }
}

impl Serialize for Project<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Project", 2)?;
        st.serialize_field("name", self.0.first().map_or("", |v| v.project.as_str()))?;
        st.serialize_field("versions", &Versions(self.0, self.1))?;
        st.end()
    }
}

impl Serialize for Versions<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| version(v, self.1)))
    }
}

#[derive(Serialize)]
pub struct Version<'a> {
    pub version: String,
    pub blocked: bool,
    /// The lowest version above it that none of its advisories affect
    /// (`null` when none is known, and for versions without advisories).
    pub upgrade_to: Option<String>,
    /// Whether `upgrade_to` is in the mirror.
    pub upgrade_mirrored: bool,
    pub files: Vec<&'a str>,
    /// Each file's PEP 740 provenance: `null` when it has none.
    pub provenance: std::collections::BTreeMap<&'a str, Option<FileProvenance>>,
    pub advisories: Vec<Advisory<'a>>,
}

/// A file's verified provenance.
#[derive(Serialize)]
pub struct FileProvenance {
    pub verified: bool,
    pub publisher: crate::provenance::PublisherRecord,
}

#[derive(Serialize)]
pub struct Advisory<'a> {
    pub id: &'a str,
    pub aliases: &'a [String],
    pub severity: Severity,
    pub score: Option<f64>,
    pub fixed_in: &'a [String],
    pub summary: &'a str,
    pub ignored: Option<&'a IgnoreUse>,
    /// A malicious-package record (`MAL-...`).
    pub malicious: bool,
}

fn version<'a>(v: &'a crate::audit::AuditedVersion, publishers: &Publishers) -> Version<'a> {
    Version {
        version: v.version.to_string(),
        blocked: v.blocked,
        upgrade_to: v.upgrade_to.as_ref().map(ToString::to_string),
        upgrade_mirrored: v.upgrade_mirrored,
        files: v.files.iter().map(|f| &**f).collect(),
        provenance: v
            .files
            .iter()
            .map(|f| {
                let p = super::provenance::publisher_of(publishers, &v.project, f);
                (&**f, p.map(|p| FileProvenance { verified: true, publisher: p.record() }))
            })
            .collect(),
        advisories: v
            .findings
            .iter()
            .map(|f| Advisory {
                id: &f.id,
                aliases: &f.aliases,
                severity: f.severity,
                score: f.score,
                fixed_in: &f.fixed_in,
                summary: &f.summary,
                ignored: f.ignored.as_ref(),
                malicious: f.malicious,
            })
            .collect(),
    }
}

pub fn report(inputs: Inputs<'_>) -> Report<'_> {
    let audit = inputs.audit;
    let c = audit.counts();
    let projects = Projects(&audit.versions, inputs.publishers);
    Report {
        schema: SCHEMA,
        generated_at: audit.generated_at.to_string(),
        mirror: Mirror { name: &audit.mirror_name, upstream: audit.upstream.as_deref() },
        snapshot: audit.snapshot.as_ref().map(|s| Snapshot {
            sources: &s.sources,
            built_at: &s.built_at,
            advisories: s.advisories,
            sha256: &s.sha256,
        }),
        status: audit.status,
        banner: audit.banner.as_deref(),
        summary: Summary {
            projects: c.projects,
            versions: c.versions,
            files: c.files,
            vulnerable_versions: c.vulnerable_versions,
            blocked_versions: c.blocked_versions,
            by_severity: BySeverity {
                critical: c.critical,
                high: c.high,
                medium: c.medium,
                low: c.low,
                unknown: c.unknown,
            },
        },
        projects,
        ignores: &audit.ignores,
        tampering: super::views::tampering_views(&audit.tampering),
        held: super::admission::held_views(inputs.diagnostics),
        admitted: super::admission::admitted_views(inputs.diagnostics),
        withdrawn: inputs.withdrawn.to_vec(),
        run: Run { diagnostics: super::views::diagnostic_views(inputs.diagnostics) },
    }
}

/// The report, streamed: a large mirror's is never held whole.
pub fn write(inputs: Inputs<'_>, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &report(inputs))?;
    out.write_all(b"\n")
}
