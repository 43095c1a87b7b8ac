//! airlock: a verified, audited, static Python package mirror.
//!
//! The pipeline (see [`build`]) is a flat list of stages, each taking and
//! returning plain values: manifest → plan → fetch and verify → state →
//! audit → render → publish.

pub mod advisories;
pub mod audit;
pub mod build;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod deps;
pub mod error;
pub mod fault;
pub mod fetch;
pub mod filename;
pub mod hashing;
pub mod listing;
pub mod localindex;
pub mod lock;
pub mod manifest;
pub mod metadata;
pub mod mime;
pub mod names;
pub mod nginx;
pub mod plan;
pub mod publish;
pub mod redact;
pub mod render;
pub mod report;
pub mod requirements;
pub mod s3;
pub mod select;
pub mod serve;
pub mod severity;
pub mod state;
pub mod store;
pub mod tags;
pub mod templates;
pub mod ui;
pub mod upstream;
pub mod verify;
pub mod wire;
