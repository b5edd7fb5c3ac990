//! dlib's 5-point face landmark model (Kazemi & Sullivan 2014 ensemble of regression trees), as data.
//!
//! `trainer import dlib-landmarks` converts dlib's `shape_predictor_5_face_landmarks.dat` into this
//! form; the box reads it without any dlib code. Coordinates in `initial_shape` and `deltas` are in
//! dlib's normalised face-box frame ([0,1] across the detection box).
//!
//! [`file`] reads and writes the `.lwsp` container; [`predict`] runs the model exactly as dlib's
//! `shape_predictor::operator()` does.

use serde::{Deserialize, Serialize};

pub mod file;
pub mod predict;

pub use file::{LandmarkFileError, load_lwsp, read_lwsp, write_lwsp};
pub use predict::{PredictScratch, ShapePredictor};

/// One split node: compare the intensities of two feature pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub idx1: u32,
    pub idx2: u32,
    pub thresh: f32,
}

/// A complete binary tree stored breadth-first: `splits.len()` internal nodes, `leaf_values.len() ==
/// splits.len() + 1` leaves, each a shape update of `2 * num_parts` values (x0, y0, x1, y1, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegressionTree {
    pub splits: Vec<Split>,
    pub leaf_values: Vec<Vec<f32>>,
}

/// One cascade stage: where its feature pixels sit (relative to an anchor landmark) and its trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cascade {
    pub anchor_idx: Vec<u32>,
    pub deltas: Vec<[f32; 2]>,
    pub forest: Vec<RegressionTree>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShapePredictorModel {
    pub num_parts: u32,
    /// `2 * num_parts` values: the mean shape in the normalised box frame.
    pub initial_shape: Vec<f32>,
    pub cascades: Vec<Cascade>,
}

/// The number of landmarks of dlib's 5-point model: outer and inner corner of the image-right eye,
/// outer and inner corner of the image-left eye, base of the nose (dlib's order).
pub const NUM_PARTS: usize = 5;

/// A point in image pixel coordinates (x right, y down; pixel centres at integers, as in dlib).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// From an `[x, y]` pair, as the MTCNN detector reports its landmarks.
impl From<[f32; 2]> for Point {
    fn from([x, y]: [f32; 2]) -> Self {
        Self { x, y }
    }
}

/// dlib's `rectangle`: integer corners, both inclusive (`width = right - left + 1`). The shape
/// predictor was trained on dlib HOG boxes in this form, so it takes exactly this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub left: i32,
    pub top: i32,
    pub right: i32,
    pub bottom: i32,
}

impl Rect {
    pub const fn new(left: i32, top: i32, right: i32, bottom: i32) -> Self {
        Self {
            left,
            top,
            right,
            bottom,
        }
    }

    /// dlib's `is_empty`: a rectangle with right < left or bottom < top holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }
}
