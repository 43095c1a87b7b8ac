//! A project's README as its page shows it: the newest mirrored version's
//! METADATA description, by `Description-Content-Type`. Markdown is
//! rendered by pulldown-cmark and the HTML then sanitised by ammonia (in
//! that order: never sanitise first): no scripts, no event attributes, no
//! `javascript:` URLs. Images are not loaded, so the page works inside the
//! air gap: a markdown image becomes a link to it, an HTML `<img>` is
//! removed. reStructuredText (no maintained Rust renderer) and plain text
//! are shown pre-formatted, escaped.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// How a description is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    Markdown,
    Rst,
    Plain,
}

impl Markup {
    /// From `Description-Content-Type` (`text/markdown; charset=UTF-8`, ...);
    /// without one, PEP 566 says reStructuredText.
    pub fn of(content_type: Option<&str>) -> Markup {
        let kind = content_type.and_then(|c| c.split(';').next()).map(|c| c.trim().to_ascii_lowercase());
        match kind.as_deref() {
            Some("text/markdown") => Markup::Markdown,
            Some("text/plain") => Markup::Plain,
            _ => Markup::Rst,
        }
    }
}

/// The description of a METADATA / PKG-INFO file and how it is written:
/// the message body (metadata 2.1+), else the `Description` header with
/// its continuation prefix (8 spaces, or `|`) removed.
pub fn description(metadata: &[u8]) -> Option<(String, Markup)> {
    let text = String::from_utf8_lossy(metadata);
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text[i + 2..].to_string()),
        None => (&text[..], String::new()),
    };
    let headers = crate::dist::metadata::headers(head.as_bytes());
    let content_type = crate::dist::metadata::header_values(&headers, "Description-Content-Type").next();
    let markup = Markup::of(content_type);
    if !body.trim().is_empty() {
        return Some((body, markup));
    }
    // The header form: continuation lines keep their own indentation.
    let mut lines = head.lines().skip_while(|l| !l.to_ascii_lowercase().starts_with("description:"));
    let first = lines.next()?;
    let mut out = first.split_once(':').map(|(_, v)| v.trim_start().to_string()).unwrap_or_default();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        let l = l
            .strip_prefix("        |")
            .or_else(|| l.strip_prefix("       |"))
            .or_else(|| l.strip_prefix("        "))
            .unwrap_or(l.trim_start());
        out.push('\n');
        out.push_str(l);
    }
    (!out.trim().is_empty()).then_some((out, markup))
}

/// The description as safe HTML.
pub fn render(text: &str, markup: Markup) -> String {
    match markup {
        Markup::Markdown => markdown(text),
        Markup::Rst | Markup::Plain => format!("<pre class=\"readme-text\">{}</pre>", escape(text)),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    crate::index::render::escape_html_into(&mut out, s);
    out
}

/// CommonMark with GitHub's tables, strikethrough and task lists, as safe
/// HTML. A README with raw HTML in it goes through ammonia. One without
/// needs no sanitiser, and most have none: pulldown-cmark escapes all
/// their text and attribute values. Its only untrusted markup is then a
/// link's URL, whose scheme `safe_url` checks. That path costs a tenth of
/// ammonia's parse (docs/BENCHMARKS.md), and the fuzz target holds both
/// paths to the same rules. In both, an image becomes a link to it, its alt
/// text the link's text, and links are marked as leaving the mirror.
fn markdown(text: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut html = String::with_capacity(text.len() + text.len() / 2);
    // Raw HTML starts with a `<`: a README without one is streamed, not
    // collected to be looked through first.
    if !text.contains('<') {
        push_without_html(&mut html, Parser::new_ext(text, opts));
        return html;
    }
    let events: Vec<Event<'_>> = Parser::new_ext(text, opts).collect();
    if events.iter().any(|e| matches!(e, Event::Html(_) | Event::InlineHtml(_))) {
        let events = events.into_iter().map(|e| match e {
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                Event::Start(Tag::Link { link_type, dest_url, title, id })
            }
            Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
            e => e,
        });
        pulldown_cmark::html::push_html(&mut html, events);
        return sanitise(&html);
    }
    push_without_html(&mut html, events.into_iter());
    html
}

/// The HTML of markdown events with no raw HTML among them: links' URLs
/// checked, images as links, task-list boxes as text.
fn push_without_html<'e>(html: &mut String, events: impl Iterator<Item = Event<'e>>) {
    let events = events.map(|e| match e {
        Event::Start(Tag::Link { dest_url, title, .. } | Tag::Image { dest_url, title, .. }) => {
            let mut a = String::from("<a");
            if let Some(url) = safe_url(&dest_url) {
                a.push_str(" href=\"");
                crate::index::render::escape_html_into(&mut a, url);
                a.push('"');
            }
            if !title.is_empty() {
                a.push_str(" title=\"");
                crate::index::render::escape_html_into(&mut a, &title);
                a.push('"');
            }
            a.push_str(" rel=\"noopener noreferrer nofollow\">");
            Event::Html(a.into())
        }
        Event::End(TagEnd::Link | TagEnd::Image) => Event::Html("</a>".into()),
        Event::TaskListMarker(done) => Event::Text(if done { "[x] " } else { "[ ] " }.into()),
        e => e,
    });
    pulldown_cmark::html::push_html(html, events);
}

/// A link's URL, when it may be one: relative, or of a scheme that only
/// navigates (ammonia's rule, narrowed). Browsers drop tabs and newlines
/// inside a URL and ignore case, so the scheme is read as they read it.
fn safe_url(url: &str) -> Option<&str> {
    let seen: String = url.chars().filter(|c| !c.is_ascii_whitespace() && !c.is_control()).take(16).collect::<String>();
    let Some(colon) = seen.find(':') else { return Some(url) };
    let scheme_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    if !seen[..colon].chars().all(scheme_chars) {
        // Not a scheme (RFC 3986): a relative URL, as a browser reads it.
        return Some(url);
    }
    let scheme = seen[..colon].to_ascii_lowercase();
    matches!(scheme.as_str(), "http" | "https" | "mailto" | "ftp").then_some(url)
}

/// ammonia's defaults (no scripts, styles, event attributes or
/// `javascript:`), less images and forms, links marked as leaving the
/// mirror.
fn sanitise(html: &str) -> String {
    // One builder per thread: making one builds its tag and attribute sets,
    // which cost as much as cleaning a README.
    thread_local! {
        static CLEANER: ammonia::Builder<'static> = {
            let mut b = ammonia::Builder::default();
            b.rm_tags(["img", "picture", "source", "video", "audio", "iframe", "form", "input", "button"])
                .link_rel(Some("noopener noreferrer nofollow"));
            b
        };
    }
    CLEANER.with(|b| b.clean(html).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_hostile_markup_does_not_survive() {
        let text = "# Title\n\nSome `code` and a [link](https://example.org/).\n\n```python\nprint(1)\n```\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))\n\n<a href=\"#\" onclick=\"alert(4)\">x</a>\n\n![logo](https://cdn.example/logo.png)\n";
        let html = render(text, Markup::Markdown);
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<code>code</code>") && html.contains("<pre><code>print(1)"), "{html}");
        assert!(html.contains("href=\"https://example.org/\" rel=\"noopener noreferrer nofollow\""), "{html}");
        for bad in ["<script", "onerror", "href=\"javascript", "onclick", "<img"] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
        assert!(html.contains("<a href=\"https://cdn.example/logo.png\""), "an image becomes a link: {html}");
    }

    #[test]
    fn markdown_without_html_is_safe_without_the_sanitiser() {
        let text = "# T\n\n[a](javascript:alert(1)) [b](<JaVa\tScRiPt:alert(2)>) <javascript:alert(5)> [c](data:text/html,x) [d](https://ok.example/?a=\"b\") [e](../rel) \n\n![i](https://img.example/x.png \"t<\")\n\n- [x] done\n\n`<script>`\n";
        let html = render(text, Markup::Markdown);
        for bad in ["href=\"javascript", "ScRiPt:", "data:", "<script", "<img", "<input"] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
        assert!(html.contains("<a rel=\"noopener noreferrer nofollow\">a</a>"), "{html}");
        assert!(
            html.contains("<a href=\"https://ok.example/?a=&quot;b&quot;\" rel=\"noopener noreferrer nofollow\">d</a>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"../rel\""), "{html}");
        assert!(
            html.contains(
                "<a href=\"https://img.example/x.png\" title=\"t&lt;\" rel=\"noopener noreferrer nofollow\">i</a>"
            ),
            "{html}"
        );
        assert!(html.contains("[x] done") && html.contains("<code>&lt;script&gt;</code>"), "{html}");
    }

    #[test]
    fn rst_and_plain_text_are_escaped_and_preformatted() {
        let html = render("Title\n=====\n\n<script>x</script>", Markup::Rst);
        assert_eq!(html, "<pre class=\"readme-text\">Title\n=====\n\n&lt;script&gt;x&lt;/script&gt;</pre>");
        assert_eq!(Markup::of(Some("text/markdown; charset=UTF-8")), Markup::Markdown);
        assert_eq!(Markup::of(Some("text/plain")), Markup::Plain);
        assert_eq!(Markup::of(None), Markup::Rst);
    }

    #[test]
    fn the_description_comes_from_the_body_or_the_header() {
        let body =
            b"Metadata-Version: 2.1\nName: x\nDescription-Content-Type: text/markdown\n\n# Hello\n\n    indented\n";
        assert_eq!(description(body), Some(("# Hello\n\n    indented\n".to_string(), Markup::Markdown)));
        let header = b"Metadata-Version: 1.2\nName: x\nDescription: First line\n        second\n        |   kept indent\nKeywords: a\n";
        assert_eq!(description(header), Some(("First line\nsecond\n   kept indent".to_string(), Markup::Rst)));
        assert_eq!(description(b"Metadata-Version: 2.1\nName: x\n"), None);
    }
}
