//! Trees: published trees' listings and keys, change feeds, exports.

use rusqlite::{OptionalExtension, params};

use super::db::{State, StateError};
use crate::dist::names::ProjectName;
use crate::util::clock::now;
use crate::util::run_id::RunId;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeKeys {
    /// Every input, file by file.
    pub key: String,
    /// Every input but the selection.
    pub inputs: String,
    pub exit: i64,
    /// The selection the tree was rendered from.
    pub selection: String,
}

/// The files a published tree lists in its pages, as sorted 64-bit keys
/// of `project/filename` (see [`Listed::key`]): what the removal guard
/// compares the next tree with. Kept for the newest tree only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed(pub Vec<u64>);

impl Listed {
    /// The key of one listed file.
    pub fn key(project: &ProjectName, filename: &str) -> u64 {
        let mut h = crate::util::hashing::HashingWriter::new(std::io::sink());
        let _ = std::io::Write::write_all(&mut h, project.as_str().as_bytes());
        let _ = std::io::Write::write_all(&mut h, b"/");
        let _ = std::io::Write::write_all(&mut h, filename.as_bytes());
        let d = h.finish().1;
        u64::from_le_bytes(d.0[..8].try_into().unwrap_or([0; 8]))
    }

    fn encode(&self) -> Vec<u8> {
        let raw: Vec<u8> = self.0.iter().flat_map(|k| k.to_le_bytes()).collect();
        zstd::encode_all(&raw[..], 3).unwrap_or_default()
    }

    fn decode(blob: &[u8]) -> Option<Listed> {
        let limit = crate::util::bounded::limit(blob.len() as u64, 64, 64 << 20, u64::MAX);
        let raw = crate::util::bounded::decode_all(blob, limit).ok()?;
        Some(Listed(raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()))
    }

    /// How many of these are not in `newer` (both sorted).
    pub fn missing_from(&self, newer: &Listed) -> usize {
        let (mut i, mut j, mut missing) = (0, 0, 0);
        while i < self.0.len() {
            match newer.0.get(j) {
                Some(n) if *n < self.0[i] => j += 1,
                Some(n) if *n == self.0[i] => {
                    i += 1;
                    j += 1;
                }
                _ => {
                    missing += 1;
                    i += 1;
                }
            }
        }
        missing
    }
}

impl State {
    /// Store the published tree's listing (zstd JSON) and keys for `run`,
    /// keeping the newest `keep` listings plus any an export refers to.
    /// Record what run `run`'s tree changed (`changes.json`), keeping the
    /// last `keep` runs.
    pub fn put_changes(&self, run: RunId, body: &str, keep: usize) -> Result<(), StateError> {
        self.conn
            .execute("INSERT OR REPLACE INTO changes (run, body) VALUES (?1, ?2)", params![run, body])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM changes WHERE run NOT IN (SELECT run FROM changes ORDER BY run DESC LIMIT ?1)",
                [keep as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The recorded changes of the last `limit` runs, newest first.
    pub fn recent_changes(&self, limit: usize) -> Result<Vec<(RunId, String)>, StateError> {
        let mut stmt =
            self.conn.prepare("SELECT run, body FROM changes ORDER BY run DESC LIMIT ?1").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    pub fn put_tree(
        &self,
        run: RunId,
        listing: &mut std::fs::File,
        keys: &TreeKeys,
        listed: &Listed,
        keep: usize,
    ) -> Result<(), StateError> {
        // The listing (megabytes for a large tree) goes in through blob I/O,
        // from its scratch file: never a copy of it in memory.
        use std::io::Seek;
        let len = listing.seek(std::io::SeekFrom::End(0))?;
        listing.rewind()?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO trees (run, listing, key, inputs, exit, selection, listed_count, listed) VALUES (?1, zeroblob(?2), ?3, ?4, ?5, ?6, ?7, ?8)",
                params![run, len as i64, keys.key, keys.inputs, keys.exit, keys.selection, listed.0.len() as i64, listed.encode()],
            )
            .map_err(|e| self.err(e))?;
        {
            let mut blob =
                self.conn.blob_open(rusqlite::MAIN_DB, "trees", "listing", run.0, false).map_err(|e| self.err(e))?;
            std::io::copy(&mut std::io::BufReader::new(listing), &mut blob)?;
        }
        self.conn.execute("UPDATE trees SET listed = NULL WHERE run != ?1", [run]).map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM trees WHERE run NOT IN (SELECT run FROM trees ORDER BY run DESC LIMIT ?1)
                 AND run NOT IN (SELECT run FROM exports)",
                [keep as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The keys the tree `run` published was rendered from.
    pub fn tree_keys(&self, run: RunId) -> Result<Option<TreeKeys>, StateError> {
        self.conn
            .query_row("SELECT key, inputs, exit, selection FROM trees WHERE run = ?1", [run], |r| {
                Ok(TreeKeys {
                    key: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    inputs: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    exit: r.get(2)?,
                    selection: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// What the tree of `run` lists (`None`: a tree older than the guard).
    pub fn tree_listed(&self, run: RunId) -> Result<Option<Listed>, StateError> {
        let blob: Option<Option<Vec<u8>>> = self
            .conn
            .query_row("SELECT listed FROM trees WHERE run = ?1", [run], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(blob.flatten().and_then(|b| Listed::decode(&b)))
    }

    pub fn tree(&self, run: RunId) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .query_row("SELECT listing FROM trees WHERE run = ?1", [run], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------- exports

    pub fn record_export(&self, run: RunId, since: Option<RunId>, file: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO exports (run, since_run, created_at, file) VALUES (?1, ?2, ?3, ?4)",
                params![run, since, now(), file],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn last_export_run(&self) -> Result<Option<RunId>, StateError> {
        self.conn.query_row("SELECT MAX(run) FROM exports", [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}
