//! Resident memory over a long run (alone in its process: it measures the process).
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod run_memory;
