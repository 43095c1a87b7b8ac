//! `airlock serve`: a static server for a published tree, with the same
//! PEP 691 negotiation and content types as the documented nginx setup,
//! good enough to be the air gap's index server: hyper on tokio, every
//! connection kept alive on its own task (so concurrent keep-alive clients
//! such as uv never queue behind each other), files streamed, single byte
//! ranges answered, one access-log line per request.
//!
//! It resolves the tree root on every request, so an atomic swap by a build
//! running beside it is picked up at once. Paths are decoded, stripped of
//! `.`/`..` and checked to stay under the root.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::Error;
use crate::util::mime;

type Body = BoxBody<Bytes, std::io::Error>;

/// Map a URL path to a file under `root`, refusing anything that escapes it.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let path = url_path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    if decoded.contains('\0') {
        return None;
    }
    let mut out = root.to_path_buf();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` of a `len`-byte
/// file as an inclusive range; `None` for anything else (served whole).
fn byte_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => (len.saturating_sub(suffix.parse().ok()?), len - 1),
        (a, "") => (a.parse().ok()?, len - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(len - 1)),
    };
    (start <= end && start < len).then_some((start, end))
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r =
        Response::new(Full::new(Bytes::from_static(body.as_bytes())).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn empty() -> Body {
    Empty::new().map_err(|n: Infallible| match n {}).boxed()
}

/// A file's body from `start`, `len` bytes, streamed.
async fn stream(path: &Path, start: u64, len: u64) -> std::io::Result<Body> {
    let mut file = tokio::fs::File::open(path).await?;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let reader = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024);
    let frames = futures::StreamExt::map(reader, |chunk| chunk.map(Frame::data));
    Ok(StreamBody::new(frames).boxed())
}

/// What a request is answered with.
async fn answer(root: &Path, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let url = req.uri().path();
    // Re-resolve the root each time: `public` may have been swapped.
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let Some(mut path) = resolve(&root, url) else { return text(StatusCode::NOT_FOUND, "not found\n") };
    let mut vary = false;
    if path.is_dir() {
        if !url.ends_with('/') {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
            if let Ok(v) = HeaderValue::from_str(&format!("{url}/")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        vary = true;
        let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let json = path.join("index.v1_json");
        path = if mime::prefers_json(accept) && json.is_file() { json } else { path.join("index.html") };
    }
    // Symlinks inside the tree must not lead outside it.
    let inside = std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&root));
    let Some(len) = inside.then(|| std::fs::metadata(&path).ok()).flatten().filter(|m| m.is_file()).map(|m| m.len())
    else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let rel = path.strip_prefix(&root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|r| byte_range(r, len));
    let (status, start, count) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, len),
    };
    let body = if *req.method() == Method::HEAD {
        empty()
    } else {
        match stream(&path, start, count).await {
            Ok(b) => b,
            Err(_) => return text(StatusCode::NOT_FOUND, "not found\n"),
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime::content_type(&rel)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(mime::cache_control(&rel)));
    // Always a Content-Length, never chunked: pip shows sizes and progress
    // from it, and a client that reuses the connection knows where the
    // body ends.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((a, b)) = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if vary {
        h.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    r
}

/// Answer one request and log it (the access log: one line per request).
async fn handle(
    root: Arc<PathBuf>,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let response = answer(&root, &req).await;
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let json = response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t == mime::SIMPLE_JSON);
    tracing::info!(
        target: "airlock::access",
        peer = %peer,
        method = %req.method(),
        path = req.uri().path(),
        status = response.status().as_u16(),
        bytes,
        "{peer} \"{} {} {:?}\" {} {bytes}{} {:.1}ms",
        req.method(),
        req.uri().path(),
        req.version(),
        response.status().as_u16(),
        if json { " json" } else { "" },
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(response)
}

/// Serve `dir` on `bind:port` until the process is stopped. Prints the URL
/// on stdout (port 0 picks a free one).
pub fn serve(dir: &Path, bind: std::net::IpAddr, port: u16) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!("{} is not a directory (build a mirror first)", dir.display())));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((bind, port))
            .await
            .map_err(|e| Error::Failed(format!("cannot listen on {bind}:{port}: {e}")))?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        let shown = if addr.is_ipv6() && !addr.ip().is_unspecified() { format!("[{host}]") } else { host };
        println!(
            "serving {} at http://{shown}:{}/ (simple index: http://{shown}:{}/simple/)",
            dir.display(),
            addr.port(),
            addr.port()
        );
        let _ = std::io::stdout().flush();
        let root = Arc::new(dir.to_path_buf());
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors, a reset before accept: keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let root = root.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(root.clone(), peer, req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!("{peer}: {e}");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_root() {
        let root = Path::new("/srv/tree");
        assert_eq!(resolve(root, "/simple/pkg/"), Some(PathBuf::from("/srv/tree/simple/pkg")));
        assert_eq!(resolve(root, "/packages/p/p%2B1.whl?x=1"), Some(PathBuf::from("/srv/tree/packages/p/p+1.whl")));
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/simple/%2e%2e/%2e%2e/etc"), None);
        assert_eq!(resolve(root, "/a%00b"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
    }
}
