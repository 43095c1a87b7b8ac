//! Core metadata cached by the sha256 of its file, on a connection of its
//! own that threads share.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{State, StateError};
use crate::util::hashing::Sha256;

impl State {
    /// A second connection for the core-metadata cache, shareable across
    /// the threads that resolve environments in parallel.
    pub fn metadata_cache(&self) -> Result<MetadataCache, StateError> {
        let flags = if self.read_only {
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| self.err(e))?;
        conn.execute_batch("PRAGMA busy_timeout=5000;").map_err(|e| self.err(e))?;
        Ok(MetadataCache { conn: std::sync::Mutex::new(conn), path: self.path.clone(), read_only: self.read_only })
    }
}

/// Core metadata by the sha256 of its file (see [`State::metadata_cache`]).
pub struct MetadataCache {
    conn: std::sync::Mutex<Connection>,
    path: PathBuf,
    read_only: bool,
}

impl MetadataCache {
    pub(super) fn err(&self, error: rusqlite::Error) -> StateError {
        StateError::Sql { path: self.path.display().to_string(), error }
    }

    /// The user cache's copy of a file's metadata (shared by `plan`, which
    /// writes no state, and `build`: a plan then a build ask once).
    pub(super) fn shared(sha256: &Sha256) -> Option<std::path::PathBuf> {
        let hex = sha256.hex();
        Some(crate::util::fsx::user_cache_dir()?.join("metadata").join(&hex[..2]).join(format!("{hex}.metadata")))
    }

    pub fn get(&self, sha256: &Sha256) -> Result<Option<Vec<u8>>, StateError> {
        let found: Option<Vec<u8>> = {
            let conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.query_row("SELECT metadata FROM core_metadata WHERE sha256 = ?1", [sha256.hex()], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?
        };
        if found.is_some() {
            return Ok(found);
        }
        // Bounded like an upstream's: a cache file is not trusted to be small.
        let cached = MetadataCache::shared(sha256).and_then(|p| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::open(p).ok()?, 16 << 20), &mut bytes)
                .ok()?;
            Some(bytes)
        });
        if let Some(bytes) = &cached {
            let _ = self.put_state(sha256, bytes);
        }
        Ok(cached)
    }

    /// Remember `metadata`: in the user cache always, and in the state
    /// unless it is read-only (`plan` writes no state).
    pub fn put(&self, sha256: &Sha256, metadata: &[u8]) -> Result<(), StateError> {
        if let Some(path) = MetadataCache::shared(sha256)
            && let Some(dir) = path.parent()
            && std::fs::create_dir_all(dir).is_ok()
            && let Err(e) = crate::util::fsx::write_atomically(&path, metadata)
        {
            tracing::debug!("cannot cache {}: {e}", path.display());
        }
        self.put_state(sha256, metadata)
    }

    pub(super) fn put_state(&self, sha256: &Sha256, metadata: &[u8]) -> Result<(), StateError> {
        if self.read_only {
            return Ok(());
        }
        let conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.execute(
            "INSERT OR REPLACE INTO core_metadata (sha256, metadata) VALUES (?1, ?2)",
            params![sha256.hex(), metadata],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
