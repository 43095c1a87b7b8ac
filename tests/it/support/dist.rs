//! Generated distributions: real, installable wheels (METADATA, WHEEL,
//! RECORD with correct hashes) and sdists, so pip and uv can install what
//! the fake upstream serves.

use std::io::Write;

use base64::Engine;
use sha2::Digest;

/// Lowercase `name` with every run of `-`, `_`, `.` replaced by `sep`. The
/// tests keep their own copy of the rule rather than trust the code they test.
pub fn collapse(name: &str, sep: char) -> String {
    let mut out = String::new();
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push(sep);
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

/// The name as written in wheel filenames and `.dist-info` directories.
pub fn dist_name(name: &str) -> String {
    collapse(name, '_')
}

fn record_hash(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    format!("sha256={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest))
}

/// Options for a generated wheel.
#[derive(Clone, Default)]
pub struct WheelSpec<'a> {
    pub tag: &'a str,
    pub requires: &'a [&'a str],
    pub requires_python: Option<&'a str>,
}

/// A wheel for `name==version`; returns (filename, bytes).
pub fn wheel(name: &str, version: &str, spec: WheelSpec<'_>) -> (String, Vec<u8>) {
    described_wheel(name, version, spec, "")
}

/// A wheel whose METADATA ends with `more`: headers, then a blank line and
/// the description as the message body.
pub fn described_wheel(name: &str, version: &str, spec: WheelSpec<'_>, more: &str) -> (String, Vec<u8>) {
    built_wheel(name, version, spec, more, 0)
}

/// A wheel carrying `payload` bytes of incompressible data (stored, not
/// deflated), the same bytes for the same arguments: for mirrors whose size
/// matters.
pub fn heavy_wheel(name: &str, version: &str, payload: usize) -> (String, Vec<u8>) {
    built_wheel(name, version, WheelSpec::default(), "", payload)
}

fn built_wheel(name: &str, version: &str, spec: WheelSpec<'_>, more: &str, payload: usize) -> (String, Vec<u8>) {
    let tag = if spec.tag.is_empty() { "py3-none-any" } else { spec.tag };
    let dist = dist_name(name);
    let filename = format!("{dist}-{version}-{tag}.whl");
    let dist_info = format!("{dist}-{version}.dist-info");
    let mut metadata =
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: generated for airlock tests\n");
    if let Some(rp) = spec.requires_python {
        metadata.push_str(&format!("Requires-Python: {rp}\n"));
    }
    for r in spec.requires {
        metadata.push_str(&format!("Requires-Dist: {r}\n"));
    }
    metadata.push_str(more);
    let pure = tag.ends_with("-none-any");
    let wheel_file = format!("Wheel-Version: 1.0\nGenerator: airlock-tests\nRoot-Is-Purelib: {pure}\nTag: {tag}\n");
    let module = format!("__version__ = {version:?}\nNAME = {name:?}\n");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("{dist}/__init__.py"), module.into_bytes()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (format!("{dist_info}/WHEEL"), wheel_file.into_bytes()),
    ];
    if payload > 0 {
        let mut rng = fastrand::Rng::with_seed(payload as u64 ^ (name.len() as u64) << 32 ^ version.len() as u64);
        let mut data = vec![0u8; payload];
        rng.fill(&mut data);
        data[..name.len().min(payload)].copy_from_slice(&name.as_bytes()[..name.len().min(payload)]);
        files.push((format!("{dist}/payload.bin"), data));
    }
    let mut record = String::new();
    for (path, bytes) in &files {
        record.push_str(&format!("{path},{},{}\n", record_hash(bytes), bytes.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));

    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zw = zip::ZipWriter::new(&mut buf);
        // Fixed timestamps: the same spec always gives the same bytes.
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        let stored = opts.compression_method(zip::CompressionMethod::Stored);
        for (path, bytes) in &files {
            zw.start_file(path.as_str(), if path.ends_with("payload.bin") { stored } else { opts }).unwrap();
            zw.write_all(bytes).unwrap();
        }
        zw.start_file(format!("{dist_info}/RECORD"), opts).unwrap();
        zw.write_all(record.as_bytes()).unwrap();
        zw.finish().unwrap();
    }
    (filename, buf.into_inner())
}

/// An sdist (`.tar.gz` with PKG-INFO); returns (filename, bytes).
pub fn sdist(name: &str, version: &str) -> (String, Vec<u8>) {
    let dist = dist_name(name);
    let filename = format!("{dist}-{version}.tar.gz");
    let root = format!("{dist}-{version}");
    let pkg_info = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, body) in [(format!("{root}/PKG-INFO"), pkg_info), (format!("{root}/README"), "test\n".to_string())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    let bytes = tar.into_inner().unwrap().finish().unwrap();
    (filename, bytes)
}
