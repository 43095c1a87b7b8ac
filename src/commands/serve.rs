//! `airlock serve`: a small static preview server on 127.0.0.1 with the
//! same PEP 691 negotiation and content types as the documented nginx setup.
//!
//! It resolves the tree root on every request, so an atomic swap by a build
//! running beside it is picked up at once. Paths are decoded, stripped of
//! `.`/`..` and checked to stay under the root.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use tiny_http::{Header, Response, Server};

use crate::error::Error;
use crate::util::mime;

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

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

/// Serve `dir` until the process is stopped. Prints the URL on stdout.
pub fn serve(dir: &Path, port: u16) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!("{} is not a directory (build a mirror first)", dir.display())));
    }
    let server = Server::http(("127.0.0.1", port))
        .map_err(|e| Error::Failed(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let addr = server.server_addr().to_ip().expect("a TCP listener");
    println!("serving {} at http://{addr}/ (simple index: http://{addr}/simple/)", dir.display());
    let _ = std::io::stdout().flush();
    let dir = dir.to_path_buf();
    for request in server.incoming_requests() {
        let dir = dir.clone();
        std::thread::spawn(move || handle(&dir, request));
    }
    Ok(())
}

fn handle(dir: &Path, request: tiny_http::Request) {
    let url = request.url().to_string();
    let accept = request.headers().iter().find(|h| h.field.equiv("Accept")).map(|h| h.value.as_str().to_string());
    let not_found =
        || Response::from_string("not found\n").with_status_code(404).with_header(header("Content-Type", "text/plain"));
    if !matches!(request.method(), tiny_http::Method::Get | tiny_http::Method::Head) {
        let _ = request.respond(Response::from_string("method not allowed\n").with_status_code(405));
        return;
    }
    // Re-resolve the root each time: `public` may have been swapped.
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Some(mut path) = resolve(&root, &url) else {
        let _ = request.respond(not_found());
        return;
    };
    let mut vary = false;
    if path.is_dir() {
        if !url.split('?').next().unwrap_or("").ends_with('/') {
            let _ = request.respond(Response::empty(301).with_header(header("Location", &format!("{}/", url))));
            return;
        }
        vary = true;
        let json = path.join("index.v1_json");
        path = if mime::prefers_json(accept.as_deref()) && json.is_file() { json } else { path.join("index.html") };
    }
    // Symlinks inside the tree must not lead outside it.
    let inside = std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&root));
    let file = if inside { std::fs::File::open(&path).ok() } else { None };
    let Some(file) = file else {
        let _ = request.respond(not_found());
        return;
    };
    let rel = path.strip_prefix(&root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    // Always a Content-Length, never chunked: pip shows sizes and progress
    // from it, and a client that reuses the connection knows where the
    // body ends. For HEAD, tiny_http sends the same headers and no body.
    let mut response = Response::from_file(file)
        .with_chunked_threshold(usize::MAX)
        .with_header(header("Content-Type", mime::content_type(&rel)))
        .with_header(header("Cache-Control", mime::cache_control(&rel)));
    if vary {
        response = response.with_header(header("Vary", "Accept"));
    }
    let _ = request.respond(response);
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
}
