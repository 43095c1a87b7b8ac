//! What publishing can fail with: [`PublishError`] for every target, and
//! the S3 target's own [`S3Error`], which names bucket and key.

use crate::tree::TreeError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{0:?}: unsupported destination (give s3://bucket/prefix or a directory)")]
    Unsupported(String),
}

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{0:?} is not an s3://bucket/prefix URL")]
    Url(String),
    #[error("s3://{bucket}/{key}: {message}")]
    Object { bucket: String, key: String, message: String },
    #[error("S3 configuration: {0}")]
    Config(String),
    #[error(
        "no AWS credentials found (looked in {looked}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws/credentials ({cause})"
    )]
    NoCredentials { looked: String, cause: String },
    #[error("bucket `{bucket}` does not exist at {endpoint} (create it, or fix [publish] to)")]
    NoBucket { bucket: String, endpoint: String },
    #[error("s3://{bucket}/{key}: access denied: the credentials ({from}) may not {action} there")]
    Denied { bucket: String, key: String, from: String, action: &'static str },
    #[error(
        "{count} file(s) of the tree are neither in the tree's directory nor in the bucket with their sha256 (one layout: the store uploads them; rerun `airlock build`); nothing was published:\n{list}"
    )]
    Absent { count: usize, list: String },
    #[error(
        "{failed} upload(s) failed in the {phase} phase; later phases were not started, so nothing links to a missing object:\n{errors}"
    )]
    Uploads { phase: &'static str, failed: usize, errors: String },
}
