//! Evaluation protocols shared by `trainer eval` and the training loop.

pub mod cache;
pub mod det;
pub mod enrolment;
pub mod identification;
pub mod lane;
pub mod lfw;
pub mod lfw_run;
