//! The run loop end to end: CLI, faults, LFW passers, watchlist hot reload.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod run_cli;
mod run_faults;
mod run_lfw;
mod run_watch;
