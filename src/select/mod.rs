//! Selection: which files of which projects a manifest asks for.
//!
//! `env` turns the manifest's Pythons and platforms into marker
//! environments; `filter` applies a project's requirement lines and options
//! to its upstream listing; `closure` follows `Requires-Dist` of selected
//! wheels (`dependencies = "all"`).

pub mod closure;
pub mod env;
pub mod filter;

pub use filter::select;
