//! dlib's 5-point face landmark model (Kazemi & Sullivan 2014 ensemble of regression trees), as data.
//!
//! `trainer import dlib-landmarks` converts dlib's `shape_predictor_5_face_landmarks.dat` into this
//! form; the box reads it without any dlib code. Coordinates in `initial_shape` and `deltas` are in
//! dlib's normalised face-box frame ([0,1] across the detection box).

use serde::{Deserialize, Serialize};

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
