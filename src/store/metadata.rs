//! Core metadata for resolution, fetched as little as possible: from the
//! state's cache (by the file's sha256), else the PEP 658/714 metadata file
//! the upstream offers (its hash checked), else a wheel's METADATA member
//! read with HTTP range requests, else the whole file downloaded into the
//! store's temporary directory, verified against the upstream's sha256,
//! read and removed. An sdist is always read whole (its PKG-INFO is inside a
//! compressed stream), and only when no wheel fits.

use std::io::Write;

use crate::dist::filename::DistFilename;
use crate::dist::metadata::{self, MetadataError};
use crate::store::state::MetadataCache;
use crate::upstream::listing::{Offered, UpstreamFile};
use crate::upstream::range::{Opened, RangeReader};
use crate::upstream::{Client, UpstreamError};
use crate::util::hashing::{BUF_SIZE, HashingWriter, Sha256};
use crate::util::redact;

/// A METADATA file larger than this is not read.
const MAX_METADATA: u64 = 16 * 1024 * 1024;
/// Range requests stop here and the file is downloaded instead.
const RANGE_BUDGET: u64 = 8 * 1024 * 1024;

/// Where a file's metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Pep658,
    Range,
    Download,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchMetadataError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{filename}: {message}")]
    Verify { filename: String, message: String },
}

/// Fetches core metadata through one client into one cache.
pub struct Fetcher<'a> {
    pub client: Option<&'a Client>,
    pub cache: &'a MetadataCache,
    /// For whole downloads (the store's `tmp/`).
    pub tmp: &'a std::path::Path,
}

impl Fetcher<'_> {
    /// The core metadata of `file` and where it came from. Offline, only
    /// the cache answers.
    pub fn fetch(&self, file: &UpstreamFile) -> Result<(Vec<u8>, Source), FetchMetadataError> {
        if let Some(sha) = &file.sha256
            && let Some(bytes) = self.cache.get(sha).ok().flatten()
        {
            return Ok((bytes, Source::Cache));
        }
        let Some(client) = self.client else {
            return Err(FetchMetadataError::Verify {
                filename: file.filename.to_string(),
                message: "no cached metadata, and offline".into(),
            });
        };
        let (bytes, source) = self.fetch_upstream(client, file)?;
        if let Some(sha) = &file.sha256
            && let Err(e) = self.cache.put(sha, &bytes)
        {
            tracing::debug!("cannot cache the metadata of {}: {e}", file.filename);
        }
        Ok((bytes, source))
    }

    fn fetch_upstream(&self, client: &Client, file: &UpstreamFile) -> Result<(Vec<u8>, Source), FetchMetadataError> {
        if file.metadata != Offered::No {
            match pep658(client, file) {
                Ok(bytes) => return Ok((bytes, Source::Pep658)),
                Err(e) => tracing::warn!("{e}; reading the file itself instead"),
            }
        }
        match &file.filename {
            DistFilename::Wheel(w) if file.url.scheme() != "file" => {
                match RangeReader::open(client, &file.url, RANGE_BUDGET)? {
                    Opened::Ranges(reader) => match metadata::wheel_metadata_from(reader, &redact::url(&file.url), w) {
                        Ok(bytes) => return Ok((bytes, Source::Range)),
                        Err(e) => tracing::debug!("range requests for {}: {e}; downloading it", file.filename),
                    },
                    Opened::Whole(body) => return Ok((self.whole(file, body)?, Source::Download)),
                }
                let (body, _) = client.open(&file.url).map_err(|f| f.error)?;
                Ok((self.whole(file, body)?, Source::Download))
            }
            _ => {
                let (body, _) = client.open(&file.url).map_err(|f| f.error)?;
                Ok((self.whole(file, body)?, Source::Download))
            }
        }
    }

    /// Stream the whole file into a temporary file, verify it, read its metadata.
    fn whole(
        &self,
        file: &UpstreamFile,
        mut body: Box<dyn std::io::Read + Send>,
    ) -> Result<Vec<u8>, FetchMetadataError> {
        fs_err::create_dir_all(self.tmp)?;
        let tmp = tempfile::Builder::new().prefix("metadata.").suffix(".part").tempfile_in(self.tmp)?;
        let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(BUF_SIZE, tmp));
        std::io::copy(&mut body, &mut w)?;
        let (buf, sha, size) = w.finish();
        let mut tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.flush()?;
        let verify = |message: String| FetchMetadataError::Verify { filename: file.filename.to_string(), message };
        if let Some(want) = file.sha256.filter(|want| *want != sha) {
            return Err(verify(format!("sha256 mismatch: expected {want}, computed {sha}")));
        }
        if let Some(want) = file.size.filter(|want| *want != size) {
            return Err(verify(format!("expected {want} bytes, received {size}")));
        }
        Ok(match &file.filename {
            DistFilename::Wheel(w) => metadata::wheel_metadata(tmp.path(), w)?,
            DistFilename::Sdist(s) => metadata::sdist_metadata(tmp.path(), s)?,
        })
    }
}

/// The PEP 658 metadata file: the distribution's URL with `.metadata`
/// appended to its path, checked against the hash the page declares.
fn pep658(client: &Client, file: &UpstreamFile) -> Result<Vec<u8>, FetchMetadataError> {
    let mut url = file.url.clone();
    url.set_fragment(None);
    url.set_path(&format!("{}.metadata", file.url.path()));
    let bytes = client.get_small(&url, MAX_METADATA)?;
    if let Offered::Sha256(want) = file.metadata {
        let got = Sha256::of(&bytes);
        if got != want {
            return Err(FetchMetadataError::Verify {
                filename: format!("{}.metadata", file.filename),
                message: format!("sha256 mismatch: the page declares {want}, computed {got}"),
            });
        }
    }
    Ok(bytes)
}
