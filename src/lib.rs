//! # molt
//!
//! An actor runtime with become-style hot code swapping: every module runs as
//! supervised ractor actors whose behaviour lives in an ABI-stable `cdylib`;
//! a reload migrates each instance's state to the new library in place,
//! without losing a message, or rolls back and keeps serving the old code.
//!
//! This crate is the facade: the runtime ([`molt_runtime`], re-exported at the
//! root) and the module SDK ([`abi`]). Start with [`Node::start`]; see
//! `examples/live_swap.rs`.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub use molt_abi as abi;
pub use molt_runtime::*;

/// Where this workspace is, for examples and tools that build the example
/// modules it contains.
pub fn workspace_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
