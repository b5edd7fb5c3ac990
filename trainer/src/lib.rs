//! lanewatch's central trainer as a library: importers of published weights, training, export and
//! evaluation. `main.rs` only parses arguments.

pub mod commands;
pub mod eval;
pub mod export;
pub mod import;
pub mod pool;
pub mod quantize;
pub mod train;
