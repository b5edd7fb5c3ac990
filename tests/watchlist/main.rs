//! Watchlist files: format, signatures, matcher, install, sync, enrolment.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod enroll_lfw;
mod sync_http;
mod sync_https;
mod watchlist_cli;
mod watchlist_crash;
mod watchlist_matcher;
mod watchlist_reader_fuzz;
mod watchlist_rejections;
