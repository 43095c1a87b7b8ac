//! PyPI's serials: every change to the index (a release, a file upload, a
//! yank, a removal) gets the next number, and the XML-RPC API at
//! `<upstream>/pypi` answers `changelog_last_serial()` and
//! `changelog_since_serial(n)` (the changes after `n`, as
//! `[name, version, timestamp, action, serial]`). That is what makes a
//! no-change nightly run one request whatever the number of projects.
//!
//! Only the two calls are spoken, by hand: a request body is one line, and
//! the response is read by an event parser into a small value tree, bounded
//! in depth, so a hostile answer is an error, never a crash.

use quick_xml::events::Event;
use url::Url;

use super::client::{Client, UpstreamError};
use crate::dist::names::ProjectName;

/// One XML-RPC value, as far as the changelog needs.
#[derive(Debug, Clone, PartialEq)]
pub enum XmlRpc {
    Int(i64),
    Str(String),
    Array(Vec<XmlRpc>),
    /// Anything else (structs, doubles, nil, ...), not needed here.
    Other,
}

/// Nesting deeper than this is refused (a changelog is three levels deep).
const MAX_DEPTH: usize = 32;

/// Where an index's XML-RPC API is: PyPI's `https://pypi.org/simple/`
/// answers at `https://pypi.org/pypi`. An index not ending in `simple/`, or
/// not over http(s), has none that airlock knows how to find.
pub fn endpoint(index: &Url) -> Option<Url> {
    if !matches!(index.scheme(), "http" | "https") {
        return None;
    }
    let path = index.path().trim_end_matches('/');
    let base = path.strip_suffix("/simple")?;
    let mut url = index.clone();
    url.set_path(&format!("{base}/pypi"));
    url.set_query(None);
    Some(url)
}

fn call(method: &str, params: &[i64]) -> String {
    let params: String =
        params.iter().map(|p| format!("<param><value><int>{p}</int></value></param>")).collect::<String>();
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
    )
}

enum Frame {
    Value { text: String, typed: Option<XmlRpc> },
    Scalar { kind: Vec<u8>, text: String },
    Array(Vec<XmlRpc>),
    Struct,
}

/// Attach a finished value to the frame above it.
fn attach(stack: &mut [Frame], v: XmlRpc, result: &mut Option<XmlRpc>) {
    match stack.last_mut() {
        Some(Frame::Value { typed, .. }) => *typed = Some(v),
        Some(Frame::Array(items)) => items.push(v),
        Some(Frame::Struct | Frame::Scalar { .. }) => {}
        None => *result = Some(v),
    }
}

/// Why an XML-RPC answer was refused (said after the endpoint's URL).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum XmlRpcError {
    #[error("not XML: {0}")]
    NotXml(String),
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("bad text: {0}")]
    BadText(String),
    #[error("not an integer: {0:?}")]
    NotInteger(String),
    #[error("unbalanced elements")]
    Unbalanced,
    #[error("no value in the response")]
    NoValue,
    #[error("the server answered with a fault: {0:?}")]
    Fault(XmlRpc),
    #[error("the changelog is not an array")]
    NotAnArray,
    #[error("a changelog entry is not an array")]
    EntryNotAnArray,
    #[error("a changelog entry is not [name, version, timestamp, action, serial]: {0:?}")]
    BadEntry(Vec<XmlRpc>),
}

/// The value of a method response; a fault is an error naming its text.
pub fn parse_response(body: &[u8]) -> Result<XmlRpc, XmlRpcError> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Frame> = Vec::new();
    let mut result = None;
    let mut fault = false;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| XmlRpcError::NotXml(e.to_string()))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlRpcError::TooDeep);
                }
                match e.local_name().as_ref() {
                    b"value" => stack.push(Frame::Value { text: String::new(), typed: None }),
                    b"array" => stack.push(Frame::Array(Vec::new())),
                    b"struct" => stack.push(Frame::Struct),
                    b"fault" => fault = true,
                    b"data" | b"member" | b"name" | b"params" | b"param" | b"methodResponse" => {}
                    kind => stack.push(Frame::Scalar { kind: kind.to_vec(), text: String::new() }),
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == b"value" => {
                attach(&mut stack, XmlRpc::Str(String::new()), &mut result)
            }
            Event::Empty(_) => attach(&mut stack, XmlRpc::Other, &mut result),
            Event::Text(t) => {
                let text = t.decode().map_err(|e| XmlRpcError::BadText(e.to_string()))?;
                let text = quick_xml::escape::unescape(&text).map_err(|e| XmlRpcError::BadText(e.to_string()))?;
                if let Some(Frame::Value { text: s, .. } | Frame::Scalar { text: s, .. }) = stack.last_mut() {
                    s.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                // An entity (`&amp;`, `&#38;`) inside a string.
                let name = r.decode().map_err(|e| XmlRpcError::BadText(e.to_string()))?;
                let entity = format!("&{name};");
                let ch = quick_xml::escape::unescape(&entity).map_err(|e| XmlRpcError::BadText(e.to_string()))?;
                if let Some(Frame::Value { text: s, .. } | Frame::Scalar { text: s, .. }) = stack.last_mut() {
                    s.push_str(&ch);
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if matches!(name, b"data" | b"member" | b"name" | b"params" | b"param" | b"methodResponse" | b"fault") {
                    continue;
                }
                let v = match stack.pop() {
                    Some(Frame::Value { text, typed }) => typed.unwrap_or(XmlRpc::Str(text)),
                    Some(Frame::Array(items)) => XmlRpc::Array(items),
                    Some(Frame::Struct) => XmlRpc::Other,
                    Some(Frame::Scalar { kind, text }) => match kind.as_slice() {
                        b"int" | b"i4" | b"i8" => {
                            XmlRpc::Int(text.trim().parse().map_err(|_| XmlRpcError::NotInteger(text.to_string()))?)
                        }
                        b"string" => XmlRpc::Str(text),
                        _ => XmlRpc::Other,
                    },
                    None => return Err(XmlRpcError::Unbalanced),
                };
                attach(&mut stack, v, &mut result);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let value = result.ok_or(XmlRpcError::NoValue)?;
    if fault {
        return Err(XmlRpcError::Fault(value));
    }
    Ok(value)
}

/// One change: the normalized project and its serial.
pub type Change = (ProjectName, i64);

/// The changes of a `changelog_since_serial` answer; entries that do not
/// parse (a name that is not a project name) are skipped, a malformed
/// answer is an error.
pub fn changes(value: &XmlRpc) -> Result<Vec<Change>, XmlRpcError> {
    let XmlRpc::Array(items) = value else { return Err(XmlRpcError::NotAnArray) };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let XmlRpc::Array(fields) = item else { return Err(XmlRpcError::EntryNotAnArray) };
        let (Some(XmlRpc::Str(name)), Some(XmlRpc::Int(serial))) = (fields.first(), fields.get(4)) else {
            return Err(XmlRpcError::BadEntry(fields.clone()));
        };
        if let Ok(p) = name.parse::<ProjectName>() {
            out.push((p, *serial));
        }
    }
    Ok(out)
}

impl Client {
    fn xmlrpc(&self, method: &str, params: &[i64]) -> Result<XmlRpc, UpstreamError> {
        let url = endpoint(self.index()).ok_or_else(|| UpstreamError::Invalid {
            url: self.index().to_string(),
            message: "no XML-RPC endpoint known for this index".into(),
        })?;
        let body = self.post(&url, &call(method, params))?;
        parse_response(&body)
            .map_err(|e| UpstreamError::Invalid { url: format!("{url} ({method})"), message: e.to_string() })
    }

    /// The upstream's current serial.
    pub fn last_serial(&self) -> Result<i64, UpstreamError> {
        match self.xmlrpc("changelog_last_serial", &[])? {
            XmlRpc::Int(n) => Ok(n),
            other => Err(UpstreamError::Invalid {
                url: self.index().to_string(),
                message: format!("changelog_last_serial answered {other:?}, not an integer"),
            }),
        }
    }

    /// The changes after `serial`.
    pub fn changes_since(&self, serial: i64) -> Result<Vec<Change>, UpstreamError> {
        let value = self.xmlrpc("changelog_since_serial", &[serial])?;
        changes(&value).map_err(|e| UpstreamError::Invalid { url: self.index().to_string(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_of_an_index() {
        let e = |u: &str| endpoint(&Url::parse(u).unwrap()).map(|u| u.to_string());
        assert_eq!(e("https://pypi.org/simple/").as_deref(), Some("https://pypi.org/pypi"));
        assert_eq!(e("http://127.0.0.1:8080/mirror/simple").as_deref(), Some("http://127.0.0.1:8080/mirror/pypi"));
        assert_eq!(e("https://example.org/root/+simple/"), None);
        assert_eq!(e("file:///srv/simple/"), None);
    }

    #[test]
    fn parses_a_changelog_and_refuses_garbage() {
        let body = br#"<?xml version='1.0'?>
<methodResponse><params><param><value><array><data>
<value><array><data><value><string>Foo_Bar</string></value><value><string>1.0</string></value><value><int>1700000000</int></value><value><string>new release &amp; more</string></value><value><int>42</int></value></data></array></value>
<value><array><data><value>baz</value><value><nil/></value><value><i4>1700000001</i4></value><value>remove project</value><value><int>43</int></value></data></array></value>
</data></array></value></param></params></methodResponse>"#;
        let v = parse_response(body).unwrap();
        let c = changes(&v).unwrap();
        assert_eq!(c, vec![("foo-bar".parse().unwrap(), 42), ("baz".parse().unwrap(), 43)]);
        let fault = b"<methodResponse><fault><value><struct><member><name>faultString</name><value>no</value></member></struct></value></fault></methodResponse>";
        assert!(parse_response(fault).is_err());
        assert!(
            parse_response(
                b"<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>"
            )
            .is_err()
        );
        assert!(parse_response(b"not xml at all <<<").is_err());
        let deep = "<value><array><data>".repeat(100);
        assert!(parse_response(format!("<methodResponse><params><param>{deep}").as_bytes()).is_err());
        let last = b"<methodResponse><params><param><value><int>77</int></value></param></params></methodResponse>";
        assert_eq!(parse_response(last).unwrap(), XmlRpc::Int(77));
    }
}
