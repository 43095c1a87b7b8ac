//! airlock: a verified, audited, static Python package mirror.
//!
//! The pipeline ([`pipeline::build`]) is a flat list of named stages, each
//! taking and returning plain values: load advisories → open the run →
//! gather upstream views → plan → adopt → fetch and verify → record →
//! audit → render → publish → prune → finish. docs/ARCHITECTURE.md maps the
//! modules below and the invariants they keep.

pub mod advisories;
pub(crate) mod audit;
pub(crate) mod browse;
pub(crate) mod bundle;
pub mod cli;
pub(crate) mod commands;
pub mod diagnostics;
pub mod dist;
pub mod error;
pub mod exit;
#[doc(hidden)]
pub mod fuzz;
pub mod index;
pub mod manifest;
pub mod pipeline;
pub mod provenance;
pub(crate) mod publish;
pub(crate) mod run;
pub(crate) mod select;
pub(crate) mod store;
pub mod tree;
pub(crate) mod upstream;
pub mod util;
