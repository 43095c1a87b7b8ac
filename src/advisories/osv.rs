//! OSV records as they appear on the wire (JSON from osv.dev, YAML in
//! pypa/advisory-database). Only the fields airlock uses are read; unknown
//! fields are ignored, as the OSV schema asks of consumers.
//!
//! Version strings are read as written: a YAML plain scalar such as `2.10`
//! must stay the string "2.10", never become the float 2.1, so every version
//! field goes through [`version_string`].

use serde::{Deserialize, Deserializer};

/// A version scalar, asked for as a string: YAML then hands over the plain
/// scalar's text (`2.10` stays "2.10"), where `deserialize_any` would have
/// produced the float 2.1. Numbers are still accepted from formats that only
/// offer them as numbers.
fn version_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a version string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_str(V)
}

fn version_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct V(#[serde(deserialize_with = "version_string")] Option<String>);
    Ok(Option::<Vec<V>>::deserialize(d)?.unwrap_or_default().into_iter().filter_map(|v| v.0).collect())
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    #[serde(default)]
    pub modified: Option<String>,
    #[serde(default)]
    pub published: Option<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<Severity>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub affected: Vec<Affected>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub references: Vec<Reference>,
    /// Free-form: the malicious-packages feed names its origins here.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Reference {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Package {
    #[serde(default)]
    pub ecosystem: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Affected {
    #[serde(default)]
    pub package: Option<Package>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "version_list")]
    pub versions: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<Severity>,
    /// Free-form: the malicious-packages feed lists the malicious files'
    /// hashes here (`indicators.package_integrity`).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<Event>,
}

/// One event: exactly one of the four keys is set in a valid record.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Event {
    #[serde(default, deserialize_with = "version_string")]
    pub introduced: Option<String>,
    #[serde(default, deserialize_with = "version_string")]
    pub fixed: Option<String>,
    #[serde(default, deserialize_with = "version_string")]
    pub last_affected: Option<String>,
    #[serde(default, deserialize_with = "version_string")]
    pub limit: Option<String>,
}

/// Whether a string is a sha256 digest in hex.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Record {
    /// Whether the record reports a malicious package: the OpenSSF
    /// malicious-packages feed gives its records `MAL-` ids (kept as an
    /// alias when merged under another id) and names the reports it merged
    /// in `database_specific.malicious-packages-origins`.
    pub fn is_malicious(&self) -> bool {
        self.id.starts_with("MAL-")
            || self.aliases.iter().any(|a| a.starts_with("MAL-"))
            || self.database_specific.as_ref().and_then(|d| d.get("malicious-packages-origins")).is_some()
    }
}

impl Affected {
    /// The malicious files an entry names by hash
    /// (`database_specific.indicators.package_integrity[]`): each sha256,
    /// lowercase, with its filename when given. Entries are read leniently
    /// (an object with a `sha256` or `hashes.sha256`, or a bare digest):
    /// anything else is ignored, never an error.
    pub fn malicious_files(&self) -> Vec<(String, Option<String>)> {
        let list = self
            .database_specific
            .as_ref()
            .and_then(|d| d.get("indicators"))
            .and_then(|i| i.get("package_integrity"))
            .and_then(|l| l.as_array());
        let mut out = Vec::new();
        for item in list.into_iter().flatten() {
            let digest = match item {
                serde_json::Value::String(s) => Some(s.as_str()),
                serde_json::Value::Object(o) => {
                    o.get("sha256").or_else(|| o.get("hashes").and_then(|h| h.get("sha256"))).and_then(|v| v.as_str())
                }
                _ => None,
            };
            let Some(digest) = digest.map(str::trim).filter(|d| is_sha256_hex(d)) else { continue };
            let filename = ["filename", "file", "name"]
                .iter()
                .find_map(|k| item.get(*k).and_then(|v| v.as_str()))
                .map(str::to_string);
            out.push((digest.to_ascii_lowercase(), filename));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_plain_scalars_keep_their_text() {
        let yaml = "id: X-1\naffected:\n- package: {ecosystem: PyPI, name: Jinja2}\n  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: 0\n    - fixed: 2.10\n  versions:\n  - 2.10\n  - \"2.0\"\n  - 2.0rc1\n  - 3\n";
        let r: Record = serde_saphyr::from_str(yaml).unwrap();
        let a = &r.affected[0];
        assert_eq!(a.versions, ["2.10", "2.0", "2.0rc1", "3"]);
        assert_eq!(a.ranges[0].events[0].introduced.as_deref(), Some("0"));
        assert_eq!(a.ranges[0].events[1].fixed.as_deref(), Some("2.10"));
    }

    #[test]
    fn json_record_with_nulls() {
        let json = r#"{"id":"GHSA-x","aliases":null,"affected":[{"package":{"ecosystem":"PyPI","name":"a"},"versions":null,"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0"}]}]}],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}"#;
        let r: Record = serde_json::from_str(json).unwrap();
        assert!(r.aliases.is_empty() && r.affected[0].versions.is_empty());
        assert_eq!(r.severity[0].kind, "CVSS_V3");
    }
}
