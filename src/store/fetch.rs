//! Parallel, verified fetch.
//!
//! Each file streams into a temporary file in the store's `tmp/` while its
//! sha256 and size are computed; it is accepted only if both match what the
//! upstream declared, then renamed atomically into the store. One failing
//! file never stops the others: every outcome is returned, and failures are
//! listed at the end of the run.

use std::io::{BufWriter, Read, Write};

use rayon::prelude::*;

use super::Store;
use crate::dist::filename::DistFilename;
use crate::dist::names::ProjectName;
use crate::upstream::listing::UpstreamFile;
use crate::upstream::{Client, Failure, GaveUp, Retry, UpstreamError};
use crate::util::hashing::{BUF_SIZE, HashingWriter, Sha256};
use crate::util::redact;
use crate::util::ui::{Progress, human_bytes};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Hash(Box<HashMismatch>),
    #[error("{0}")]
    Size(Box<SizeMismatch>),
    #[error(
        "{filename}: upstream {url} declares no sha256; refusing an unverifiable file (set `allow_missing_hashes = true` in [mirror] to accept it)"
    )]
    NoHash { filename: String, url: String },
    #[error("{filename}: {error}")]
    Upstream { filename: String, error: UpstreamError },
    #[error("{filename}: {error}")]
    Io { filename: String, error: std::io::Error },

    #[error("{message} (gave up after {attempts} attempts)")]
    Exhausted { message: String, attempts: u32, last: Box<FetchError> },
}

impl FetchError {
    pub fn filename(&self) -> &str {
        match self {
            FetchError::Size(m) => &m.filename,
            FetchError::Hash(m) => &m.filename,
            FetchError::NoHash { filename, .. }
            | FetchError::Upstream { filename, .. }
            | FetchError::Io { filename, .. } => filename,
            FetchError::Exhausted { last, .. } => last.filename(),
        }
    }
}

/// A body whose digest is not the one the upstream declared.
#[derive(Debug, thiserror::Error)]
#[error("{filename}: sha256 mismatch from {url}: expected {expected}, computed {computed}")]
pub struct HashMismatch {
    pub filename: String,
    pub url: String,
    pub expected: Sha256,
    pub computed: Sha256,
}

/// A body that was cut short (or ran long): what was declared and what arrived.
#[derive(Debug, thiserror::Error)]
#[error(
    "{filename}: truncated or oversized body from {url}: expected {expected_size} bytes, received {received}; expected sha256 {}, computed {computed}{cause}",
    expected.map_or_else(|| "(none declared)".to_string(), |s| s.hex())
)]
pub struct SizeMismatch {
    pub filename: String,
    pub url: String,
    pub expected_size: u64,
    pub received: u64,
    pub expected: Option<Sha256>,
    pub computed: Sha256,
    pub cause: String,
}

/// A file to bring into the store.
#[derive(Debug, Clone)]
pub struct FetchJob {
    pub project: ProjectName,
    pub file: UpstreamFile,
}

/// A file now in the store, verified. Pairs with its [`FetchJob`] by
/// position: results come back in job order.
#[derive(Debug, Clone, Copy)]
pub struct Fetched {
    pub sha256: Sha256,
    pub size: u64,
    /// The extracted `.metadata` of a wheel, when it had a readable one.
    pub metadata: Option<(Sha256, u64)>,
}

#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    pub jobs: usize,
    pub allow_missing_hashes: bool,
}

/// A file below this size is a round trip more than a transfer: it does
/// not wait for one of the `jobs` transfer slots.
const SMALL_FILE: u64 = 1 << 20;

/// Fetch every job, `jobs` large transfers at once and small files beside
/// them. Results come back in job order.
pub fn fetch_all(
    client: &Client,
    store: &Store,
    jobs: &[FetchJob],
    opts: FetchOptions,
) -> Vec<Result<Fetched, FetchError>> {
    fetch_all_then(client, store, jobs, opts, &|_, _| None::<()>).into_iter().map(|(r, _)| r).collect()
}

/// [`fetch_all`], running `then` on each verified file in the worker that
/// fetched it, while the other transfers proceed (CPU work such as PEP 740
/// verification then hides under the I/O of the rest).
pub fn fetch_all_then<T: Send>(
    client: &Client,
    store: &Store,
    jobs: &[FetchJob],
    opts: FetchOptions,
    then: &(dyn Fn(&FetchJob, &Fetched) -> Option<T> + Sync),
) -> Vec<(Result<Fetched, FetchError>, Option<T>)> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let total: u64 = jobs.iter().filter_map(|j| j.file.size).sum();
    let progress = Progress::bytes("fetch", total);
    let done = std::sync::atomic::AtomicUsize::new(0);
    // `jobs` transfers of large files at once, and from a network upstream
    // more small ones beside them (`Client::requests_in_flight`): 900 small
    // wheels 20 ms away took 1.85 s on 16 threads and take a third of that
    // on 64.
    let transfers = crate::util::Slots::new(opts.jobs);
    let out = crate::util::with_pool(client.requests_in_flight(opts.jobs), || {
        jobs.par_iter()
            .map(|job| {
                let fetch = || fetch_one(client, store, job, opts, &progress);
                let result = match job.file.size {
                    Some(size) if size < SMALL_FILE => fetch(),
                    _ => transfers.hold(fetch),
                };
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress.set_message(format!("{n}/{} files", jobs.len()));
                match &result {
                    Ok(f) => {
                        let (file, size) = (job.file.filename.as_str(), human_bytes(f.size));
                        if crate::util::ui::bars() {
                            tracing::debug!(
                                project = job.project.as_str(),
                                file,
                                "fetched {file} ({size}) [{n}/{}]",
                                jobs.len()
                            )
                        } else {
                            tracing::info!(
                                project = job.project.as_str(),
                                file,
                                "fetched {file} ({size}) [{n}/{}]",
                                jobs.len()
                            )
                        }
                    }
                    Err(e) => tracing::error!(
                        code = "fetch-failed",
                        project = job.project.as_str(),
                        file = job.file.filename.as_str(),
                        "{e}"
                    ),
                }
                let after = result.as_ref().ok().and_then(|f| then(job, f));
                (result, after)
            })
            .collect()
    });
    progress.finish();
    out
}

fn fetch_one(
    client: &Client,
    store: &Store,
    job: &FetchJob,
    opts: FetchOptions,
    progress: &Progress,
) -> Result<Fetched, FetchError> {
    let filename = job.file.filename.as_str().to_string();
    let url = &job.file.url;
    if job.file.sha256.is_none() && !opts.allow_missing_hashes {
        return Err(FetchError::NoHash { filename, url: redact::url(url) });
    }
    let io = |error| FetchError::Io { filename: filename.clone(), error };
    let (tmp, sha256, size) =
        client.retry(|| download(client, store, job, progress)).map_err(|GaveUp { error, attempts }| {
            if attempts > 1 {
                FetchError::Exhausted { message: error.to_string(), attempts, last: Box::new(error) }
            } else {
                error
            }
        })?;
    let dest = store.path(&job.project, &job.file.filename);
    crate::util::fsx::persist(tmp, &dest).map_err(io)?;
    crate::util::fault::point("fetch");
    let metadata = match &job.file.filename {
        DistFilename::Wheel(w) => store.extract_metadata(&job.project, w),
        DistFilename::Sdist(_) => None,
    };
    Ok(Fetched { sha256, size, metadata })
}

/// One attempt: stream the body into a temp file and verify it.
fn download(
    client: &Client,
    store: &Store,
    job: &FetchJob,
    progress: &Progress,
) -> Result<(tempfile::NamedTempFile, Sha256, u64), Failure<FetchError>> {
    let filename = job.file.filename.as_str();
    let url = &job.file.url;
    let upstream = |e: UpstreamError| FetchError::Upstream { filename: filename.to_string(), error: e };
    let io = |error| FetchError::Io { filename: filename.to_string(), error };
    let (mut body, content_length) = client.open(url).map_err(|f| f.map(upstream))?;
    if let (Some(want), Some(got)) = (job.file.size, content_length)
        && want != got
    {
        // The server announces a different file: not a transient fault.
        return Err(Failure::fatal(FetchError::Size(Box::new(SizeMismatch {
            filename: filename.to_string(),
            url: redact::url(url),
            expected_size: want,
            received: got,
            expected: job.file.sha256,
            computed: Sha256::of(b""),
            cause: " (Content-Length; body not read)".into(),
        }))));
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{filename}."))
        .suffix(".part")
        .tempfile_in(store.tmp_dir())
        .map_err(|e| Failure::fatal(io(e)))?;
    // Write errors (a full disk) name the `.part` path: tempfile adds it.
    let mut writer = HashingWriter::new(BufWriter::with_capacity(BUF_SIZE, tmp));
    let mut buf = vec![0u8; BUF_SIZE];
    let mut read_error = None;
    loop {
        if let Err(stop) = crate::util::signal::check() {
            return Err(Failure::fatal(FetchError::Upstream { filename: filename.to_string(), error: stop.into() }));
        }
        match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                writer.write_all(&buf[..n]).map_err(|e| Failure::fatal(io(e)))?;
                progress.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    let (buffered, computed, received) = writer.finish();
    let tmp = buffered.into_inner().map_err(|e| Failure::fatal(io(e.into_error())))?;
    let expected_size = job.file.size.or(content_length);
    let short = expected_size.is_some_and(|want| want != received);
    if read_error.is_some() || short {
        progress.dec(received);
        let cause = read_error
            .map(|e| match crate::upstream::is_timeout(&e) {
                true => format!(" (stalled: no data for {}s, `timeout` in [mirror])", client.read_timeout().as_secs()),
                false => format!(" ({})", redact::text(&e.to_string())),
            })
            .unwrap_or_default();
        // A cut connection is worth another attempt; the file stays unpublished either way.
        return Err(Failure {
            error: FetchError::Size(Box::new(SizeMismatch {
                filename: filename.to_string(),
                url: redact::url(url),
                expected_size: expected_size.unwrap_or(received),
                received,
                expected: job.file.sha256,
                computed,
                cause,
            })),
            retry: Retry::After(None),
        });
    }
    if let Some(expected) = job.file.sha256
        && expected != computed
    {
        return Err(Failure::fatal(FetchError::Hash(Box::new(HashMismatch {
            filename: filename.to_string(),
            url: redact::url(url),
            expected,
            computed,
        }))));
    }
    Ok((tmp, computed, received))
}
