//! `mirror.toml`: the declarative manifest.
//!
//! Parsing happens in two steps. Wire structs (`Raw*`) mirror the TOML with
//! `deny_unknown_fields` and keep value spans; `Manifest` is the validated
//! domain form with paths resolved against the manifest's directory. Every
//! error names the file, line and column, and an unknown key suggests the
//! nearest known one, because a typo in a nightly cron manifest should fail
//! loudly rather than silently mirror the wrong thing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

pub mod lockfile;
pub mod requirements;
mod schema;

use self::requirements::{RequirementLine, RequirementsError};
pub use crate::advisories::SourceSpec;
use crate::advisories::severity::{Severity, Threshold};
use crate::dist::names::ProjectName;
use crate::dist::tags::{PlatformTarget, PythonTarget, TagFilter};

pub const DEFAULT_UPSTREAM: &str = "https://pypi.org/simple/";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}:{line}:{column}: {message}")]
    At { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Requirements(#[from] RequirementsError),
    #[error(transparent)]
    Lock(#[from] lockfile::LockError),
    /// Every problem, in file order.
    #[error(
        "{} problem(s):\n{}",
        .0.iter().filter(|e| !matches!(e, ManifestError::Note { .. })).count(),
        .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
    )]
    Many(Vec<ManifestError>),
    /// What a kind of value may be, said once after its problems.
    #[error("{path}: {message}")]
    Note { path: String, message: String },
}

// ---------------------------------------------------------------- wire form

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    mirror: RawMirror,
    #[serde(default)]
    select: RawSelect,
    #[serde(default)]
    advisories: RawAdvisories,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    publish: RawPublish,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    name: Option<String>,
    upstream: Option<Spanned<String>>,
    output: Option<String>,
    state: Option<String>,
    store: Option<Spanned<String>>,
    jobs: Option<Spanned<i64>>,
    retries: Option<Spanned<i64>>,
    timeout: Option<Spanned<i64>>,
    allow_missing_hashes: Option<bool>,
    keep_runs: Option<Spanned<i64>>,
    templates: Option<String>,
    publish_partial: Option<bool>,
    max_failures: Option<Spanned<toml::Value>>,
    max_removed: Option<Spanned<toml::Value>>,
    files: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    project_pages: Option<bool>,
}

/// `[select]` and `[select.project.<name>]` share one struct; the keys only
/// valid at the top (`packages`, `requirements`, `project`) are refused in
/// overrides after parsing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelect {
    packages: Option<Spanned<Vec<Spanned<String>>>>,
    requirements: Option<Spanned<Vec<Spanned<String>>>>,
    project: Option<BTreeMap<Spanned<String>, Spanned<RawSelect>>>,
    python: Option<Vec<Spanned<String>>>,
    platforms: Option<Vec<Spanned<String>>>,
    sdists: Option<bool>,
    prereleases: Option<bool>,
    yanked: Option<bool>,
    latest: Option<Spanned<i64>>,
    dependencies: Option<Spanned<toml::Value>>,
    installable: Option<Spanned<String>>,
    lockfiles: Option<Vec<Spanned<String>>>,
    min_age: Option<Spanned<String>>,
    freeze: Option<Spanned<toml::Value>>,
    publisher: Option<Spanned<String>>,
    admit: Option<Vec<Spanned<RawAdmit>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmit {
    project: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
    expires: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvisories {
    sources: Option<Vec<Spanned<String>>>,
    snapshot: Option<String>,
    max_age_days: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    malicious: Option<Spanned<String>>,
    fail_on: Option<Spanned<String>>,
    block: Option<Spanned<String>>,
    unknown_severity: Option<Spanned<String>>,
    require_advisories: Option<bool>,
    #[serde(default)]
    ignore: Vec<RawIgnore>,
    security_bypass: Option<bool>,
    upstream_removed: Option<Spanned<String>>,
    provenance: Option<Spanned<String>>,
    publisher_pinning: Option<bool>,
    trusted_root: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIgnore {
    id: Spanned<String>,
    reason: Option<String>,
    expires: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    to: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
    path_style: Option<bool>,
    delete_after_hours: Option<Spanned<i64>>,
    directory_keys: Option<Spanned<String>>,
}

// -------------------------------------------------------------- domain form

/// The validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub mirror: Mirror,
    pub select: Select,
    pub advisories: Advisories,
    pub policy: Policy,
    pub publish: Publish,
}

#[derive(Debug, Clone)]
pub struct Mirror {
    pub name: String,
    pub upstream: Url,
    pub output: PathBuf,
    pub state: PathBuf,
    /// Where verified artifacts live (default: `<state>/store`): a
    /// directory several runners may share (a volume, a CI artifact).
    pub store: Option<PathBuf>,
    /// `s3://bucket/prefix`: the object store the mirror lives in (the
    /// local store under `state` is then its working copy).
    pub store_url: Option<String>,
    pub jobs: usize,
    pub retries: u32,
    pub timeout: Duration,
    /// Accept files whose upstream declares no sha256 (hashed locally instead).
    pub allow_missing_hashes: bool,
    /// Runs a file stays in the store after it left the selection.
    pub keep_runs: u32,
    /// A directory of template overrides.
    pub templates: Option<PathBuf>,
    /// Publish what verified even when the run failed (the default; false:
    /// a failed run leaves the served tree as it was).
    pub publish_partial: bool,
    /// Past this many failures a run publishes nothing (an upstream gone bad).
    pub max_failures: Option<MaxFailures>,
    /// A run (or an imported bundle) that would unlist more of the served
    /// files than this publishes nothing, unless `--allow-removals`.
    pub max_removed: MaxFailures,
    /// `files`: which of a version's files an environment gets (`None`:
    /// installed ones under resolution or lock files, else compatible ones).
    pub files: Option<Files>,
    /// Where the published tree is served (`https://pypi.example.org/`):
    /// the landing page's install commands show it.
    pub base_url: Option<Url>,
    /// Write the pages for people under `projects/` (the default).
    pub project_pages: bool,
}

/// `[mirror] files`: which of a chosen version's files are mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// For each target environment, the one wheel pip or uv would install
    /// there (plus the sdist when `sdists = true`).
    Installed,
    /// Every file compatible with some target.
    Compatible,
}

/// `[mirror] max_failures` and `max_removed`: a count, or a share of a
/// whole (the run's work; the served files).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFailures {
    Count(u64),
    /// Of the run's work: the projects whose pages it read plus the files
    /// it tried to bring in.
    Percent(f64),
}

impl MaxFailures {
    fn parse(v: &toml::Value) -> Result<MaxFailures, String> {
        match v {
            toml::Value::Integer(n) if *n >= 0 => Ok(MaxFailures::Count(*n as u64)),
            toml::Value::String(s) => {
                let number = s.trim().strip_suffix('%').map(str::trim);
                match number.map(str::parse::<f64>) {
                    Some(Ok(p)) if (0.0..=100.0).contains(&p) => Ok(MaxFailures::Percent(p)),
                    _ => Err(format!("expected a whole number or a percentage from \"0%\" to \"100%\", found {s:?}")),
                }
            }
            other => Err(format!("expected a whole number or a percentage such as \"5%\", found {other}")),
        }
    }

    /// Whether `failed` failures out of `work` items exceed the limit.
    pub fn exceeded(&self, failed: u64, work: u64) -> bool {
        match *self {
            MaxFailures::Count(n) => failed > n,
            MaxFailures::Percent(p) => failed as f64 > p / 100.0 * work.max(1) as f64,
        }
    }
}

impl std::fmt::Display for MaxFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxFailures::Count(n) => write!(f, "{n}"),
            MaxFailures::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What to mirror: requirements plus the options that filter files.
#[derive(Debug, Clone)]
pub struct Select {
    pub requirements: Vec<RequirementLine>,
    /// Lock files whose files are mirrored exactly.
    pub locks: Vec<lockfile::LockFile>,
    pub installable: Installable,
    pub defaults: SelectOptions,
    pub overrides: BTreeMap<ProjectName, SelectOverride>,
    /// `[[select.admit]]`, in file order.
    pub admit: Vec<Admit>,
}

/// The effective file filter for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectOptions {
    pub tags: TagFilter,
    pub sdists: bool,
    pub prereleases: bool,
    pub yanked: bool,
    /// Newest N matching versions by upload time; 0 keeps all.
    pub latest: usize,
    pub dependencies: Dependencies,
    /// `min_age`: releases younger than this (by upload time) are held.
    pub min_age: jiff::SignedDuration,
    /// `freeze`: releases uploaded after this instant are held.
    pub freeze: Option<jiff::Timestamp>,
    /// `publisher` (per project): the only PEP 740 publisher accepted.
    pub publisher: Option<crate::provenance::Publisher>,
}

impl SelectOptions {
    /// The options as one line of a cache key, written out field by field
    /// (never `Debug`, whose format may change under a dependency bump).
    pub fn key_line(&self) -> String {
        let list = |xs: Option<Vec<String>>| xs.map_or("*".to_string(), |v| v.join(","));
        format!(
            "pythons={} platforms={} sdists={} prereleases={} yanked={} latest={} dependencies={}",
            list(self.tags.pythons.as_ref().map(|p| p.iter().map(ToString::to_string).collect())),
            list(self.tags.platforms.as_ref().map(|p| p.iter().map(ToString::to_string).collect())),
            self.sdists,
            self.prereleases,
            self.yanked,
            self.latest,
            self.dependencies.as_str(),
        )
    }

    /// Whether the admission gate holds anything back for this project.
    pub fn gated(&self) -> bool {
        !self.min_age.is_zero() || self.freeze.is_some()
    }
}

/// `[[select.admit]]`: one held release let in by hand, until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    pub project: ProjectName,
    pub version: crate::dist::Version,
    pub reason: String,
    /// The last day the entry admits (UTC).
    pub expires: jiff::civil::Date,
}

/// `[policy] upstream_removed`: what a file, release or project the
/// upstream no longer offers does to the served tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamRemoved {
    /// It leaves the served tree (its bytes stay in the store).
    #[default]
    Withdraw,
    /// It stays served.
    Keep,
}

/// `dependencies`: which dependencies of the requested projects are mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dependencies {
    /// None: exactly what the requirements select.
    #[default]
    Off,
    /// For every target environment, what a resolver picks (as pip or uv
    /// would) for the requirements (`true` means this).
    Resolve,
    /// Every version any selected wheel's Requires-Dist allows (the closure).
    All,
}

impl Dependencies {
    /// As the manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependencies::Off => "false",
            Dependencies::Resolve => "resolve",
            Dependencies::All => "all",
        }
    }
}

/// `installable`: what a target environment that cannot install a
/// requested requirement from the mirror does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Installable {
    /// Report it (and warn, naming the project and the environments).
    #[default]
    Warn,
    /// Fail the run (exit 1) and publish nothing.
    Fail,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            tags: TagFilter::default(),
            sdists: true,
            prereleases: false,
            yanked: false,
            latest: 0,
            min_age: jiff::SignedDuration::ZERO,
            freeze: None,
            publisher: None,
            dependencies: Dependencies::Off,
        }
    }
}

/// A `[select.project.<name>]` table: only the keys it sets replace the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectOverride {
    pub pythons: Option<Option<Vec<PythonTarget>>>,
    pub platforms: Option<Option<Vec<PlatformTarget>>>,
    pub sdists: Option<bool>,
    pub prereleases: Option<bool>,
    pub yanked: Option<bool>,
    pub latest: Option<usize>,
    pub dependencies: Option<Dependencies>,
    pub min_age: Option<jiff::SignedDuration>,
    pub freeze: Option<jiff::Timestamp>,
    pub publisher: Option<crate::provenance::Publisher>,
}

impl Select {
    /// Everything of the selection a published tree depends on, written
    /// out (a cache key: requirement lines, lock files' packages and files,
    /// every project's options, the gate's keys, the admit entries).
    pub fn cache_key(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("installable={:?}\ndefaults {}\n", self.installable, self.defaults.key_line());
        for l in &self.requirements {
            let _ = writeln!(out, "{}{} @{}", if l.constraint { "-c " } else { "" }, l.requirement, l.origin);
        }
        for lock in &self.locks {
            let _ = writeln!(out, "lock {}", lock.path.display());
            for p in &lock.packages {
                let version = p.version.as_ref().map(ToString::to_string).unwrap_or_default();
                let marker = p.marker.try_to_string().unwrap_or_default();
                let _ = writeln!(out, " {} {version} [{marker}]", p.name);
                for f in &p.files {
                    let _ = writeln!(out, "  {} {}", f.filename, f.sha256);
                }
                for h in &p.hashes {
                    let _ = writeln!(out, "  --hash {h}");
                }
                for who in &p.publishers {
                    let _ = writeln!(out, "  publisher {who}");
                }
            }
        }
        for (project, ov) in &self.overrides {
            let o = self.options_for(project);
            let publisher = ov.publisher.as_ref().map(ToString::to_string).unwrap_or_default();
            let freeze = o.freeze.map(|f| f.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "project {project} {} min_age={}s freeze={freeze} publisher={publisher}",
                o.key_line(),
                o.min_age.as_secs()
            );
        }
        let freeze = self.defaults.freeze.map(|f| f.to_string()).unwrap_or_default();
        let _ = writeln!(out, "min_age={}s freeze={freeze}", self.defaults.min_age.as_secs());
        for a in &self.admit {
            let _ = writeln!(out, "admit {} {} {} {:?}", a.project, a.version, a.expires, a.reason);
        }
        out
    }

    pub fn options_for(&self, project: &ProjectName) -> SelectOptions {
        let mut o = self.defaults.clone();
        if let Some(ov) = self.overrides.get(project) {
            ov.apply(&mut o);
        }
        o
    }
}

impl SelectOverride {
    fn apply(&self, o: &mut SelectOptions) {
        if let Some(p) = &self.pythons {
            o.tags.pythons = p.clone();
        }
        if let Some(p) = &self.platforms {
            o.tags.platforms = p.clone();
        }
        o.sdists = self.sdists.unwrap_or(o.sdists);
        o.prereleases = self.prereleases.unwrap_or(o.prereleases);
        o.yanked = self.yanked.unwrap_or(o.yanked);
        o.latest = self.latest.unwrap_or(o.latest);
        o.dependencies = self.dependencies.unwrap_or(o.dependencies);
        o.min_age = self.min_age.unwrap_or(o.min_age);
        o.freeze = self.freeze.or(o.freeze);
        if let Some(p) = &self.publisher {
            o.publisher = Some(p.clone());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Advisories {
    pub sources: Vec<SourceSpec>,
    pub snapshot: PathBuf,
    pub max_age_days: u32,
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// OSV records of malicious packages (`MAL-...`): never mirrored, or
    /// only reported.
    pub malicious: Malicious,
    pub fail_on: Threshold,
    pub block: Threshold,
    pub unknown_severity: Severity,
    pub require_advisories: bool,
    pub ignore: Vec<Ignore>,
    /// `security_bypass`: a held release that fixes an advisory affecting a
    /// mirrored version of its project is admitted at once.
    pub security_bypass: bool,
    pub upstream_removed: UpstreamRemoved,
    /// `provenance`: what PEP 740 attestations do to a file.
    pub provenance: ProvenancePolicy,
    /// `publisher_pinning`: a project's first verified publisher is
    /// recorded, and a later release from another, or without provenance
    /// after one with it, is held.
    pub publisher_pinning: bool,
    /// `trusted_root`: a Sigstore `trusted_root.json` (`None`: the production
    /// root built in).
    pub trusted_root: Option<PathBuf>,
}

/// `[policy] provenance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvenancePolicy {
    /// Attestations are not fetched.
    Off,
    /// A file whose upstream offers provenance is served only if it verifies.
    #[default]
    Verify,
    /// Also: a release with a file that offers no provenance is held.
    Require,
}

/// `[policy] malicious`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Malicious {
    /// Versions a malicious-package record affects are never mirrored,
    /// whatever `block` and `fail_on` say.
    #[default]
    Block,
    /// They are mirrored and listed.
    Report,
}

impl Policy {
    /// The policy as a cache key, written out field by field.
    pub fn cache_key(&self) -> String {
        let ignores: Vec<String> = self
            .ignore
            .iter()
            .map(|i| format!("{}:{}:{}", i.id, i.expires.map(|e| e.to_string()).unwrap_or_default(), i.reason))
            .collect();
        format!(
            "malicious={:?} fail_on={} block={} unknown_severity={} require_advisories={} ignore=[{}] security_bypass={} upstream_removed={:?} provenance={:?} publisher_pinning={} trusted_root={}",
            self.malicious,
            self.fail_on,
            self.block,
            self.unknown_severity,
            self.require_advisories,
            ignores.join(";"),
            self.security_bypass,
            self.upstream_removed,
            self.provenance,
            self.publisher_pinning,
            self.trusted_root.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        )
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            malicious: Malicious::Block,
            fail_on: Threshold::Never,
            block: Threshold::Never,
            unknown_severity: Severity::High,
            require_advisories: false,
            ignore: Vec::new(),
            security_bypass: true,
            upstream_removed: UpstreamRemoved::Withdraw,
            provenance: ProvenancePolicy::Verify,
            publisher_pinning: true,
            trusted_root: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignore {
    pub id: String,
    pub reason: String,
    pub expires: Option<jiff::civil::Date>,
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub to: Option<String>,
    /// S3 endpoint (else `AWS_ENDPOINT_URL`, else AWS).
    pub endpoint: Option<Url>,
    /// S3 region (else `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile).
    pub region: Option<String>,
    /// Path-style requests (MinIO and other S3-compatible servers); default true.
    pub path_style: bool,
    /// Hours an object no longer in the tree stays in the bucket.
    pub delete_after_hours: u64,
    /// Whether every `index.html` is also stored under its directory's key.
    pub directory_keys: DirectoryKeys,
}

/// `[publish] directory_keys`: every `index.html` also under its
/// directory's key (`simple/p/`), so clients install straight from a
/// bucket's HTTP endpoint. Servers that map keys to files refuse a key
/// ending in `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectoryKeys {
    /// Where the server takes them (tried once per target, then known).
    #[default]
    Auto,
    /// Always: a server that refuses them fails the publish.
    Always,
    Never,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            to: None,
            endpoint: None,
            region: None,
            path_style: true,
            delete_after_hours: 24,
            directory_keys: DirectoryKeys::Auto,
        }
    }
}

// ------------------------------------------------------------------ loading

/// Turns byte spans into `file:line:column` errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ManifestError {
        let (line, column) = self.line_col(span.start);
        ManifestError::At { path: self.path.display().to_string(), line, column, message: message.into() }
    }

    fn origin(&self, span: std::ops::Range<usize>) -> String {
        format!("{}:{}", self.path.display(), self.line_col(span.start).0)
    }

    fn toml_error(&self, err: &toml::de::Error) -> ManifestError {
        self.at(err.span().unwrap_or(0..0), err.message().trim())
    }
}

/// Every error found so far, with the byte offset it is about: the
/// manifest reports all of them, in file order.
#[derive(Default)]
struct Errors(Vec<(usize, ManifestError)>);

impl Errors {
    fn push(&mut self, at: usize, e: ManifestError) {
        self.0.push((at, e));
    }

    /// The value, or `None` with the error kept (positioned at `at`).
    fn take<T>(&mut self, at: usize, r: Result<T, ManifestError>) -> Option<T> {
        r.map_err(|e| self.push(at, e)).ok()
    }

    /// The errors as one, in file order; `None` when there are none.
    fn into_error(mut self) -> Option<ManifestError> {
        self.0.sort_by_key(|(at, _)| *at);
        let mut errors: Vec<ManifestError> = self.0.into_iter().map(|(_, e)| e).collect();
        match errors.len() {
            0 => None,
            1 => Some(errors.remove(0)),
            _ => Some(ManifestError::Many(errors)),
        }
    }
}

fn int_in(loc: &Locator, v: &Spanned<i64>, key: &str, min: i64, max: i64) -> Result<i64, ManifestError> {
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(loc.at(v.span(), format!("`{key}` must be between {min} and {max}, got {n}")));
    }
    Ok(n)
}

/// An optional whole number in a range, with its default; an error is kept.
fn int_or(
    loc: &Locator,
    errs: &mut Errors,
    v: Option<&Spanned<i64>>,
    (key, min, max, default): (&str, i64, i64, i64),
) -> i64 {
    match v {
        None => default,
        Some(v) => errs.take(v.span().start, int_in(loc, v, key, min, max)).unwrap_or(default),
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = fs_err::read_to_string(path)?;
        Manifest::parse(&text, path)
    }

    /// Parse manifest text; `path` names it in errors and anchors relative
    /// paths. Every problem is reported at once, in file order: TOML syntax
    /// first (nothing else can be trusted then), then the shape (unknown
    /// keys, wrong types) and the values of every key whose shape is right.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let loc = Locator { path, text };
        let mut errs = Errors::default();
        let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
        for e in &syntax {
            errs.push(e.span().map_or(0, |s| s.start), loc.toml_error(e));
        }
        if !syntax.is_empty() {
            return Err(errs.into_error().unwrap_or_else(|| loc.at(0..0, "invalid manifest")));
        }
        for p in schema::check(&doc) {
            errs.push(p.span.start, loc.at(p.span, p.message));
        }
        let raw: RawManifest = match without_misshapen(text) {
            Some(raw) => raw,
            None if !errs.0.is_empty() => {
                return Err(errs.into_error().unwrap_or_else(|| loc.at(0..0, "invalid manifest")));
            }
            None => toml::from_str(text).map_err(|e| loc.toml_error(&e))?,
        };
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() || base == Path::new(".") { p.to_path_buf() } else { base.join(p) }
        };
        let spans = (
            raw.mirror.store.as_ref().map(|s| (s.get_ref().clone(), s.span())),
            raw.publish.to.as_ref().map(|s| (s.get_ref().clone(), s.span())),
        );
        layout(&loc, &mut errs, spans);
        let mirror = load_mirror(&loc, &mut errs, raw.mirror, &resolve);
        let select = load_select(&loc, &mut errs, raw.select, &resolve);
        let advisories = load_advisories(&loc, &mut errs, raw.advisories, &resolve, &mirror.state);
        let policy = load_policy(&loc, &mut errs, raw.policy, &resolve);
        let publish = load_publish(&loc, &mut errs, raw.publish);
        match errs.into_error() {
            Some(e) => Err(e),
            None => Ok(Manifest { mirror, select, advisories, policy, publish }),
        }
    }
}

/// The manifest with every line whose shape is wrong blanked out, so that
/// the values of all the others are checked in the same run (the shape
/// problems are already reported). Blanking keeps every offset, so spans
/// still point into the file as written. `None` when it cannot be made to
/// deserialize (then only the shape problems are reported).
fn without_misshapen(text: &str) -> Option<RawManifest> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..256 {
        let attempt = String::from_utf8_lossy(&bytes).into_owned();
        match toml::from_str::<RawManifest>(&attempt) {
            Ok(raw) => return Some(raw),
            Err(e) => {
                let at = e.span()?.start.min(bytes.len());
                let start = bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let end = bytes[at..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| at + i);
                if bytes[start..end].iter().all(|b| *b == b' ') {
                    return None;
                }
                bytes[start..end].iter_mut().for_each(|b| *b = b' ');
            }
        }
    }
    None
}

type Spot = Option<(String, std::ops::Range<usize>)>;

/// `s3://bucket/prefix` as (bucket, prefix components), if it is one.
fn s3_parts(url: &str) -> Option<(&str, Vec<&str>)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket, prefix.split('/').filter(|c| !c.is_empty()).collect()))
}

/// The bucket two `s3://` URLs share a prefix in (equal, or one inside the
/// other), if they do.
pub fn overlap<'a>(a: &'a str, b: &str) -> Option<&'a str> {
    let ((b1, p1), (b2, p2)) = (s3_parts(a)?, s3_parts(b)?);
    let nested = p1.len() <= p2.len() && p2[..p1.len()] == p1[..] || p2.len() <= p1.len() && p1[..p2.len()] == p2[..];
    (b1 == b2 && nested).then_some(b1)
}

/// Whether two `s3://` URLs name the same bucket prefix: the store and the
/// publish target are then one layout (the store's keys are the published
/// ones, `packages/<project>/<file>`).
pub fn same_prefix(a: &str, b: &str) -> bool {
    s3_parts(a).is_some_and(|pa| s3_parts(b).is_some_and(|pb| pa == pb))
}

/// A store and a publish target nested one inside the other destroy each
/// other: the store's objects are not in the published tree, so the
/// publish would delete them as stale, and the next empty runner would
/// find every file gone. The same prefix is one layout (see
/// [`same_prefix`]); side by side is two.
fn layout(loc: &Locator, errs: &mut Errors, (store, to): (Spot, Spot)) {
    let (Some((store, store_span)), Some((to, to_span))) = (store, to) else { return };
    if same_prefix(&store, &to) {
        return;
    }
    let Some(b1) = overlap(&store, &to) else { return };
    let (line, _) = loc.line_col(to_span.start);
    let message = format!(
        "`[mirror] store = {store:?}` and `[publish] to = {to:?}` (line {line}) overlap in bucket `{b1}`: the publish would \
         delete the store's objects as stale; give them one prefix (one layout: each package stored once) or prefixes side by side (such as s3://{b1}/store and s3://{b1}/site)"
    );
    errs.push(store_span.start, loc.at(store_span, message));
}

fn load_mirror(loc: &Locator, errs: &mut Errors, m: RawMirror, resolve: &dyn Fn(&str) -> PathBuf) -> Mirror {
    let upstream = match &m.upstream {
        None => Url::parse(DEFAULT_UPSTREAM).expect("default upstream is a URL"),
        Some(s) => {
            let parsed = match Url::parse(s.get_ref()) {
                Err(e) => Err(loc.at(s.span(), format!("`upstream` is not a URL: {e}"))),
                Ok(url) if !matches!(url.scheme(), "http" | "https" | "file") => {
                    Err(loc.at(s.span(), "`upstream` must be an http, https or file URL"))
                }
                Ok(mut url) => {
                    if !url.path().ends_with('/') {
                        url.set_path(&format!("{}/", url.path()));
                    }
                    Ok(url)
                }
            };
            errs.take(s.span().start, parsed)
                .unwrap_or_else(|| Url::parse(DEFAULT_UPSTREAM).expect("default upstream is a URL"))
        }
    };
    let base_url = m.base_url.as_ref().and_then(|s| {
        let parsed = match Url::parse(s.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https" | "file") => Ok(url),
            Ok(_) => Err(loc.at(s.span(), "`base_url` must be an http, https or file URL")),
            Err(e) => Err(loc.at(s.span(), format!("`base_url` is not a URL: {e}"))),
        };
        errs.take(s.span().start, parsed).map(|mut url| {
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            url
        })
    });
    Mirror {
        name: m.name.unwrap_or_else(|| "airlock mirror".to_string()),
        upstream,
        output: resolve(m.output.as_deref().unwrap_or("public")),
        state: resolve(m.state.as_deref().unwrap_or(".airlock")),
        store: m.store.as_ref().filter(|v| !v.get_ref().contains("://")).map(|v| resolve(v.get_ref())),
        store_url: m.store.as_ref().filter(|v| v.get_ref().contains("://")).and_then(|v| {
            let text = v.get_ref();
            let parsed = match text.starts_with("s3://") {
                true => Ok(text.clone()),
                false => {
                    Err(loc.at(v.span(), format!("`store = {text:?}`: a store is a directory or s3://bucket/prefix")))
                }
            };
            errs.take(v.span().start, parsed)
        }),
        jobs: int_or(loc, errs, m.jobs.as_ref(), ("jobs", 1, 512, 16)) as usize,
        retries: int_or(loc, errs, m.retries.as_ref(), ("retries", 0, 20, 5)) as u32,
        timeout: Duration::from_secs(int_or(loc, errs, m.timeout.as_ref(), ("timeout", 1, 3600, 60)) as u64),
        allow_missing_hashes: m.allow_missing_hashes.unwrap_or(false),
        keep_runs: int_or(loc, errs, m.keep_runs.as_ref(), ("keep_runs", 0, 1000, 3)) as u32,
        templates: m.templates.as_deref().map(resolve),
        publish_partial: m.publish_partial.unwrap_or(true),
        max_failures: m.max_failures.as_ref().and_then(|v| {
            let parsed = MaxFailures::parse(v.get_ref()).map_err(|e| loc.at(v.span(), format!("`max_failures`: {e}")));
            errs.take(v.span().start, parsed)
        }),
        files: m.files.as_ref().and_then(|v| {
            let parsed = match v.get_ref().as_str() {
                "installed" => Ok(Files::Installed),
                "compatible" => Ok(Files::Compatible),
                other => Err(loc.at(v.span(), format!("`files` is \"installed\" or \"compatible\", not {other:?}"))),
            };
            errs.take(v.span().start, parsed)
        }),
        max_removed: m.max_removed.as_ref().map_or(DEFAULT_MAX_REMOVED, |v| {
            let parsed = MaxFailures::parse(v.get_ref()).map_err(|e| loc.at(v.span(), format!("`max_removed`: {e}")));
            errs.take(v.span().start, parsed).unwrap_or(DEFAULT_MAX_REMOVED)
        }),
        base_url,
        project_pages: m.project_pages.unwrap_or(true),
    }
}

/// `[mirror] max_removed` when unset: a fifth of the served files.
pub const DEFAULT_MAX_REMOVED: MaxFailures = MaxFailures::Percent(20.0);

fn load_advisories(
    loc: &Locator,
    errs: &mut Errors,
    a: RawAdvisories,
    resolve: &dyn Fn(&str) -> PathBuf,
    state: &Path,
) -> Advisories {
    let mut sources = Vec::new();
    for s in a.sources.unwrap_or_default() {
        let text = s.get_ref();
        if text.starts_with("http://") || text.starts_with("https://") {
            let url = Url::parse(text).map_err(|e| loc.at(s.span(), format!("bad source URL: {e}")));
            sources.extend(errs.take(s.span().start, url).map(SourceSpec::Url));
        } else {
            sources.push(SourceSpec::Path(resolve(text)));
        }
    }
    Advisories {
        sources,
        snapshot: a.snapshot.as_deref().map(resolve).unwrap_or_else(|| state.join("advisories.sqlite.zst")),
        max_age_days: int_or(loc, errs, a.max_age_days.as_ref(), ("max_age_days", 0, 36500, 7)) as u32,
    }
}

fn load_publish(loc: &Locator, errs: &mut Errors, p: RawPublish) -> Publish {
    let endpoint = p.endpoint.as_ref().and_then(|e| {
        let url = Url::parse(e.get_ref()).map_err(|err| loc.at(e.span(), format!("`endpoint` is not a URL: {err}")));
        errs.take(e.span().start, url)
    });
    Publish {
        to: p.to.map(Spanned::into_inner),
        endpoint,
        region: p.region,
        path_style: p.path_style.unwrap_or(true),
        delete_after_hours: int_or(loc, errs, p.delete_after_hours.as_ref(), ("delete_after_hours", 0, 24 * 365, 24))
            as u64,
        directory_keys: p.directory_keys.as_ref().map_or(DirectoryKeys::Auto, |v| {
            let parsed =
                match v.get_ref().as_str() {
                    "auto" => Ok(DirectoryKeys::Auto),
                    "always" => Ok(DirectoryKeys::Always),
                    "never" => Ok(DirectoryKeys::Never),
                    other => Err(loc
                        .at(v.span(), format!("`directory_keys` is \"auto\", \"always\" or \"never\", not {other:?}"))),
                };
            errs.take(v.span().start, parsed).unwrap_or_default()
        }),
    }
}

fn load_select(loc: &Locator, errs: &mut Errors, raw: RawSelect, resolve: &dyn Fn(&str) -> PathBuf) -> Select {
    let mut requirements = Vec::new();
    for p in raw.packages.as_ref().map(|p| p.get_ref().as_slice()).unwrap_or_default() {
        let origin = loc.origin(p.span());
        let req = requirements::parse_requirement(p.get_ref(), &origin)
            .map_err(|e| loc.at(p.span(), strip_origin(&e.to_string(), &origin)));
        if let Some(req) = errs.take(p.span().start, req) {
            requirements.push(RequirementLine { requirement: req, origin, constraint: false });
        }
    }
    for r in raw.requirements.as_ref().map(|p| p.get_ref().as_slice()).unwrap_or_default() {
        let file = resolve(r.get_ref());
        let lines = if file.is_file() {
            requirements::read_file(&file).map_err(ManifestError::from)
        } else {
            Err(loc.at(r.span(), format!("requirements file {} does not exist", file.display())))
        };
        requirements.extend(errs.take(r.span().start, lines).unwrap_or_default());
    }
    let mut overrides = BTreeMap::new();
    for (name, table) in raw.project.iter().flatten() {
        let project = ProjectName::new(name.get_ref().clone())
            .map_err(|e| loc.at(name.span(), format!("invalid project name in [select.project]: {e}")));
        let Some(project) = errs.take(name.span().start, project) else { continue };
        let t = table.get_ref();
        for (key, present) in [
            ("packages", t.packages.is_some()),
            ("requirements", t.requirements.is_some()),
            ("project", t.project.is_some()),
            ("installable", t.installable.is_some()),
            ("lockfiles", t.lockfiles.is_some()),
            ("admit", t.admit.is_some()),
        ] {
            if present {
                let message =
                    format!("`{key}` is only allowed in [select], not in [select.project.{}]", name.get_ref());
                errs.push(table.span().start, loc.at(table.span(), message));
            }
        }
        overrides.insert(project, load_override(loc, errs, t));
    }
    if let Some(p) = &raw.publisher {
        let message = "`publisher` names one project's publisher: set it in [select.project.<name>], not in [select]";
        errs.push(p.span().start, loc.at(p.span(), message));
    }
    let mut defaults = SelectOptions::default();
    load_override(loc, errs, &raw).apply(&mut defaults);
    let mut locks = Vec::new();
    for l in raw.lockfiles.iter().flatten() {
        let file = resolve(l.get_ref());
        let lock = if file.is_file() {
            lockfile::LockFile::read(&file).map_err(ManifestError::from)
        } else {
            Err(loc.at(l.span(), format!("lock file {} does not exist", file.display())))
        };
        locks.extend(errs.take(l.span().start, lock));
    }
    let installable = match raw.installable.as_ref().map(|i| (i.get_ref().as_str(), i.span())) {
        None | Some(("warn", _)) => Installable::Warn,
        Some(("fail", _)) => Installable::Fail,
        Some((other, span)) => {
            let message = format!("`installable` expects \"warn\" or \"fail\", got {other:?}");
            errs.push(span.start, loc.at(span, message));
            Installable::Warn
        }
    };
    if requirements.iter().all(|r| r.constraint) && locks.is_empty() && errs.0.is_empty() {
        tracing::warn!(
            "{}: [select] lists no packages, requirements or lock files; nothing will be mirrored",
            loc.path.display()
        );
    }
    let admit = load_admits(loc, errs, raw.admit.as_deref().unwrap_or_default());
    Select { requirements, locks, installable, defaults, overrides, admit }
}

fn strip_origin(message: &str, origin: &str) -> String {
    message.strip_prefix(&format!("{origin}: ")).unwrap_or(message).to_string()
}

/// Parse each item of a list; every bad item is an error of its own.
fn each<T>(
    errs: &mut Errors,
    list: Option<&Vec<Spanned<String>>>,
    parse: impl Fn(&Spanned<String>) -> Result<T, ManifestError>,
) -> Option<Vec<T>> {
    list.map(|items| items.iter().filter_map(|p| errs.take(p.span().start, parse(p))).collect())
}

fn load_override(loc: &Locator, errs: &mut Errors, t: &RawSelect) -> SelectOverride {
    let pythons = each(errs, t.python.as_ref(), |p| {
        PythonTarget::target(p.get_ref()).map_err(|e| loc.at(p.span(), format!("`python`: {e}")))
    });
    let before = errs.0.len();
    let platforms = each(errs, t.platforms.as_ref(), |p| {
        PlatformTarget::target(p.get_ref()).map_err(|e| loc.at(p.span(), format!("`platforms`: {e}")))
    });
    // The forms a platform may take, said once after every platform error.
    if errs.0.len() > before && !errs.0.iter().any(|(at, _)| *at == usize::MAX) {
        errs.push(
            usize::MAX,
            ManifestError::Note { path: loc.path.display().to_string(), message: crate::dist::tags::platform_forms() },
        );
    }
    let latest = t.latest.as_ref().and_then(|l| errs.take(l.span().start, int_in(loc, l, "latest", 0, 1_000_000)));
    let dependencies = t.dependencies.as_ref().and_then(|d| errs.take(d.span().start, dependencies(loc, d)));
    SelectOverride {
        // An empty list means "every", like an omitted key.
        pythons: pythons.map(|v| (!v.is_empty()).then_some(v)),
        platforms: platforms.map(|v| (!v.is_empty()).then_some(v)),
        sdists: t.sdists,
        prereleases: t.prereleases,
        yanked: t.yanked,
        latest: latest.map(|n| n as usize),
        dependencies,
        min_age: t.min_age.as_ref().and_then(|v| errs.take(v.span().start, min_age(loc, v))),
        freeze: t.freeze.as_ref().and_then(|v| errs.take(v.span().start, instant(loc, v, "freeze"))),
        publisher: t.publisher.as_ref().and_then(|v| {
            let pin = crate::provenance::Publisher::parse_pin(v.get_ref())
                .map_err(|e| loc.at(v.span(), format!("`publisher`: {e}")));
            errs.take(v.span().start, pin)
        }),
    }
}

/// `min_age`: `"0"`, or a whole number of minutes, hours or days (`"90m"`,
/// `"12h"`, `"3d"`).
fn min_age(loc: &Locator, v: &Spanned<String>) -> Result<jiff::SignedDuration, ManifestError> {
    let text = v.get_ref().trim();
    let bad = || {
        loc.at(v.span(), format!("`min_age` expects \"0\" or a whole number of m, h or d such as \"3d\", got {text:?}"))
    };
    if text == "0" {
        return Ok(jiff::SignedDuration::ZERO);
    }
    let split = text.len().checked_sub(1).filter(|&i| text.is_char_boundary(i)).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok().filter(|n| (0..=36_500 * 24 * 60).contains(n)).ok_or_else(bad)?;
    let minutes = match unit {
        "m" => n,
        "h" => n * 60,
        "d" => n * 24 * 60,
        _ => return Err(bad()),
    };
    jiff::SignedDuration::try_from_secs_f64(minutes as f64 * 60.0).map_err(|_| bad())
}

/// An instant: a TOML offset date-time, an RFC 3339 string, or a date
/// (its midnight, UTC).
fn instant(loc: &Locator, v: &Spanned<toml::Value>, key: &str) -> Result<jiff::Timestamp, ManifestError> {
    let text = match v.get_ref() {
        toml::Value::String(s) => s.trim().to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => String::new(),
    };
    text.parse::<jiff::Timestamp>()
        .or_else(|_| {
            text.parse::<jiff::civil::Date>()
                .map(|d| d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()))
                .and_then(|r| r)
        })
        .map_err(|_| {
            loc.at(
                v.span(),
                format!("`{key}` expects an instant such as \"2026-03-24T00:00:00Z\" (with its offset), got {text:?}"),
            )
        })
}

/// A date (`expires`): a TOML date or a string such as "2027-01-31".
fn date(loc: &Locator, v: &Spanned<toml::Value>, key: &str) -> Result<jiff::civil::Date, ManifestError> {
    let text = match v.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => String::new(),
    };
    text.parse::<jiff::civil::Date>()
        .map_err(|_| loc.at(v.span(), format!("`{key}` must be a date such as \"2027-01-31\", got {text:?}")))
}

/// `[[select.admit]]`: every key required, each error named.
fn load_admits(loc: &Locator, errs: &mut Errors, raw: &[Spanned<RawAdmit>]) -> Vec<Admit> {
    let mut out = Vec::new();
    for entry in raw {
        let at = entry.span();
        let a = entry.get_ref();
        let mut missing = |key: &str| {
            errs.push(at.start, loc.at(at.clone(), format!("[[select.admit]] needs `{key}`")));
        };
        let (Some(p), Some(v), Some(r), Some(e)) = (&a.project, &a.version, &a.reason, &a.expires) else {
            for (key, present) in [
                ("project", a.project.is_some()),
                ("version", a.version.is_some()),
                ("reason", a.reason.is_some()),
                ("expires", a.expires.is_some()),
            ] {
                if !present {
                    missing(key);
                }
            }
            continue;
        };
        let project = ProjectName::new(p.get_ref().clone())
            .map_err(|e| loc.at(p.span(), format!("[[select.admit]] `project`: {e}")));
        let version = v
            .get_ref()
            .parse::<crate::dist::Version>()
            .map_err(|e| loc.at(v.span(), format!("[[select.admit]] `version`: {e}")));
        if r.get_ref().trim().is_empty() {
            errs.push(r.span().start, loc.at(r.span(), "[[select.admit]] `reason` must say why"));
        }
        let expires = date(loc, e, "expires");
        let (project, version, expires) = (
            errs.take(p.span().start, project),
            errs.take(v.span().start, version),
            errs.take(e.span().start, expires),
        );
        if let (Some(project), Some(version), Some(expires)) = (project, version, expires) {
            out.push(Admit { project, version, reason: r.get_ref().trim().to_string(), expires });
        }
    }
    out
}

fn dependencies(loc: &Locator, v: &Spanned<toml::Value>) -> Result<Dependencies, ManifestError> {
    match v.get_ref() {
        toml::Value::Boolean(false) => Ok(Dependencies::Off),
        toml::Value::Boolean(true) => Ok(Dependencies::Resolve),
        toml::Value::String(s) if s == "resolve" => Ok(Dependencies::Resolve),
        toml::Value::String(s) if s == "all" => Ok(Dependencies::All),
        other => {
            Err(loc.at(v.span(), format!("`dependencies` expects false, true, \"resolve\" or \"all\", got {other}")))
        }
    }
}

fn load_policy(loc: &Locator, errs: &mut Errors, p: RawPolicy, resolve: &dyn Fn(&str) -> PathBuf) -> Policy {
    let mut threshold = |key: &str, v: &Option<Spanned<String>>, default: Threshold| -> Threshold {
        let Some(s) = v else { return default };
        let parsed = s
            .get_ref()
            .parse()
            .map_err(|e: crate::advisories::severity::SeverityError| loc.at(s.span(), format!("`{key}`: {e}")));
        errs.take(s.span().start, parsed).unwrap_or(default)
    };
    let fail_on = threshold("fail_on", &p.fail_on, Threshold::Never);
    let block = threshold("block", &p.block, Threshold::Never);
    let unknown_severity =
        match threshold("unknown_severity", &p.unknown_severity, Threshold::AtOrAbove(Severity::High)) {
            Threshold::AtOrAbove(s) => s,
            Threshold::Never => Severity::Unknown,
        };
    let mut ignore = Vec::new();
    for i in p.ignore {
        let id = i.id.get_ref().trim().to_string();
        if id.is_empty() {
            errs.push(i.id.span().start, loc.at(i.id.span(), "[[policy.ignore]] `id` must not be empty"));
            continue;
        }
        let expires = i.expires.as_ref().and_then(|v| errs.take(v.span().start, date(loc, v, "expires")));
        ignore.push(Ignore { id, reason: i.reason.unwrap_or_default(), expires });
    }
    let malicious = p.malicious.as_ref().map_or(Malicious::Block, |v| {
        let parsed = match v.get_ref().as_str() {
            "block" => Ok(Malicious::Block),
            "report" => Ok(Malicious::Report),
            other => Err(loc.at(v.span(), format!("`malicious` is \"block\" or \"report\", not {other:?}"))),
        };
        errs.take(v.span().start, parsed).unwrap_or(Malicious::Block)
    });
    let upstream_removed = p.upstream_removed.as_ref().map_or(UpstreamRemoved::Withdraw, |v| {
        let parsed = match v.get_ref().as_str() {
            "withdraw" => Ok(UpstreamRemoved::Withdraw),
            "keep" => Ok(UpstreamRemoved::Keep),
            other => Err(loc.at(v.span(), format!("`upstream_removed` is \"withdraw\" or \"keep\", not {other:?}"))),
        };
        errs.take(v.span().start, parsed).unwrap_or_default()
    });
    Policy {
        malicious,
        fail_on,
        block,
        unknown_severity,
        require_advisories: p.require_advisories.unwrap_or(false),
        ignore,
        security_bypass: p.security_bypass.unwrap_or(true),
        upstream_removed,
        provenance: p.provenance.as_ref().map_or(ProvenancePolicy::Verify, |v| {
            let parsed = match v.get_ref().as_str() {
                "off" => Ok(ProvenancePolicy::Off),
                "verify" => Ok(ProvenancePolicy::Verify),
                "require" => Ok(ProvenancePolicy::Require),
                other => {
                    Err(loc.at(v.span(), format!("`provenance` is \"off\", \"verify\" or \"require\", not {other:?}")))
                }
            };
            errs.take(v.span().start, parsed).unwrap_or_default()
        }),
        publisher_pinning: p.publisher_pinning.unwrap_or(true),
        trusted_root: p.trusted_root.as_ref().and_then(|t| {
            let path = resolve(t.get_ref());
            let found = if path.is_file() {
                Ok(path)
            } else {
                Err(loc.at(t.span(), format!("`trusted_root`: {} does not exist", path.display())))
            };
            errs.take(t.span().start, found)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("conf/mirror.toml"))
    }

    #[test]
    fn full_manifest_round() {
        let m = parse(
            r#"
[mirror]
name = "internal"
upstream = "https://example.invalid/simple"
jobs = 4
[select]
packages = ["requests>=2.31", "Zope.Interface"]
python = ["3.11", "3.12"]
platforms = ["manylinux_2_17_x86_64", "win_amd64"]
latest = 2
[select.project."Ruamel.Yaml"]
sdists = false
platforms = []
[policy]
fail_on = "high"
block = "critical"
[[policy.ignore]]
id = "PYSEC-2023-1"
reason = "not reachable"
expires = 2027-01-31
"#,
        )
        .unwrap();
        assert_eq!(m.mirror.upstream.as_str(), "https://example.invalid/simple/");
        assert_eq!(m.mirror.output, Path::new("conf/public"));
        assert_eq!(m.mirror.state, Path::new("conf/.airlock"));
        assert_eq!(m.select.requirements.len(), 2);
        assert_eq!(m.select.requirements[1].origin, "conf/mirror.toml:7");
        let ruamel = m.select.options_for(&"ruamel-yaml".parse().unwrap());
        assert!(!ruamel.sdists && ruamel.tags.platforms.is_none() && ruamel.latest == 2);
        assert_eq!(ruamel.tags.pythons.as_ref().unwrap().len(), 2);
        let other = m.select.options_for(&"requests".parse().unwrap());
        assert!(other.sdists && other.tags.platforms.as_ref().unwrap().len() == 2);
        assert_eq!(m.policy.fail_on, Threshold::AtOrAbove(Severity::High));
        assert_eq!(m.policy.ignore[0].expires.unwrap().to_string(), "2027-01-31");
    }

    #[test]
    fn unknown_keys_name_line_and_suggest() {
        let err = parse("[mirror]\nname = \"x\"\njbos = 3\n").unwrap_err().to_string();
        assert_eq!(err, "conf/mirror.toml:3:1: unknown key `jbos` in [mirror]; did you mean `jobs`?");
        let err = parse("[select]\npackages=[]\nprerelease = true\n").unwrap_err().to_string();
        assert!(err.contains(":3:1:") && err.contains("did you mean `prereleases`?"), "{err}");
        let err = parse("[mirorr]\n").unwrap_err().to_string();
        assert_eq!(err, "conf/mirror.toml:1:2: unknown table [mirorr]; did you mean [mirror]?");
    }

    #[test]
    fn every_error_at_once_in_file_order_in_plain_words() {
        let text = "[selct]\npackages = [\"a\"]\n[mirror]\njobs = \"4\"\nretries = 99\n[select]\nlatest = \"1\"\nplatforms = [\"windows\", 3]\n[policy]\nfail_on = \"severe\"\n";
        let err = parse(text).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        // The shape and the values in one pass: `retries` and `fail_on` too.
        assert_eq!(lines[0], "6 problem(s):", "{err}");
        assert_eq!(lines[1], "  conf/mirror.toml:1:2: unknown table [selct]; did you mean [select]?");
        assert_eq!(lines[2], "  conf/mirror.toml:4:8: `jobs` in [mirror] expects a whole number, got the string \"4\"");
        assert_eq!(lines[3], "  conf/mirror.toml:5:11: `retries` must be between 0 and 20, got 99");
        assert_eq!(
            lines[4],
            "  conf/mirror.toml:7:10: `latest` in [select] expects a whole number, got the string \"1\""
        );
        assert!(
            lines[5].starts_with("  conf/mirror.toml:8:13: `platforms` in [select] expects a list of strings"),
            "{err}"
        );
        assert!(lines[6].contains(":10:11: `fail_on`"), "{err}");
        let text = "[mirror]\nretries = 99\n[select]\nplatforms = [\"windows\", \"win_amd64\", \"linux\"]\n[policy]\nfail_on = \"severe\"\n";
        let err = parse(text).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 6, "{err}");
        assert_eq!(lines[0], "4 problem(s):", "{err}");
        assert!(lines[1].contains(":2:11: `retries` must be between 0 and 20"), "{err}");
        assert!(
            lines[2].ends_with(":4:14: `platforms`: unknown platform \"windows\"; did you mean \"win_amd64\"?"),
            "{err}"
        );
        assert!(lines[3].contains(":4:38: `platforms`: unknown platform \"linux\""), "{err}");
        assert!(lines[4].contains(":6:11: `fail_on`"), "{err}");
        // The forms a platform takes, once, last.
        assert!(lines[5].contains("platform tags are manylinux_") && lines[5].contains("win_amd64"), "{err}");
        assert_eq!(err.matches("platform tags are").count(), 1);
        let err = parse(
            "[select]
python = [\"3.21\", \"3.12\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(":2:11: `python`: \"3.21\" is not a CPython release"), "{err}");
        let err = parse("name = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown key `name` at the top level"), "{err}");
    }

    #[test]
    fn the_gate_keys_parse_and_override_per_project() {
        let m = parse(
            "[select]\npackages = [\"a\", \"b\"]\nmin_age = \"36h\"\n[select.project.b]\nmin_age = \"0\"\nfreeze = 2026-03-24T00:00:00Z\n[[select.admit]]\nproject = \"A\"\nversion = \"1.0\"\nreason = \"reviewed\"\nexpires = 2026-04-01\n[policy]\nupstream_removed = \"keep\"\nsecurity_bypass = false\n",
        )
        .unwrap();
        let a = m.select.options_for(&"a".parse().unwrap());
        assert_eq!(a.min_age, jiff::SignedDuration::from_hours(36));
        let b = m.select.options_for(&"b".parse().unwrap());
        assert!(b.min_age.is_zero() && b.freeze == Some("2026-03-24T00:00:00Z".parse().unwrap()) && b.gated());
        assert_eq!(m.select.admit[0].project.as_str(), "a");
        assert_eq!(m.select.admit[0].expires.to_string(), "2026-04-01");
        assert_eq!(m.policy.upstream_removed, UpstreamRemoved::Keep);
        assert!(!m.policy.security_bypass);
        assert!(!parse("").unwrap().select.defaults.gated());
    }

    #[test]
    fn semantic_errors_name_line() {
        let cases = [
            ("[select]\npackages = [\"ok\", \"bad>>>1\"]\n", ":2:19:"),
            ("[select]\npython = [\"3\"]\n", ":2:11:"),
            ("[select]\nplatforms = [\"many linux\"]\n", ":2:14:"),
            ("[mirror]\njobs = 0\n", ":2:8:"),
            ("[mirror]\nupstream = \"ftp://x/\"\n", ":2:12:"),
            ("[policy]\nfail_on = \"severe\"\n", ":2:11:"),
            ("[select.project.x]\npackages = [\"a\"]\n", "only allowed in [select]"),
            ("[[policy.ignore]]\nid = \"X\"\nexpires = \"soon\"\n", ":3:11:"),
            ("[select]\nrequirements = [\"nope.txt\"]\n", "nope.txt does not exist"),
            ("[mirror\n", ":1:"),
            ("[select]\nmin_age = \"3 days\"\n", ":2:11: `min_age` expects \"0\" or a whole number of m, h or d"),
            ("[select]\nfreeze = \"yesterday\"\n", ":2:10: `freeze` expects an instant"),
            ("[[select.admit]]\nproject = \"a\"\nversion = \"1\"\n", "[[select.admit]] needs `reason`"),
            (
                "[[select.admit]]\nproject = \"a\"\nversion = \"x y\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n",
                ":3:11:",
            ),
            ("[policy]\nupstream_removed = \"drop\"\n", "`upstream_removed` is \"withdraw\" or \"keep\""),
            ("[select.project.x]\nadmit = []\n", "only allowed in [select]"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("conf/mirror.toml:"), "{text:?} -> {err}");
        }
    }
}
