//! Command-line interface: the commands of DESIGN.md, each with an example
//! in its `--help`, dispatched to the library.

use crate::util::run_id::RunId;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::exit::Exit;
use crate::manifest::Manifest;
use crate::util::ui::{Color, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Build a verified, audited, static Python package mirror",
    after_help = "Examples:\n  airlock build -c mirror.toml\n  airlock plan\n  pip install --index-url http://HOST/simple/ requests\n\nExit codes: 0 success, 1 run failed, 2 usage, 3 policy breach, 4 advisory data missing or stale."
)]
pub struct Cli {
    /// More output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
    /// Less output: warnings and errors only.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub quiet: u8,
    /// Colored output.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true, help_heading = "Global options")]
    pub color: Color,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, help_heading = "Global options")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The manifest.
    #[arg(short = 'c', long = "config", default_value = "mirror.toml", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan, fetch, verify, audit, render and publish atomically.
    #[command(
        after_help = "Example:\n  airlock build -c mirror.toml --jobs 8\n  airlock build --offline   # rebuild from the store only"
    )]
    Build {
        #[command(flatten)]
        config: ConfigArg,
        /// Publish here instead of [mirror].output.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Parallel transfers (overrides [mirror].jobs).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
        jobs: Option<u16>,
        /// Use only stored upstream views and artifacts; no network.
        #[arg(long)]
        offline: bool,
        /// Publish even when the run unlists more of the served files than
        /// `[mirror] max_removed` allows (default 20%).
        #[arg(long)]
        allow_removals: bool,
    },
    /// Show what build would add, keep and remove, touching nothing.
    #[command(
        after_help = "Example:\n  airlock plan -c mirror.toml\n  airlock plan -o plan.json   # for `airlock fetch --plan plan.json --shard K/N`"
    )]
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// Use only stored upstream views; no network.
        #[arg(long)]
        offline: bool,
        /// Also write the files to fetch (with their sha256 and size) to
        /// this file, for sharded fetches; the upstream views it planned
        /// from are stored in the state for the `build --offline` after.
        #[arg(short = 'o', long = "output", value_name = "PLAN.json")]
        output: Option<PathBuf>,
    },
    /// Fetch and verify one shard of a plan into the store.
    #[command(
        after_help = "Example:\n  airlock plan -o plan.json\n  airlock fetch --plan plan.json --shard 0/4   # ... through 3/4, anywhere, at once\n  airlock build --offline                      # render and publish from the store\n\nIn a Kubernetes Indexed Job, --shard defaults to $JOB_COMPLETION_INDEX/$AIRLOCK_SHARDS."
    )]
    Fetch {
        #[command(flatten)]
        config: ConfigArg,
        /// A plan written by `airlock plan -o`.
        #[arg(long, value_name = "PLAN.json")]
        plan: PathBuf,
        /// Shard K of N, 0-based (default: $JOB_COMPLETION_INDEX of
        /// $AIRLOCK_SHARDS, else the whole plan).
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
    },
    /// Re-hash every published artifact against the state.
    #[command(after_help = "Example:\n  airlock verify\n  airlock verify --repair   # refetch or relink what is wrong")]
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Refetch missing or corrupt artifacts and relink them.
        #[arg(long)]
        repair: bool,
    },
    /// Re-join the mirror with the advisory snapshot and re-render; fetches no packages.
    #[command(after_help = "Example:\n  airlock advisories update && airlock audit")]
    Audit {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// A static simple index for a local directory of wheels and sdists.
    #[command(
        after_help = "Example:\n  airlock index dist/ --out public\n  pip install --index-url file://$PWD/public/simple/ mypkg"
    )]
    Index {
        /// Directory to scan (recursively).
        dir: PathBuf,
        /// Where to publish the tree.
        #[arg(long, default_value = "public", value_name = "DIR")]
        out: PathBuf,
        /// Name shown on the landing page.
        #[arg(long, default_value = "local index")]
        name: String,
        /// Directory of template overrides.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
    /// OSV advisory snapshots.
    #[command(subcommand)]
    Advisories(AdvisoriesCommand),
    /// Audit requirements, lock files or installed environments offline.
    #[command(
        after_help = "Examples:\n  airlock scan --index-url https://pypi.internal/simple/ -r requirements.txt\n  airlock scan --snapshot advisories.sqlite.zst --lock uv.lock --format json -o audit.json\n  airlock scan -c mirror.toml --path .venv --fail-on high\n\nExit 3 when a finding is at or above --fail-on (default: any), like pip-audit."
    )]
    Scan {
        /// The snapshot to audit against.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["index_url"])]
        snapshot: Option<PathBuf>,
        /// A mirror (its root or simple/ URL, http(s), file:// or a
        /// directory): the snapshot it publishes.
        #[arg(long, value_name = "URL")]
        index_url: Option<String>,
        /// The manifest: its snapshot and [policy] ignores (the default
        /// without --snapshot and --index-url).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
        /// A pip requirements file (pinned `==` lines are audited).
        #[arg(short = 'r', long = "requirement", value_name = "FILE")]
        requirements: Vec<PathBuf>,
        /// A lock file: pylock.toml or uv.lock.
        #[arg(long = "lock", value_name = "FILE")]
        locks: Vec<PathBuf>,
        /// An installed environment: a venv or a site-packages directory.
        #[arg(long = "path", value_name = "DIR")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "columns")]
        format: crate::commands::scan::Format,
        /// Exit 3 on a finding at or above this severity: any (default),
        /// low, medium, high, critical, or none.
        #[arg(long, value_name = "SEVERITY", default_value = "any")]
        fail_on: String,
        /// Write the report here instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the published tree (or what changed) as a .tar.zst bundle.
    #[command(
        after_help = "Example:\n  airlock export -o mirror-full.tar.zst --full\n  airlock export -o nightly.tar.zst          # since the last export"
    )]
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// The bundle to write (zstd-compressed tar with a verified manifest).
        #[arg(short = 'o', long = "output", value_name = "FILE.tar.zst")]
        output: PathBuf,
        /// Everything, not only what changed.
        #[arg(long, conflicts_with = "since")]
        full: bool,
        /// What changed after this run.
        #[arg(long, value_name = "RUN")]
        since: Option<i64>,
    },
    /// Verify a bundle and publish it atomically into a directory.
    #[command(after_help = "Example:\n  airlock import mirror-full.tar.zst --into /srv/pypi")]
    Import {
        /// A bundle written by `airlock export`.
        bundle: PathBuf,
        /// The directory to publish into (a full bundle creates it; an
        /// incremental one applies on top of the tree it was made after).
        #[arg(long, value_name = "DIR")]
        into: PathBuf,
        /// Import even when the bundle unlists more than a fifth of the files the directory serves.
        #[arg(long)]
        allow_removals: bool,
    },
    /// Copy the published tree to S3 or another directory.
    #[command(
        after_help = "Example:\n  airlock publish --to s3://my-bucket/pypi\n  airlock publish --to /srv/www/pypi"
    )]
    Publish {
        #[command(flatten)]
        config: ConfigArg,
        /// s3://bucket/prefix or a directory (overrides [publish].to).
        #[arg(long, value_name = "TARGET")]
        to: Option<String>,
    },
    /// Serve a tree over HTTP with PEP 691 content negotiation (127.0.0.1 unless --bind).
    #[command(
        after_help = "Examples:\n  airlock serve public --port 8000\n  pip install --index-url http://127.0.0.1:8000/simple/ requests\n  airlock serve /srv/pypi/public --bind 0.0.0.0 --port 8080   # for a LAN (an air gap's index)\n  airlock serve /srv/pypi/public --nginx-config --port 80 > /etc/nginx/conf.d/airlock.conf\n\nEvery request is logged (one line: peer, request, status, bytes, time); -q hides them."
    )]
    Serve {
        /// The published tree to serve (`[mirror] output`).
        #[arg(default_value = "public")]
        dir: PathBuf,
        /// Port (0 picks a free one and prints it).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Address to listen on: 127.0.0.1 (default), 0.0.0.0 or :: for every interface.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Print an nginx configuration serving DIR the same way, and exit.
        #[arg(long)]
        nginx_config: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdvisoriesCommand {
    /// Build a snapshot from OSV sources (directories of .json/.yaml, .zip archives).
    #[command(after_help = "Example:\n  airlock advisories build advisory-database/vulns -o advisories.sqlite.zst")]
    Build {
        /// OSV sources: directories of .json/.yaml records, .zip archives
        /// (such as osv.dev's PyPI/all.zip), or their URLs.
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<String>,
        /// The snapshot to write (zstd-compressed SQLite).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Refresh the manifest's snapshot from its [advisories].sources.
    #[command(
        after_help = "Example:\n  airlock advisories update -c mirror.toml\n\nA source with no records never builds or replaces a snapshot; a new snapshot with\nless than half the advisories of the one it replaces is refused unless --allow-shrink."
    )]
    Update {
        #[command(flatten)]
        config: ConfigArg,
        /// Replace the snapshot even when the new one has less than half its advisories.
        #[arg(long)]
        allow_shrink: bool,
    },
    /// Sources, build time, counts and sha256 of a snapshot.
    #[command(after_help = "Example:\n  airlock advisories info .airlock/advisories.sqlite.zst")]
    Info {
        /// The snapshot to describe.
        file: PathBuf,
    },
    /// Advisories affecting NAME VERSION, or JSON lines for "NAME VERSION" lines on stdin.
    #[command(
        after_help = "Examples:\n  airlock advisories check --snapshot adv.sqlite.zst jinja2 2.10\n  airlock advisories check -c mirror.toml jinja2 2.10\n  printf 'jinja2 2.10\\nurllib3 1.24.1\\n' | airlock advisories check --snapshot adv.sqlite.zst"
    )]
    Check {
        /// The snapshot to read (default: the one the manifest names).
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        /// The manifest whose [advisories].snapshot to read, without --snapshot.
        #[arg(short = 'c', long = "config", default_value = "mirror.toml", value_name = "FILE")]
        config: PathBuf,
        /// A project name (with VERSION).
        name: Option<String>,
        /// A version of NAME.
        version: Option<String>,
    },
}

/// Print a run's outcome and turn it into the exit code. `audit` prints
/// what it found; `build` what it fetched, then what the audit found.
fn finish(
    outcome: crate::pipeline::BuildOutcome,
    command: crate::run::Command,
    output: &std::path::Path,
) -> Result<Exit, Error> {
    // Each failure was said as it happened: here only what they add up to.
    let failures: Vec<_> = outcome.failures().collect();
    if !failures.is_empty() {
        let mut by_code: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
        for f in &failures {
            let what = f.filename().map_or_else(|| f.project().to_string(), |n| format!("{}/{n}", f.project()));
            by_code.entry(f.code()).or_default().push(what);
        }
        let parts: Vec<String> = by_code
            .iter()
            .map(|(code, items)| {
                let shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
                let more = if items.len() > 3 { format!(" and {} more", items.len() - 3) } else { String::new() };
                format!("{code}: {}{more}", shown.join(", "))
            })
            .collect();
        tracing::error!(
            "{} failure(s) ({}); nothing unverified was published (reports/summary.md lists them)",
            failures.len(),
            parts.join("; ")
        );
    }
    let report = output.join("reports/security.html");
    if let Some(f) = &outcome.findings {
        print_findings(outcome.run, f, &report, command == crate::run::Command::Audit);
    } else if command == crate::run::Command::Audit {
        tracing::info!("run {}: nothing changed; the findings are those of {}", outcome.run, report.display());
    }
    if outcome.exit == Exit::Policy {
        match &outcome.findings {
            Some(f) => {
                const SHOWN: usize = 10;
                for b in f.breaches.iter().take(SHOWN) {
                    tracing::error!("policy: {b}");
                }
                if f.breaches.len() > SHOWN {
                    tracing::error!("policy: and {} more", f.breaches.len() - SHOWN);
                }
                tracing::error!(
                    "policy breach: {} finding(s) at or above fail_on = {} (see {}); exit 3",
                    f.breaches.len(),
                    f.fail_on,
                    report.display()
                );
            }
            None => tracing::error!("policy breach, unchanged: see {}; exit 3", report.display()),
        }
    }
    // The summary line comes last. Its figures are fields too: `--log-format json` gives them to log
    // shippers as numbers, with no pattern to parse.
    let s = &outcome.summary;
    let text = if command == crate::run::Command::Audit { "audit finished".to_string() } else { s.to_string() };
    let t = s.upstream.unwrap_or_default();
    tracing::info!(
        run = outcome.run.0,
        command = command.as_str(),
        upstream_requests = t.requests,
        not_modified = t.not_modified,
        upstream_bytes = t.bytes,
        added = s.added,
        kept = s.kept,
        removed = s.unlisted,
        pruned = s.pruned,
        failed = s.failed,
        bytes = s.bytes,
        seconds = s.elapsed.as_secs_f64(),
        published = s.published,
        exit_code = outcome.exit as u8,
        "run {}: {text}",
        outcome.run
    );
    Ok(outcome.exit)
}

/// The audit in a few lines: counts by severity, the worst versions, where
/// the report is. The lines a `build` prints are fewer: it has its own.
fn print_findings(run: RunId, f: &crate::audit::Findings, report: &std::path::Path, all: bool) {
    use crate::audit::Status;
    // A build without a snapshot said so when it started.
    if !all && f.status == Status::Unaudited {
        return;
    }
    let c = &f.counts;
    let status = match f.status {
        Status::Audited => "audited",
        Status::Stale => "audited with a STALE snapshot",
        Status::Unaudited => "UNAUDITED (no advisory snapshot): nothing was checked",
    };
    tracing::info!(
        "run {run}: {status}: {} version(s) of {} project(s), {} vulnerable, {} blocked; findings: critical {}, high {}, medium {}, low {}, unknown {} ({} ignored)",
        c.versions,
        c.projects,
        c.vulnerable_versions,
        c.blocked_versions,
        c.critical,
        c.high,
        c.medium,
        c.low,
        c.unknown,
        c.ignored
    );
    const TOP: usize = 10;
    let shown = if all { TOP } else { 3 };
    for t in f.top.iter().take(shown) {
        let ids = if t.ids.len() > 3 {
            format!("{} and {} more", t.ids[..3].join(", "), t.ids.len() - 3)
        } else {
            t.ids.join(", ")
        };
        let blocked = if t.blocked { " (blocked)" } else { "" };
        let worst = match (t.malicious, t.worst_unrated) {
            (true, _) => "MALICIOUS".to_string(),
            (false, true) => format!("unknown, ranks as {}", t.worst),
            (false, false) => t.worst.to_string(),
        };
        tracing::info!("  {} {}: {worst}{blocked}: {ids}", t.project, t.version);
    }
    if f.top.len() > shown {
        tracing::info!("  and {} more vulnerable version(s)", f.top.len() - shown);
    }
    if all || !f.top.is_empty() {
        tracing::info!("report: {}", report.display());
    }
}

fn load(config: &ConfigArg) -> Result<Manifest, Error> {
    Ok(Manifest::load(&config.config)?)
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    match cli.command {
        Command::Build { config, out, jobs, offline, allow_removals } => {
            let manifest = load(&config)?;
            let opts = crate::pipeline::BuildOptions { offline, allow_removals, jobs: jobs.map(usize::from), out };
            let output = opts.out.clone().unwrap_or_else(|| manifest.mirror.output.clone());
            finish(crate::pipeline::build(&manifest, &opts)?, crate::run::Command::Build, &output)
        }
        Command::Audit { config } => {
            let manifest = load(&config)?;
            finish(crate::pipeline::audit(&manifest)?, crate::run::Command::Audit, &manifest.mirror.output)
        }
        Command::Plan { config, offline, output } => {
            let manifest = load(&config)?;
            crate::commands::plan::plan(&manifest, offline, output.as_deref())
        }
        Command::Fetch { config, plan, shard } => {
            let manifest = load(&config)?;
            let shard = crate::commands::shard::Shard::resolve(shard.as_deref())?;
            crate::commands::shard::fetch(&manifest, &plan, shard)
        }
        Command::Index { dir, out, name, templates } => {
            let outcome = crate::index::local::index_dir(&dir, &out, &name, templates.as_deref())?;
            tracing::info!(
                "indexed {} file(s) of {} project(s) into {} ({} skipped)",
                outcome.files,
                outcome.projects,
                out.display(),
                outcome.skipped.len()
            );
            Ok(Exit::Success)
        }
        Command::Export { config, output, full, since } => {
            let manifest = load(&config)?;
            let since = match (full, since) {
                (true, _) => crate::bundle::Since::Full,
                (false, Some(r)) => crate::bundle::Since::Run(RunId(r)),
                (false, None) => crate::bundle::Since::LastExport,
            };
            // One layout: the packages are in the bucket, not in the tree.
            let bucket = crate::pipeline::remote::open(&manifest.mirror, &manifest.publish)?.filter(|r| r.one_layout());
            let trusted_root = manifest.policy.trusted_root.as_deref();
            if let Some(r) = crate::bundle::export(&manifest.mirror, (trusted_root, bucket.as_ref()), &output, since)? {
                tracing::info!(
                    "wrote {} ({}): runs {} to {}, {} file(s) ({}), {} deletion(s)",
                    output.display(),
                    crate::util::ui::human_bytes(r.bundle_bytes),
                    r.from_run.map_or("start".into(), |f| f.to_string()),
                    r.to_run,
                    r.members,
                    crate::util::ui::human_bytes(r.bytes),
                    r.deleted
                );
            }
            Ok(Exit::Success)
        }
        Command::Import { bundle, into, allow_removals } => {
            let r = crate::bundle::import(&bundle, &into, (allow_removals, crate::manifest::DEFAULT_MAX_REMOVED))?;
            tracing::info!(
                "imported {}: {} now serves run {} ({} file(s) from the bundle, {} kept, {} deleted)",
                bundle.display(),
                into.display(),
                r.to_run,
                r.members,
                r.linked,
                r.deleted
            );
            Ok(Exit::Success)
        }
        Command::Publish { config, to } => publish(&config, to),
        Command::Verify { config, repair } => {
            let manifest = load(&config)?;
            crate::commands::verify::verify(&manifest, repair)
        }
        Command::Serve { dir, port, bind, nginx_config: true } => {
            let root = std::path::absolute(&dir)?;
            let listen = match (bind.is_unspecified(), port) {
                (true, p) => p.to_string(),
                (false, p) if bind.is_ipv6() => format!("[{bind}]:{p}"),
                (false, p) => format!("{bind}:{p}"),
            };
            print!("{}", crate::commands::nginx::config(&root, &listen));
            Ok(Exit::Success)
        }
        Command::Serve { dir, port, bind, nginx_config: false } => {
            crate::commands::serve::serve(&dir, bind, port)?;
            Ok(Exit::Success)
        }
        Command::Advisories(cmd) => advisories(cmd),
        Command::Scan { snapshot, index_url, config, requirements, locks, paths, format, fail_on, output } => scan(
            snapshot,
            index_url,
            config,
            crate::commands::scan::Inputs { requirements, locks, paths },
            format,
            &fail_on,
            output,
        ),
    }
}

/// `airlock scan`: the snapshot chosen from the flags, `--fail-on` parsed.
fn scan(
    snapshot: Option<PathBuf>,
    index_url: Option<String>,
    config: Option<PathBuf>,
    inputs: crate::commands::scan::Inputs,
    format: crate::commands::scan::Format,
    fail_on: &str,
    output: Option<PathBuf>,
) -> Result<Exit, Error> {
    use crate::commands::scan::Source;
    let source = match (snapshot, index_url, config) {
        (Some(s), _, _) => Source::File(s),
        (None, Some(u), _) => Source::Index(u),
        (None, None, Some(c)) => Source::Manifest(c),
        (None, None, None) if std::path::Path::new("mirror.toml").is_file() => {
            Source::Manifest(PathBuf::from("mirror.toml"))
        }
        (None, None, None) => {
            return Err(Error::Usage(
                "nothing to scan against: give --snapshot FILE, --index-url URL (a mirror: the snapshot it publishes), or -c mirror.toml (there is none here)".into(),
            ));
        }
    };
    let fail_on = match fail_on {
        "any" => crate::advisories::severity::Threshold::AtOrAbove(crate::advisories::severity::Severity::Unknown),
        other => other.parse().map_err(|e| Error::Usage(format!("--fail-on: {e}, or any")))?,
    };
    crate::commands::scan::scan(&source, &inputs, format, fail_on, output.as_deref())
}

/// `airlock publish`: the served tree to S3 or another directory.
fn publish(config: &ConfigArg, to: Option<String>) -> Result<Exit, Error> {
    let manifest = load(config)?;
    let to = to.or_else(|| manifest.publish.to.clone()).ok_or_else(|| {
        Error::Usage("nowhere to publish: give --to s3://bucket/prefix or a directory, or set [publish] to".into())
    })?;
    if let Some(bucket) = manifest
        .mirror
        .store_url
        .as_deref()
        .filter(|s| !crate::manifest::same_prefix(s, &to))
        .and_then(|s| crate::manifest::overlap(s, &to))
    {
        return Err(Error::Usage(format!(
            "--to {to} overlaps `[mirror] store` in bucket `{bucket}`: the publish would delete the store's objects as stale; publish to the store's own prefix (one layout) or beside it"
        )));
    }
    let dest: crate::publish::Destination = to.parse()?;
    let target = crate::publish::target(&dest, &manifest.publish, manifest.mirror.jobs)?;
    let m = &manifest.mirror;
    let session = crate::run::Session::open(m, &m.output, crate::run::Command::Publish)?;
    let served = session.served()?;
    let report = target.publish(&served.root, &served.listing, served.run)?;
    tracing::info!("{}: {report}", target.describe());
    for path in &report.uploaded {
        tracing::debug!("uploaded {path}");
    }
    Ok(Exit::Success)
}

fn advisories(cmd: AdvisoriesCommand) -> Result<Exit, Error> {
    use crate::advisories::{Snapshot, ops};
    match cmd {
        AdvisoriesCommand::Build { sources, output } => {
            let specs: Vec<_> = sources.iter().map(|s| ops::parse_spec(s)).collect();
            let cache = tempfile::tempdir()?;
            let stats = ops::build(&specs, &output, cache.path())?;
            ops::print_stats(&stats, &output);
            Ok(Exit::Success)
        }
        AdvisoriesCommand::Update { config, allow_shrink } => {
            let manifest = load(&config)?;
            let a = &manifest.advisories;
            let cache = manifest.mirror.state.join("advisory-sources");
            let stats = ops::update(&a.sources, &a.snapshot, &cache, allow_shrink)?;
            ops::print_stats(&stats, &manifest.advisories.snapshot);
            Ok(Exit::Success)
        }
        AdvisoriesCommand::Info { file } => {
            ops::info(&file, &mut std::io::stdout().lock())?;
            Ok(Exit::Success)
        }
        AdvisoriesCommand::Check { snapshot, config, name, version } => {
            let snapshot = match snapshot {
                Some(s) => s,
                None => Manifest::load(&config)?.advisories.snapshot,
            };
            let snap = Snapshot::open_cached(&snapshot).map_err(crate::advisories::AdvisoryError::from)?;
            match (name, version) {
                (Some(n), Some(v)) => ops::check_one(&snap, &n, &v, &mut std::io::stdout().lock())?,
                (None, None) => {
                    ops::check_batch(&snap, std::io::stdin().lock(), std::io::stdout().lock())?;
                }
                _ => {
                    return Err(Error::Usage("give both NAME and VERSION, or neither to read lines from stdin".into()));
                }
            }
            Ok(Exit::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every command says what it is in `--help`.
    #[test]
    fn every_argument_has_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "airlock", &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:?}");
    }
}
