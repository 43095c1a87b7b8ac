//! The manifest's shape, checked before anything is deserialized, so that
//! every unknown key and every value of the wrong type is reported at once,
//! in file order, in the user's words ("`latest` expects a whole number,
//! got the string \"1\""), rather than serde's first error in its own.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What a key holds.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    StrList,
    /// `false`, `true`, `"resolve"` or `"all"`.
    Dependencies,
    /// A date: a TOML date or a string such as "2027-01-31".
    Date,
    /// An instant: a TOML date-time or an RFC 3339 string.
    Instant,
    /// A count (`10`) or a percentage (`"5%"`).
    CountOrPercent,
    Table(&'static [Field]),
    /// `[select.project.<name>]`: tables of `[select]`'s keys, by project.
    Projects,
    /// `[[...]]`: an array of tables.
    Tables(&'static [Field]),
}

struct Field(&'static str, Kind);

const MIRROR: &[Field] = &[
    Field("name", Kind::Str),
    Field("upstream", Kind::Str),
    Field("output", Kind::Str),
    Field("state", Kind::Str),
    Field("store", Kind::Str),
    Field("jobs", Kind::Int),
    Field("retries", Kind::Int),
    Field("timeout", Kind::Int),
    Field("allow_missing_hashes", Kind::Bool),
    Field("keep_runs", Kind::Int),
    Field("templates", Kind::Str),
    Field("publish_partial", Kind::Bool),
    Field("max_failures", Kind::CountOrPercent),
    Field("max_removed", Kind::CountOrPercent),
    Field("files", Kind::Str),
    Field("base_url", Kind::Str),
    Field("project_pages", Kind::Bool),
];

const SELECT: &[Field] = &[
    Field("packages", Kind::StrList),
    Field("requirements", Kind::StrList),
    // The same keys again; those only valid at the top are named precisely
    // by the loader when a project table sets them.
    Field("project", Kind::Projects),
    Field("python", Kind::StrList),
    Field("platforms", Kind::StrList),
    Field("sdists", Kind::Bool),
    Field("prereleases", Kind::Bool),
    Field("yanked", Kind::Bool),
    Field("latest", Kind::Int),
    Field("dependencies", Kind::Dependencies),
    Field("installable", Kind::Str),
    Field("lockfiles", Kind::StrList),
    Field("min_age", Kind::Str),
    Field("freeze", Kind::Instant),
    Field("publisher", Kind::Str),
    Field("admit", Kind::Tables(ADMIT)),
];

const ADMIT: &[Field] = &[
    Field("project", Kind::Str),
    Field("version", Kind::Str),
    Field("reason", Kind::Str),
    Field("expires", Kind::Date),
];

const ADVISORIES: &[Field] =
    &[Field("sources", Kind::StrList), Field("snapshot", Kind::Str), Field("max_age_days", Kind::Int)];

const IGNORE: &[Field] = &[Field("id", Kind::Str), Field("reason", Kind::Str), Field("expires", Kind::Date)];

const POLICY: &[Field] = &[
    Field("malicious", Kind::Str),
    Field("fail_on", Kind::Str),
    Field("block", Kind::Str),
    Field("unknown_severity", Kind::Str),
    Field("require_advisories", Kind::Bool),
    Field("ignore", Kind::Tables(IGNORE)),
    Field("security_bypass", Kind::Bool),
    Field("upstream_removed", Kind::Str),
    Field("provenance", Kind::Str),
    Field("publisher_pinning", Kind::Bool),
    Field("trusted_root", Kind::Str),
];

const PUBLISH: &[Field] = &[
    Field("to", Kind::Str),
    Field("endpoint", Kind::Str),
    Field("region", Kind::Str),
    Field("path_style", Kind::Bool),
    Field("delete_after_hours", Kind::Int),
    Field("directory_keys", Kind::Str),
];

const TOP: &[Field] = &[
    Field("mirror", Kind::Table(MIRROR)),
    Field("select", Kind::Table(SELECT)),
    Field("advisories", Kind::Table(ADVISORIES)),
    Field("policy", Kind::Table(POLICY)),
    Field("publish", Kind::Table(PUBLISH)),
];

/// One problem, at a byte span of the manifest.
pub struct Problem {
    pub span: Range<usize>,
    pub message: String,
}

/// Every shape problem of a parsed document, in no particular order.
pub fn check(doc: &Spanned<DeTable<'_>>) -> Vec<Problem> {
    let mut out = Vec::new();
    table(doc.get_ref(), TOP, None, &mut out);
    out
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {:?}", s.as_ref()),
        DeValue::Integer(i) => format!("the number {i}"),
        DeValue::Float(f) => format!("the number {f}"),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => format!("the date {d}"),
        DeValue::Array(_) => "a list".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

fn expects(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "a string",
        Kind::Bool => "true or false",
        Kind::Int => "a whole number",
        Kind::StrList => "a list of strings, such as [\"a\", \"b\"]",
        Kind::Dependencies => "false, true, \"resolve\" or \"all\"",
        Kind::Date => "a date such as 2027-01-31",
        Kind::Instant => "an instant such as 2026-03-24T00:00:00Z",
        Kind::CountOrPercent => "a whole number or a percentage such as \"5%\"",
        Kind::Table(_) | Kind::Projects => "a table",
        Kind::Tables(_) => "a list of tables ([[...]])",
    }
}

fn suggest(key: &str, fields: &[Field]) -> Option<&'static str> {
    fields
        .iter()
        .map(|f| (strsim::damerau_levenshtein(key, f.0), f.0))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// `path` names the table (`select.project.x`); `None` is the top level.
fn table(t: &DeTable<'_>, fields: &[Field], path: Option<&str>, out: &mut Vec<Problem>) {
    for (key, value) in t {
        let name = key.get_ref().as_ref();
        let Some(field) = fields.iter().find(|f| f.0 == name) else {
            out.push(Problem { span: key.span(), message: unknown(name, value.get_ref(), fields, path) });
            continue;
        };
        let here = path.map_or_else(|| name.to_string(), |p| format!("{p}.{name}"));
        if let Some(message) = mismatch(name, field.1, value.get_ref(), path) {
            out.push(Problem { span: value.span(), message });
            continue;
        }
        match (field.1, value.get_ref()) {
            (Kind::Table(inner), DeValue::Table(t)) => table(t, inner, Some(&here), out),
            (Kind::Projects, DeValue::Table(t)) => {
                for (k, v) in t {
                    let p = format!("{here}.{}", quoted(k.get_ref().as_ref()));
                    match v.get_ref() {
                        DeValue::Table(t) => table(t, SELECT, Some(&p), out),
                        other => out.push(Problem {
                            span: v.span(),
                            message: format!("[{p}] must be a table, got {}", describe(other)),
                        }),
                    }
                }
            }
            (Kind::Tables(inner), DeValue::Array(items)) => {
                for item in items {
                    if let DeValue::Table(t) = item.get_ref() {
                        table(t, inner, Some(&here), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A project name as a TOML key: bare when it can be.
fn quoted(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

fn unknown(name: &str, value: &DeValue<'_>, fields: &[Field], path: Option<&str>) -> String {
    let full = path.map_or_else(|| name.to_string(), |p| format!("{p}.{name}"));
    let mut message = match (value, path) {
        (DeValue::Table(_), _) => format!("unknown table [{full}]"),
        (_, None) => format!("unknown key `{name}` at the top level (keys belong in a table such as [mirror])"),
        (_, Some(p)) => format!("unknown key `{name}` in [{p}]"),
    };
    match suggest(name, fields) {
        Some(best) if matches!(value, DeValue::Table(_)) => {
            let best = path.map_or_else(|| best.to_string(), |p| format!("{p}.{best}"));
            message.push_str(&format!("; did you mean [{best}]?"));
        }
        Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
        None => {
            let known: Vec<&str> = fields.iter().map(|f| f.0).collect();
            message.push_str(&format!("; known: {}", known.join(", ")));
        }
    }
    message
}

fn mismatch(name: &str, kind: Kind, value: &DeValue<'_>, path: Option<&str>) -> Option<String> {
    let ok = match (kind, value) {
        (Kind::Str, DeValue::String(_))
        | (Kind::Bool, DeValue::Boolean(_))
        | (Kind::Int, DeValue::Integer(_))
        | (Kind::Date | Kind::Instant, DeValue::Datetime(_) | DeValue::String(_))
        | (Kind::Dependencies, DeValue::Boolean(_))
        | (Kind::CountOrPercent, DeValue::Integer(_) | DeValue::String(_))
        | (Kind::Table(_) | Kind::Projects, DeValue::Table(_)) => true,
        (Kind::Dependencies, DeValue::String(s)) => matches!(s.as_ref(), "resolve" | "all"),
        (Kind::StrList, DeValue::Array(items)) => items.iter().all(|i| matches!(i.get_ref(), DeValue::String(_))),
        (Kind::Tables(_), DeValue::Array(items)) => items.iter().all(|i| matches!(i.get_ref(), DeValue::Table(_))),
        _ => false,
    };
    if ok {
        return None;
    }
    let got = match (kind, value) {
        (Kind::StrList, DeValue::Array(items)) => items
            .iter()
            .find(|i| !matches!(i.get_ref(), DeValue::String(_)))
            .map_or_else(|| describe(value), |i| format!("an item that is {}", describe(i.get_ref()))),
        _ => describe(value),
    };
    let key = match path {
        Some(p) => format!("`{name}` in [{p}]"),
        None => format!("[{name}]"),
    };
    Some(format!("{key} expects {}, got {got}", expects(kind)))
}
