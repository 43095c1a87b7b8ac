//! Credential redaction for everything airlock prints.
//!
//! Index URLs often carry tokens (`https://user:token@host/simple/`). Every
//! URL that reaches a log line, an error or a report goes through here.

use url::Url;

/// The URL with any password (and username) replaced by `***`.
pub fn url(u: &Url) -> String {
    if u.username().is_empty() && u.password().is_none() {
        return u.to_string();
    }
    let mut clean = u.clone();
    let _ = clean.set_username("***");
    let _ = clean.set_password(None);
    clean.to_string()
}

/// The URL without any userinfo: safe to store, and still fetchable (the
/// client adds credentials back by origin).
pub fn strip(u: &Url) -> Url {
    let mut clean = u.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean
}

/// Redact credentials inside free text that may embed a URL (error chains).
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'' || c == ')')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hides_credentials() {
        let u = url::Url::parse("https://alice:s3cret@example.invalid/simple/").unwrap();
        assert_eq!(super::url(&u), "https://***@example.invalid/simple/");
        let t = super::text("error sending request for url (https://alice:s3cret@example.invalid/x)");
        assert!(!t.contains("s3cret") && !t.contains("alice"), "{t}");
        assert_eq!(super::text("plain https://example.invalid/a"), "plain https://example.invalid/a");
    }
}
