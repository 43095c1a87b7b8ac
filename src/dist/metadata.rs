//! Core metadata (PEP 658): the `METADATA` file of a wheel, extracted once
//! after the wheel is verified and published beside it as
//! `<wheel>.metadata`, plus a small reader for the headers airlock needs
//! (Requires-Python, Requires-Dist).
//!
//! The METADATA format is RFC 822-like headers followed by a body; only the
//! headers matter here, so a dozen lines of reader beat a dependency.

use std::io::Read;
use std::path::Path;

use super::filename::WheelFilename;

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
}

/// Read `{name}-{version}.dist-info/METADATA` from a wheel on disk.
///
/// The dist-info directory is matched by normalized name and version, as pip
/// does, because real wheels disagree on case and separators.
pub fn wheel_metadata(path: &Path, wheel: &WheelFilename) -> Result<Vec<u8>, MetadataError> {
    let zip_err =
        |e: zip::result::ZipError| MetadataError::Zip { path: path.display().to_string(), message: e.to_string() };
    let file = fs_err::File::open(path)?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    let wanted = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| {
            let Some(dir) = n.strip_suffix(".dist-info/METADATA") else {
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
        })
        .map(|n| n.into_owned());
    let Some(member) = wanted else {
        return Err(MetadataError::Missing {
            path: path.display().to_string(),
            expected: format!("{}-{}.dist-info/METADATA", wheel.name.as_dist_info_name(), wheel.version),
        });
    };
    let entry = archive.by_name(&member).map_err(zip_err)?;
    let mut out = Vec::with_capacity(entry.size().min(MAX_METADATA) as usize);
    entry.take(MAX_METADATA + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_METADATA {
        return Err(MetadataError::TooLarge { path: path.display().to_string(), member });
    }
    Ok(out)
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
