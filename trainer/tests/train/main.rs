//! Training: fine-tuning, a compact network on LFW, error handling.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod dlib_finetune;
mod train_errors;
mod train_lfw;
