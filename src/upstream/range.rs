//! A remote file read through HTTP range requests as if it were local
//! (`Read + Seek`), so that a zip reader can find a wheel's METADATA by
//! fetching only the end of central directory, the central directory and
//! the member itself: a few kilobytes of a wheel of hundreds of megabytes.
//!
//! Reads are served from fetched segments; a miss fetches the 64 KiB block
//! around it. A zip's central directory is fetched in one request as soon
//! as the end record names its span: a wheel with thousands of files
//! (botocore) has a directory of megabytes, which block by block would be
//! dozens of round trips. The bytes fetched in total are capped, so a hostile or
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
                let mut reader = RangeReader {
                    client,
                    url: url.clone(),
                    len: total,
                    pos: 0,
                    segments: vec![(start, bytes)],
                    fetched,
                    budget,
                    requests: 1,
                };
                if let Some((cd_start, cd_end)) = zip_directory(&reader.segments[0].1, start)
                    && cd_start < start
                    && cd_end <= total
                {
                    // Best effort: the reader falls back to blocks.
                    let _ = reader.fetch_span(cd_start, cd_end.min(start));
                }
                Ok(Opened::Ranges(reader))
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
        self.fetch_span(start, (start + BLOCK).min(self.len))
    }

    /// Fetch bytes `start..end` in one request.
    fn fetch_span(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let end = end - 1;
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

/// The span of a zip's central directory, from its end record found in
/// `tail` (the file's bytes from offset `tail_start` to its end). Zip64
/// archives are read only when their end record is in `tail` too.
fn zip_directory(tail: &[u8], tail_start: u64) -> Option<(u64, u64)> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const EOCD64: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
    const LOCATOR: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let u64_at = |b: &[u8], at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
    let at = (0..tail.len().saturating_sub(21)).rev().find(|&i| tail[i..].starts_with(&EOCD))?;
    let size = u32_at(tail, at + 12)?;
    let offset = u32_at(tail, at + 16)?;
    if size != u32::MAX && offset != u32::MAX {
        return Some((u64::from(offset), u64::from(offset).checked_add(u64::from(size))?));
    }
    let locator = at.checked_sub(20).filter(|&l| tail[l..].starts_with(&LOCATOR))?;
    let record = u64_at(tail, locator + 8)?.checked_sub(tail_start)?;
    let record = usize::try_from(record).ok().filter(|&r| tail.get(r..).is_some_and(|t| t.starts_with(&EOCD64)))?;
    let size = u64_at(tail, record + 40)?;
    let offset = u64_at(tail, record + 48)?;
    Some((offset, offset.checked_add(size)?))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::zip_directory;

    fn wheel(files: usize) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        for i in 0..files {
            zip.start_file(format!("pkg/module_{i}.py"), zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(b"x = 1\n").unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn the_directory_span_comes_from_the_end_record() {
        let bytes = wheel(500);
        let tail_start = bytes.len() - 1000;
        let (start, end) = zip_directory(&bytes[tail_start..], tail_start as u64).unwrap();
        assert_eq!(end, bytes.len() as u64 - 22, "the directory ends where the end record starts");
        assert!(start < end && &bytes[start as usize..start as usize + 4] == b"PK\x01\x02");
        // Hostile tails give no span rather than a panic.
        for cut in [0, 3, 21, 22, 40] {
            let _ = zip_directory(&bytes[bytes.len() - cut..], (bytes.len() - cut) as u64);
        }
        assert_eq!(zip_directory(b"not a zip at all, not at all", 0), None);
    }
}
