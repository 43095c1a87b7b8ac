//! An in-process fake package index on 127.0.0.1: PEP 691 JSON or PEP 503
//! HTML project pages (with redirects for unnormalized names, ETags and
//! relative links), files with scripted faults, and a request log so tests
//! can count exactly what airlock fetched.
//!
//! Hand-written on `TcpListener` (one thread per connection, `Connection:
//! close`) so that faults such as a body cut short of its Content-Length are
//! exact.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::Digest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Json,
    Html,
}

/// What the server does when a file (or page) is requested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Answer with this status for the first `times` requests, then serve.
    StatusThenOk { status: u16, times: u32 },
    /// Always answer with this status.
    Always(u16),
    /// Announce the full Content-Length, send half, close.
    Truncate,
    /// Serve other bytes than the listing's hash describes.
    Corrupt,
    /// Announce the full Content-Length, send half, then send nothing more
    /// for a minute (a run to interrupt mid-download).
    Stall,
    /// Redirect to the same path, forever.
    RedirectLoop,
    /// Announce a large body and send one byte every 200 ms (slowloris).
    Trickle,
}

#[derive(Clone, Debug, Default)]
pub struct FakeFile {
    pub filename: String,
    pub bytes: Vec<u8>,
    pub yanked: Option<String>,
    pub requires_python: Option<String>,
    pub upload_time: Option<String>,
    /// Declare no sha256 at all.
    pub no_hash: bool,
    /// Declare this sha256 instead of the real one.
    pub declared_sha256: Option<String>,
    /// Declare this URL instead of `../../files/<filename>`.
    pub url: Option<String>,
    /// A PEP 740 provenance object, served at `../../files/<filename>.provenance`.
    pub provenance: Option<Vec<u8>>,
}

impl FakeFile {
    pub fn new((filename, bytes): (String, Vec<u8>)) -> FakeFile {
        FakeFile { filename, bytes, ..FakeFile::default() }
    }
    pub fn uploaded(mut self, time: &str) -> FakeFile {
        self.upload_time = Some(time.to_string());
        self
    }
    pub fn yanked(mut self, reason: &str) -> FakeFile {
        self.yanked = Some(reason.to_string());
        self
    }
    pub fn sha256(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.bytes))
    }
}

#[derive(Default)]
struct Inner {
    /// Keyed by normalized name; value: (name as the upstream spells it, files).
    projects: BTreeMap<String, (String, Vec<FakeFile>)>,
    faults: BTreeMap<String, Fault>,
    hits: BTreeMap<String, u32>,
    requests: Vec<String>,
    /// `Authorization` header of each request (None when absent), in order.
    auth: Vec<Option<String>>,
    /// Requests that arrived in proxy (absolute) form.
    proxied: u32,
    /// Arbitrary files under `/raw/`, served with an ETag.
    raw: BTreeMap<String, Vec<u8>>,
    /// Responses under `/raw/` that were 304 Not Modified.
    not_modified: u32,
    /// Project pages answered 304 Not Modified.
    pages_not_modified: u32,
    /// Serve PEP 658 `.metadata` files and declare them on pages.
    pep658: bool,
    /// Refuse range requests (answer them with the whole file).
    no_ranges: bool,
    /// Range requests answered with 206.
    ranged: u32,
    /// Speak PyPI's serials: XML-RPC at `/pypi`, `X-PyPI-Last-Serial`.
    serials: bool,
    /// Send no ETag on pages (a proxy that strips them).
    no_etags: bool,
    /// The index's serial: bumped by every change.
    serial: i64,
    /// (name, serial) of every change `changelog_since_serial` reports.
    changelog: Vec<(String, i64)>,
    /// Each project's last serial, by normalized name.
    project_serial: BTreeMap<String, i64>,
    /// PEP 792 status and reason, by normalized name.
    status: BTreeMap<String, (String, Option<String>)>,
}

#[derive(Clone)]
pub struct Upstream {
    pub port: u16,
    flavour: Flavour,
    inner: Arc<Mutex<Inner>>,
}

/// PEP 503 normalization.
pub fn normalize(name: &str) -> String {
    super::dist::collapse(name, '-')
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Upstream {
    pub fn start(flavour: Flavour) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Upstream { port, flavour, inner: Arc::new(Mutex::new(Inner::default())) };
        let server = up.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let server = server.clone();
                std::thread::spawn(move || {
                    let _ = server.handle(stream);
                });
            }
        });
        up
    }

    pub fn index_url(&self) -> String {
        format!("http://127.0.0.1:{}/simple/", self.port)
    }

    /// Add a file to a project (spelled as upstream spells it).
    pub fn add(&self, project: &str, file: FakeFile) {
        self.add_logged(project, file, true);
    }

    /// Add a file, bumping the serials, but leave it out of the changelog:
    /// a changelog that lies.
    pub fn add_unlogged(&self, project: &str, file: FakeFile) {
        self.add_logged(project, file, false);
    }

    fn add_logged(&self, project: &str, file: FakeFile, logged: bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.serial += 1;
        let serial = inner.serial;
        if logged {
            inner.changelog.push((project.to_string(), serial));
        }
        inner.project_serial.insert(normalize(project), serial);
        let entry = inner.projects.entry(normalize(project)).or_insert_with(|| (project.to_string(), Vec::new()));
        entry.1.retain(|f| f.filename != file.filename);
        entry.1.push(file);
    }

    /// Take a file off a project's page (its URL answers 404 too), as a
    /// takedown does; logged in the changelog as PyPI logs a removal.
    pub fn remove(&self, project: &str, filename: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.serial += 1;
        let serial = inner.serial;
        inner.changelog.push((project.to_string(), serial));
        inner.project_serial.insert(normalize(project), serial);
        if let Some(entry) = inner.projects.get_mut(&normalize(project)) {
            entry.1.retain(|f| f.filename != filename);
        }
    }

    /// Mark a project with a PEP 792 status (`quarantined`, `archived`, ...).
    pub fn set_status(&self, project: &str, status: &str, reason: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        inner.serial += 1;
        let serial = inner.serial;
        inner.changelog.push((project.to_string(), serial));
        inner.project_serial.insert(normalize(project), serial);
        inner.status.insert(normalize(project), (status.to_string(), reason.map(str::to_string)));
    }

    /// Speak PyPI's serials (XML-RPC `changelog_last_serial` and
    /// `changelog_since_serial` at `/pypi`, serials on pages).
    pub fn serve_serials(&self, on: bool) {
        self.inner.lock().unwrap().serials = on;
    }

    /// The XML-RPC answer to a method call, if the upstream speaks serials.
    fn xmlrpc(&self, body: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        if !inner.serials {
            return None;
        }
        let int = |n: i64| format!("<value><int>{n}</int></value>");
        let value = if body.contains("<methodName>changelog_last_serial</methodName>") {
            int(inner.serial)
        } else {
            let since: i64 = body.split("<int>").nth(1)?.split('<').next()?.trim().parse().ok()?;
            let entries: String = inner
                .changelog
                .iter()
                .filter(|(_, s)| *s > since)
                .map(|(name, s)| {
                    format!(
                        "<value><array><data><value><string>{}</string></value><value><string>1.0</string></value>{}<value><string>add file</string></value>{}</data></array></value>",
                        escape(name),
                        int(1_700_000_000),
                        int(*s)
                    )
                })
                .collect();
            format!("<value><array><data>{entries}</data></array></value>")
        };
        Some(format!("<?xml version='1.0'?><methodResponse><params><param>{value}</param></params></methodResponse>"))
    }

    /// Serve `bytes` at `/raw/<name>` (with an ETag; 304 on a match).
    pub fn put_raw(&self, name: &str, bytes: Vec<u8>) {
        self.inner.lock().unwrap().raw.insert(name.to_string(), bytes);
    }

    /// Serve PEP 658/714 metadata files (and declare them on pages).
    pub fn serve_metadata(&self, on: bool) {
        self.inner.lock().unwrap().pep658 = on;
    }

    /// Send pages without ETags (as a proxy that strips them), or with.
    pub fn strip_etags(&self, on: bool) {
        self.inner.lock().unwrap().no_etags = on;
    }

    /// Answer range requests with the whole file, as some servers do.
    pub fn refuse_ranges(&self) {
        self.inner.lock().unwrap().no_ranges = true;
    }

    /// How many range requests were answered with 206.
    pub fn ranged(&self) -> u32 {
        self.inner.lock().unwrap().ranged
    }

    pub fn pages_not_modified(&self) -> u32 {
        self.inner.lock().unwrap().pages_not_modified
    }

    pub fn not_modified(&self) -> u32 {
        self.inner.lock().unwrap().not_modified
    }

    /// Fault for a path such as `/files/pkg-1.0.tar.gz` or `/simple/pkg/`.
    pub fn fault(&self, path: &str, fault: Fault) {
        self.inner.lock().unwrap().faults.insert(path.to_string(), fault);
    }

    /// Every request line path seen, in order.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn file_requests(&self) -> Vec<String> {
        self.requests().into_iter().filter(|p| p.starts_with("/files/")).collect()
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.inner.lock().unwrap().auth.clone()
    }

    pub fn proxied(&self) -> u32 {
        self.inner.lock().unwrap().proxied
    }

    pub fn clear_requests(&self) {
        self.inner.lock().unwrap().requests.clear();
    }

    fn handle(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let mut path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        // A proxy gets absolute-form targets: serve them as if we were the origin.
        let proxied = path.starts_with("http://");
        if proxied {
            let after_scheme = &path["http://".len()..];
            path = after_scheme.find('/').map_or("/".to_string(), |i| after_scheme[i..].to_string());
        }
        let fault = {
            let mut inner = self.inner.lock().unwrap();
            inner.proxied += u32::from(proxied);
            inner.auth.push(headers.get("authorization").cloned());
            inner.requests.push(path.clone());
            *inner.hits.entry(path.clone()).or_default() += 1;
            let hits = inner.hits[&path];
            match inner.faults.get(&path).cloned().unwrap_or_default() {
                Fault::StatusThenOk { status, times } if hits <= times => Fault::Always(status),
                Fault::StatusThenOk { .. } => Fault::None,
                f => f,
            }
        };
        if let Fault::Always(status) = fault {
            return respond(&mut stream, status, &[("Retry-After", "0")], b"fault\n");
        }
        if fault == Fault::RedirectLoop {
            return respond(&mut stream, 302, &[("Location", &path)], b"");
        }
        if fault == Fault::Trickle {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: text/html\r\n\r\n<html>";
            stream.write_all(head.as_bytes())?;
            for _ in 0..300 {
                std::thread::sleep(std::time::Duration::from_millis(200));
                stream.write_all(b" ")?;
                stream.flush()?;
            }
            return Ok(());
        }
        if path == "/pypi" {
            let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0u8; len.min(1 << 20)];
            reader.read_exact(&mut body)?;
            return match self.xmlrpc(&String::from_utf8_lossy(&body)) {
                Some(answer) => respond(&mut stream, 200, &[("Content-Type", "text/xml")], answer.as_bytes()),
                None => respond(&mut stream, 404, &[], b"no XML-RPC here\n"),
            };
        }
        if let Some(name) = path.strip_prefix("/raw/") {
            let body = self.inner.lock().unwrap().raw.get(name).cloned();
            let Some(body) = body else {
                return respond(&mut stream, 404, &[], b"no such file\n");
            };
            let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&body)[..8]));
            if headers.get("if-none-match") == Some(&etag) {
                self.inner.lock().unwrap().not_modified += 1;
                return respond(&mut stream, 304, &[("ETag", &etag)], b"");
            }
            return respond(&mut stream, 200, &[("Content-Type", "application/zip"), ("ETag", &etag)], &body);
        }
        if let Some(rest) = path.strip_prefix("/simple/") {
            let name = rest.trim_end_matches('/');
            if name.is_empty() {
                // PEP 503's root: a link per project, as the upstream spells it.
                let links: String = {
                    let inner = self.inner.lock().unwrap();
                    inner
                        .projects
                        .iter()
                        .map(|(n, (display, _))| format!("<a href=\"{n}/\">{}</a>\n", escape(display)))
                        .collect()
                };
                let body = format!("<html><body>\n{links}</body></html>\n");
                return respond(&mut stream, 200, &[("Content-Type", "text/html")], body.as_bytes());
            }
            if normalize(name) != name {
                let location = format!("/simple/{}/", normalize(name));
                return respond(&mut stream, 301, &[("Location", &location)], b"");
            }
            let (page, serial) = {
                let inner = self.inner.lock().unwrap();
                let serial = inner.serials.then(|| inner.project_serial.get(name).copied().unwrap_or(0).to_string());
                let status = inner.status.get(name);
                (
                    inner.projects.get(name).map(|(display, files)| self.page(display, files, inner.pep658, status)),
                    serial,
                )
            };
            let Some((content_type, body)) = page else {
                return respond(&mut stream, 404, &[], b"no such project\n");
            };
            let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&body)[..8]));
            let etags = !self.inner.lock().unwrap().no_etags;
            if etags && headers.get("if-none-match") == Some(&etag) {
                self.inner.lock().unwrap().pages_not_modified += 1;
                return respond(&mut stream, 304, &[("ETag", &etag)], b"");
            }
            let mut head = vec![("Content-Type", content_type)];
            if etags {
                head.push(("ETag", etag.as_str()));
            }
            if let Some(serial) = serial.as_deref() {
                head.push(("X-PyPI-Last-Serial", serial));
            }
            return respond(&mut stream, 200, &head, &body);
        }
        if let Some(name) = path.strip_prefix("/files/").and_then(|f| f.strip_suffix(".provenance")) {
            let prov = {
                let inner = self.inner.lock().unwrap();
                inner
                    .projects
                    .values()
                    .flat_map(|(_, fs)| fs.iter())
                    .find(|f| f.filename == name)
                    .and_then(|f| f.provenance.clone())
            };
            return match prov {
                Some(p)
                    if headers.get("accept").is_some_and(|a| a.contains("application/vnd.pypi.integrity.v1+json")) =>
                {
                    respond(&mut stream, 200, &[("Content-Type", "application/vnd.pypi.integrity.v1+json")], &p)
                }
                Some(_) => respond(&mut stream, 406, &[], b"ask for application/vnd.pypi.integrity.v1+json\n"),
                None => respond(&mut stream, 404, &[], b"no provenance\n"),
            };
        }
        if let Some(wheel) = path.strip_prefix("/files/").and_then(|f| f.strip_suffix(".metadata")) {
            let meta = {
                let inner = self.inner.lock().unwrap();
                let file = inner.projects.values().flat_map(|(_, fs)| fs.iter()).find(|f| f.filename == wheel).cloned();
                file.filter(|_| inner.pep658).and_then(|f| metadata_of(&f.bytes))
            };
            return match meta {
                Some(m) => respond(&mut stream, 200, &[("Content-Type", "text/plain")], &m),
                None => respond(&mut stream, 404, &[], b"no metadata\n"),
            };
        }
        if let Some(filename) = path.strip_prefix("/files/") {
            let file = {
                let inner = self.inner.lock().unwrap();
                inner.projects.values().flat_map(|(_, fs)| fs.iter()).find(|f| f.filename == filename).cloned()
            };
            let Some(file) = file else {
                return respond(&mut stream, 404, &[], b"no such file\n");
            };
            return match fault {
                Fault::Truncate | Fault::Stall => {
                    // The full length announced, half the body sent.
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                        file.bytes.len()
                    );
                    stream.write_all(head.as_bytes())?;
                    stream.write_all(&file.bytes[..file.bytes.len() / 2])?;
                    stream.flush()?;
                    if fault == Fault::Stall {
                        std::thread::sleep(std::time::Duration::from_secs(60));
                        return Ok(());
                    }
                    stream.shutdown(std::net::Shutdown::Both)
                }
                Fault::Corrupt => {
                    let mut bytes = file.bytes.clone();
                    let last = bytes.len() - 1;
                    bytes[last] ^= 0xff;
                    respond(&mut stream, 200, &[("Content-Type", "application/octet-stream")], &bytes)
                }
                _ => {
                    let ranges = !self.inner.lock().unwrap().no_ranges;
                    match headers.get("range").and_then(|r| byte_range(r, file.bytes.len())).filter(|_| ranges) {
                        Some((start, end)) => {
                            self.inner.lock().unwrap().ranged += 1;
                            let content_range = format!("bytes {start}-{end}/{}", file.bytes.len());
                            respond(
                                &mut stream,
                                206,
                                &[("Content-Type", "application/octet-stream"), ("Content-Range", &content_range)],
                                &file.bytes[start..=end],
                            )
                        }
                        None => respond(&mut stream, 200, &[("Content-Type", "application/octet-stream")], &file.bytes),
                    }
                }
            };
        }
        // Drain any body so the client sees a clean close.
        let _ = reader.take(0).read_to_end(&mut Vec::new());
        respond(&mut stream, 404, &[], b"not found\n")
    }

    fn page(
        &self,
        display: &str,
        files: &[FakeFile],
        pep658: bool,
        status: Option<&(String, Option<String>)>,
    ) -> (&'static str, Vec<u8>) {
        let meta_sha = |f: &FakeFile| {
            pep658.then(|| metadata_of(&f.bytes)).flatten().map(|m| hex::encode(sha2::Sha256::digest(&m)))
        };
        let url = |f: &FakeFile| f.url.clone().unwrap_or_else(|| format!("../../files/{}", f.filename));
        let sha = |f: &FakeFile| f.declared_sha256.clone().unwrap_or_else(|| f.sha256());
        match self.flavour {
            Flavour::Json => {
                let files: Vec<serde_json::Value> = files
                    .iter()
                    .map(|f| {
                        let mut v = serde_json::json!({
                            "filename": f.filename,
                            "url": url(f),
                            "hashes": if f.no_hash { serde_json::json!({}) } else { serde_json::json!({"sha256": sha(f)}) },
                            "size": f.bytes.len(),
                            "yanked": match &f.yanked { None => serde_json::json!(false), Some(r) if r.is_empty() => serde_json::json!(true), Some(r) => serde_json::json!(r) },
                        });
                        if let Some(rp) = &f.requires_python {
                            v["requires-python"] = serde_json::json!(rp);
                        }
                        if let Some(t) = &f.upload_time {
                            v["upload-time"] = serde_json::json!(t);
                        }
                        if let Some(m) = meta_sha(f) {
                            v["core-metadata"] = serde_json::json!({"sha256": m});
                        }
                        if f.provenance.is_some() {
                            v["provenance"] = serde_json::json!(format!("../../files/{}.provenance", f.filename));
                        }
                        v
                    })
                    .collect();
                let mut body = serde_json::json!({"meta": {"api-version": "1.1", "_last-serial": "12"}, "name": normalize(display), "files": files});
                if let Some((status, reason)) = status {
                    body["meta"]["api-version"] = serde_json::json!("1.4");
                    body["project-status"] = serde_json::json!({"status": status, "reason": reason});
                }
                ("application/vnd.pypi.simple.v1+json", serde_json::to_vec(&body).unwrap())
            }
            Flavour::Html => {
                let mut meta = String::new();
                if let Some((status, reason)) = status {
                    meta.push_str(&format!("<meta name=\"pypi:project-status\" content=\"{}\">", escape(status)));
                    if let Some(r) = reason {
                        meta.push_str(&format!("<meta name=\"pypi:project-status-reason\" content=\"{}\">", escape(r)));
                    }
                }
                let mut html = format!(
                    "<!DOCTYPE html><html><head>{meta}<title>Links for {}</title></head><body>\n",
                    escape(display)
                );
                for f in files {
                    let frag = if f.no_hash { String::new() } else { format!("#sha256={}", sha(f)) };
                    html.push_str(&format!("<a href=\"{}{}\"", escape(&url(f)), frag));
                    if let Some(rp) = &f.requires_python {
                        html.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
                    }
                    if let Some(y) = &f.yanked {
                        html.push_str(&format!(" data-yanked=\"{}\"", escape(y)));
                    }
                    if let Some(m) = meta_sha(f) {
                        html.push_str(&format!(" data-core-metadata=\"sha256={m}\""));
                    }
                    if f.provenance.is_some() {
                        html.push_str(&format!(" data-provenance=\"../../files/{}.provenance\"", escape(&f.filename)));
                    }
                    html.push_str(&format!(">{}</a><br>\n", escape(&f.filename)));
                }
                html.push_str("</body></html>\n");
                ("text/html; charset=utf-8", html.into_bytes())
            }
        }
    }
}

/// A wheel's METADATA member (None for anything that is not a wheel).
fn metadata_of(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let name = zip.file_names().filter_map(Result::ok).find(|n| n.ends_with(".dist-info/METADATA"))?.into_owned();
    let mut out = Vec::new();
    zip.by_name(&name).ok()?.read_to_end(&mut out).ok()?;
    Some(out)
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` as an inclusive range.
fn byte_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => (len.saturating_sub(suffix.parse().ok()?), len.checked_sub(1)?),
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<usize>().ok()?.min(len.checked_sub(1)?)),
    };
    (start <= end).then_some((start, end))
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    if status != 304 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if status != 304 {
        stream.write_all(body)?;
    }
    stream.flush()
}
