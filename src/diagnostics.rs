//! The run's diagnostics as typed values: every failure, every upstream file
//! skipped and why, possible tampering, versions blocked by policy, files
//! pruned. One stream feeds the log, the summary line and every report
//! (security.json's `run` section, SARIF notifications, summary.md), so no
//! output can tell a different story than another.
//!
//! A diagnostic names its project (and file or version) as domain types;
//! reports convert them to their own wire forms.

use crate::util::run_id::RunId;
use std::fmt;

use crate::dist::Version;
use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;
use jiff::Timestamp;

/// How bad a diagnostic is: errors fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Note,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        }
    }
}

/// A file whose upstream sha256 changed after it was mirrored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tampering {
    pub project: ProjectName,
    pub filename: String,
    pub mirrored: Sha256,
    pub upstream: Sha256,
    pub first_run: RunId,
    pub last_run: RunId,
}

/// One thing a run has to say. Variants are ordered by how a reader triages
/// them; the derived order (then the fields) sorts every report the same way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Diagnostic {
    /// A file could not be fetched or verified: it is not published.
    FetchFailed { project: ProjectName, filename: String, message: String },
    /// A project's page could not be fetched; `kept` when its last stored
    /// view (and the files it lists) stands in.
    UpstreamFailed { project: ProjectName, message: String, kept: bool },
    /// A requested project the upstream does not have (its page answers
    /// 404 and it was never mirrored): a misspelt name, most likely.
    NotUpstream { project: ProjectName, message: String, suggestions: Vec<String> },
    /// A project could not be planned at all (no usable listing).
    PlanFailed { project: ProjectName, message: String },
    /// A lock file names a file whose upstream sha256 is another: refused.
    LockMismatch { project: ProjectName, filename: String, lock: Sha256, upstream: Sha256, lockfile: String },
    /// A `--hash` of a hashed requirements line (`lockfile` is
    /// `path:line`) that no file of the version has upstream: refused.
    LockUnknownHash { project: ProjectName, version: Version, sha256: Sha256, lockfile: String },
    /// A lock file names a file (or version) the upstream does not list.
    LockMissing { project: ProjectName, what: String, lockfile: String },
    /// A target environment cannot install a requested project from the
    /// tree (`fatal` with `installable = "fail"`).
    NotInstallable { project: ProjectName, envs: Vec<String>, reason: String, fatal: bool },
    /// A selected file that is not stored, left out by an offline run.
    NotStored { project: ProjectName, filename: String },
    /// A recorded file that is gone from the store and could not be
    /// brought back (`why`): nothing is published.
    MissingFromStore { project: ProjectName, filename: String, why: String },
    /// A recorded file that was gone from the store, brought back
    /// verified (`from` the served tree or the upstream).
    Repaired { project: ProjectName, filename: String, from: String },
    /// The upstream now declares another sha256 for a mirrored file.
    Tampering(Tampering),
    /// A target environment the requested requirements do not resolve in
    /// (`fatal` with `installable = "fail"`); it keeps its last good
    /// resolution.
    Unresolved { env: String, project: ProjectName, message: String, fatal: bool },
    /// A requirement pins a version no target environment can install.
    PinUnusable { project: ProjectName, line: String },
    /// A chosen version installs only from its sdist in some environments.
    SdistOnly { project: ProjectName, version: Version, envs: Vec<String> },
    /// A version the policy leaves out of the index.
    Blocked { project: ProjectName, version: Version, advisories: Vec<String>, malicious: bool },
    /// A stored file whose sha256 a malicious-package record names,
    /// whatever its name: refused (`refused`, under `malicious = "block"`)
    /// or only reported.
    MaliciousFile { project: ProjectName, filename: String, sha256: String, advisories: Vec<String>, refused: bool },
    /// A requested project of which the selection keeps no file: its
    /// requirement lines (`origin: requirement`), as the manifest says them.
    /// `kept`: the files it served, which stay listed (fail closed).
    SelectsNothing { project: ProjectName, lines: Vec<String>, kept: u64 },
    /// An upstream file airlock will not touch, and why.
    Skipped { project: ProjectName, filename: String, reason: String },
    /// A file that left the store (unselected for more than `keep_runs` runs).
    Pruned { project: ProjectName, filename: String },
    /// A file whose PEP 740 provenance does not verify (`step`: where it
    /// failed): refused, never served.
    ProvenanceRefused { project: ProjectName, filename: String, step: String, message: String },
    /// A release the admission gate holds back: not served until `due`
    /// (`None`: not by time); `expired`, an `[[select.admit]]` entry for it
    /// past its date (reason, expires).
    Held {
        project: ProjectName,
        version: Version,
        reason: HoldReason,
        due: Option<Timestamp>,
        expired: Option<(String, jiff::civil::Date)>,
        /// What the hold found (the publisher seen and the one pinned; the
        /// files without provenance).
        note: Option<String>,
    },
    /// A held release let in early: an `[[select.admit]]` entry's reason, or
    /// `fixes <advisory>` (the security bypass).
    Admitted { project: ProjectName, version: Version, reason: String, expires: Option<jiff::civil::Date> },
    /// Something the upstream no longer offers leaves the served tree (its
    /// bytes stay in the store): a file, a release (`filename` `None`) or
    /// the whole project (both `None`).
    Withdrawn { project: ProjectName, version: Option<Version>, filename: Option<String>, reason: Withdrawal },
}

/// Why a release is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HoldReason {
    /// Younger than `min_age`.
    Young,
    /// Uploaded after `freeze`.
    Frozen,
    /// A hold is in force and the upstream gives no upload time.
    NoUploadTime,
    /// Its verified PEP 740 publisher is not the one the project is pinned to.
    PublisherChanged,
    /// It offers no provenance where an earlier release of the project did.
    ProvenanceMissing,
    /// `provenance = "require"`, and a file of it offers no provenance.
    ProvenanceRequired,
}

impl HoldReason {
    /// As security.json spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Young => "young",
            HoldReason::Frozen => "frozen",
            HoldReason::NoUploadTime => "no-upload-time",
            HoldReason::PublisherChanged => "publisher-changed",
            HoldReason::ProvenanceMissing => "provenance-missing",
            HoldReason::ProvenanceRequired => "provenance-required",
        }
    }

    /// Back from [`HoldReason::as_str`] (`None`: a word this airlock does not know).
    pub fn parse(text: &str) -> Option<HoldReason> {
        [
            HoldReason::Young,
            HoldReason::Frozen,
            HoldReason::NoUploadTime,
            HoldReason::PublisherChanged,
            HoldReason::ProvenanceMissing,
            HoldReason::ProvenanceRequired,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// Why something leaves the served tree although it was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Withdrawal {
    /// Gone from the upstream's page, or the page answers 404 or 410.
    RemovedUpstream,
    /// The upstream marks the project quarantined (PEP 792).
    Quarantined,
    /// Uploaded after `freeze`.
    Frozen,
}

impl Withdrawal {
    /// As security.json spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Withdrawal::RemovedUpstream => "removed-upstream",
            Withdrawal::Quarantined => "quarantined",
            Withdrawal::Frozen => "frozen",
        }
    }
}

impl Diagnostic {
    pub fn level(&self) -> Level {
        match self {
            Diagnostic::NotInstallable { fatal: true, .. }
            | Diagnostic::Unresolved { fatal: true, .. }
            | Diagnostic::LockMismatch { .. }
            | Diagnostic::LockUnknownHash { .. }
            | Diagnostic::LockMissing { .. } => Level::Error,
            Diagnostic::NotInstallable { .. }
            | Diagnostic::Unresolved { .. }
            | Diagnostic::SdistOnly { .. }
            | Diagnostic::PinUnusable { .. } => Level::Warning,
            Diagnostic::FetchFailed { .. }
            | Diagnostic::UpstreamFailed { .. }
            | Diagnostic::NotUpstream { .. }
            | Diagnostic::PlanFailed { .. }
            | Diagnostic::MissingFromStore { .. }
            | Diagnostic::Tampering(_)
            | Diagnostic::ProvenanceRefused { .. }
            | Diagnostic::MaliciousFile { .. } => Level::Error,
            Diagnostic::NotStored { .. }
            | Diagnostic::Blocked { .. }
            | Diagnostic::SelectsNothing { .. }
            | Diagnostic::Skipped { .. } => Level::Warning,
            Diagnostic::Withdrawn { .. } => Level::Warning,
            Diagnostic::Pruned { .. }
            | Diagnostic::Repaired { .. }
            | Diagnostic::Held { .. }
            | Diagnostic::Admitted { .. } => Level::Note,
        }
    }

    /// A stable identifier, for SARIF descriptors and log shippers.
    pub fn code(&self) -> &'static str {
        match self {
            Diagnostic::FetchFailed { .. } => "fetch-failed",
            Diagnostic::UpstreamFailed { .. } => "upstream-failed",
            Diagnostic::NotUpstream { .. } => "not-upstream",
            Diagnostic::PlanFailed { .. } => "plan-failed",
            Diagnostic::LockMismatch { .. } => "lock-mismatch",
            Diagnostic::LockUnknownHash { .. } => "lock-unknown-hash",
            Diagnostic::LockMissing { .. } => "lock-missing",
            Diagnostic::NotInstallable { .. } => "not-installable",
            Diagnostic::Unresolved { .. } => "unresolved",
            Diagnostic::SdistOnly { .. } => "sdist-only",
            Diagnostic::PinUnusable { .. } => "pin-unusable",
            Diagnostic::NotStored { .. } => "not-stored",
            Diagnostic::MissingFromStore { .. } => "missing-from-store",
            Diagnostic::Repaired { .. } => "repaired",
            Diagnostic::Tampering(_) => "possible-tampering",
            Diagnostic::Blocked { .. } => "blocked",
            Diagnostic::MaliciousFile { .. } => "malicious-file",
            Diagnostic::SelectsNothing { .. } => "selects-nothing",
            Diagnostic::Skipped { .. } => "skipped",
            Diagnostic::Pruned { .. } => "pruned",
            Diagnostic::Held { .. } => "held",
            Diagnostic::ProvenanceRefused { .. } => "provenance-refused",
            Diagnostic::Admitted { .. } => "admitted",
            Diagnostic::Withdrawn { .. } => "withdrawn",
        }
    }

    pub fn project(&self) -> &ProjectName {
        match self {
            Diagnostic::FetchFailed { project, .. }
            | Diagnostic::UpstreamFailed { project, .. }
            | Diagnostic::NotUpstream { project, .. }
            | Diagnostic::PlanFailed { project, .. }
            | Diagnostic::LockMismatch { project, .. }
            | Diagnostic::LockUnknownHash { project, .. }
            | Diagnostic::LockMissing { project, .. }
            | Diagnostic::NotInstallable { project, .. }
            | Diagnostic::Unresolved { project, .. }
            | Diagnostic::SdistOnly { project, .. }
            | Diagnostic::PinUnusable { project, .. }
            | Diagnostic::NotStored { project, .. }
            | Diagnostic::MissingFromStore { project, .. }
            | Diagnostic::Repaired { project, .. }
            | Diagnostic::Blocked { project, .. }
            | Diagnostic::MaliciousFile { project, .. }
            | Diagnostic::SelectsNothing { project, .. }
            | Diagnostic::Skipped { project, .. }
            | Diagnostic::Pruned { project, .. }
            | Diagnostic::Held { project, .. }
            | Diagnostic::ProvenanceRefused { project, .. }
            | Diagnostic::Admitted { project, .. }
            | Diagnostic::Withdrawn { project, .. } => project,
            Diagnostic::Tampering(t) => &t.project,
        }
    }

    /// The file it is about, if one.
    pub fn filename(&self) -> Option<&str> {
        match self {
            Diagnostic::FetchFailed { filename, .. }
            | Diagnostic::NotStored { filename, .. }
            | Diagnostic::MissingFromStore { filename, .. }
            | Diagnostic::Repaired { filename, .. }
            | Diagnostic::Skipped { filename, .. }
            | Diagnostic::Pruned { filename, .. }
            | Diagnostic::MaliciousFile { filename, .. }
            | Diagnostic::LockMismatch { filename, .. }
            | Diagnostic::ProvenanceRefused { filename, .. } => Some(filename),
            Diagnostic::Tampering(t) => Some(&t.filename),
            Diagnostic::Withdrawn { filename, .. } => filename.as_deref(),
            _ => None,
        }
    }

    /// The version it is about, if one.
    pub fn version(&self) -> Option<&Version> {
        match self {
            Diagnostic::Blocked { version, .. }
            | Diagnostic::SdistOnly { version, .. }
            | Diagnostic::LockUnknownHash { version, .. }
            | Diagnostic::Held { version, .. }
            | Diagnostic::Admitted { version, .. } => Some(version),
            Diagnostic::Withdrawn { version, .. } => version.as_ref(),
            _ => None,
        }
    }

    /// Does it make the run fail?
    pub fn fails_run(&self) -> bool {
        matches!(
            self,
            Diagnostic::FetchFailed { .. }
                | Diagnostic::UpstreamFailed { .. }
                | Diagnostic::NotUpstream { .. }
                | Diagnostic::PlanFailed { .. }
                | Diagnostic::MissingFromStore { .. }
                | Diagnostic::LockMismatch { .. }
                | Diagnostic::LockUnknownHash { .. }
                | Diagnostic::LockMissing { .. }
                | Diagnostic::NotInstallable { fatal: true, .. }
                | Diagnostic::Unresolved { fatal: true, .. }
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::FetchFailed { message, .. } => f.write_str(message),
            Diagnostic::UpstreamFailed { project, message, kept: true } => {
                write!(f, "{message}; the last stored view of {project} (and the files it lists) stays published")
            }
            Diagnostic::UpstreamFailed { message, kept: false, .. } | Diagnostic::PlanFailed { message, .. } => {
                f.write_str(message)
            }
            Diagnostic::NotUpstream { message, suggestions, .. } => {
                let hint = match suggestions.as_slice() {
                    [] => "check the name in [select]".to_string(),
                    s => format!("did you mean {}?", s.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
                };
                write!(f, "{message}: nothing of it is mirrored and nothing else changes because of it; {hint}")
            }
            Diagnostic::LockMismatch { project, filename, lock, upstream, lockfile } => write!(
                f,
                "POSSIBLE TAMPERING: {project}/{filename}: {lockfile} locks sha256 {lock}, the upstream declares {upstream}; refused"
            ),
            Diagnostic::LockUnknownHash { project, version, sha256, lockfile } => write!(
                f,
                "POSSIBLE TAMPERING: {project}=={version}: {lockfile} names --hash=sha256:{sha256}, which no file the upstream offers for it has; the line is refused and {project} keeps what it served"
            ),
            Diagnostic::LockMissing { project, what, lockfile } => {
                write!(f, "{project}: {lockfile} locks {what}, which the upstream does not list")
            }
            Diagnostic::NotInstallable { project, envs, reason, .. } => {
                write!(f, "{project} cannot be installed from the mirror on {}: {reason}", envs.join(", "))
            }
            Diagnostic::Unresolved { message, .. } => f.write_str(message),
            Diagnostic::PinUnusable { project, line } => {
                write!(f, "{project}: {line} pins a version no target environment can install")
            }
            Diagnostic::SdistOnly { project, version, envs } => {
                write!(f, "{project} {version} installs only from its sdist (built on install) on {}", envs.join(", "))
            }
            Diagnostic::NotStored { project, filename } => {
                write!(f, "{project}: {filename} is not stored; offline, it is left out")
            }
            Diagnostic::MissingFromStore { project, filename, why } => write!(
                f,
                "{project}/{filename} is recorded but gone from the store and cannot be brought back ({why}); nothing is published, the served tree stays as it was"
            ),
            Diagnostic::Repaired { project, filename, from } => {
                write!(
                    f,
                    "{project}/{filename} was gone from the store; restored from {from}, verified against its recorded sha256"
                )
            }
            Diagnostic::Tampering(t) => write!(
                f,
                "POSSIBLE TAMPERING: {}/{}: upstream now declares sha256 {}, but {} was mirrored; keeping the mirrored file and refusing the new one",
                t.project, t.filename, t.upstream, t.mirrored
            ),
            Diagnostic::Blocked { project, version, advisories, malicious: true } => write!(
                f,
                "MALICIOUS: {project} {version} is a known malicious release ({}); it is never mirrored",
                advisories.join(", ")
            ),
            Diagnostic::Blocked { project, version, advisories, malicious: false } => {
                write!(f, "blocked by policy: {project} {version} is left out of the index ({})", advisories.join(", "))
            }
            Diagnostic::MaliciousFile { project, filename, sha256, advisories, refused } => write!(
                f,
                "MALICIOUS FILE: {project}/{filename} has sha256 {sha256}, which {} names as a malicious package's file; {}",
                advisories.join(", "),
                if *refused { "refused: it is never published" } else { "listed (`malicious = \"report\"`)" }
            ),
            Diagnostic::SelectsNothing { project, lines, kept } => {
                write!(
                    f,
                    "{project}: no file of the upstream matches {} for the configured Pythons, platforms and options",
                    lines.join("; ")
                )?;
                if *kept > 0 {
                    write!(f, "; the {kept} file(s) it served stay listed (remove it from the manifest to drop it)")?;
                }
                Ok(())
            }
            Diagnostic::Skipped { project, filename, reason } => {
                write!(f, "{project}: skipping {filename:?}: {reason}")
            }
            Diagnostic::Pruned { project, filename } => {
                write!(f, "{project}/{filename} left the store (unselected for more than keep_runs runs)")
            }
            Diagnostic::Held { .. } | Diagnostic::Admitted { .. } | Diagnostic::Withdrawn { .. } => self.fmt_gate(f),
            Diagnostic::ProvenanceRefused { project, message, .. } => {
                write!(f, "POSSIBLE TAMPERING: {project}: {message}; the file is refused and never served")
            }
        }
    }
}

impl Diagnostic {
    /// What the admission gate and withdrawals say.
    fn fmt_gate(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::Held { project, version, reason, due, expired, note } => {
                let why = match reason {
                    HoldReason::Young => "younger than `min_age`",
                    HoldReason::Frozen => "uploaded after `freeze`",
                    HoldReason::NoUploadTime => "the upstream gives no upload time, and a hold is in force",
                    HoldReason::PublisherChanged => "its PEP 740 publisher is not the project's pinned one",
                    HoldReason::ProvenanceMissing => "it has no PEP 740 provenance, an earlier release had",
                    HoldReason::ProvenanceRequired => "`provenance = \"require\"` and it has no PEP 740 provenance",
                };
                write!(f, "held: {project} {version} is not served ({why}")?;
                if let Some(n) = note {
                    write!(f, ": {n}")?;
                }
                write!(f, ")")?;
                match due {
                    Some(d) => write!(f, "; due {d}")?,
                    None => write!(f, "; not due by time")?,
                }
                if let Some((reason, expires)) = expired {
                    write!(f, "; its [[select.admit]] entry ({reason:?}) expired on {expires} and admits nothing")?;
                }
                Ok(())
            }
            Diagnostic::Admitted { project, version, reason, expires } => {
                write!(f, "admitted early: {project} {version} ({reason})")?;
                if let Some(e) = expires {
                    write!(f, ", until {e}")?;
                }
                Ok(())
            }
            Diagnostic::Withdrawn { project, version, filename, reason } => {
                let what = match (version, filename) {
                    (_, Some(file)) => format!("{project}/{file}"),
                    (Some(v), None) => format!("{project} {v}"),
                    (None, None) => format!("{project} (the whole project)"),
                };
                let why = match reason {
                    Withdrawal::RemovedUpstream => "the upstream no longer offers it",
                    Withdrawal::Quarantined => "the upstream marks the project quarantined",
                    Withdrawal::Frozen => "uploaded after `freeze`",
                };
                write!(f, "withdrawn: {what} leaves the served tree ({why}); its bytes stay in the store")
            }
            _ => Ok(()),
        }
    }
}

/// The diagnostics of one run, collected by every stage.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Record one, logging it at its level as it happens.
    pub fn push(&mut self, d: Diagnostic) {
        // Fields for log shippers (`--log-format json`): what and about what.
        let (code, project) = (d.code(), d.project().as_str());
        let file = d.filename().unwrap_or_default();
        let version = d.version().map(ToString::to_string).unwrap_or_default();
        match d.level() {
            Level::Error => tracing::error!(code, project, file, version, "{d}"),
            Level::Warning => tracing::warn!(code, project, file, version, "{d}"),
            Level::Note => tracing::info!(code, project, file, version, "{d}"),
        }
        self.items.push(d);
    }

    /// Record one that was already logged when found (or need not be).
    pub fn push_quiet(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Record one unless the stream already holds it (said by an earlier stage).
    pub fn push_once(&mut self, d: Diagnostic) {
        if !self.items.contains(&d) {
            self.push(d);
        }
    }

    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        for d in ds {
            self.push(d);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Those that fail the run.
    pub fn failures(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.fails_run())
    }

    pub fn failed(&self) -> bool {
        self.failures().next().is_some()
    }

    /// Every diagnostic, sorted and deduplicated: the order reports use.
    pub fn sorted(&self) -> Vec<Diagnostic> {
        let mut all = self.items.clone();
        all.sort();
        all.dedup();
        all
    }
}
