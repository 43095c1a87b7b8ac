//! The library's top-level error: one variant per module error, and the
//! exit code each maps to (DESIGN.md: 1 run failed, 2 usage, 3 policy,
//! 4 advisory data missing or stale).

use crate::fetch::FetchError;
use crate::lock::LockError;
use crate::manifest::ManifestError;
use crate::publish::PublishError;
use crate::render::RenderError;
use crate::state::StateError;
use crate::templates::TemplateError;
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
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Advisories(#[from] crate::advisories::AdvisoryError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Audit(_) => 4,
            _ => 1,
        }
    }
}

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    Policy = 3,
    Advisories = 4,
}
