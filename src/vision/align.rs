//! Face alignment: from landmarks to the 150x150 RGB chip the embedder takes.
//!
//! The exact path is dlib's: 5-point shape predictor ([`crate::vision::landmarks`]), then
//! [`face_chip_details`] and [`extract_image_chip`] ([`chip`]). [`mtcnn`] holds the bridge from
//! MTCNN detections: the dlib-style box to run the shape predictor in, and an approximate chip
//! straight from MTCNN's own five points for when the predictor is not available.

pub mod chip;
pub mod jitter;
pub mod mtcnn;
pub mod pyramid;

pub use chip::{
    AlignError, CHIP_PADDING, CHIP_SIZE, ChipDetails, ChipScratch, DRect, RgbChip,
    extract_image_chip, face_chip_details,
};
pub use jitter::{JitterRng, jitter_chip, mirror_chip};
pub use mtcnn::{
    BoxMapping, FITTED_BOX_MAPPING, MtcnnFace, chip_from_mtcnn_points, dlib_box_from_mtcnn,
};

use std::path::Path;

use crate::vision::image::ImageView;
use crate::vision::landmarks::{
    LandmarkFileError, NUM_PARTS, Point, PredictScratch, Rect, ShapePredictor,
};

/// The face chip an embedder takes: dlib's 5-point geometry at `size` x `size` pixels with `padding`,
/// named `dlib-5pt-{size}-{padding}` in the model contract (`lanewatch.alignment`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipSpec {
    pub size: usize,
    pub padding: f64,
}

impl ChipSpec {
    /// dlib's own chip for its ResNet embedder: 150x150, padding 0.25.
    pub const DLIB: ChipSpec = ChipSpec {
        size: CHIP_SIZE,
        padding: CHIP_PADDING,
    };

    /// The contract name, e.g. `dlib-5pt-150-0.25`.
    pub fn name(&self) -> String {
        format!("dlib-5pt-{}-{}", self.size, self.padding)
    }

    /// Parses a contract name written by [`Self::name`]; `None` for any other alignment.
    pub fn parse(name: &str) -> Option<ChipSpec> {
        let rest = name.strip_prefix("dlib-5pt-")?;
        let (size, padding) = rest.split_once('-')?;
        let size: usize = size.parse().ok()?;
        let padding: f64 = padding.parse().ok()?;
        ((2..=chip::MAX_CHIP_SIDE).contains(&size) && (0.0..=4.0).contains(&padding))
            .then_some(ChipSpec { size, padding })
    }
}

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
        self.align_to(img, face_box, ChipSpec::DLIB)
    }

    /// Like [`Self::align`] with another chip size or padding (a 112x112 embedder takes the same
    /// geometry sampled onto 112x112 pixels).
    pub fn align_to(
        &mut self,
        img: &ImageView<'_>,
        face_box: Rect,
        chip: ChipSpec,
    ) -> Result<Aligned<'_>, AlignError> {
        let landmarks = self.predictor.predict(img, face_box, &mut self.predict);
        let details = face_chip_details(&landmarks, chip.size, chip.padding);
        extract_image_chip(img, &details, &mut self.chip, &mut self.out)?;
        Ok(Aligned {
            landmarks,
            chip: &self.out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ChipSpec;

    #[test]
    fn chip_spec_names_round_trip() {
        assert_eq!(ChipSpec::DLIB.name(), "dlib-5pt-150-0.25");
        assert_eq!(ChipSpec::parse("dlib-5pt-150-0.25"), Some(ChipSpec::DLIB));
        let small = ChipSpec {
            size: 112,
            padding: 0.25,
        };
        assert_eq!(ChipSpec::parse(&small.name()), Some(small));
        for bad in [
            "mtcnn-112",
            "dlib-5pt-1-0.25",
            "dlib-5pt-112",
            "dlib-5pt-112-x",
        ] {
            assert_eq!(ChipSpec::parse(bad), None, "{bad}");
        }
    }
}
