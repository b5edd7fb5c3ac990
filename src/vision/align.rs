//! Face alignment: from landmarks to the 150x150 RGB chip the embedder takes.
//!
//! The exact path is dlib's: 5-point shape predictor ([`crate::vision::landmarks`]), then
//! [`face_chip_details`] and [`extract_image_chip`] ([`chip`]). [`mtcnn`] holds the bridge from
//! MTCNN detections: the dlib-style box to run the shape predictor in, and an approximate chip
//! straight from MTCNN's own five points for when the predictor is not available.

pub mod chip;
pub mod mtcnn;
pub mod pyramid;

pub use chip::{
    AlignError, CHIP_PADDING, CHIP_SIZE, ChipDetails, ChipScratch, DRect, RgbChip,
    extract_image_chip, face_chip_details,
};
pub use mtcnn::{BoxMapping, MtcnnFace, chip_from_mtcnn_points};
