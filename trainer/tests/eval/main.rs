//! Evaluation gates and int8 quantisation.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod lane;
mod lfw_fold1;
mod quantize;
