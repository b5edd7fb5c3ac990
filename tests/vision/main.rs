//! Detection, alignment, the embedder and its parity with reference runtimes.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod align_box_mapping;
mod align_chip;
mod align_dlib_reference;
mod align_landmarks_model;
mod align_mtcnn_mapping;
mod describe_augmented;
mod detect_batch_timing;
mod detect_errors;
mod detect_guided;
mod detect_lfw;
mod model_int8;
mod model_parity;
mod model_runtime;
