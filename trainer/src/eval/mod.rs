//! Evaluation protocols shared by `trainer eval` and the training loop.

pub mod cache;
pub mod command;
pub mod identification;
pub mod lfw;
