//! What writing, placing and swapping a tree can fail with.

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot place {src} at {dst}: {error}")]
    Place { src: String, dst: String, error: std::io::Error },
    #[error(
        "{path} is a non-empty directory that airlock does not manage (airlock publishes `output` as a symlink to a complete tree); move it away or choose another output"
    )]
    NotManaged { path: String },
    #[error("{path}: output must name a directory, such as `public`")]
    BadTarget { path: String },
    #[error(
        "{path} was made from an old tree and not pruned to its listing before the swap (a bug: nothing was published)"
    )]
    Unpruned { path: String },
}
