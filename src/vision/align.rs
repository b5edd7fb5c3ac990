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
pub use mtcnn::{
    BoxMapping, FITTED_BOX_MAPPING, MtcnnFace, chip_from_mtcnn_points, dlib_box_from_mtcnn,
};

use std::path::Path;

use crate::vision::image::ImageView;
use crate::vision::landmarks::{
    LandmarkFileError, NUM_PARTS, Point, PredictScratch, Rect, ShapePredictor,
};

/// dlib's whole alignment in one place, with its buffers: landmarks in a dlib-style face box, then
/// the 150x150 chip. After the first call nothing is allocated for chips of the same size.
pub struct Aligner {
    predictor: ShapePredictor,
    predict: PredictScratch,
    chip: ChipScratch,
    out: RgbChip,
}

/// The result of [`Aligner::align`]; the chip is borrowed from the aligner's buffer.
pub struct Aligned<'a> {
    pub landmarks: [Point; NUM_PARTS],
    pub chip: &'a RgbChip,
}

impl Aligner {
    pub fn new(predictor: ShapePredictor) -> Self {
        let predict = predictor.scratch();
        Self {
            predictor,
            predict,
            chip: ChipScratch::default(),
            out: RgbChip::default(),
        }
    }

    /// Loads the landmark model (`models/dlib_5pt.lwsp`).
    pub fn open(model: &Path) -> Result<Self, LandmarkFileError> {
        Ok(Self::new(ShapePredictor::open(model)?))
    }

    /// Landmarks of the face in `face_box` and its chip (`CHIP_SIZE`, `CHIP_PADDING`).
    pub fn align(
        &mut self,
        img: &ImageView<'_>,
        face_box: Rect,
    ) -> Result<Aligned<'_>, AlignError> {
        let landmarks = self.predictor.predict(img, face_box, &mut self.predict);
        let details = face_chip_details(&landmarks, CHIP_SIZE, CHIP_PADDING);
        extract_image_chip(img, &details, &mut self.chip, &mut self.out)?;
        Ok(Aligned {
            landmarks,
            chip: &self.out,
        })
    }
}
