//! What a Python distribution is, in domain types: normalized project names,
//! wheel and sdist filenames (PEP 427/491/625), wheel tag targets, and the
//! core metadata a wheel or sdist carries (PEP 566/643).

pub mod file;
pub mod filename;
pub mod metadata;
pub mod names;
pub mod tags;

pub use uv_pep440::Version;
