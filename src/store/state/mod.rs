//! Persistent state in SQLite (WAL): runs, artifacts, the last upstream view
//! of every project, resolutions, tampering evidence, published tree
//! listings and exports, the core-metadata cache, the admission gate's
//! word and PEP 740 publishers.
//!
//! One file per table family, each an `impl State` block over the one
//! connection that `db` opens and migrates; this file only names them.

mod artifacts;
mod db;
mod gate;
mod metadata_cache;
mod publishers;
mod resolutions;
mod runs;
mod tampering;
mod trees;
mod views;

pub use artifacts::{Artifact, WithdrawnRow};
pub use db::{State, StateError};
pub use gate::GateRow;
pub use metadata_cache::MetadataCache;
pub use publishers::AttestedRow;
pub use resolutions::Pins;
pub use runs::RunCounts;
pub use trees::{Listed, TreeKeys};
pub use views::{ProjectView, UpstreamSerial};

pub use crate::util::clock::now;

#[cfg(test)]
mod tests;
