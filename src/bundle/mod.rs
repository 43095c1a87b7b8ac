//! Bundles for air-gapped networks: `airlock export` and `airlock import`.
//!
//! A bundle is a zstd-compressed tar. Its first member, `airlock-bundle.json`,
//! lists the complete tree the bundle brings the receiver to (every path with
//! size and sha256), the run range it covers, the members it carries and the
//! paths to delete. A full bundle carries every file; an incremental one only
//! what changed since its base run, and names the base tree by the digest of
//! its listing, so it applies to exactly that tree and nothing else.
//!
//! Export streams: each file is read once, hashed against the listing the
//! state recorded when the tree was published, and written; memory stays flat
//! whatever the bundle size. Import verifies everything before anything
//! becomes visible: members are written into a staging tree, each checked
//! against the manifest, and the result is published with the same atomic
//! swap as a build. Paths that are absolute, contain `..`, links, devices,
//! duplicates, members the manifest does not list, and bundles that
//! decompress far beyond their size are refused, naming the member.

mod export;
mod import;
mod manifest;

pub use self::export::{Since, export};
pub use self::import::import;
pub use self::manifest::BundleError;
