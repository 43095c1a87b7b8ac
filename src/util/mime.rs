//! Content types and caching for the published tree, shared by `serve`,
//! S3 publishing and the generated nginx configuration, so that every way of
//! serving a tree labels each file the same.

/// PEP 691: the JSON form of the simple API.
pub const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

/// The Content-Type of a file in the tree, by name.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "index.v1_json" {
        return SIMPLE_JSON;
    }
    let lower = name.to_ascii_lowercase();
    let table: &[(&str, &str)] = &[
        (".html", "text/html; charset=utf-8"),
        (".metadata", "text/plain; charset=utf-8"),
        (".whl", "application/zip"),
        (".zip", "application/zip"),
        (".tar.gz", "application/gzip"),
        (".tgz", "application/gzip"),
        (".tar.bz2", "application/x-bzip2"),
        (".tar.xz", "application/x-xz"),
        (".zst", "application/zstd"),
        (".sarif", "application/sarif+json"),
        (".json", "application/json"),
        (".md", "text/markdown; charset=utf-8"),
        (".css", "text/css; charset=utf-8"),
        // The project search (projects/index.js, search.js): a browser
        // honouring `nosniff` runs no script served as octet-stream.
        (".js", "text/javascript; charset=utf-8"),
        (".png", "image/png"),
        (".svg", "image/svg+xml"),
        (".txt", "text/plain; charset=utf-8"),
        (".conf", "text/plain; charset=utf-8"),
    ];
    table.iter().find(|(ext, _)| lower.ends_with(ext)).map_or("application/octet-stream", |(_, t)| t)
}

/// Artifacts never change under a name (a new file gets a new name), pages do.
pub fn cache_control(path: &str) -> &'static str {
    if path.starts_with("packages/") { "public, max-age=31536000, immutable" } else { "public, max-age=300" }
}

/// PEP 691 negotiation: does this Accept header prefer the JSON form?
pub fn prefers_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut json, mut html) = (0.0f32, 0.0f32);
    for part in accept.split(',') {
        let mut fields = part.split(';');
        let mime = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = fields
            .filter_map(|f| f.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match mime.as_str() {
            "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json" => json = json.max(q),
            "application/vnd.pypi.simple.v1+html" | "application/vnd.pypi.simple.latest+html" | "text/html" => {
                html = html.max(q)
            }
            _ => {}
        }
    }
    json > 0.0 && json >= html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_negotiation() {
        assert_eq!(content_type("simple/x/index.v1_json"), "application/vnd.pypi.simple.v1+json");
        assert_eq!(content_type("packages/x/x-1.0.tar.gz"), "application/gzip");
        assert_eq!(content_type("packages/x/x-1.0-py3-none-any.whl.metadata"), "text/plain; charset=utf-8");
        assert_eq!(content_type("reports/security.sarif"), "application/sarif+json");
        assert_eq!(content_type("projects/index.js"), "text/javascript; charset=utf-8");
        assert!(prefers_json(Some(
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
        )));
        assert!(!prefers_json(Some("text/html, application/vnd.pypi.simple.v1+json;q=0.5")));
        assert!(!prefers_json(Some("*/*")));
        assert!(!prefers_json(None));
        assert_eq!(cache_control("packages/a/b.whl"), "public, max-age=31536000, immutable");
    }
}
