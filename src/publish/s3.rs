//! `airlock publish --to s3://bucket/prefix`: the published tree as objects
//! in an S3-compatible store (object_store, on a small tokio runtime).
//!
//! Only objects whose sha256 differs from what was uploaded before are
//! uploaded: a manifest object (`<prefix>/.airlock/publish.json`) records the
//! sha256 of every object airlock put there, and one listing catches objects
//! removed behind its back. Uploads go in three phases, each only after the
//! previous one fully succeeded: packages, then project pages, then the root
//! pages, the landing page and the reports, so a client never sees a link to
//! a missing object. Objects no longer in the tree are deleted last, once
//! they have been stale for `[publish] delete_after_hours`. A publish with
//! nothing to change writes nothing, not even the manifest. Every object gets
//! its Content-Type and Cache-Control (the same as `airlock serve` and the
//! nginx configuration) and its sha256 as metadata. Every `index.html` is
//! also stored under its directory's key (`simple/p/`), so pip installs
//! straight from the bucket's HTTP endpoint, with no rewrite rules.

use crate::util::run_id::RunId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::error::{PublishError, S3Error};
use super::target::{PublishReport, PublishTarget};
use crate::manifest::Publish;
use crate::store::object;
use crate::tree::TreeEntry;
use crate::util::ui::Progress;

/// Files larger than this go up in parts, so memory stays bounded.
const REMOTE_MANIFEST: &str = ".airlock/publish.json";

/// `s3://bucket/prefix` split apart (the prefix without slashes at the ends).
pub fn parse_url(url: &str) -> Result<(String, String), S3Error> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| S3Error::Url(url.to_string()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty()
        || !bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(S3Error::Url(url.to_string()));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// The sha256 of every object airlock put under the prefix, and when each
/// object that left the tree was first seen stale.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Remote {
    format: String,
    run: Option<RunId>,
    objects: BTreeMap<String, String>,
    stale: BTreeMap<String, String>,
    /// Whether the server takes directory keys, once tried (`auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    directory_keys: Option<bool>,
}

/// `key = value` pairs of one `[section]` of an INI file (the AWS shared files).
fn ini_section(path: &Path, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path) else { return out };
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// Where the credentials come from: named in messages, and `None` when
/// only the EC2 instance metadata service is left to ask.
fn credential_source(profile_found: Option<&str>) -> Option<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("AWS_ACCESS_KEY_ID").is_some() {
        return Some("AWS_ACCESS_KEY_ID".into());
    }
    if let Some(profile) = profile_found {
        return Some(format!("profile `{profile}` of ~/.aws/credentials"));
    }
    if env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        return Some("AWS_WEB_IDENTITY_TOKEN_FILE".into());
    }
    if env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some() || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some() {
        return Some("the container credentials endpoint".into());
    }
    None
}

/// The store and where its credentials come from: `AWS_*` environment
/// variables, then the shared profile (`AWS_PROFILE`, `~/.aws/credentials`,
/// `~/.aws/config`), then `[publish]`.
pub(crate) fn connect(
    cfg: &Publish,
    bucket: &str,
    checksum: bool,
) -> Result<(AmazonS3, Option<String>, String), S3Error> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if checksum {
        // The server checks each body against its sha256 too
        // (`x-amz-checksum-sha256`), on top of airlock's own check.
        b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut profile_found = None;
    if env("AWS_ACCESS_KEY_ID").is_none()
        && let Some(home) = env("HOME")
    {
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let creds = ini_section(&Path::new(&home).join(".aws/credentials"), &profile);
        if let (Some(id), Some(secret)) = (creds.get("aws_access_key_id"), creds.get("aws_secret_access_key")) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(token) = creds.get("aws_session_token") {
                b = b.with_token(token);
            }
            profile_found = Some(profile.clone());
        }
        if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
            let section = if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
            if let Some(region) = ini_section(&Path::new(&home).join(".aws/config"), &section).get("region") {
                b = b.with_region(region);
            }
        }
    }
    if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() && cfg.region.is_none() {
        b = b.with_config(AmazonS3ConfigKey::DefaultRegion, "us-east-1");
    }
    if let Some(region) = &cfg.region {
        b = b.with_region(region);
    }
    let endpoint =
        cfg.endpoint.as_ref().map(|u| u.as_str().trim_end_matches('/').to_string()).or_else(|| env("AWS_ENDPOINT_URL"));
    if let Some(endpoint) = &endpoint {
        b = b.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    b = b.with_virtual_hosted_style_request(!cfg.path_style);
    let source = credential_source(profile_found.as_deref());
    let where_ = endpoint.unwrap_or_else(|| "AWS S3".into());
    Ok((b.build().map_err(|e| S3Error::Config(e.to_string()))?, source, where_))
}

/// Which phase a path uploads in: packages, project pages, the rest.
fn phase(path: &str) -> usize {
    if path.starts_with("packages/") {
        0
    } else if path.starts_with("simple/") && path.matches('/').count() == 2 {
        1
    } else {
        2
    }
}

const PHASES: [&str; 3] = ["packages", "project pages", "root pages and reports"];

/// Whether a tree path is a directory key (`simple/p/`, `simple/`, `""`).
fn is_dir_key(path: &str) -> bool {
    path.is_empty() || path.ends_with('/')
}

/// The tree plus every `index.html` again under its directory's key, so
/// that pip and uv install straight from a bucket's HTTP endpoint (which,
/// unlike a web server, has no directory indexes) or a CDN in front of it.
/// The prefix's own directory key only when there is a prefix (a bucket's
/// root has no key).
fn with_dir_keys(tree: &[TreeEntry], root_key: bool) -> Vec<TreeEntry> {
    let mut out = tree.to_vec();
    for e in tree {
        if let Some(dir) = e.path.strip_suffix("index.html").filter(|d| d.is_empty() || d.ends_with('/'))
            && (root_key || !dir.is_empty())
        {
            out.push(TreeEntry { path: dir.to_string(), ..e.clone() });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn attributes(path: &str, sha256: &crate::util::hashing::Sha256) -> Attributes {
    // A directory key serves its index.html.
    match is_dir_key(path) {
        true => object::attributes(&format!("{path}index.html"), sha256),
        false => object::attributes(path, sha256),
    }
}

pub(crate) async fn upload(
    store: &AmazonS3,
    key: &ObjectPath,
    file: &Path,
    entry: &TreeEntry,
) -> object_store::Result<()> {
    object::put_file(store, key, file, entry.size, attributes(&entry.path, &entry.sha256)).await
}

/// An S3 bucket (prefix) as a publish target.
pub struct S3Target {
    store: AmazonS3,
    /// Where the credentials come from (`None`: only instance metadata).
    credentials: Option<String>,
    endpoint: String,
    bucket: String,
    prefix: String,
    grace_hours: u64,
    jobs: usize,
    directory_keys: crate::manifest::DirectoryKeys,
}

impl S3Target {
    pub fn new(bucket: &str, prefix: &str, cfg: &Publish, jobs: usize) -> Result<S3Target, S3Error> {
        let (store, credentials, endpoint) = connect(cfg, bucket, false)?;
        Ok(S3Target {
            store,
            credentials,
            endpoint,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            grace_hours: cfg.delete_after_hours,
            jobs: jobs.max(1),
            directory_keys: cfg.directory_keys,
        })
    }

    /// The key of a tree path. A directory key (`simple/p/`, or `""` for
    /// the prefix itself) keeps its trailing slash: an empty last part.
    fn key(&self, rel: &str) -> Result<ObjectPath, S3Error> {
        let full = if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) };
        let path = ObjectPath::parse(&full).map_err(|e| self.err(&full, &e))?;
        Ok(if is_dir_key(rel) { path.join("") } else { path })
    }

    /// A listed key as a tree path. Listings drop a key's trailing slash;
    /// airlock's only keys whose last part has no dot are directory keys
    /// (file names and page names all have one, project names never do).
    fn rel_of(&self, full: &str) -> Option<String> {
        let rel = match self.prefix.as_str() {
            "" => full,
            p if full == p => return Some(String::new()),
            p => full.strip_prefix(&format!("{p}/"))?,
        };
        let last = rel.rsplit('/').next().unwrap_or(rel);
        Some(if last.contains('.') { rel.to_string() } else { format!("{rel}/") })
    }

    /// An object store error in the user's words: missing credentials, a
    /// missing bucket and a refusal are named; the rest keeps its text.
    fn err(&self, key: &str, e: &dyn std::fmt::Display) -> S3Error {
        let message = e.to_string();
        if self.credentials.is_none() && (message.contains("169.254.169.254") || message.contains("credential")) {
            let cause = message.split(" - ").last().unwrap_or(&message).trim().to_string();
            return S3Error::NoCredentials {
                looked: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or `default`) in ~/.aws/credentials, AWS_WEB_IDENTITY_TOKEN_FILE, the container credentials endpoint, the EC2 instance metadata service".into(),
                cause: format!("the instance metadata service answered: {cause}"),
            };
        }
        if message.contains("NoSuchBucket") {
            return S3Error::NoBucket { bucket: self.bucket.clone(), endpoint: self.endpoint.clone() };
        }
        if message.contains("AccessDenied") || message.contains("403 Forbidden") {
            return S3Error::Denied {
                bucket: self.bucket.clone(),
                key: key.to_string(),
                from: self.credentials.clone().unwrap_or_else(|| "instance metadata".into()),
                action: "read and write",
            };
        }
        S3Error::Object { bucket: self.bucket.clone(), key: key.to_string(), message }
    }

    /// What airlock recorded it put there, and what is really there (a
    /// manifest entry alone does not prove an object exists).
    async fn remote(&self) -> Result<(Remote, BTreeMap<String, u64>), S3Error> {
        let manifest_key = self.key(REMOTE_MANIFEST)?;
        let remote: Remote = match self.store.get(&manifest_key).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| self.err(manifest_key.as_ref(), &e))?;
                serde_json::from_slice(&bytes).unwrap_or_default()
            }
            Err(object_store::Error::NotFound { source, .. }) if !source.to_string().contains("NoSuchBucket") => {
                Remote::default()
            }
            Err(e) => return Err(self.err(manifest_key.as_ref(), &e)),
        };
        let list_prefix = if self.prefix.is_empty() { None } else { Some(ObjectPath::from(self.prefix.as_str())) };
        let mut existing = BTreeMap::new();
        let mut listing = self.store.list(list_prefix.as_ref());
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.err(&self.prefix, &e))?;
            let full = meta.location.to_string();
            let rel = self.rel_of(&full).unwrap_or(full);
            if !rel.starts_with(".airlock/") {
                existing.insert(rel, meta.size);
            }
        }
        Ok((remote, existing))
    }

    /// Upload `todo` in link-safe phases; a phase starts only when the
    /// previous one fully succeeded.
    async fn upload_phases(
        &self,
        root: &Path,
        todo: &[&TreeEntry],
        remote: &mut Remote,
        report: &mut PublishReport,
    ) -> Result<(), S3Error> {
        let progress = Progress::bytes("upload", todo.iter().map(|e| e.size).sum());
        for (n, name) in PHASES.iter().enumerate() {
            let batch: Vec<&TreeEntry> = todo.iter().copied().filter(|e| phase(&e.path) == n).collect();
            let progress = &progress;
            let results: Vec<(&TreeEntry, Result<(), String>)> = futures::stream::iter(batch)
                .map(|e| async move {
                    let source =
                        if is_dir_key(&e.path) { root.join(&e.path).join("index.html") } else { root.join(&e.path) };
                    let r = match self.key(&e.path) {
                        Ok(k) => upload(&self.store, &k, &source, e).await.map_err(|err| err.to_string()),
                        Err(err) => Err(err.to_string()),
                    };
                    progress.inc(e.size);
                    (e, r)
                })
                .buffer_unordered(self.jobs)
                .collect()
                .await;
            let mut errors = Vec::new();
            for (e, r) in results {
                match r {
                    Ok(()) => {
                        remote.objects.insert(e.path.clone(), e.sha256.hex());
                        remote.stale.remove(&e.path);
                        report.uploaded.push(e.path.clone());
                        report.bytes += e.size;
                    }
                    Err(message) => errors.push(format!("  s3://{}/{}{}: {message}", self.bucket, self.dir(), e.path)),
                }
            }
            if !errors.is_empty() {
                // Record what did go up, so the next publish resumes from there.
                self.write_remote(remote).await?;
                errors.sort();
                return Err(S3Error::Uploads { phase: name, failed: errors.len(), errors: errors.join("\n") });
            }
        }
        report.uploaded.sort();
        Ok(())
    }

    /// Objects already there with the sha256 their entry has are adopted,
    /// not uploaded again: under one layout the store put every package
    /// (and its `.metadata`) there right after verifying it, and the tree
    /// holds no copy of the package to upload. An entry whose bytes are
    /// neither here nor there fails the publish before anything is written,
    /// naming it.
    async fn adopt_present<'e>(
        &self,
        root: &Path,
        todo: Vec<&'e TreeEntry>,
        existing: &BTreeMap<String, u64>,
        remote: &mut Remote,
        report: &mut PublishReport,
    ) -> Result<Vec<&'e TreeEntry>, S3Error> {
        let checked: Vec<(&TreeEntry, bool)> = futures::stream::iter(todo)
            .map(|e| async move {
                if existing.get(&e.path) != Some(&e.size) || is_dir_key(&e.path) {
                    return (e, false);
                }
                let Ok(key) = self.key(&e.path) else { return (e, false) };
                let head = object_store::GetOptions { head: true, ..object_store::GetOptions::default() };
                let same = match self.store.get_opts(&key, head).await {
                    Ok(r) => r
                        .attributes
                        .get(&Attribute::Metadata("sha256".into()))
                        .is_some_and(|v| v.as_ref() == e.sha256.hex()),
                    Err(_) => false,
                };
                (e, same)
            })
            .buffer_unordered(self.jobs)
            .collect()
            .await;
        let mut left = Vec::new();
        let mut missing = Vec::new();
        for (e, same) in checked {
            if same {
                remote.objects.insert(e.path.clone(), e.sha256.hex());
                remote.stale.remove(&e.path);
                report.unchanged += 1;
            } else if !is_dir_key(&e.path) && !root.join(&e.path).is_file() {
                missing.push(format!("  s3://{}/{}{}", self.bucket, self.dir(), e.path));
            } else {
                left.push(e);
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(S3Error::Absent { count: missing.len(), list: missing.join("\n") });
        }
        // The phases upload in path order within each phase.
        left.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(left)
    }

    fn dir(&self) -> String {
        if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) }
    }

    /// Delete objects that left the tree once stale for the grace period: a
    /// client holding an older page can still fetch what it links to. Only
    /// objects this target's manifest records airlock put there are ever
    /// stale: anything else under the prefix (another tool's objects, a
    /// store someone pointed here) is left alone, whatever it is.
    async fn delete_stale(
        &self,
        tree: &[TreeEntry],
        existing: &BTreeMap<String, u64>,
        remote: &mut Remote,
        report: &mut PublishReport,
    ) -> Result<(), S3Error> {
        let now = jiff::Timestamp::now();
        let in_tree: BTreeSet<&str> = tree.iter().map(|e| e.path.as_str()).collect();
        let foreign =
            existing.keys().filter(|k| !in_tree.contains(k.as_str()) && !remote.objects.contains_key(*k)).count();
        if foreign > 0 {
            tracing::info!(
                "s3://{}/{}: {foreign} object(s) airlock did not put there are left alone",
                self.bucket,
                self.prefix
            );
        }
        let recorded: Vec<&String> =
            existing.keys().filter(|k| !in_tree.contains(k.as_str()) && remote.objects.contains_key(*k)).collect();
        for rel in recorded {
            let first = remote.stale.entry(rel.clone()).or_insert_with(|| now.to_string()).clone();
            let age_hours =
                first.parse::<jiff::Timestamp>().map(|t| now.duration_since(t).as_secs() / 3600).unwrap_or(0);
            if age_hours.max(0) as u64 >= self.grace_hours {
                let k = self.key(rel)?;
                match self.store.delete(&k).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.err(k.as_ref(), &e)),
                }
                remote.stale.remove(rel);
                remote.objects.remove(rel);
                report.deleted.push(rel.clone());
            } else {
                report.pending += 1;
            }
        }
        remote.stale.retain(|k, _| existing.contains_key(k) && !in_tree.contains(k.as_str()));
        remote.objects.retain(|k, _| in_tree.contains(k.as_str()) || remote.stale.contains_key(k));
        Ok(())
    }

    async fn write_remote(&self, remote: &Remote) -> Result<(), S3Error> {
        let key = self.key(REMOTE_MANIFEST)?;
        let json = serde_json::to_vec_pretty(remote).unwrap_or_default();
        let mut attrs = Attributes::new();
        attrs.insert(Attribute::ContentType, "application/json".into());
        attrs.insert(Attribute::CacheControl, "no-store".into());
        let opts = PutOptions { attributes: attrs, ..PutOptions::default() };
        self.store.put_opts(&key, PutPayload::from(json), opts).await.map_err(|e| self.err(key.as_ref(), &e))?;
        Ok(())
    }

    /// Whether the server takes a key ending in `/` with a body: tried on a
    /// scratch key under `.airlock/`, removed again. Servers that map keys
    /// to files (s3s-fs, several self-hosted ones) refuse it.
    async fn takes_directory_keys(&self) -> Result<(), String> {
        let probe = self.key(".airlock/probe/").map_err(|e| e.to_string())?;
        self.store.put(&probe, PutPayload::from_static(b"probe")).await.map_err(|e| e.to_string())?;
        let _ = self.store.delete(&probe).await;
        Ok(())
    }

    /// Whether this publish stores directory keys (`[publish] directory_keys`).
    async fn directory_keys(&self, remote: &mut Remote) -> bool {
        use crate::manifest::DirectoryKeys;
        match self.directory_keys {
            DirectoryKeys::Never => false,
            DirectoryKeys::Always => true,
            DirectoryKeys::Auto => {
                if let Some(known) = remote.directory_keys {
                    return known;
                }
                let takes = match self.takes_directory_keys().await {
                    Ok(()) => true,
                    Err(answer) => {
                        tracing::warn!(
                            "s3://{}/{}: the server refuses keys ending in `/` ({answer}); publishing without directory keys: every file is there, but a client must be pointed at a server that maps `simple/<project>/` to its index.html (a web server or CDN in front of the bucket), not at the bucket's own endpoint; `[publish] directory_keys = \"never\"` silences this",
                            self.bucket,
                            self.prefix
                        );
                        false
                    }
                };
                remote.directory_keys = Some(takes);
                takes
            }
        }
    }

    async fn publish_async(&self, root: &Path, tree: &[TreeEntry], run: RunId) -> Result<PublishReport, S3Error> {
        let (mut remote, existing) = self.remote().await?;
        let before = remote.clone();
        let tree = &if self.directory_keys(&mut remote).await {
            with_dir_keys(tree, !self.prefix.is_empty())
        } else {
            tree.to_vec()
        };
        let mut report = PublishReport::default();
        let todo: Vec<&TreeEntry> = tree
            .iter()
            .filter(|e| {
                let same = remote.objects.get(&e.path).is_some_and(|s| *s == e.sha256.hex())
                    && existing.get(&e.path) == Some(&e.size);
                report.unchanged += usize::from(same);
                !same
            })
            .collect();
        let todo = self.adopt_present(root, todo, &existing, &mut remote, &mut report).await?;
        self.upload_phases(root, &todo, &mut remote, &mut report).await?;
        self.delete_stale(tree, &existing, &mut remote, &mut report).await?;
        remote.format = "airlock.publish/v1".into();
        // Nothing uploaded, deleted or newly stale: no write at all (a
        // bucket with versioning or write notifications sees nothing).
        if todo.is_empty()
            && remote.objects == before.objects
            && remote.stale == before.stale
            && remote.format == before.format
            && remote.directory_keys == before.directory_keys
        {
            return Ok(report);
        }
        remote.run = Some(run);
        self.write_remote(&remote).await?;
        Ok(report)
    }
}

impl PublishTarget for S3Target {
    fn publish(&self, root: &Path, tree: &[TreeEntry], run: RunId) -> Result<PublishReport, PublishError> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(rt.block_on(self.publish_async(root, tree, run))?)
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_phases() {
        assert_eq!(parse_url("s3://bucket/a/b/").unwrap(), ("bucket".into(), "a/b".into()));
        assert_eq!(parse_url("s3://bucket").unwrap(), ("bucket".into(), String::new()));
        assert!(
            parse_url("http://bucket/x").is_err()
                && parse_url("s3:///x").is_err()
                && parse_url("s3://Bad_Bucket/x").is_err()
        );
        assert_eq!(phase("packages/a/a-1.0.tar.gz"), 0);
        assert_eq!(phase("simple/a/index.html"), 1);
        assert_eq!(phase("simple/index.html"), 2);
        assert_eq!(phase("index.html"), 2);
        assert_eq!(phase("reports/security.json"), 2);
    }

    #[test]
    fn ini_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials");
        std::fs::write(
            &p,
            "[default]\naws_access_key_id = A\n[prod]\naws_access_key_id=B\naws_secret_access_key = S\n",
        )
        .unwrap();
        assert_eq!(ini_section(&p, "prod").get("aws_secret_access_key").map(String::as_str), Some("S"));
        assert_eq!(ini_section(&p, "default").get("aws_access_key_id").map(String::as_str), Some("A"));
        assert!(ini_section(&p, "none").is_empty());
    }
}
