//! Measures the workspace's own sources against the project's layout rules.
//!
//! Each crate's `src/` is parsed with `syn` (with real line numbers from
//! `proc-macro2`'s span locations) rather than scanned as text, so a brace in
//! a string or a comment cannot move a function's end. Three things come out:
//! - the length of every function, from its `fn` to its closing brace;
//! - the length of every file, less the items marked `#[cfg(test)]` (tests
//!   aside, as the rules say);
//! - the import graph between a crate's top-level modules, from every path
//!   that names `crate::…`, `super::…` or `self::…` (in `use` and in code),
//!   with the crate root's re-exports followed to the module that defines
//!   the name. A cycle is a strongly connected set of two or more modules.
//!
//! Top-level modules are the unit because they are the unit of design: a
//! child module that uses its parent's helpers is part of the same thing, but
//! `backup` using `vault` while `vault` uses `backup` means one of them holds
//! something that belongs to the other.
#![forbid(unsafe_code)]

mod graph;
mod scan;

pub use graph::{module_cycles, module_edges};
pub use scan::{scan_crate, CrateLayout, Function, SourceFile};

use std::path::PathBuf;

/// What stops a crate from being measured.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    Parse { path: PathBuf, source: syn::Error },
}
