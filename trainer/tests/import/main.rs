//! Importing published weights (dlib, MTCNN, the 5-point predictor) and their parity.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod dlib_graph;
mod dlib_malformed;
mod dlib_parity;
mod landmarks_import;
mod mtcnn_parity;
