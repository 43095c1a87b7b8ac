//! Core metadata (PEP 658): the `METADATA` file of a wheel, extracted once
//! after the wheel is verified and published beside it as
//! `<wheel>.metadata`, plus a small reader for the headers airlock needs
//! (Requires-Python, Requires-Dist).
//!
//! The METADATA format is RFC 822-like headers followed by a body; only the
//! headers matter here, so a dozen lines of reader beat a dependency.

use std::io::Read;
use std::path::Path;

use super::filename::{SdistFilename, SdistFormat, WheelFilename};

/// A METADATA file larger than this is refused (a zip bomb would otherwise
/// decompress straight into memory).
const MAX_METADATA: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: not a readable wheel: {message}")]
    Zip { path: String, message: String },
    #[error("{path}: no {expected} in the wheel")]
    Missing { path: String, expected: String },
    #[error("{path}: {member} is larger than {MAX_METADATA} bytes")]
    TooLarge { path: String, member: String },
    #[error("{path}: reading {format} source distributions is not supported")]
    Unsupported { path: String, format: String },
}

/// Read `{name}-{version}.dist-info/METADATA` from a wheel on disk.
pub fn wheel_metadata(path: &Path, wheel: &WheelFilename) -> Result<Vec<u8>, MetadataError> {
    let file = fs_err::File::open(path)?;
    wheel_metadata_from(std::io::BufReader::new(file), &path.display().to_string(), wheel)
}

/// Is `member` the wheel's `.dist-info/METADATA`? The directory is matched by
/// normalized name and version, as pip does, because real wheels disagree on
/// case and separators.
fn is_metadata_member(member: &str, wheel: &WheelFilename) -> bool {
    let Some(dir) = member.strip_suffix(".dist-info/METADATA") else {
        return false;
    };
    if dir.contains('/') {
        return false;
    }
    let Some((name, version)) = dir.rsplit_once('-') else {
        return false;
    };
    name.parse::<super::names::ProjectName>().is_ok_and(|n| n == wheel.name)
        && version.parse::<uv_pep440::Version>().is_ok_and(|v| v == wheel.version)
}

/// The METADATA member of a wheel read through any seekable reader (a file,
/// or HTTP range requests). `name` names the wheel in errors.
pub fn wheel_metadata_from<R: Read + std::io::Seek>(
    reader: R,
    name: &str,
    wheel: &WheelFilename,
) -> Result<Vec<u8>, MetadataError> {
    let zip_err = |e: zip::result::ZipError| MetadataError::Zip { path: name.to_string(), message: e.to_string() };
    let mut archive = zip::ZipArchive::new(reader).map_err(zip_err)?;
    let wanted =
        archive.file_names().filter_map(Result::ok).find(|n| is_metadata_member(n, wheel)).map(|n| n.into_owned());
    let Some(member) = wanted else {
        return Err(MetadataError::Missing {
            path: name.to_string(),
            expected: format!("{}-{}.dist-info/METADATA", wheel.name.as_dist_info_name(), wheel.version),
        });
    };
    let entry = archive.by_name(&member).map_err(zip_err)?;
    read_bounded(entry, name, &member)
}

fn read_bounded(r: impl Read, path: &str, member: &str) -> Result<Vec<u8>, MetadataError> {
    let mut out = Vec::new();
    r.take(MAX_METADATA + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_METADATA {
        return Err(MetadataError::TooLarge { path: path.to_string(), member: member.to_string() });
    }
    Ok(out)
}

/// `PKG-INFO` of a source distribution on disk (`.tar.gz`/`.tgz` or
/// `.zip`): the one at the top of the archive (`{name}-{version}/PKG-INFO`).
pub fn sdist_metadata(path: &Path, sdist: &SdistFilename) -> Result<Vec<u8>, MetadataError> {
    let name = path.display().to_string();
    let top = |member: &str| {
        member.split('/').filter(|c| !c.is_empty() && *c != ".").count() == 2 && member.ends_with("/PKG-INFO")
    };
    match sdist.format {
        SdistFormat::TarGz | SdistFormat::Tgz => {
            let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(fs_err::File::open(path)?));
            let mut archive = tar::Archive::new(gz);
            for entry in archive.entries()? {
                let entry = entry?;
                let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                if top(&member) {
                    return read_bounded(entry, &name, &member);
                }
            }
            Err(MetadataError::Missing { path: name, expected: "PKG-INFO".into() })
        }
        SdistFormat::Zip => {
            let zip_err = |e: zip::result::ZipError| MetadataError::Zip { path: name.clone(), message: e.to_string() };
            let mut archive =
                zip::ZipArchive::new(std::io::BufReader::new(fs_err::File::open(path)?)).map_err(zip_err)?;
            let member = archive.file_names().filter_map(Result::ok).find(|n| top(n)).map(|n| n.into_owned());
            let Some(member) = member else {
                return Err(MetadataError::Missing { path: name, expected: "PKG-INFO".into() });
            };
            let entry = archive.by_name(&member).map_err(zip_err)?;
            read_bounded(entry, &name, &member)
        }
        SdistFormat::TarBz2 | SdistFormat::TarXz => {
            Err(MetadataError::Unsupported { path: name, format: format!("{:?}", sdist.format) })
        }
    }
}

/// What resolution needs of core metadata (PEP 566/643).
#[derive(Debug, Clone, Default)]
pub struct CoreMetadata {
    pub requires_python: Option<uv_pep440::VersionSpecifiers>,
    pub requires_dist: Vec<uv_pep508::Requirement>,
    /// `Requires-Dist` lines that do not parse (reported, never guessed at).
    pub invalid: Vec<String>,
}

impl CoreMetadata {
    /// Parse the headers that matter. Never fails: what does not parse is
    /// listed in `invalid` (an invalid Requires-Python is ignored, as pip does).
    pub fn parse(bytes: &[u8]) -> CoreMetadata {
        let headers = headers(bytes);
        let requires_python = header_values(&headers, "Requires-Python").next().and_then(|v| v.trim().parse().ok());
        let mut out = CoreMetadata { requires_python, ..CoreMetadata::default() };
        for raw in header_values(&headers, "Requires-Dist") {
            match raw.parse::<uv_pep508::Requirement>() {
                Ok(r) => out.requires_dist.push(r),
                Err(_) => out.invalid.push(raw.to_string()),
            }
        }
        out
    }
}

/// Extract a wheel's METADATA to `dest` (atomically, world-readable) and
/// return its digest and size: the PEP 658 `.metadata` file.
pub fn extract_to(
    wheel_path: &Path,
    wheel: &WheelFilename,
    dest: &Path,
) -> Result<(crate::util::hashing::Sha256, u64), MetadataError> {
    let bytes = wheel_metadata(wheel_path, wheel)?;
    crate::util::fsx::write_atomically(dest, &bytes)?;
    Ok((crate::util::hashing::Sha256::of(&bytes), bytes.len() as u64))
}

/// The headers of a METADATA / PKG-INFO file, in order, continuation lines joined.
pub fn headers(metadata: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(metadata);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// Values of every header named `key` (case-insensitive).
pub fn header_values<'a>(headers: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn headers_stop_at_body_and_join_continuations() {
        let h = headers(b"Metadata-Version: 2.1\nName: pkg\nRequires-Dist: a>=1\nRequires-Dist: b; extra == 'x'\nLicense: MIT\n  more\n\nRequires-Dist: not-a-header\n");
        let deps: Vec<_> = header_values(&h, "requires-dist").collect();
        assert_eq!(deps, ["a>=1", "b; extra == 'x'"]);
        assert_eq!(header_values(&h, "License").next(), Some("MIT\nmore"));
    }

    #[test]
    fn finds_dist_info_by_normalized_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Zope.Interface-6.0-py3-none-any.whl");
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zw.start_file("other-1.0.dist-info/METADATA", opts).unwrap();
        zw.write_all(b"Name: other\n").unwrap();
        zw.start_file("zope.interface-6.0.dist-info/METADATA", opts).unwrap();
        zw.write_all(b"Name: zope.interface\nVersion: 6.0\n").unwrap();
        zw.finish().unwrap();
        let wheel: WheelFilename = "Zope.Interface-6.0-py3-none-any.whl".parse().unwrap();
        assert_eq!(wheel_metadata(&path, &wheel).unwrap(), b"Name: zope.interface\nVersion: 6.0\n");
        let wrong: WheelFilename = "Zope.Interface-7.0-py3-none-any.whl".parse().unwrap();
        assert!(matches!(wheel_metadata(&path, &wrong), Err(MetadataError::Missing { .. })));
        std::fs::write(&path, b"not a zip").unwrap();
        assert!(matches!(wheel_metadata(&path, &wheel), Err(MetadataError::Zip { .. })));
    }
}
