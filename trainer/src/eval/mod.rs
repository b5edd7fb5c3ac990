//! Evaluation protocols shared by `trainer eval` and the training loop.

pub mod lfw;
