//! Decompression with a ceiling: every zstd stream that comes from outside
//! (a state checkpoint from a bucket, an advisory snapshot, a bundle, the
//! listings a restored state holds) is read through [`Bounded`], so a bomb
//! (a few KiB that decompress to gigabytes) fails with an error naming it
//! instead of exhausting memory or disk.

use std::io::Read;

use super::ui::human_bytes;

/// How far a stream of `compressed` bytes may decompress: `ratio` times its
/// size, at least `floor`, never more than `ceiling`. Real data stays far
/// below (wheels barely compress, SQLite and JSON about tenfold).
pub fn limit(compressed: u64, ratio: u64, floor: u64, ceiling: u64) -> u64 {
    compressed.saturating_mul(ratio).max(floor).min(ceiling)
}

/// Decompressed bytes per compressed byte allowed for airlock's own
/// formats (state, listings, snapshots): they compress about tenfold.
pub const RATIO: u64 = 100;
/// ... and at least this much, whatever the compressed size.
pub const FLOOR: u64 = 256 * 1024 * 1024;

/// A reader that fails once more than `limit` bytes came out of it.
pub struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R> Bounded<R> {
    pub fn new(inner: R, limit: u64) -> Bounded<R> {
        Bounded { inner, read: 0, limit }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(format!(
                "decompresses to more than {}: refused as a decompression bomb",
                human_bytes(self.limit)
            )));
        }
        Ok(n)
    }
}

/// A whole zstd stream, at most `limit` bytes of it (an error beyond).
pub fn decode_all(compressed: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    Bounded::new(zstd::stream::Decoder::new(compressed)?, limit).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = zstd::encode_all(std::io::repeat(0).take(64 << 20), 3).unwrap();
        let err = decode_all(&bomb, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("decompression bomb"), "{err}");
        assert_eq!(decode_all(&bomb, 64 << 20).unwrap().len(), 64 << 20);
        assert_eq!(limit(10, 100, 64, 1 << 40), 1000);
        assert_eq!(limit(0, 100, 64, 1 << 40), 64);
        assert_eq!(limit(u64::MAX, 100, 64, 1 << 40), 1 << 40);
    }
}
