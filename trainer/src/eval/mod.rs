//! Evaluation protocols shared by `trainer eval` and the training loop.

pub mod cache;
pub mod command;
pub mod det;
pub mod enrolment;
pub mod identification;
pub mod lane;
pub mod lfw;
