//! lanewatch's central trainer as a library: importers of published weights, and (later) training,
//! export, quantisation and evaluation. `main.rs` only parses arguments.

pub mod eval;
pub mod import;
pub mod quantize;
