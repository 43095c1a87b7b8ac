//! Commands beside the pipeline: `plan` (what a build would do), `verify`
//! (re-hash the served tree, and repair it), `serve` (a local preview) and
//! the nginx configuration `serve --nginx-config` prints.

pub mod nginx;
pub mod plan;
pub mod scan;
pub mod serve;
pub mod shard;
pub mod verify;
