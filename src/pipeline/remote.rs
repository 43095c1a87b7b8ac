//! The pipeline's side of an object-store store (`store::remote`): opening
//! it from `[mirror] store` and `[publish]`, and the restore-files stage,
//! which turns plan decisions into downloads from it.

use std::sync::Arc;

use super::plan::{Decision, Plan};
use crate::error::Error;
use crate::manifest::{Mirror, Publish};
use crate::publish::s3;
use crate::store::Store;
pub use crate::store::remote::RemoteStore;

/// The object store of `[mirror] store`, if it is one. Its endpoint,
/// region and credentials are those of `[publish]` and `AWS_*`; with
/// `[publish] to` the same prefix, one layout.
pub fn open(m: &Mirror, cfg: &Publish) -> Result<Option<RemoteStore>, Error> {
    let Some(url) = &m.store_url else { return Ok(None) };
    let named = |e: crate::publish::error::S3Error| Error::Failed(format!("[mirror] store: {e}"));
    let (bucket, prefix) = s3::parse_url(url).map_err(named)?;
    let (store, _, _) = s3::connect(cfg, &bucket, true).map_err(named)?;
    let one_layout = cfg.to.as_deref().is_some_and(|to| crate::manifest::same_prefix(url, to));
    Ok(Some(RemoteStore::new(Arc::new(store), bucket, prefix, (m.jobs, one_layout))?))
}

/// Stage: restore files. Every file to fetch that the object store holds
/// (at the size the upstream declares) is downloaded from it into the
/// local store, verified against the upstream's sha256, and handed to
/// adopt (which hashes it again); under one layout it stays in the bucket
/// when its upload recorded that sha256 (`RemoteStore::vouch`). Returns
/// how many came from the object store.
pub fn restore_files(remote: &RemoteStore, plan: &mut Plan, store: &Store) -> u64 {
    let mut wanted = Vec::new();
    for pp in &plan.projects {
        for f in &pp.files {
            if let Decision::Fetch(u) = &f.decision
                && remote.held_size(&pp.project, &f.filename).is_some_and(|size| u.size.is_none_or(|s| s == size))
            {
                wanted.push((pp.project.clone(), f.filename.clone(), u.sha256));
            }
        }
    }
    // One layout: what the bucket holds at the sha256 the upstream
    // declares is adopted from there, never downloaded; the rest comes down.
    let vouched = if remote.one_layout() {
        let declared: Vec<_> = wanted.iter().filter_map(|(p, f, sha)| Some((p.clone(), f.clone(), (*sha)?))).collect();
        remote.vouch(store, &declared)
    } else {
        Default::default()
    };
    wanted.retain(|(p, f, _)| !vouched.contains(&(p.clone(), f.clone())));
    let mut arrived = remote.restore(store, &wanted, "; fetching it from the upstream instead");
    arrived.extend(vouched);
    let mut restored = 0;
    for pp in &mut plan.projects {
        for f in &mut pp.files {
            if let Decision::Fetch(u) = &f.decision
                && arrived.contains(&(pp.project.clone(), f.filename.clone()))
            {
                f.decision = Decision::Adopt(u.clone());
                restored += 1;
            }
        }
    }
    restored
}
