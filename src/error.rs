//! The library's top-level error: one variant per module error, and the
//! exit code each maps to (DESIGN.md: 1 run failed, 2 usage, 4 advisory
//! data missing or stale). Only the command layer (`cli`, `commands`,
//! `pipeline`) returns it, and it depends on none of them; every module
//! below has its own error type that names its input.

use crate::advisories::AdvisoryError;
use crate::audit::AuditError;
use crate::bundle::BundleError;
use crate::index::local::IndexError;
use crate::index::{RenderError, TemplateError};
use crate::manifest::ManifestError;
use crate::publish::PublishError;
use crate::run::RunError;
use crate::store::fetch::FetchError;
use crate::store::lock::LockError;
use crate::store::state::StateError;
use crate::tree::TreeError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Fetch(#[from] FetchError),

    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Advisories(#[from] AdvisoryError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Remote(#[from] crate::store::remote::RemoteError),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Interrupted(#[from] crate::util::signal::Interrupted),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Audit(_) => 4,
            Error::Interrupted(i) => crate::util::signal::exit_code(i.0),
            _ => 1,
        }
    }
}
