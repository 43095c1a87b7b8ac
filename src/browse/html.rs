//! The built-in `project.html`, written directly. Tera made a project
//! page cost twice its README (a context built from the view, then an
//! interpreter over it): a first build of a mirror with pages spent a
//! fifth of its time on them. The bytes are tera's own, escaping included,
//! which the tests hold for a page with every optional part, for every
//! escaped character and for any text; an overridden `project.html` or
//! `style.css` still goes through tera.

use super::view::PageView;
use crate::index::render::escape_html_into as escape;

/// The built-in template, whose static head (the page's own styles after
/// the shared stylesheet) is copied from it rather than written twice.
const TEMPLATE: &str = include_str!("../../templates/project.html");
const INCLUDE: &str = "{% include \"style.css\" %}";

/// Tera's truth for a string: present and not empty.
fn truthy(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Upstream (or any view) text: escaped.
fn e(s: &str) -> (&str, bool) {
    (s, true)
}

/// The page's own markup: as is.
fn l(s: &str) -> (&str, bool) {
    (s, false)
}

/// Appended to `out` in order, each escaped or not: chains of markup and text.
fn push(out: &mut String, parts: &[(&str, bool)]) {
    for (s, escaped) in parts {
        match escaped {
            true => escape(out, s),
            false => out.push_str(s),
        }
    }
}

/// The page, as tera renders the built-in `project.html` with the built-in
/// `style.css` (`style`).
pub(super) fn project_page(page: &PageView<'_>, style: &str) -> String {
    let (head, rest) = TEMPLATE.split_once(INCLUDE).unwrap_or((TEMPLATE, ""));
    let head_end = rest.find("</head>").map_or(rest, |i| &rest[..i]);
    let readme = page.readme.as_deref().unwrap_or_default();
    let mut out = String::with_capacity(style.len() + readme.len() + 4096 + page.versions.len() * 800);
    // The head up to the stylesheet, with its three values.
    let mut text = head;
    while let Some((before, after)) = text.split_once("{{ ") {
        let Some((name, after)) = after.split_once(" }}") else { break };
        out.push_str(before);
        escape(
            &mut out,
            match name {
                "key" => &page.key,
                "name" => page.name,
                _ => page.mirror,
            },
        );
        text = after;
    }
    out.push_str(text);
    out.push_str(style);
    out.push_str(head_end);
    push(
        &mut out,
        &[
            l("</head>\n<body>\n<header>\n<nav><a href=\"../../index.html\">"),
            e(page.mirror),
            l("</a> · <a href=\"../index.html\">all projects</a> · <a href=\"../../simple/"),
            e(page.name),
            l("/index.html\">simple index</a></nav>\n<h1>"),
            e(page.name),
        ],
    );
    if !page.newest.is_empty() {
        push(&mut out, &[l(" <span class=\"muted\">"), e(&page.newest), l("</span>")]);
    }
    out.push_str("</h1>\n");
    if !page.summary.is_empty() {
        push(&mut out, &[l("<div class=\"sub\">"), e(&page.summary), l("</div>")]);
    }
    out.push_str("\n</header>\n<main>\n");
    if let Some(status) = page.status.filter(|s| !s.is_empty()) {
        push(&mut out, &[l("<p class=\"banner\"><strong>The upstream marks this project "), e(status)]);
        if let Some(reason) = page.status_reason.filter(|s| !s.is_empty()) {
            push(&mut out, &[l(": "), e(reason)]);
        }
        out.push_str("</strong> (PEP 792).</p>\n");
    }
    if page.vulnerable > 0 {
        push(
            &mut out,
            &[
                l("<p class=\"banner\"><strong>"),
                l(&page.vulnerable.to_string()),
                l(
                    " served version(s) have known advisories</strong>: see <a href=\"#versions\">the versions</a> and the <a href=\"../../reports/security.html\">security report</a>.</p>\n",
                ),
            ],
        );
    }
    out.push_str("<h2>Install</h2>\n");
    let index = page.index_url.filter(|u| !u.is_empty()).unwrap_or("https://HOST/PATH/simple/");
    for tool in ["<pre>pip", "\nuv pip"] {
        push(&mut out, &[l(tool), l(" install --index-url "), e(index), l(" "), e(page.name)]);
    }
    out.push_str("</pre>\n<div class=\"layout\">\n<div>\n<h2>Description");
    if let Some(described) = truthy(&page.described).filter(|d| *d != page.newest) {
        push(&mut out, &[l(" <span class=\"muted\">(of "), e(described), l(")</span>")]);
    }
    out.push_str("</h2>\n");
    match page.readme.as_deref().filter(|r| !r.is_empty()) {
        Some(readme) => push(&mut out, &[l("<div class=\"readme\">"), l(readme), l("</div>\n")]),
        None => {
            out.push_str("<p class=\"muted\">No description: the served files carry no core metadata with one.</p>\n")
        }
    }
    out.push_str("<h2 id=\"versions\">Versions</h2>\n");
    versions(&mut out, page);
    held_and_withdrawn(&mut out, page);
    out.push_str("</div>\n<aside class=\"side\">\n");
    aside(&mut out, page);
    out.push_str("</aside>\n</div>\n</main>\n</body>\n</html>\n");
    out
}

fn versions(out: &mut String, page: &PageView<'_>) {
    for v in &page.versions {
        push(out, &[l("<div class=\"version\" id=\""), e(&v.id), l("\">\n<h3>"), e(&v.version)]);
        if let Some(up) = truthy(&v.uploaded) {
            push(out, &[l(" <span class=\"muted\">"), e(up), l("</span>")]);
        }
        if v.yanked {
            out.push_str(" <span class=\"tag\">yanked</span>");
        }
        if v.blocked {
            out.push_str(" <span class=\"tag blocked\">blocked: not served</span>");
        }
        out.push_str("</h3>\n");
        if !v.advisories.is_empty() {
            out.push_str("<ul>\n");
            for a in &v.advisories {
                push(
                    out,
                    &[
                        l("<li><a class=\"sev sev-"),
                        e(&a.severity),
                        l("\" href=\""),
                        e(&a.href),
                        l("\">"),
                        e(&a.severity),
                        l("</a> <a href=\""),
                        e(&a.href),
                        l("\">"),
                        e(&a.id),
                        l("</a>"),
                    ],
                );
                if a.ignored {
                    out.push_str(" <span class=\"tag\">ignored by policy</span>");
                }
                push(out, &[l(": "), e(&a.summary), l("</li>\n")]);
            }
            out.push_str("</ul>\n");
            if let Some(to) = truthy(&v.upgrade_to) {
                push(out, &[l("<p>Upgrade to <strong>"), e(to), l("</strong> or later.</p>")]);
            }
            out.push('\n');
        }
        if !v.files.is_empty() {
            out.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>File</th><th>Size</th><th class=\"hide-narrow\">Tags</th><th class=\"hide-narrow\">Requires-Python</th><th class=\"hide-narrow\">Uploaded</th><th class=\"hide-narrow\">Publisher</th></tr></thead>\n<tbody>\n");
            for f in &v.files {
                push(out, &[l("<tr><td><a href=\""), e(&f.href), l("\">"), e(&f.filename), l("</a>")]);
                if f.yanked {
                    out.push_str(" <span class=\"tag\">yanked");
                    if !f.yanked_reason.is_empty() {
                        push(out, &[l(": "), e(&f.yanked_reason)]);
                    }
                    out.push_str("</span>");
                }
                push(
                    out,
                    &[
                        l("<br><code class=\"sha\">sha256 "),
                        e(&f.sha256),
                        l("</code></td><td>"),
                        e(&f.size),
                        l("</td><td class=\"hide-narrow\"><code>"),
                        e(&f.tags),
                        l("</code></td><td class=\"hide-narrow\">"),
                        e(f.requires_python.as_deref().unwrap_or_default()),
                        l("</td><td class=\"hide-narrow\">"),
                        e(f.uploaded.as_deref().unwrap_or_default()),
                        l("</td><td class=\"hide-narrow\">"),
                    ],
                );
                if let Some(p) = truthy(&f.publisher) {
                    push(out, &[l("✓ "), e(p)]);
                }
                out.push_str("</td></tr>\n");
            }
            out.push_str("</tbody>\n</table></div>\n");
        }
        out.push_str("</div>\n");
    }
}

fn held_and_withdrawn(out: &mut String, page: &PageView<'_>) {
    if !page.held.is_empty() {
        out.push_str("<h2>Held releases</h2>\n<table>\n<thead><tr><th>Version</th><th>Why</th><th>Enters</th></tr></thead>\n<tbody>\n");
        for h in &page.held {
            push(
                out,
                &[
                    l("<tr><td>"),
                    e(&h.version),
                    l("</td><td><span class=\"tag\">"),
                    e(&h.reason),
                    l("</span> "),
                    e(&h.detail),
                    l("</td><td>"),
                    e(truthy(&h.due).unwrap_or("when admitted")),
                    l("</td></tr>\n"),
                ],
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    if !page.withdrawn.is_empty() {
        out.push_str(
            "<h2>Withdrawn</h2>\n<table>\n<thead><tr><th>File</th><th>Why</th><th>Since</th></tr></thead>\n<tbody>\n",
        );
        for w in &page.withdrawn {
            out.push_str("<tr><td>");
            match truthy(&w.filename) {
                Some(f) => escape(out, f),
                None => out.push_str("the whole project"),
            }
            push(out, &[l("</td><td>"), e(&w.reason), l("</td><td>"), e(&w.since), l("</td></tr>\n")]);
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

fn aside(out: &mut String, page: &PageView<'_>) {
    if !page.publishers.is_empty() {
        out.push_str("<section><h2>Verified publisher</h2><ul>");
        for p in &page.publishers {
            push(out, &[l("<li>✓ "), e(p), l("</li>")]);
        }
        out.push_str("</ul><p class=\"muted\">PEP 740 provenance, verified by this mirror.</p></section>\n");
    }
    if !page.links.is_empty() {
        out.push_str("<section><h2>Links</h2><ul>");
        for link in &page.links {
            push(
                out,
                &[
                    l("<li><a href=\""),
                    e(&link.href),
                    l("\" rel=\"noopener noreferrer nofollow\">"),
                    e(&link.label),
                    l("</a></li>"),
                ],
            );
        }
        out.push_str("</ul></section>\n");
    }
    out.push_str("<section><h2>Meta</h2>\n");
    if let Some(license) = truthy(&page.license) {
        push(out, &[l("<div>License: "), e(license), l("</div>")]);
    }
    out.push('\n');
    if let Some(rp) = truthy(&page.requires_python) {
        push(out, &[l("<div>Requires: Python "), e(rp), l("</div>")]);
    }
    out.push('\n');
    if !page.keywords.is_empty() {
        out.push_str("<div>Keywords: ");
        for k in &page.keywords {
            push(out, &[l("<span class=\"tag\">"), e(k), l("</span> ")]);
        }
        out.push_str("</div>");
    }
    push(
        out,
        &[
            l("\n<div>"),
            l(&page.versions.len().to_string()),
            l(" version(s) in this mirror</div>\n</section>\n<section><h2>Dependencies"),
        ],
    );
    if let Some(d) = truthy(&page.described) {
        push(out, &[l(" <span class=\"muted\">("), e(d), l(")</span>")]);
    }
    out.push_str("</h2>\n");
    if page.dependencies.is_empty() {
        out.push_str("<p class=\"muted\">None declared.</p>");
    } else {
        out.push_str("<ul>");
        for d in &page.dependencies {
            out.push_str("<li>");
            match truthy(&d.href) {
                Some(href) => push(out, &[l("<a href=\""), e(href), l("\">"), e(&d.written), l("</a>")]),
                None => escape(out, &d.written),
            }
            if !d.rest.is_empty() {
                push(out, &[l(" <code>"), e(&d.rest), l("</code>")]);
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("\n</section>\n<section><h2>Used by (in this mirror)</h2>\n");
    if page.dependents.is_empty() {
        out.push_str("<p class=\"muted\">No mirrored project depends on it.</p>");
    } else {
        out.push_str("<ul>");
        for d in &page.dependents {
            push(out, &[l("<li><a href=\""), e(&d.href), l("\">"), e(&d.label), l("</a></li>")]);
        }
        out.push_str("</ul>\n");
    }
    out.push_str("\n</section>\n");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::view::{Advisory, FileRow, Link, PageView, Requirement, VersionRow};
    use crate::audit::report::admission::{HeldView, WithdrawnView};
    use crate::index::Templates;

    fn tera_and_ours(page: &PageView<'_>) -> (String, String) {
        let templates = Templates::new(None).unwrap();
        let style = templates.builtin_style().unwrap();
        (templates.render("project.html", page).unwrap(), super::project_page(page, style))
    }

    fn file(name: &str, yanked: Option<&str>, rp: Option<&str>, publisher: Option<&str>) -> FileRow {
        FileRow {
            filename: name.into(),
            href: format!("../../packages/p/{name}"),
            size: "1.0 KiB".into(),
            sha256: "ab".repeat(32),
            tags: "py3-none-any".into(),
            requires_python: rp.map(Into::into),
            uploaded: rp.map(|_| "2024-01-01 00:00 UTC".into()),
            yanked: yanked.is_some(),
            yanked_reason: yanked.unwrap_or_default().into(),
            publisher: publisher.map(Into::into),
        }
    }

    fn version(v: &str, advisories: usize, files: Vec<FileRow>, upgrade: Option<&str>) -> VersionRow {
        VersionRow {
            version: v.into(),
            id: format!("p-{v}"),
            uploaded: (!files.is_empty()).then(|| "2024-01-02 00:00 UTC".into()),
            yanked: files.iter().any(|f| f.yanked),
            blocked: files.is_empty(),
            upgrade_to: upgrade.map(Into::into),
            advisories: (0..advisories)
                .map(|i| Advisory {
                    id: format!("GHSA-{i}<x>"),
                    severity: "high".into(),
                    summary: "bad & \"worse\" 'quoted'".into(),
                    href: "../../reports/security.html#p-1.0".into(),
                    ignored: i == 1,
                })
                .collect(),
            files,
        }
    }

    fn empty<'a>(name: &'a str, mirror: &'a str) -> PageView<'a> {
        PageView {
            key: String::new(),
            mirror,
            name,
            summary: String::new(),
            keywords: vec![],
            license: None,
            links: vec![],
            newest: String::new(),
            status: None,
            status_reason: None,
            index_url: None,
            described: None,
            readme: None,
            readme_source: None,
            requires_python: None,
            dependencies: vec![],
            dependents: vec![],
            publishers: vec![],
            versions: vec![],
            vulnerable: 0,
            held: vec![],
            withdrawn: vec![],
        }
    }

    #[test]
    fn the_builtin_page_is_the_templates_bytes() {
        let held = [
            HeldView {
                project: "p".into(),
                version: "3.0".into(),
                reason: "young".into(),
                due: Some("2026-01-01T00:00:00Z".into()),
                detail: "uploaded <1 day ago".into(),
            },
            HeldView {
                project: "p".into(),
                version: "3.1".into(),
                reason: "frozen".into(),
                due: None,
                detail: "".into(),
            },
        ];
        let withdrawn = [
            WithdrawnView {
                project: "p".into(),
                version: Some("0.9".into()),
                filename: Some("p-0.9.tar.gz".into()),
                reason: "removed-upstream".into(),
                since: "2025-01-01".into(),
            },
            WithdrawnView {
                project: "p".into(),
                version: None,
                filename: None,
                reason: "quarantined".into(),
                since: "x".into(),
            },
        ];
        let mut full = empty("p<&>", "mirror \"m\"");
        full.key = "k'".into();
        full.summary = "A <summary>".into();
        full.keywords = vec!["a&b".into(), "c".into()];
        full.license = Some("MIT <x>".into());
        full.links = vec![Link { label: "Home <h>".into(), href: "https://e.example/?a=1&b=2".into() }];
        full.newest = "2.0".into();
        full.status = Some("quarantined");
        full.status_reason = Some("malware <script>");
        full.index_url = Some("https://m.example/simple/?x=<y>");
        full.described = Some("1.0".into());
        full.readme = Some("<h1>Readme</h1>\n<p>safe & sound</p>".into());
        full.readme_source = Some("ff".into());
        full.requires_python = Some(">=3.8, <4".into());
        full.dependencies = vec![
            Requirement {
                name: None,
                written: "dep".into(),
                rest: "[x] >=1; python_version < \"3.9\"".into(),
                href: Some("../dep/index.html".into()),
            },
            Requirement { name: None, written: "other".into(), rest: String::new(), href: None },
        ];
        full.dependents = vec![Link { label: "user".into(), href: "../user/index.html".into() }];
        full.publishers = vec!["github.com/o/r <w>".into()];
        full.versions = vec![
            version(
                "2.0",
                2,
                vec![
                    file("p-2.0.whl", Some("broken \"x\""), Some("<4"), Some("gh")),
                    file("p-2.0.tar.gz", Some(""), None, None),
                ],
                Some("2.1"),
            ),
            version("1.5", 1, vec![], None),
            version("1.0", 0, vec![file("p-1.0.tar.gz", None, Some(""), None)], None),
        ];
        full.vulnerable = 2;
        full.held = held.iter().collect();
        full.withdrawn = withdrawn.iter().collect();
        let mut same_described = empty("q", "m");
        same_described.newest = "1.0".into();
        same_described.described = Some("1.0".into());
        same_described.status = Some("archived");
        same_described.index_url = Some("");
        same_described.readme = Some(String::new());
        for page in [empty("e", "m"), full, same_described] {
            let (tera, ours) = tera_and_ours(&page);
            assert_eq!(ours, tera);
        }
    }

    proptest! {
        #[test]
        fn the_builtin_page_matches_tera_on_any_text(
            name in ".{0,10}",
            summary in ".{0,10}",
            texts in proptest::collection::vec(".{0,8}", 6),
            n in 0usize..3,
        ) {
            let mut page = empty(&name, &texts[0]);
            page.summary = summary.clone();
            page.newest = texts[1].clone();
            page.described = Some(texts[2].clone());
            page.keywords = texts[3..5].to_vec();
            page.versions = (0..n).map(|i| version(&texts[5], i, vec![file(&texts[i], Some(&texts[4]), Some(&texts[3]), Some(&texts[2]))], Some(&texts[1]))).collect();
            let (tera, ours) = tera_and_ours(&page);
            prop_assert_eq!(ours, tera);
        }
    }
}
