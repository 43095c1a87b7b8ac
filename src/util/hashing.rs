//! SHA-256 digests, computed while data streams past.
//!
//! Every artifact is hashed exactly once, as it is written (fetch) or read
//! (verify, index), never in a second pass. sha2 picks SHA-NI at run time.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256 as Sha256Hasher};

/// A SHA-256 digest; displays as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sha256 {0:?}: expected 64 hex digits")]
pub struct Sha256Error(pub String);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256(Sha256Hasher::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        self.hex_digits().to_str().to_owned()
    }

    /// The 64 digits without an allocation: pages and listings write three
    /// digests per file, and `hex::encode`'s char-by-char collect showed in
    /// a large index's profile.
    fn hex_digits(&self) -> HexDigits {
        let mut out = [0u8; 64];
        // 64 bytes for 32: the lengths match, so this cannot fail.
        let _ = hex::encode_to_slice(self.0, &mut out);
        HexDigits(out)
    }
}

struct HexDigits([u8; 64]);

impl HexDigits {
    fn to_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for Sha256 {
    type Err = Sha256Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| Sha256Error(s.to_string()))?;
        Ok(Sha256(out))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex_digits().to_str())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256Hasher::new(), len: 0 }
    }

    pub fn finish(self) -> (W, Sha256, u64) {
        (self.inner, Sha256(self.hasher.finalize().into()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Buffer size for streaming reads: large enough to amortize syscalls and let
/// SHA-NI run flat out, small enough to stay in L2.
pub const BUF_SIZE: usize = 256 * 1024;

thread_local! {
    /// One read buffer per thread, reused for every file it hashes: a
    /// zeroed 256 KiB allocation per file kept every malloc arena of a
    /// parallel hash of thousands of small files at its high-water mark.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's read buffer, `BUF_SIZE` long.
fn with_read_buf<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    READ_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < BUF_SIZE {
                buf.resize(BUF_SIZE, 0);
            }
            f(&mut buf)
        }
        // Only hashing from inside a hash (a reader that itself hashes, or
        // `hash_file_with`'s `whole`) gets here.
        Err(_) => f(&mut vec![0u8; BUF_SIZE]),
    })
}

/// Hash everything a reader yields.
pub fn hash_reader(r: impl Read) -> io::Result<(Sha256, u64)> {
    with_read_buf(|buf| hash_with(r, buf))
}

/// Hash a file; when the whole of it fits one read buffer, `whole` also
/// gets its bytes. `airlock index` reads a small wheel's METADATA from
/// them instead of opening the file a second time: a directory of many
/// small files is bound by system calls, not by hashing.
pub fn hash_file_with<T>(
    mut file: fs_err::File,
    whole: impl FnOnce(&[u8]) -> T,
) -> io::Result<(Sha256, u64, Option<T>)> {
    with_read_buf(|buf| {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => {
                    let bytes = &buf[..filled];
                    return Ok((Sha256::of(bytes), filled as u64, Some(whole(bytes))));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Larger than the buffer: the rest is streamed through it.
        let mut hasher = Sha256Hasher::new();
        hasher.update(&buf[..filled]);
        let (digest, rest) = hash_into(hasher, file, buf)?;
        Ok((digest, filled as u64 + rest, None))
    })
}

fn hash_with(r: impl Read, buf: &mut [u8]) -> io::Result<(Sha256, u64)> {
    hash_into(Sha256Hasher::new(), r, buf)
}

/// Feed everything `r` yields to `hasher`, through `buf`.
fn hash_into(mut hasher: Sha256Hasher, mut r: impl Read, buf: &mut [u8]) -> io::Result<(Sha256, u64)> {
    let mut len = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((Sha256(hasher.finalize().into()), len))
}

/// Hash a file; the error names the path.
pub fn hash_file(path: &Path) -> io::Result<(Sha256, u64)> {
    hash_reader(fs_err::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_round_trip() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Sha256::of(b"").hex(), empty);
        assert_eq!(empty.parse::<Sha256>().unwrap().to_string(), empty);
        assert!("abc".parse::<Sha256>().is_err());
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (buf, digest, len) = w.finish();
        assert_eq!((len, digest), (11, Sha256::of(b"hello world")));
        assert_eq!(hash_reader(&buf[..]).unwrap(), (Sha256::of(b"hello world"), 11));
    }

    #[test]
    fn hash_file_with_hands_over_only_files_that_fit_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, BUF_SIZE - 1, BUF_SIZE, BUF_SIZE + 1, 3 * BUF_SIZE + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            let file = fs_err::File::open(&path).unwrap();
            let (digest, size, whole) = hash_file_with(file, |b| b.to_vec()).unwrap();
            assert_eq!((digest, size), (Sha256::of(&bytes), len as u64), "{len} bytes");
            // A file exactly the buffer's size needs one more read to see
            // its end, so it is streamed like a larger one.
            assert_eq!(whole, (len < BUF_SIZE).then_some(bytes), "{len} bytes");
        }
    }
}
