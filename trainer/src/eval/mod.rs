//! Evaluation protocols shared by `trainer eval` and the training loop.

pub mod command;
pub mod lfw;
