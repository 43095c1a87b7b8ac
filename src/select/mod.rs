//! Selection: which files of which projects a manifest asks for.
//!
//! `env` turns the manifest's Pythons and platforms into marker
//! environments; `filter` applies a project's requirement lines and options
//! to its upstream listing; `closure` follows `Requires-Dist` of selected
//! wheels (`dependencies = "all"`); `resolve` resolves each target
//! environment with PubGrub (`dependencies = "resolve"`) in `solver`'s
//! decision order; `locked` is what
//! lock files name; `admission` is the gate that holds releases too young,
//! frozen out or without an upload time.

pub mod admission;
pub mod closure;
pub mod env;
pub mod explain;
pub mod filter;
pub mod installable;
pub mod locked;
pub mod resolve;
pub mod solver;

pub use filter::select;
