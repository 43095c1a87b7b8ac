//! `airlock publish`: make a published tree what another place serves.
//!
//! Every target implements [`PublishTarget`]; which one is chosen once, by
//! parsing the destination into a [`Destination`] (`s3://bucket/prefix`, or
//! a directory). A new kind of target (another object store) is one variant
//! and one implementation.

pub mod dir;
pub mod error;
pub mod s3;
pub mod target;

use std::path::PathBuf;

pub use error::PublishError;
pub use target::PublishTarget;

use crate::manifest::Publish;

/// Where a tree goes, parsed once from `--to` or `[publish] to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl std::str::FromStr for Destination {
    type Err = PublishError;
    fn from_str(s: &str) -> Result<Destination, PublishError> {
        if s.starts_with("s3://") {
            let (bucket, prefix) = s3::parse_url(s)?;
            return Ok(Destination::S3 { bucket, prefix });
        }
        // Any other URL scheme is a mistake, not a directory named "gs:".
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(PublishError::Unsupported(s.to_string()));
        }
        Ok(Destination::Dir(PathBuf::from(s)))
    }
}

/// The target a destination names, configured from `[publish]`.
pub fn target(dest: &Destination, cfg: &Publish, jobs: usize) -> Result<Box<dyn PublishTarget>, PublishError> {
    Ok(match dest {
        Destination::Dir(path) => Box::new(dir::DirTarget::new(path)),
        Destination::S3 { bucket, prefix } => Box::new(s3::S3Target::new(bucket, prefix, cfg, jobs)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_once() {
        assert_eq!(
            "s3://bucket/a/b".parse::<Destination>().unwrap(),
            Destination::S3 { bucket: "bucket".into(), prefix: "a/b".into() }
        );
        assert_eq!("/srv/www".parse::<Destination>().unwrap(), Destination::Dir("/srv/www".into()));
        assert_eq!("rel/dir".parse::<Destination>().unwrap(), Destination::Dir("rel/dir".into()));
        assert!(matches!("gs://bucket".parse::<Destination>(), Err(PublishError::Unsupported(_))));
        assert!("s3://Bad_Bucket".parse::<Destination>().is_err());
    }
}
