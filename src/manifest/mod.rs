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
    jobs: Option<Spanned<i64>>,
    retries: Option<Spanned<i64>>,
    timeout: Option<Spanned<i64>>,
    allow_missing_hashes: Option<bool>,
    keep_runs: Option<Spanned<i64>>,
    templates: Option<String>,
    publish_partial: Option<bool>,
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
    fail_on: Option<Spanned<String>>,
    block: Option<Spanned<String>>,
    unknown_severity: Option<Spanned<String>>,
    require_advisories: Option<bool>,
    #[serde(default)]
    ignore: Vec<RawIgnore>,
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
    to: Option<String>,
    endpoint: Option<Spanned<String>>,
    region: Option<String>,
    path_style: Option<bool>,
    delete_after_hours: Option<Spanned<i64>>,
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
    pub jobs: usize,
    pub retries: u32,
    pub timeout: Duration,
    /// Accept files whose upstream declares no sha256 (hashed locally instead).
    pub allow_missing_hashes: bool,
    /// Runs a file stays in the store after it left the selection.
    pub keep_runs: u32,
    /// A directory of template overrides.
    pub templates: Option<PathBuf>,
    /// Publish what verified even when the run failed (default: a failed run
    /// leaves the served tree as it was).
    pub publish_partial: bool,
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
}

impl Select {
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
    pub fail_on: Threshold,
    pub block: Threshold,
    pub unknown_severity: Severity,
    pub require_advisories: bool,
    pub ignore: Vec<Ignore>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            fail_on: Threshold::Never,
            block: Threshold::Never,
            unknown_severity: Severity::High,
            require_advisories: false,
            ignore: Vec::new(),
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
}

impl Default for Publish {
    fn default() -> Self {
        Publish { to: None, endpoint: None, region: None, path_style: true, delete_after_hours: 24 }
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

    /// The `[table]` header in force at `offset`, for unknown-key messages.
    fn table_at(&self, offset: usize) -> Option<&str> {
        self.text[..offset.min(self.text.len())].lines().rev().map(str::trim).find(|l| l.starts_with('['))
    }

    fn toml_error(&self, err: &toml::de::Error) -> ManifestError {
        let span = err.span().unwrap_or(0..0);
        let original = err.message().trim();
        let mut message = original.to_string();
        if let Some(rest) = original.strip_prefix("unknown field `") {
            let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let table = self.table_at(span.start).unwrap_or("top level");
            message = format!("unknown key `{key}` in {table}");
            if let Some(best) = suggest(key, &known) {
                message.push_str(&format!("; did you mean `{best}`?"));
            } else if !known.is_empty() {
                message.push_str(&format!("; known keys: {}", known.join(", ")));
            }
        }
        self.at(span, message)
    }
}

fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn int_in(loc: &Locator, v: &Spanned<i64>, key: &str, min: i64, max: i64) -> Result<i64, ManifestError> {
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(loc.at(v.span(), format!("`{key}` must be between {min} and {max}, got {n}")));
    }
    Ok(n)
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = fs_err::read_to_string(path)?;
        Manifest::parse(&text, path)
    }

    /// Parse manifest text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let loc = Locator { path, text };
        let raw: RawManifest = toml::from_str(text).map_err(|e| loc.toml_error(&e))?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() || base == Path::new(".") { p.to_path_buf() } else { base.join(p) }
        };

        let m = raw.mirror;
        let upstream = match &m.upstream {
            None => Url::parse(DEFAULT_UPSTREAM).expect("default upstream is a URL"),
            Some(s) => {
                let mut url =
                    Url::parse(s.get_ref()).map_err(|e| loc.at(s.span(), format!("`upstream` is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https" | "file") {
                    return Err(loc.at(s.span(), "`upstream` must be an http, https or file URL"));
                }
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                url
            }
        };
        let state = resolve(m.state.as_deref().unwrap_or(".airlock"));
        let mirror = Mirror {
            name: m.name.unwrap_or_else(|| "airlock mirror".to_string()),
            upstream,
            output: resolve(m.output.as_deref().unwrap_or("public")),
            jobs: m.jobs.as_ref().map(|j| int_in(&loc, j, "jobs", 1, 512)).transpose()?.unwrap_or(16) as usize,
            retries: m.retries.as_ref().map(|j| int_in(&loc, j, "retries", 0, 20)).transpose()?.unwrap_or(5) as u32,
            timeout: Duration::from_secs(
                m.timeout.as_ref().map(|j| int_in(&loc, j, "timeout", 1, 3600)).transpose()?.unwrap_or(60) as u64,
            ),
            allow_missing_hashes: m.allow_missing_hashes.unwrap_or(false),
            keep_runs: m.keep_runs.as_ref().map(|j| int_in(&loc, j, "keep_runs", 0, 1000)).transpose()?.unwrap_or(3)
                as u32,
            state: state.clone(),
            templates: m.templates.as_deref().map(resolve),
            publish_partial: m.publish_partial.unwrap_or(false),
        };

        let select = load_select(&loc, raw.select, &resolve)?;

        let a = raw.advisories;
        let mut sources = Vec::new();
        for s in a.sources.unwrap_or_default() {
            let text = s.get_ref();
            let spec = if text.starts_with("http://") || text.starts_with("https://") {
                SourceSpec::Url(Url::parse(text).map_err(|e| loc.at(s.span(), format!("bad source URL: {e}")))?)
            } else {
                SourceSpec::Path(resolve(text))
            };
            sources.push(spec);
        }
        let advisories = Advisories {
            sources,
            snapshot: a.snapshot.as_deref().map(resolve).unwrap_or_else(|| state.join("advisories.sqlite.zst")),
            max_age_days: a
                .max_age_days
                .as_ref()
                .map(|d| int_in(&loc, d, "max_age_days", 0, 36500))
                .transpose()?
                .unwrap_or(7) as u32,
        };

        let policy = load_policy(&loc, raw.policy)?;
        Ok(Manifest {
            mirror,
            select,
            advisories,
            policy,
            publish: Publish {
                to: raw.publish.to,
                endpoint: raw
                    .publish
                    .endpoint
                    .as_ref()
                    .map(|e| {
                        Url::parse(e.get_ref())
                            .map_err(|err| loc.at(e.span(), format!("`endpoint` is not a URL: {err}")))
                    })
                    .transpose()?,
                region: raw.publish.region,
                path_style: raw.publish.path_style.unwrap_or(true),
                delete_after_hours: raw
                    .publish
                    .delete_after_hours
                    .as_ref()
                    .map(|h| int_in(&loc, h, "delete_after_hours", 0, 24 * 365))
                    .transpose()?
                    .unwrap_or(24) as u64,
            },
        })
    }
}

fn load_select(loc: &Locator, raw: RawSelect, resolve: &dyn Fn(&str) -> PathBuf) -> Result<Select, ManifestError> {
    let mut requirements = Vec::new();
    for p in raw.packages.as_ref().map(|p| p.get_ref().as_slice()).unwrap_or_default() {
        let origin = loc.origin(p.span());
        let req = requirements::parse_requirement(p.get_ref(), &origin)
            .map_err(|e| loc.at(p.span(), strip_origin(&e.to_string(), &origin)))?;
        requirements.push(RequirementLine { requirement: req, origin, constraint: false });
    }
    for r in raw.requirements.as_ref().map(|p| p.get_ref().as_slice()).unwrap_or_default() {
        let file = resolve(r.get_ref());
        if !file.is_file() {
            return Err(loc.at(r.span(), format!("requirements file {} does not exist", file.display())));
        }
        requirements.extend(requirements::read_file(&file)?);
    }
    let mut overrides = BTreeMap::new();
    for (name, table) in raw.project.iter().flatten() {
        let project = ProjectName::new(name.get_ref().clone())
            .map_err(|e| loc.at(name.span(), format!("invalid project name in [select.project]: {e}")))?;
        let t = table.get_ref();
        for (key, present) in [
            ("packages", t.packages.is_some()),
            ("requirements", t.requirements.is_some()),
            ("project", t.project.is_some()),
            ("installable", t.installable.is_some()),
            ("lockfiles", t.lockfiles.is_some()),
        ] {
            if present {
                return Err(loc.at(
                    table.span(),
                    format!("`{key}` is only allowed in [select], not in [select.project.{}]", name.get_ref()),
                ));
            }
        }
        overrides.insert(project, load_override(loc, t)?);
    }
    let mut defaults = SelectOptions::default();
    load_override(loc, &raw)?.apply(&mut defaults);
    let mut locks = Vec::new();
    for l in raw.lockfiles.iter().flatten() {
        let file = resolve(l.get_ref());
        if !file.is_file() {
            return Err(loc.at(l.span(), format!("lock file {} does not exist", file.display())));
        }
        locks.push(lockfile::LockFile::read(&file)?);
    }
    let installable = match raw.installable.as_ref().map(|i| (i.get_ref().as_str(), i.span())) {
        None | Some(("warn", _)) => Installable::Warn,
        Some(("fail", _)) => Installable::Fail,
        Some((other, span)) => {
            return Err(loc.at(span, format!("`installable` expects \"warn\" or \"fail\", got {other:?}")));
        }
    };
    if requirements.iter().all(|r| r.constraint) && locks.is_empty() {
        tracing::warn!(
            "{}: [select] lists no packages, requirements or lock files; nothing will be mirrored",
            loc.path.display()
        );
    }
    Ok(Select { requirements, locks, installable, defaults, overrides })
}

fn strip_origin(message: &str, origin: &str) -> String {
    message.strip_prefix(&format!("{origin}: ")).unwrap_or(message).to_string()
}

fn load_override(loc: &Locator, t: &RawSelect) -> Result<SelectOverride, ManifestError> {
    let pythons = t
        .python
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|p| p.get_ref().parse::<PythonTarget>().map_err(|e| loc.at(p.span(), e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let platforms = t
        .platforms
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|p| p.get_ref().parse::<PlatformTarget>().map_err(|e| loc.at(p.span(), e.to_string())))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(SelectOverride {
        // An empty list means "every", like an omitted key.
        pythons: pythons.map(|v| (!v.is_empty()).then_some(v)),
        platforms: platforms.map(|v| (!v.is_empty()).then_some(v)),
        sdists: t.sdists,
        prereleases: t.prereleases,
        yanked: t.yanked,
        latest: t.latest.as_ref().map(|l| int_in(loc, l, "latest", 0, 1_000_000)).transpose()?.map(|n| n as usize),
        dependencies: t.dependencies.as_ref().map(|d| dependencies(loc, d)).transpose()?,
    })
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

fn load_policy(loc: &Locator, p: RawPolicy) -> Result<Policy, ManifestError> {
    let threshold = |v: &Option<Spanned<String>>, default: Threshold| -> Result<Threshold, ManifestError> {
        match v {
            None => Ok(default),
            Some(s) => s
                .get_ref()
                .parse()
                .map_err(|e: crate::advisories::severity::SeverityError| loc.at(s.span(), e.to_string())),
        }
    };
    let unknown = match threshold(&p.unknown_severity, Threshold::AtOrAbove(Severity::High))? {
        Threshold::AtOrAbove(s) => s,
        Threshold::Never => Severity::Unknown,
    };
    let mut ignore = Vec::new();
    for i in p.ignore {
        let id = i.id.get_ref().trim().to_string();
        if id.is_empty() {
            return Err(loc.at(i.id.span(), "[[policy.ignore]] `id` must not be empty"));
        }
        let expires = match &i.expires {
            None => None,
            Some(v) => {
                let text = match v.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Datetime(d) => d.to_string(),
                    _ => String::new(),
                };
                Some(text.parse::<jiff::civil::Date>().map_err(|_| {
                    loc.at(v.span(), format!("`expires` must be a date such as \"2027-01-31\", got {text:?}"))
                })?)
            }
        };
        ignore.push(Ignore { id, reason: i.reason.unwrap_or_default(), expires });
    }
    Ok(Policy {
        fail_on: threshold(&p.fail_on, Threshold::Never)?,
        block: threshold(&p.block, Threshold::Never)?,
        unknown_severity: unknown,
        require_advisories: p.require_advisories.unwrap_or(false),
        ignore,
    })
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
        assert!(err.contains("did you mean `mirror`?"), "{err}");
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
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want) && err.starts_with("conf/mirror.toml"), "{text:?} -> {err}");
        }
    }
}
