//! Stages: audit, render, publish. Every publishing command shares them
//! (`build`, `audit`, `verify --repair`): the keys of what a tree would be
//! rendered from (so an unchanged run keeps the served tree without the
//! join or rendering), the inventory of the store, the security join and
//! the policy's blocking, rendering of the index and the reports into a
//! staged tree, and the atomic swap with the tree's listing recorded.

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use super::installable;
use crate::audit::report::{self, Inputs};
use crate::audit::{Audit, LoadedSnapshot, MirrorInfo};
use crate::diagnostics::{Diagnostic, Diagnostics, Tampering};
use crate::dist::names::ProjectName;
use crate::error::Error;
use crate::exit::Exit;
use crate::index::{EnvStatus, SiteFile, SiteInfo, SiteRender, Templates, Unselected};
use crate::manifest::Installable;
use crate::manifest::Policy;
use crate::run::Run;
use crate::select::env::TargetEnv;
use crate::select::installable::Installability;
use crate::store::state::{Artifact, Listed, StateError, TreeKeys};
use crate::tree::{Staged, TreeEntry};
use crate::util::hashing::{HashingWriter, Sha256};

/// What the publish stages need: the parts of the manifest a tree is
/// rendered from.
pub struct Publishing<'a> {
    pub mirror: MirrorInfo,
    pub policy: &'a Policy,
    /// What the installability check checks.
    pub check: installable::CheckInputs<'a>,
    pub loaded: &'a LoadedSnapshot,
    /// The snapshot file the audit used, published as
    /// `reports/advisories.sqlite.zst` so that `airlock scan` inside an air
    /// gap audits against exactly the mirror's data.
    pub snapshot_file: Option<&'a std::path::Path>,
    pub templates: &'a Templates,
    /// Publish even when nothing seems changed (`verify --repair`: the store
    /// changed under equal hashes).
    pub force: bool,
    /// Where the tree is served (`[mirror] base_url` + `simple/`).
    pub index_url: Option<String>,
    /// `[mirror] base_url`: the rewritten locks name URLs under it.
    pub base_url: Option<url::Url>,
    /// Join with the snapshot even when nothing changed (`audit`: its
    /// findings are what it prints); the tree is still kept when it would
    /// come out identical.
    pub always_join: bool,
    /// How many of the served tree's listed files a new tree may unlist.
    pub max_removed: crate::manifest::MaxFailures,
    /// `--allow-removals`: publish whatever the new tree unlists.
    pub allow_removals: bool,
    /// Where recorded files gone from the store come back from.
    pub repair: Option<&'a super::repair::Repairer<'a>>,
    /// `[mirror] project_pages`: the pages for people under `projects/`.
    pub project_pages: bool,
}

/// What publishing left served.
#[derive(Debug)]
pub struct Published {
    /// The tree served after the stage (none before the first publish).
    pub tree: Option<PathBuf>,
    /// A new tree was published.
    pub changed: bool,
    /// The audit's verdict (success or policy breach).
    pub exit: Exit,
    /// What the audit found, when it ran this time.
    pub findings: Option<crate::audit::Findings>,
}

/// The tree served now, with the keys it was rendered from.
struct Served {
    run: RunId,
    dir: PathBuf,
    keys: TreeKeys,
}

fn served(run: &Run) -> Result<Option<Served>, StateError> {
    let (Some(published), Some(dir)) = (run.state.last_published_run()?, run.target.current()) else {
        return Ok(None);
    };
    if !dir.is_dir() {
        return Ok(None);
    }
    Ok(run.state.tree_keys(published)?.map(|keys| Served { run: published, dir, keys }))
}

/// Digest of the diagnostics a tree's reports show.
fn diagnostics_digest(diags: &[Diagnostic]) -> String {
    let mut h = HashingWriter::new(std::io::sink());
    for d in diags {
        use std::io::Write;
        // Writing into a sink cannot fail.
        let _ = writeln!(h, "{}\t{}\t{d}", d.level().as_str(), d.code());
    }
    h.finish().1.hex()
}

/// The key of every input of a tree but the selection: the snapshot, the
/// policy (and which ignores have expired today), templates, naming,
/// tampering and the run's diagnostics. With an unchanged selection, equal
/// inputs mean an equal tree, decided without reading the store.
fn inputs_key(p: &Publishing<'_>, tampering: &[Tampering], diags: &[Diagnostic]) -> String {
    let today = crate::util::clock::output_time().to_zoned(jiff::tz::TimeZone::UTC).date();
    let expired: Vec<bool> = p.policy.ignore.iter().map(|i| i.expires.is_some_and(|e| e < today)).collect();
    // Written out field by field: no `Debug` of foreign types, whose format
    // may change under a dependency bump and republish every tree. What
    // the lock files name (`check.locked`) follows from the selection.
    let tampered: Vec<String> = tampering
        .iter()
        .map(|t| format!("{}/{} {} {} {}-{}", t.project, t.filename, t.mirrored, t.upstream, t.first_run, t.last_run))
        .collect();
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\nexpired={expired:?}\n{:?}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\npages={}\n",
        env!("CARGO_PKG_VERSION"),
        p.templates.digest(),
        p.mirror.name,
        p.mirror.upstream.as_deref().unwrap_or_default(),
        p.policy.cache_key(),
        p.loaded.status,
        p.loaded.banner.as_deref().unwrap_or_default(),
        p.loaded.info.as_ref().map(|i| i.sha256.as_str()).unwrap_or_default(),
        tampered.join(";"),
        diagnostics_digest(diags),
        p.check.select.cache_key(),
        p.check.envs.iter().map(TargetEnv::name).collect::<Vec<_>>().join(","),
        p.base_url.as_ref().map(url::Url::as_str).unwrap_or_default(),
        p.project_pages,
    );
    Sha256::of(text.as_bytes()).hex()
}

/// The key of everything a tree is rendered from, but the clock: equal keys
/// give equal trees (up to `generated_at`), so the served one can stay.
/// `files` is the digest of the inventory (taken before blocking: what is
/// blocked follows from the files, the snapshot and the policy, all keyed).
fn tree_key(files: &Sha256, inputs: Inputs<'_>, inputs_key: &str) -> String {
    use std::io::Write;
    // Streamed into the hasher: no copy of a large mirror's report in memory.
    let mut h = HashingWriter::new(std::io::sink());
    let _ = writeln!(h, "{inputs_key}\n{files}");
    let mut report = report::json::report(inputs);
    report.generated_at = String::new();
    let _ = serde_json::to_writer(&mut h, &report);
    let _ = h.write_all(&report::installability::render(inputs.installability, &jiff::Timestamp::UNIX_EPOCH));
    h.finish().1.hex()
}

/// The verified publisher of every attested file the pins let in, and
/// what they come to over the audited versions.
fn provenance_of(
    state: &crate::store::state::State,
    audit: &Audit,
) -> Result<(report::provenance::Publishers, report::provenance::ProvenanceView), StateError> {
    let mut out = report::provenance::Publishers::new();
    for a in state.attested(false)?.into_iter().filter(|a| !a.held) {
        out.entry(a.project).or_default().insert(a.filename, a.publisher);
    }
    let view = report::provenance::ProvenanceView::of(audit, &out);
    Ok((out, view))
}

/// A stored artifact as the tree shows it (listed while selected); the
/// artifact back when the store lacks its bytes (here, or under one layout
/// in the bucket).
fn site_file(store: &crate::store::Store, a: Artifact, look: bool) -> Result<SiteFile, Box<Artifact>> {
    let source = store.path(&a.project, &a.filename);
    use std::os::unix::fs::MetadataExt;
    let found = look.then(|| std::fs::metadata(&source).ok().filter(|m| m.is_file())).flatten();
    let in_bucket = look && found.is_none();
    if in_bucket && !store.bucket_holds(&a.project, a.filename.as_str()) {
        return Err(Box::new(a));
    }
    let metadata_source = a.metadata.map(|_| store.metadata_path(&a.project, &a.filename));
    // Only a file that offers provenance can have it (no stat for the rest).
    let provenance_source =
        a.facts.provenance.as_ref().map(|_| store.provenance_path(&a.project, &a.filename)).filter(|p| p.is_file());
    Ok(SiteFile {
        listed: a.listed(),
        project: a.project,
        filename: a.filename,
        sha256: a.sha256,
        size: a.size,
        facts: a.facts,
        metadata: a.metadata,
        source,
        in_bucket,
        metadata_source,
        provenance_source,
        source_inode: found.map(|m| (m.dev(), m.ino())),
    })
}

/// What the first pass over the state gives: what the audit joins, the
/// files it refuses outright, the inventory's digest for the tree key, what
/// it had to say, and the recorded files gone from the store.
struct Inventory {
    mirrored: Vec<crate::audit::Mirrored>,
    /// Files a malicious-package record names, under `malicious = "block"`:
    /// refused by their sha256, whatever their name.
    refused: HashSet<Sha256>,
    digest: Sha256,
    found: Vec<Diagnostic>,
    gone: Vec<Artifact>,
}

/// What a second pass over the state leaves out of the tree.
struct Withheld<'a> {
    refused: &'a HashSet<Sha256>,
    blocked: BTreeSet<(ProjectName, crate::dist::Version)>,
}

impl Withheld<'_> {
    fn keeps(&self, f: &SiteFile) -> bool {
        self.keeps_file(&f.sha256, &f.project, f.version())
    }

    fn keeps_file(&self, sha256: &Sha256, project: &ProjectName, version: &crate::dist::Version) -> bool {
        // The key is built only when something is blocked: most mirrors
        // block nothing, and this runs once per file.
        !self.refused.contains(sha256)
            && (self.blocked.is_empty() || !self.blocked.contains(&(project.clone(), version.clone())))
    }
}

/// The files of the tree, a batch of whole projects at a time, in project
/// order: each batch is handed to `f` and dropped, so a large mirror's
/// rows are never all in memory.
fn each_batch(
    run: &Run,
    (withheld, mut listed): (&Withheld<'_>, Option<&mut Vec<u64>>),
    mut f: impl FnMut(&[SiteFile]) -> Result<(), Error>,
) -> Result<(), Error> {
    /// Files per batch: enough for every core to render in parallel.
    const BATCH_FILES: usize = 4096;
    let mut batch: Vec<SiteFile> = Vec::with_capacity(BATCH_FILES);
    let mut failed = None;
    let store = &run.store;
    run.state.each_served_artifact(|a| {
        if failed.is_some() {
            return;
        }
        if batch.len() >= BATCH_FILES && batch.last().is_some_and(|l| l.project != a.project) {
            failed = f(&batch).err();
            batch.clear();
        }
        // The inventory found every file; the render looks again only where
        // a bucket may hold what the working copy lacks. A file gone since
        // fails its link (or this), never leaves a smaller tree.
        let file = match site_file(store, a, store.in_bucket()) {
            Ok(f) => f,
            Err(a) => {
                failed = Some(Error::Failed(format!(
                    "{}/{} left the store during the render: nothing is published",
                    a.project, a.filename
                )));
                return;
            }
        };
        // What the selection lists, blocked or not: the removal guard
        // counts what the selection drops, not what the policy withholds
        // (a block must apply at once, in a nightly nobody watches).
        if let Some(keys) = listed.as_deref_mut().filter(|_| file.listed) {
            keys.push(Listed::key(&file.project, file.filename.as_str()));
        }
        if withheld.keeps(&file) {
            batch.push(file);
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None if batch.is_empty() => Ok(()),
        None => f(&batch),
    }
}

/// Stage: inventory. One pass over the stored artifacts: the listed
/// versions for the audit, the files a malicious-package record names by
/// sha256 (refused whatever their name or version says, under `malicious =
/// "block"`; reported under `"report"`: before the join, so no report
/// lists them as mirrored), the inventory's digest, and the recorded files
/// whose bytes are gone from the store.
fn inventory(run: &Run, p: &Publishing<'_>) -> Result<Inventory, StateError> {
    use std::io::Write;
    let mut gone = Vec::new();
    let mut found = Vec::new();
    // The rows come by project: each project's versions are grouped, then
    // appended in version order, so the list comes out sorted.
    let mut mirrored: Vec<crate::audit::Mirrored> = Vec::new();
    let mut project_versions: (Option<ProjectName>, BTreeMap<crate::dist::Version, Vec<Box<str>>>) =
        (None, BTreeMap::new());
    let mut refused = HashSet::new();
    let mut digest = HashingWriter::new(std::io::sink());
    let snapshot = p.loaded.snapshot.as_ref();
    let refuse = p.policy.malicious == crate::manifest::Malicious::Block;
    let store = &run.store;
    run.state.each_served_artifact(|a| {
        let f = match site_file(store, a, true) {
            Ok(f) => f,
            Err(a) => {
                gone.push(*a);
                return;
            }
        };
        let _ = writeln!(
            digest,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            f.project,
            f.filename,
            f.sha256,
            f.size,
            f.listed,
            f.metadata.map(|(sha, size)| format!("{sha}:{size}")).unwrap_or_default(),
            f.facts.key()
        );
        let advisories: Vec<String> =
            snapshot.map(|s| s.malicious_file(&f.sha256).map(|a| a.id.clone()).collect()).unwrap_or_default();
        if !advisories.is_empty() {
            found.push(Diagnostic::MaliciousFile {
                project: f.project.clone(),
                filename: f.filename.to_string(),
                sha256: f.sha256.hex(),
                advisories,
                refused: refuse,
            });
            if refuse {
                refused.insert(f.sha256);
                return;
            }
        }
        if f.listed {
            if project_versions.0.as_ref() != Some(&f.project) {
                flush_versions(&mut mirrored, &mut project_versions);
                project_versions.0 = Some(f.project.clone());
            }
            project_versions.1.entry(f.filename.version().clone()).or_default().push(f.filename.as_str().into());
        }
    })?;
    flush_versions(&mut mirrored, &mut project_versions);
    mirrored.shrink_to_fit();
    Ok(Inventory { mirrored, refused, digest: digest.finish().1, found, gone })
}

/// Bring back what the inventory found gone, and take the inventory again
/// if anything came back. Returns the inventory and whether a file is
/// still gone (then nothing may be published: a tree without it would
/// silently serve less).
fn repaired_inventory(
    run: &mut Run,
    p: &Publishing<'_>,
    diags: &mut Diagnostics,
) -> Result<(Inventory, bool), StateError> {
    let mut inv = inventory(run, p)?;
    if inv.gone.is_empty() {
        diags.extend(std::mem::take(&mut inv.found));
        return Ok((inv, false));
    }
    let said = match p.repair {
        Some(r) => r.restore(&run.store, &inv.gone),
        None => inv
            .gone
            .iter()
            .map(|a| Diagnostic::MissingFromStore {
                project: a.project.clone(),
                filename: a.filename.to_string(),
                why: "nothing here can fetch it".into(),
            })
            .collect(),
    };
    let back = said.iter().any(|d| matches!(d, Diagnostic::Repaired { .. }));
    let lost: Vec<ProjectName> =
        said.iter().filter(|d| matches!(d, Diagnostic::MissingFromStore { .. })).map(|d| d.project().clone()).collect();
    for d in said {
        diags.push_once(d);
    }
    if back {
        inv = inventory(run, p)?;
    }
    diags.extend(std::mem::take(&mut inv.found));
    // Plan these projects in full next run: it refetches what is still gone.
    run.state.set_plan_keys(&lost.iter().map(|p| (p.clone(), None)).collect::<Vec<_>>())?;
    Ok((inv, !lost.is_empty()))
}

/// One project's grouped versions onto the list (see [`inventory`]).
fn flush_versions(
    out: &mut Vec<crate::audit::Mirrored>,
    (project, versions): &mut (Option<ProjectName>, BTreeMap<crate::dist::Version, Vec<Box<str>>>),
) {
    let Some(project) = project.take() else { return };
    out.extend(std::mem::take(versions).into_iter().map(|(version, mut files)| {
        files.shrink_to_fit();
        crate::audit::Mirrored { project: project.clone(), version, files }
    }));
}

/// Stage: audit. Join every listed version with the snapshot and apply the
/// policy; blocked versions leave the index and the tree (the store keeps
/// them, so a policy change needs no refetch). Malicious releases the plan
/// refused before fetching are audited too, without files, so every
/// report lists them as blocked.
fn audit(
    mut mirrored: Vec<crate::audit::Mirrored>,
    p: &Publishing<'_>,
    tampering: Vec<Tampering>,
    diags: &mut Diagnostics,
) -> Audit {
    let generated_at = crate::util::clock::output_time();
    let refused: BTreeSet<(ProjectName, crate::dist::Version)> = diags
        .iter()
        .filter_map(|d| match d {
            Diagnostic::Blocked { project, version, malicious: true, .. } => Some((project.clone(), version.clone())),
            _ => None,
        })
        .collect();
    let held: HashSet<(&ProjectName, &crate::dist::Version)> =
        mirrored.iter().map(|m| (&m.project, &m.version)).collect();
    let never: Vec<crate::audit::Mirrored> = refused
        .iter()
        .filter(|(p, v)| !held.contains(&(p, v)))
        .map(|(project, version)| crate::audit::Mirrored {
            project: project.clone(),
            version: version.clone(),
            files: Vec::new(),
        })
        .collect();
    mirrored.extend(never);
    let audit = Audit::join(mirrored, p.loaded, p.policy, generated_at, &p.mirror, tampering);
    let said: BTreeSet<(ProjectName, crate::dist::Version)> = refused;
    diags.extend(audit.blocked_diagnostics().filter(|d| match d {
        Diagnostic::Blocked { project, version, .. } => !said.contains(&(project.clone(), version.clone())),
        _ => true,
    }));
    audit
}

/// What the landing page says of the run: environments, projects that
/// select nothing, the gate's and provenance's counts.
fn site_info(inputs: &Inputs<'_>, p: &Publishing<'_>) -> SiteInfo {
    let environments = inputs
        .installability
        .envs
        .iter()
        .map(|e| EnvStatus {
            name: e.env.name(),
            ok: e.ok(),
            note: if e.ok() {
                let sdists = e.installs.values().filter(|i| i.sdist).count();
                format!(
                    "{} project(s){}",
                    e.installs.len(),
                    if sdists > 0 { format!(", {sdists} from sdists") } else { String::new() }
                )
            } else {
                e.problems
                    .iter()
                    .map(|(p, r)| format!("{p}: {}", r.describe(&e.env.name())))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        })
        .collect();
    let unselected = inputs
        .diagnostics
        .iter()
        .filter_map(|d| match d {
            Diagnostic::SelectsNothing { project, .. } => {
                Some(Unselected { name: project.to_string(), note: d.to_string() })
            }
            _ => None,
        })
        .collect();
    SiteInfo {
        name: p.mirror.name.clone(),
        upstream: p.mirror.upstream.clone(),
        generated_at: inputs.audit.generated_at,
        environments,
        index_url: p.index_url.clone(),
        unselected,
        held: report::admission::held_views(inputs.diagnostics).len(),
        withdrawn: inputs.withdrawn.len(),
        attested: inputs.provenance.share(),
        project_pages: p.project_pages,
    }
}

/// Stage: render the index and the reports into a staged tree.
fn render(
    run: &Run,
    (staged, written): (&Staged, Vec<TreeEntry>),
    withheld: &Withheld<'_>,
    inputs: Inputs<'_>,
    p: &Publishing<'_>,
    extra: &[(&str, &[u8])],
) -> Result<(Vec<TreeEntry>, Listed), Error> {
    let info = site_info(&inputs, p);
    // Pages: two per project, at most one per file (a project has one file or more).
    let files = run.state.tree_files()? as usize;
    let mut site = SiteRender::with_capacity(p.templates, staged.dir(), files + files / 2 + 64)
        .with_statuses(inputs.statuses)
        .with_base_url(p.base_url.as_ref());
    let mut sw = crate::util::ui::Stopwatch::start();
    let (catalog, previous) = (p.project_pages.then(|| catalog(run, withheld)).transpose()?, run.target.current());
    sw.lap("render: catalog");
    let site_of = crate::browse::Site { name: &p.mirror.name, index_url: p.index_url.as_deref() };
    let pages = catalog
        .as_ref()
        .map(|c| crate::browse::Pages::new(inputs, c, site_of, p.templates, (staged.dir(), previous.as_deref())));
    let (mut listed, mut people) = (Vec::new(), Vec::new());
    // What the tree serves, for the rewritten locks (lock-sized mirrors only).
    let locks = &p.check.select.locks;
    let mut served: HashSet<(ProjectName, String)> = HashSet::new();
    each_batch(run, (withheld, Some(&mut listed)), |batch| {
        if !locks.is_empty() {
            served.extend(batch.iter().filter(|f| f.listed).map(|f| (f.project.clone(), f.filename.to_string())));
        }
        if let Some(pages) = &pages {
            people.extend(pages.batch(batch)?);
        }
        Ok(site.projects(batch)?)
    })?;
    listed.sort_unstable();
    sw.lap("render: project pages");
    let mut entries = site.finish(&info, Some(&inputs.audit.landing()))?;
    entries.extend(people);
    if let Some(pages) = &pages {
        entries.extend(pages.finish()?);
    }
    sw.lap("render: root, landing and projects pages");
    entries.extend(written);
    entries.extend(report::write_all(inputs, p.templates, staged.dir())?);
    sw.lap("render: reports");
    for (rel, bytes) in extra {
        entries.push(crate::tree::write_entry(staged.dir(), rel, bytes)?);
    }
    entries.extend(rewritten_locks(run, p, &served, staged)?);
    if let Some(path) = p.snapshot_file.filter(|_| p.loaded.snapshot.is_some()) {
        let bytes = fs_err::read(path)?;
        entries.push(crate::tree::write_entry(staged.dir(), "reports/advisories.sqlite.zst", &bytes)?);
    }
    // Paths are unique: an unstable sort, in place.
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok((entries, Listed(listed)))
}

/// What every project page needs of the others (summaries, reverse
/// dependencies), from a pass over the state's rows: each project's listed
/// versions and the newest one's core metadata, with no file looked at
/// but that one (the render's pass checks every file).
fn catalog(run: &Run, withheld: &Withheld<'_>) -> Result<crate::browse::Catalog, Error> {
    let mut catalog = crate::browse::Catalog::default();
    let mut current: Option<crate::browse::Newest> = None;
    run.state.each_served_artifact(|a| {
        if !a.listed() || !withheld.keeps_file(&a.sha256, &a.project, a.filename.version()) {
            return;
        }
        if current.as_ref().is_some_and(|c| c.project != a.project) {
            catalog.add(current.take());
        }
        let c = current.get_or_insert_with(|| crate::browse::Newest::of(a.project.clone()));
        let metadata = a.metadata.map(|_| run.store.metadata_path(&a.project, &a.filename));
        c.see(a.filename.version(), metadata);
    })?;
    catalog.add(current);
    catalog.finish();
    Ok(catalog)
}

/// The removal guard: why the new tree must not replace the served one,
/// if it unlists more of the served files than `max_removed` allows (a
/// conflict, a typo, a broken upstream or snapshot must never empty the
/// mirror, and the next bundle carries what the tree lost).
fn removal_guard(
    run: &Run,
    served: Option<&Served>,
    listed: &Listed,
    p: &Publishing<'_>,
) -> Result<Option<String>, StateError> {
    let Some(served) = served.filter(|_| !p.allow_removals) else { return Ok(None) };
    let Some(before) = run.state.tree_listed(served.run)? else { return Ok(None) };
    let removed = before.missing_from(listed) as u64;
    let total = before.0.len() as u64;
    if removed == 0 || !p.max_removed.exceeded(removed, total) {
        return Ok(None);
    }
    Ok(Some(format!(
        "this run would unlist {removed} of the {total} file(s) the served tree (run {}) lists ({:.0}%), more than `max_removed = {}` in [mirror]: nothing is published, the served tree stays as it was. If that is what you want, rerun with --allow-removals (or raise max_removed)",
        served.run,
        removed as f64 * 100.0 / total.max(1) as f64,
        p.max_removed
    )))
}

/// `locks/<name>`: every lock file of the manifest, pointing into the tree
/// (`index::locks`); two locks of one name are told apart by a number.
fn rewritten_locks(
    run: &Run,
    p: &Publishing<'_>,
    served: &HashSet<(ProjectName, String)>,
    staged: &Staged,
) -> Result<Vec<TreeEntry>, Error> {
    use crate::index::locks::{Base, rewrite};
    let base = match &p.base_url {
        Some(u) => Base::Url(u.clone()),
        None => {
            Base::Path(std::path::absolute(run.target.output()).unwrap_or_else(|_| run.target.output().to_path_buf()))
        }
    };
    let is_served = |project: &ProjectName, filename: &str| served.contains(&(project.clone(), filename.to_string()));
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for lock in &p.check.select.locks {
        let text = fs_err::read_to_string(&lock.path)?;
        let r = rewrite(&text, lock.kind, &is_served, &base);
        let file = lock.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "lock".into());
        let mut name = file.clone();
        let mut n = 1;
        while !names.insert(name.clone()) {
            n += 1;
            name = format!("{n}-{file}");
        }
        if r.kept > 0 {
            tracing::info!(
                "locks/{name}: {} file(s) point into the tree, {} the tree does not serve keep their upstream URLs",
                r.rewritten,
                r.kept
            );
        }
        out.push(crate::tree::write_entry(staged.dir(), &format!("locks/{name}"), r.text.as_bytes())?);
    }
    Ok(out)
}

/// Stage: swap the staged tree in and record its listing and keys.
fn swap(
    run: &mut Run,
    staged: Staged,
    (entries, listed): (&[TreeEntry], &Listed),
    keys: &TreeKeys,
) -> Result<PathBuf, Error> {
    crate::util::fault::point("before-publish");
    // The last safe point: after it the swap completes whatever comes.
    crate::util::signal::check()?;
    let tree = staged.commit()?;
    crate::util::fault::point("after-publish");
    let mut listing = tempfile::tempfile_in(run.store.tmp_dir())?;
    crate::tree::encode_listing_to(entries, &mut listing)?;
    run.state.put_tree(run.id, &mut listing, keys, listed, 8)?;
    Ok(tree)
}

/// What the state records that every report shows: tampering evidence,
/// files skipped, versions only sdists serve. The evidence is returned
/// too, for the audit.
fn recorded_diagnostics(run: &Run, diags: &mut Diagnostics) -> Result<Vec<Tampering>, Error> {
    let tampering = run.state.tampering()?;
    for t in &tampering {
        diags.push_quiet(Diagnostic::Tampering(t.clone()));
    }
    for (project, s) in run.state.skipped()? {
        diags.push_quiet(Diagnostic::Skipped { project, filename: s.filename, reason: s.reason });
    }
    for (project, version, envs) in run.state.sdist_only()? {
        diags.push_quiet(Diagnostic::SdistOnly { project, version, envs });
    }
    Ok(tampering)
}

/// Whether each target environment can install the requirements from the
/// tree about to be published (unchecked unless the manifest asks).
fn installability(
    run: &Run,
    p: &Publishing<'_>,
    withheld: &Withheld<'_>,
    diags: &mut Diagnostics,
) -> Result<Installability, Error> {
    if !p.check.wanted() {
        return Ok(installable::unchecked());
    }
    // Resolution reads the whole tree as an index: the one step that
    // holds every file (only for mirrors that claim dependencies).
    let mut files = Vec::new();
    each_batch(run, (withheld, None), |batch| {
        files.extend_from_slice(batch);
        Ok(())
    })?;
    let cache = run.state.metadata_cache()?;
    Ok(installable::check(&p.check, &files, Some(&cache), diags))
}

/// A failing installability report written beside the state (no tree
/// carries it), and where the message should point.
fn write_beside_state(run: &Run, installability: &Installability) -> String {
    let beside = run.state.path().with_file_name("installability.json");
    let written = crate::util::fsx::write_atomically(
        &beside,
        &report::installability::render(installability, &crate::util::clock::output_time()),
    );
    match written {
        Ok(()) => format!("see {}", beside.display()),
        Err(e) => format!("the report could not be written to {}: {e}", beside.display()),
    }
}

/// Audit, render and publish the selection the state records, unless the
/// served tree would come out identical.
pub fn publish(run: &mut Run, p: &Publishing<'_>, diags: &mut Diagnostics) -> Result<Published, Error> {
    let mut sw = crate::util::ui::Stopwatch::start();
    let tampering = recorded_diagnostics(run, diags)?;
    let mut keys = TreeKeys {
        inputs: inputs_key(p, &tampering, &diags.sorted()),
        selection: run.state.selection_generation()?,
        ..TreeKeys::default()
    };
    let served = served(run)?;
    // Fast path: same selection, same inputs: nothing to join or render.
    if let Some(s) = served
        .as_ref()
        .filter(|s| !p.force && !p.always_join && s.keys.selection == keys.selection && s.keys.inputs == keys.inputs)
    {
        tracing::info!("nothing changed since run {}: its tree stays published", s.run);
        let exit = Exit::from_code(s.keys.exit);
        return Ok(Published { tree: Some(s.dir.clone()), changed: false, exit, findings: None });
    }
    crate::util::mem::release();
    let (inventory, lost) = repaired_inventory(run, p, diags)?;
    sw.lap("inventory");
    crate::util::fault::point("inventoried");
    if lost {
        tracing::error!(
            "recorded files are gone from the store and could not be brought back: nothing is published, the served tree stays as it was"
        );
        return Ok(Published { tree: served.map(|s| s.dir), changed: false, exit: Exit::Failed, findings: None });
    }
    let audit = audit(inventory.mirrored, p, tampering, diags);
    let withheld = Withheld { refused: &inventory.refused, blocked: audit.blocked() };
    sw.lap("security join");
    let installability = installability(run, p, &withheld, diags)?;
    sw.lap("installability");
    if let Some(line) = installability.summary() {
        tracing::info!("{line}");
    }
    if p.check.select.installable == Installable::Fail && installability.failing().next().is_some() {
        let at = write_beside_state(run, &installability);
        tracing::error!(
            "installable = \"fail\": a target environment cannot install the requirements; nothing is published ({at})"
        );
        let findings = Some(audit.findings());
        return Ok(Published { tree: served.map(|s| s.dir), changed: false, exit: Exit::Failed, findings });
    }
    let diagnostics = diags.sorted();
    let (withdrawn, statuses) =
        (report::admission::withdrawn_views(&run.state.withdrawn()?, &audit), run.state.project_statuses()?);
    let (publishers, provenance) = provenance_of(&run.state, &audit)?;
    let inputs = Inputs {
        audit: &audit,
        diagnostics: &diagnostics,
        installability: &installability,
        changes: None,
        withdrawn: &withdrawn,
        statuses: &statuses,
        publishers: &publishers,
        provenance: &provenance,
        project_pages: p.project_pages,
    };
    (keys.key, keys.exit) = (tree_key(&inventory.digest, inputs, &keys.inputs), audit.exit() as i64);
    let findings = Some(audit.findings());
    if let Some(s) = served.as_ref().filter(|s| !p.force && s.keys.key == keys.key) {
        tracing::info!("nothing changed since run {}: its tree stays published", s.run);
        return Ok(Published { tree: Some(s.dir.clone()), changed: false, exit: audit.exit(), findings });
    }
    // What this tree changes against the served one, and the feed of the
    // last runs' changes (this one first).
    let previous = served.as_ref().and_then(|s| std::fs::read(s.dir.join("reports/security.json")).ok());
    let changes = report::changes::compute(inputs.audit, inputs.diagnostics, inputs.withdrawn, previous.as_deref());
    let staged = run.target.stage(&format!("{:06}", run.id))?;
    // changes.json is written in full now; every other output shows the
    // changes cut to a feed entry's length (a first build's list every
    // version), so only that form is kept.
    let written = vec![crate::tree::write_entry_with(staged.dir(), "reports/changes.json", |w| {
        report::changes::write_json(&changes, w)
    })?];
    // Only the feed's cut is kept (a first build's full list is as long as
    // the mirror): `{ changes }` moves the full list into a temporary.
    let changes = { changes }.for_feed();
    let inputs = Inputs { changes: Some(&changes), ..inputs };
    let mut runs = vec![(run.id, changes.clone())];
    for (r, body) in run.state.recent_changes(report::changes::FEED_RUNS)?.into_iter().filter(|(r, _)| *r != run.id) {
        runs.extend(serde_json::from_str(&body).ok().map(|c| (r, c)));
    }
    let feed = report::changes::render_feed(&audit.mirror_name, &audit.generated_at.to_string(), &runs);
    let extra = [("reports/feed.xml", feed.as_slice())];
    sw.lap("changes and feed");
    let (entries, listed) = render(run, (&staged, written), &withheld, inputs, p, &extra)?;
    if let Some(why) = removal_guard(run, served.as_ref(), &listed, p)? {
        tracing::error!("{why}");
        return Ok(Published { tree: served.map(|s| s.dir), changed: false, exit: Exit::Failed, findings });
    }
    let tree = swap(run, staged, (&entries, &listed), &keys)?;
    let kept = serde_json::to_string(&changes).unwrap_or_default();
    run.state.put_changes(run.id, &kept, report::changes::FEED_RUNS)?;
    sw.lap("render and publish");
    Ok(Published { tree: Some(tree), changed: true, exit: audit.exit(), findings })
}
