//! A remote file read through HTTP range requests as if it were local
//! (`Read + Seek`), so that a zip reader can find a wheel's METADATA by
//! fetching only the end of central directory, the central directory and
//! the member itself: a few kilobytes of a wheel of hundreds of megabytes.
//!
//! Reads are served from fetched segments; a miss fetches the 64 KiB block
//! around it. The bytes fetched in total are capped, so a hostile or
//! enormous central directory cannot turn metadata into a download.

use std::io::{Read, Seek, SeekFrom};

use url::Url;

use super::{Client, Ranged, UpstreamError};

const BLOCK: u64 = 64 * 1024;

/// Opened: either a range-readable remote file, or the whole body the
/// server sent instead (it does not do ranges).
pub enum Opened<'a> {
    Ranges(RangeReader<'a>),
    Whole(Box<dyn Read + Send>),
}

pub struct RangeReader<'a> {
    client: &'a Client,
    url: Url,
    len: u64,
    pos: u64,
    /// Fetched (start, bytes), in fetch order.
    segments: Vec<(u64, Vec<u8>)>,
    fetched: u64,
    budget: u64,
    /// Requests made, for tests and logs.
    pub requests: u32,
}

impl<'a> RangeReader<'a> {
    /// Fetch the last block (where a zip's directory ends) and learn the length.
    pub fn open(client: &'a Client, url: &Url, budget: u64) -> Result<Opened<'a>, UpstreamError> {
        match client.range(url, &format!("bytes=-{BLOCK}"), BLOCK)? {
            Ranged::Whole(body, _) => Ok(Opened::Whole(body)),
            Ranged::Partial { start, bytes, total } => {
                let fetched = bytes.len() as u64;
                Ok(Opened::Ranges(RangeReader {
                    client,
                    url: url.clone(),
                    len: total,
                    pos: 0,
                    segments: vec![(start, bytes)],
                    fetched,
                    budget,
                    requests: 1,
                }))
            }
        }
    }

    fn cached(&self, pos: u64) -> Option<&[u8]> {
        self.segments.iter().find_map(|(start, bytes)| {
            let end = start + bytes.len() as u64;
            (pos >= *start && pos < end).then(|| &bytes[(pos - start) as usize..])
        })
    }

    fn fetch(&mut self, pos: u64) -> std::io::Result<()> {
        let start = pos - pos % BLOCK;
        let end = (start + BLOCK).min(self.len) - 1;
        if self.fetched + (end - start + 1) > self.budget {
            return Err(std::io::Error::other(format!(
                "{}: more than {} bytes would be fetched by range requests",
                crate::util::redact::url(&self.url),
                self.budget
            )));
        }
        let got = self.client.range(&self.url, &format!("bytes={start}-{end}"), end - start + 1);
        self.requests += 1;
        match got.map_err(std::io::Error::other)? {
            Ranged::Partial { start, bytes, .. } => {
                self.fetched += bytes.len() as u64;
                self.segments.push((start, bytes));
                Ok(())
            }
            Ranged::Whole(..) => Err(std::io::Error::other("the server stopped answering range requests")),
        }
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.cached(self.pos).is_none() {
            self.fetch(self.pos)?;
        }
        let Some(avail) = self.cached(self.pos) else { return Ok(0) };
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"));
        };
        self.pos = target;
        Ok(target)
    }
}
