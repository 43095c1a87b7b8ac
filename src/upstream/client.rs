//! The upstream index client: PEP 691 JSON with PEP 503 HTML fallback,
//! conditional requests, retries with capped exponential backoff and jitter
//! (honouring `Retry-After`), credentials from the URL, the environment or
//! `~/.netrc`, proxies from `HTTP(S)_PROXY`/`NO_PROXY`.
//!
//! Credentials never reach output: URLs are stripped of userinfo before any
//! request, every URL in an error is redacted, and transport errors are
//! rebuilt without reqwest's own (unredacted) URL.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::wire::{self, WireError};
use crate::dist::names::ProjectName;
use crate::util::hashing::Sha256;
use crate::util::redact;

pub const USER_AGENT: &str = concat!("airlock/", env!("CARGO_PKG_VERSION"), " (static PyPI mirror)");
const PAGE_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
/// Limits against hostile or broken servers, each failing with its own
/// error. The defaults are far above what PyPI serves (its largest project
/// pages are tens of MiB and tens of thousands of files); `AIRLOCK_MAX_*`
/// variables lower or raise them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A project page larger than this is refused rather than buffered.
    pub page_bytes: u64,
    /// A project page listing more files than this is refused.
    pub page_files: usize,
    /// Redirects followed per request (pip and reqwest follow 10 too).
    pub redirects: usize,
}

impl Limits {
    pub fn from_env() -> Limits {
        let var = |name: &str, default: u64| {
            std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(default)
        };
        Limits {
            page_bytes: var("AIRLOCK_MAX_PAGE_BYTES", 512 * 1024 * 1024),
            page_files: var("AIRLOCK_MAX_PAGE_FILES", 1_000_000) as usize,
            redirects: var("AIRLOCK_MAX_REDIRECTS", 10) as usize,
        }
    }
}

/// A whole page (or metadata file) must arrive within this many read
/// timeouts: a server trickling a byte at a time (slowloris) never trips
/// the per-read timeout alone.
const PAGE_DEADLINE_READS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("project `{project}` not found at {url} (HTTP 404)")]
    NotFound { project: String, url: String },
    #[error("GET {url}: {message}")]
    Transport { url: String, message: String },
    #[error("GET {url}: cannot resolve {host} ({cause}); check the upstream URL, DNS and proxy settings")]
    Dns { url: String, host: String, cause: String },
    #[error("{url}: {error}")]
    Io { url: String, error: std::io::Error },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{url}: {message}")]
    Invalid { url: String, message: String },
    #[error("{last} (gave up after {attempts} attempts)")]
    Exhausted { attempts: u32, last: Box<UpstreamError> },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("GET {url}: more than {limit} redirects (a redirect loop?)")]
    Redirects { url: String, limit: usize },
    #[error("GET {url}: stalled: no data for {seconds}s (`timeout` in [mirror])")]
    Stalled { url: String, seconds: u64 },
    #[error("GET {url}: too slow: not complete after {seconds}s ({PAGE_DEADLINE_READS} × `timeout`)")]
    TooSlow { url: String, seconds: u64 },
    #[error("GET {url}: the page is larger than the limit of {limit} bytes (AIRLOCK_MAX_PAGE_BYTES)")]
    PageTooLarge { url: String, limit: u64 },
    #[error("{url}: the page lists {files} files, more than the limit of {limit} (AIRLOCK_MAX_PAGE_FILES)")]
    TooManyFiles { url: String, files: usize, limit: usize },
    #[error(transparent)]
    Interrupted(#[from] crate::util::signal::Interrupted),
}

/// Whether an I/O error from a response body is its read timeout firing.
pub fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref().and_then(|r| r.downcast_ref::<reqwest::Error>()).is_some_and(reqwest::Error::is_timeout)
}

/// Whether a failed attempt may be retried, and after how long the server asked.
#[derive(Debug)]
pub enum Retry {
    No,
    After(Option<Duration>),
}

/// A failed attempt inside [`Client::retry`].
#[derive(Debug)]
pub struct Failure<E = UpstreamError> {
    pub error: E,
    pub retry: Retry,
}

impl<E> Failure<E> {
    pub fn fatal(error: E) -> Failure<E> {
        Failure { error, retry: Retry::No }
    }
    pub fn transient(error: E) -> Failure<E> {
        Failure { error, retry: Retry::After(None) }
    }
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Failure<F> {
        Failure { error: f(self.error), retry: self.retry }
    }
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        Failure::fatal(error)
    }
}

/// The last error of a retried operation and how many attempts it took.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    pub attempts: u32,
}

impl GaveUp<UpstreamError> {
    fn into_error(self) -> UpstreamError {
        if self.attempts > 1 {
            UpstreamError::Exhausted { attempts: self.attempts, last: Box::new(self.error) }
        } else {
            self.error
        }
    }
}

/// HTTP cache validators of a project page, kept in the state between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A project page as fetched.
#[derive(Debug)]
pub enum Page {
    NotModified,
    Fresh(Box<FetchedPage>),
}

#[derive(Debug)]
pub struct FetchedPage {
    pub page: wire::ProjectPage,
    /// The final URL after redirects: the base for relative links.
    pub url: Url,
    pub validators: Validators,
    /// Hash of the body, to tell an unchanged page even without validators.
    pub body_sha256: Sha256,
    /// The project's serial, where the upstream says it (PyPI's
    /// `X-PyPI-Last-Serial` header, or `_last-serial` in a PEP 691 page).
    pub serial: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub index: Url,
    pub retries: u32,
    pub timeout: Duration,
}

struct Auth {
    user: String,
    password: Option<String>,
}

/// What a run asked the upstream, counted as it goes (every attempt is a
/// request, as the server sees it).
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    pages: AtomicU64,
    not_modified: AtomicU64,
    bytes: AtomicU64,
    /// Fresh pages that carried an ETag or a Last-Modified, and that did not.
    validated: AtomicU64,
    unvalidated: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Traffic {
    pub requests: u64,
    pub pages: u64,
    pub not_modified: u64,
    pub bytes: u64,
    pub validated: u64,
    pub unvalidated: u64,
}

/// A body reader that counts what it reads into the client's bytes.
struct Counted<R> {
    inner: R,
    counters: std::sync::Arc<Counters>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub struct Client {
    http: reqwest::blocking::Client,
    counters: std::sync::Arc<Counters>,
    index: Url,
    index_auth: Option<Auth>,
    netrc: Option<netrc::Netrc>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
    limits: Limits,
}

fn transport(url: &Url, err: reqwest::Error) -> UpstreamError {
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    UpstreamError::Transport { url: redact::url(url), message: redact::text(&message) }
}

/// A request that could not be sent: a name that does not resolve rarely
/// starts to within a run, so it is said once, in one line, instead of
/// retried; anything else is retried.
fn send_failure(url: &Url, e: reqwest::Error) -> Failure {
    match dns_failure(&e) {
        Some(cause) => {
            let host = url.host_str().unwrap_or("").to_string();
            Failure::fatal(UpstreamError::Dns { url: redact::url(url), host, cause })
        }
        None => Failure::transient(transport(url, e)),
    }
}

/// The innermost cause of a failed name lookup, if that is what failed.
fn dns_failure(err: &reqwest::Error) -> Option<String> {
    if !err.is_connect() {
        return None;
    }
    let mut source: Option<&dyn std::error::Error> = Some(err);
    let mut dns = false;
    let mut last = String::new();
    while let Some(s) = source {
        let text = s.to_string();
        dns |= text.contains("dns error") || text.contains("failed to lookup address");
        last = text;
        source = s.source();
    }
    dns.then_some(last)
}

/// Parse `Retry-After` as delta-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

fn status_failure(url: &Url, status: StatusCode, headers: &HeaderMap) -> Failure {
    let error = UpstreamError::Status { url: redact::url(url), status };
    let retryable =
        status.is_server_error() || matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT);
    Failure { error, retry: if retryable { Retry::After(retry_after(headers)) } else { Retry::No } }
}

impl Client {
    /// Requests to keep in flight for `jobs` transfers: a network
    /// upstream's listings and small files are round trips, so more of
    /// them than transfers (`util::requests_in_flight`); a `file://`
    /// upstream's are local reads, where threads past `jobs` only contend
    /// (a 100,000-file first build: 5.2 s on 16 threads, 6.0 s on 64).
    pub(crate) fn requests_in_flight(&self, jobs: usize) -> usize {
        if self.index.scheme() == "file" { jobs.max(1) } else { crate::util::requests_in_flight(jobs) }
    }

    pub fn new(cfg: &ClientConfig) -> Result<Client, UpstreamError> {
        let mut index = cfg.index.clone();
        let index_auth = if !index.username().is_empty() {
            Some(Auth {
                user: percent_encoding::percent_decode_str(index.username()).decode_utf8_lossy().into_owned(),
                password: index
                    .password()
                    .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()),
            })
        } else {
            std::env::var("AIRLOCK_UPSTREAM_USERNAME")
                .ok()
                .map(|user| Auth { user, password: std::env::var("AIRLOCK_UPSTREAM_PASSWORD").ok() })
        };
        let _ = index.set_username("");
        let _ = index.set_password(None);
        let netrc = match netrc::Netrc::new() {
            Ok(n) => Some(n),
            Err(netrc::Error::Io(_)) => None,
            Err(e) => {
                tracing::warn!("ignoring unreadable netrc file: {e}");
                None
            }
        };
        let limits = Limits::from_env();
        // reqwest's blocking `timeout` bounds the wait for the answer and
        // then each read of its body: a per-read timeout, so large files
        // on slow links still complete.
        let http = reqwest::blocking::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::limited(limits.redirects))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(30)))
            .pool_max_idle_per_host(crate::util::MAX_IN_FLIGHT)
            .build()
            .map_err(|e| UpstreamError::Client(e.to_string()))?;
        let backoff = std::env::var("AIRLOCK_BACKOFF_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_millis(500));
        Ok(Client {
            http,
            counters: std::sync::Arc::default(),
            index,
            index_auth,
            netrc,
            retries: cfg.retries,
            backoff,
            timeout: cfg.timeout,
            limits,
        })
    }

    /// What this client asked so far.
    pub fn traffic(&self) -> Traffic {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Traffic {
            requests: get(&c.requests),
            pages: get(&c.pages),
            not_modified: get(&c.not_modified),
            bytes: get(&c.bytes),
            validated: get(&c.validated),
            unvalidated: get(&c.unvalidated),
        }
    }

    pub fn page_url(&self, project: &ProjectName) -> Url {
        self.index.join(&format!("{project}/")).expect("a normalized name is a valid path segment")
    }

    fn credentials(&self, url: &Url) -> Option<(String, Option<String>)> {
        if url.origin() == self.index.origin()
            && let Some(a) = &self.index_auth
        {
            return Some((a.user.clone(), a.password.clone()));
        }
        let n = self.netrc.as_ref()?;
        let host = url.host_str()?;
        let a = n.hosts.get(host).or_else(|| n.hosts.get("default"))?;
        Some((a.login.clone(), Some(a.password.clone())))
    }

    fn request(&self, url: &Url) -> reqwest::blocking::RequestBuilder {
        let mut req = self.http.get(url.clone());
        if let Some((user, pass)) = self.credentials(url) {
            req = req.basic_auth(user, pass);
        }
        req
    }

    /// Capped exponential backoff with jitter (half fixed, half random).
    fn delay(&self, attempt: u32) -> Duration {
        let cap = Duration::from_secs(30);
        let full = self.backoff.saturating_mul(1 << attempt.min(16)).min(cap);
        let half = full / 2;
        half + Duration::from_secs_f64(half.as_secs_f64() * fastrand::f64())
    }

    /// Run `f` until it succeeds, fails for good, or retries run out.
    pub fn retry<T, E: std::fmt::Display>(&self, mut f: impl FnMut() -> Result<T, Failure<E>>) -> Result<T, GaveUp<E>> {
        let mut attempt = 0;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(Failure { error, retry: Retry::After(after) })
                    if attempt < self.retries && !crate::util::signal::interrupted() =>
                {
                    let delay = after.map_or_else(|| self.delay(attempt), |d| d.min(Duration::from_secs(300)));
                    tracing::info!("{error}; retry {}/{} in {:.1}s", attempt + 1, self.retries, delay.as_secs_f64());
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(Failure { error, .. }) => {
                    return Err(GaveUp { error, attempts: attempt + 1 });
                }
            }
        }
    }

    /// Send one GET and classify the outcome; used inside [`Client::retry`].
    pub fn send(&self, url: &Url, headers: HeaderMap) -> Result<reqwest::blocking::Response, Failure> {
        crate::util::signal::check().map_err(|i| Failure::fatal(i.into()))?;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let sent = self.request(url).headers(headers).send();
        match &sent {
            Ok(r) => tracing::trace!(
                "GET {} -> {} in {:.1}ms",
                redact::url(url),
                r.status().as_u16(),
                started.elapsed().as_secs_f64() * 1000.0
            ),
            Err(e) => tracing::trace!("GET {} -> {e}", redact::url(url)),
        }
        let resp = sent.map_err(|e| {
            // A redirect loop stays one: named, and not retried.
            if e.is_redirect() {
                Failure::fatal(UpstreamError::Redirects { url: redact::url(url), limit: self.limits.redirects })
            } else {
                send_failure(url, e)
            }
        })?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            Ok(resp)
        } else {
            Err(status_failure(url, status, resp.headers()))
        }
    }

    /// Fetch a project page, as PEP 691 JSON when the upstream offers it.
    pub fn project_page(&self, project: &ProjectName, previous: Option<&Validators>) -> Result<Page, UpstreamError> {
        let url = self.page_url(project);
        if url.scheme() == "file" {
            return self.file_page(project, &url);
        }
        self.retry(|| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(PAGE_ACCEPT));
            if let Some(v) = previous {
                if let Some(etag) = v.etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                    headers.insert(header::IF_NONE_MATCH, etag);
                }
                if let Some(lm) = v.last_modified.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                    headers.insert(header::IF_MODIFIED_SINCE, lm);
                }
            }
            let resp = match self.send(&url, headers) {
                // 410 is a takedown said plainly; both mean "not offered".
                Err(Failure {
                    error: UpstreamError::Status { status: StatusCode::NOT_FOUND | StatusCode::GONE, .. },
                    ..
                }) => {
                    return Err(Failure::fatal(UpstreamError::NotFound {
                        project: project.to_string(),
                        url: redact::url(&url),
                    }));
                }
                other => other?,
            };
            self.counters.pages.fetch_add(1, Ordering::Relaxed);
            if resp.status() == StatusCode::NOT_MODIFIED {
                self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
                return Ok(Page::NotModified);
            }
            let final_url = resp.url().clone();
            let header_str =
                |h: header::HeaderName| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
            let validators =
                Validators { etag: header_str(header::ETAG), last_modified: header_str(header::LAST_MODIFIED) };
            let counter = if validators.etag.is_some() || validators.last_modified.is_some() {
                &self.counters.validated
            } else {
                &self.counters.unvalidated
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let content_type = header_str(header::CONTENT_TYPE).unwrap_or_default();
            let header_serial = header_str(header::HeaderName::from_static("x-pypi-last-serial"));
            let body = self.read_page(resp, &url, self.limits.page_bytes)?;
            let page = decode_page(&body, &content_type, &final_url, project)?;
            let serial = header_serial.and_then(|s| s.trim().parse().ok()).or_else(|| page.meta.serial());
            if page.files.len() > self.limits.page_files {
                return Err(Failure::fatal(UpstreamError::TooManyFiles {
                    url: redact::url(&url),
                    files: page.files.len(),
                    limit: self.limits.page_files,
                }));
            }
            Ok(Page::Fresh(Box::new(FetchedPage {
                page,
                url: final_url,
                validators,
                body_sha256: Sha256::of(&body),
                serial,
            })))
        })
        .map_err(GaveUp::into_error)
    }

    /// POST `body` to `url` (XML-RPC), with the index's credentials, retries
    /// and page limits; the response body.
    pub fn post(&self, url: &Url, body: &str) -> Result<Vec<u8>, UpstreamError> {
        self.retry(|| {
            crate::util::signal::check().map_err(|i| Failure::fatal(i.into()))?;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            tracing::trace!("POST {}", redact::url(url));
            let mut req = self.http.post(url.clone()).header(header::CONTENT_TYPE, "text/xml").body(body.to_string());
            if let Some((user, pass)) = self.credentials(url) {
                req = req.basic_auth(user, pass);
            }
            let resp = req.send().map_err(|e| send_failure(url, e))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(status_failure(url, status, resp.headers()));
            }
            self.read_page(resp, url, self.limits.page_bytes)
        })
        .map_err(GaveUp::into_error)
    }

    /// Every project name the index's root page lists (PEP 691 JSON or
    /// PEP 503 HTML; a `file://` index's directory names), for "did you
    /// mean" when a requested project is not there. Bounded like a page,
    /// at most `max` bytes.
    pub fn project_names(&self, max: u64) -> Result<Vec<String>, UpstreamError> {
        let url = self.index.clone();
        if url.scheme() == "file" {
            let dir = url
                .to_file_path()
                .map_err(|_| UpstreamError::Invalid { url: url.to_string(), message: "not a local path".into() })?;
            let io = |e| UpstreamError::Io { url: url.to_string(), error: e };
            let mut names = Vec::new();
            for entry in fs_err::read_dir(&dir).map_err(io)? {
                let entry = entry.map_err(io)?;
                if entry.path().is_dir() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            return Ok(names);
        }
        self.retry(|| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_static(PAGE_ACCEPT));
            let resp = self.send(&url, headers)?;
            let content_type =
                resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = self.read_page(resp, &url, max)?;
            Ok(wire::root_names(&body, &content_type))
        })
        .map_err(GaveUp::into_error)
    }

    /// The index URL the client was made for.
    pub fn index(&self) -> &Url {
        &self.index
    }

    /// The per-read timeout (`timeout` in `[mirror]`).
    pub fn read_timeout(&self) -> Duration {
        self.timeout
    }

    /// Read a whole small body (a page, a metadata file) of at most `limit`
    /// bytes, within the page deadline. Each limit fails with its own error.
    fn read_page(&self, mut resp: impl Read, url: &Url, limit: u64) -> Result<Vec<u8>, Failure> {
        let started = std::time::Instant::now();
        let deadline = self.timeout.saturating_mul(PAGE_DEADLINE_READS);
        let mut body = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            crate::util::signal::check().map_err(|i| Failure::fatal(i.into()))?;
            let n = match resp.read(&mut buf) {
                Ok(0) => return Ok(body),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    let seconds = self.timeout.as_secs();
                    return Err(Failure::transient(UpstreamError::Stalled { url: redact::url(url), seconds }));
                }
                Err(e) => return Err(Failure::transient(UpstreamError::Io { url: redact::url(url), error: e })),
            };
            if body.len() as u64 + n as u64 > limit {
                return Err(Failure::fatal(UpstreamError::PageTooLarge { url: redact::url(url), limit }));
            }
            body.extend_from_slice(&buf[..n]);
            self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if started.elapsed() > deadline {
                let seconds = deadline.as_secs();
                return Err(Failure::transient(UpstreamError::TooSlow { url: redact::url(url), seconds }));
            }
        }
    }

    /// A `file://` upstream: a static tree such as another airlock's output.
    fn file_page(&self, project: &ProjectName, url: &Url) -> Result<Page, UpstreamError> {
        let dir = url
            .to_file_path()
            .map_err(|_| UpstreamError::Invalid { url: url.to_string(), message: "not a local path".into() })?;
        self.counters.pages.fetch_add(1, Ordering::Relaxed);
        for (file, content_type) in [("index.v1_json", wire::JSON_CONTENT_TYPE), ("index.html", "text/html")] {
            let path = dir.join(file);
            if path.is_file() {
                let body = fs_err::read(&path).map_err(|e| UpstreamError::Io { url: url.to_string(), error: e })?;
                let page_url = Url::from_file_path(&path).expect("absolute path");
                let page = decode_page(&body, content_type, &page_url, project).map_err(|f| f.error)?;
                return Ok(Page::Fresh(Box::new(FetchedPage {
                    page,
                    url: page_url,
                    validators: Validators::default(),
                    body_sha256: Sha256::of(&body),
                    serial: None,
                })));
            }
        }
        Err(UpstreamError::NotFound { project: project.to_string(), url: url.to_string() })
    }

    /// Open a download. HTTP status and connection failures are classified for
    /// [`Client::retry`]; the caller streams and verifies the body.
    pub fn open(&self, url: &Url) -> Result<(Box<dyn Read + Send>, Option<u64>), Failure> {
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|_| {
                Failure::fatal(UpstreamError::Invalid { url: url.to_string(), message: "not a local path".into() })
            })?;
            let f = fs_err::File::open(&path)
                .map_err(|e| Failure::fatal(UpstreamError::Io { url: url.to_string(), error: e }))?;
            let len = f.metadata().ok().map(|m| m.len());
            return Ok((Box::new(f), len));
        }
        let mut headers = HeaderMap::new();
        // Artifacts are hashed as published: never let a transfer encoding
        // (a server gzip-encoding a .tar.gz) change the bytes we verify.
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let resp = self.send(url, headers)?;
        let len = resp.content_length();
        Ok((Box::new(Counted { inner: resp, counters: self.counters.clone() }), len))
    }
}

/// The answer to a range request.
pub enum Ranged {
    /// 206: `bytes` of a `total`-byte file, starting at `start`.
    Partial { start: u64, bytes: Vec<u8>, total: u64 },
    /// 200: the server ignores ranges and sends the whole file; the caller
    /// streams it (with its length, if announced).
    Whole(Box<dyn Read + Send>, Option<u64>),
}

/// `Content-Range: bytes START-END/TOTAL`.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?.trim().strip_prefix("bytes ")?;
    let (span, total) = v.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total.trim().parse().ok()?))
}

impl Client {
    /// GET `range` (an HTTP `Range` value such as `bytes=-65536`) of a file,
    /// at most `max` bytes of body, with retries.
    pub fn range(&self, url: &Url, range: &str, max: u64) -> Result<Ranged, UpstreamError> {
        let io = |e: std::io::Error| UpstreamError::Io { url: redact::url(url), error: e };
        self.retry(|| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            let value = HeaderValue::from_str(range).map_err(|e| {
                Failure::fatal(UpstreamError::Invalid { url: redact::url(url), message: e.to_string() })
            })?;
            headers.insert(header::RANGE, value);
            let resp = self.send(url, headers)?;
            if resp.status() != StatusCode::PARTIAL_CONTENT {
                let len = resp.content_length();
                return Ok(Ranged::Whole(Box::new(Counted { inner: resp, counters: self.counters.clone() }), len));
            }
            let Some((start, end, total)) = content_range(resp.headers()) else {
                return Err(Failure::fatal(UpstreamError::Invalid {
                    url: redact::url(url),
                    message: "a 206 answer without a usable Content-Range".into(),
                }));
            };
            let want = end.saturating_sub(start).saturating_add(1).min(max);
            let mut bytes = Vec::with_capacity(want.min(1 << 20) as usize);
            resp.take(want).read_to_end(&mut bytes).map_err(|e| Failure::transient(io(e)))?;
            if (bytes.len() as u64) < want {
                return Err(Failure::transient(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("range {range}: {} of {want} bytes", bytes.len()),
                ))));
            }
            self.counters.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(Ranged::Partial { start, bytes, total })
        })
        .map_err(GaveUp::into_error)
    }

    /// GET a small document whole (at most `max` bytes), with retries.
    pub fn get_small(&self, url: &Url, max: u64) -> Result<Vec<u8>, UpstreamError> {
        self.get_small_as(url, None, max)
    }

    /// [`Client::get_small`], asking for a media type (`Accept`).
    pub fn get_small_as(&self, url: &Url, accept: Option<&'static str>, max: u64) -> Result<Vec<u8>, UpstreamError> {
        let io = |e: std::io::Error| UpstreamError::Io { url: redact::url(url), error: e };
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|_| UpstreamError::Invalid { url: url.to_string(), message: "not a local path".into() })?;
            let mut out = Vec::new();
            fs_err::File::open(path).map_err(io)?.take(max).read_to_end(&mut out).map_err(io)?;
            return Ok(out);
        }
        self.retry(|| {
            let mut headers = HeaderMap::new();
            if let Some(a) = accept {
                headers.insert(header::ACCEPT, HeaderValue::from_static(a));
            }
            let resp = self.send(url, headers)?;
            let mut out = Vec::new();
            resp.take(max).read_to_end(&mut out).map_err(|e| Failure::transient(io(e)))?;
            Ok(out)
        })
        .map_err(GaveUp::into_error)
    }
}

/// The result of a conditional download.
#[derive(Debug)]
pub enum Download {
    NotModified,
    Fetched { validators: Validators, sha256: Sha256, size: u64 },
}

impl Client {
    /// Download `url` into `dest` (atomically), unless the validators say it
    /// is unchanged. Used for advisory sources.
    pub fn download_conditional(
        &self,
        url: &Url,
        previous: Option<&Validators>,
        dest: &std::path::Path,
    ) -> Result<Download, UpstreamError> {
        let io = |e: std::io::Error| UpstreamError::Io { url: redact::url(url), error: e };
        self.retry(|| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            if let Some(v) = previous {
                if let Some(etag) = v.etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                    headers.insert(header::IF_NONE_MATCH, etag);
                }
                if let Some(lm) = v.last_modified.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                    headers.insert(header::IF_MODIFIED_SINCE, lm);
                }
            }
            let mut resp = self.send(url, headers)?;
            if resp.status() == StatusCode::NOT_MODIFIED {
                return Ok(Download::NotModified);
            }
            let header_str =
                |h: header::HeaderName| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
            let validators =
                Validators { etag: header_str(header::ETAG), last_modified: header_str(header::LAST_MODIFIED) };
            let tmp = crate::util::fsx::temp_beside(dest).map_err(|e| Failure::fatal(io(e)))?;
            let mut w = crate::util::hashing::HashingWriter::new(std::io::BufWriter::new(tmp));
            std::io::copy(&mut resp, &mut w).map_err(|e| Failure::transient(io(e)))?;
            let (buf, sha256, size) = w.finish();
            let tmp = buf.into_inner().map_err(|e| Failure::fatal(io(e.into_error())))?;
            crate::util::fsx::persist(tmp, dest).map_err(|e| Failure::fatal(io(e)))?;
            Ok(Download::Fetched { validators, sha256, size })
        })
        .map_err(GaveUp::into_error)
    }
}

fn decode_page(
    body: &[u8],
    content_type: &str,
    url: &Url,
    project: &ProjectName,
) -> Result<wire::ProjectPage, Failure> {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == wire::JSON_CONTENT_TYPE || mime == "application/json" {
        wire::parse_json_page(body, &redact::url(url)).map_err(|e| Failure::fatal(e.into()))
    } else if mime.is_empty() || mime.contains("html") {
        Ok(wire::parse_html_page(body, url, project.as_ref()))
    } else {
        Err(Failure::fatal(UpstreamError::Invalid {
            url: redact::url(url),
            message: format!("unexpected Content-Type {content_type:?} for a project page"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn credentials_are_stripped_and_scoped_to_the_index_origin() {
        let c = Client::new(&ClientConfig {
            index: Url::parse("https://bob:t0ken@idx.example.invalid/simple/").unwrap(),
            retries: 0,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        assert_eq!(c.index.as_str(), "https://idx.example.invalid/simple/");
        let same = Url::parse("https://idx.example.invalid/files/x.whl").unwrap();
        assert_eq!(c.credentials(&same), Some(("bob".into(), Some("t0ken".into()))));
        let cdn = Url::parse("https://cdn.example.invalid/files/x.whl").unwrap();
        assert!(c.credentials(&cdn).is_none() || c.netrc.is_some());
        assert_eq!(c.page_url(&"zope-interface".parse().unwrap()).path(), "/simple/zope-interface/");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let c = Client::new(&ClientConfig {
            index: Url::parse("https://idx.example.invalid/simple/").unwrap(),
            retries: 3,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        for attempt in 0..40 {
            let d = c.delay(attempt);
            assert!(d <= Duration::from_secs(30));
            assert!(d >= c.backoff.saturating_mul(1 << attempt.min(16)).min(Duration::from_secs(30)) / 2);
        }
    }
}
