//! Inference of dlib's shape predictor, step for step as `dlib::shape_predictor::operator()`
//! (dlib/image_processing/shape_predictor.h), including dlib's mix of float and double arithmetic
//! and its rounding of pixel positions, so that the landmarks come out the same as dlib's.

use std::fmt;
use std::path::Path;

use super::file::{LandmarkFileError, load_lwsp};
use super::{NUM_PARTS, Point, Rect, ShapePredictorModel, Split};
use crate::vision::geometry::{round_half_up, similarity};
use crate::vision::image::ImageView;

/// Why a model cannot be run safely; names the cascade/tree/node at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidModel(pub String);

impl fmt::Display for InvalidModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidModel {}

macro_rules! invalid {
    ($($t:tt)*) => { return Err(InvalidModel(format!($($t)*))) };
}

/// Checks everything inference relies on: every index in range, every tree complete, every value
/// finite. A model that passes cannot make [`ShapePredictor::predict`] index out of bounds.
pub fn validate(model: &ShapePredictorModel) -> Result<(), InvalidModel> {
    let parts = model.num_parts as usize;
    if parts == 0 {
        invalid!("the model has no landmarks");
    }
    if model.initial_shape.len() != 2 * parts {
        invalid!(
            "the initial shape has {} values, expected {} for {parts} landmarks",
            model.initial_shape.len(),
            2 * parts
        );
    }
    if !model.initial_shape.iter().all(|v| v.is_finite()) {
        invalid!("the initial shape holds a value that is not finite");
    }
    for (c, cascade) in model.cascades.iter().enumerate() {
        let features = cascade.anchor_idx.len();
        if cascade.deltas.len() != features {
            invalid!(
                "cascade {c} has {features} anchors but {} deltas",
                cascade.deltas.len()
            );
        }
        if let Some((i, a)) = cascade
            .anchor_idx
            .iter()
            .enumerate()
            .find(|(_, a)| **a as usize >= parts)
        {
            invalid!("cascade {c}: feature {i} is anchored to landmark {a}, but there are {parts}");
        }
        if !cascade.deltas.iter().flatten().all(|v| v.is_finite()) {
            invalid!("cascade {c} has a feature offset that is not finite");
        }
        for (t, tree) in cascade.forest.iter().enumerate() {
            let leaves = tree.leaf_values.len();
            if leaves != tree.splits.len() + 1 || !leaves.is_power_of_two() {
                invalid!(
                    "cascade {c}, tree {t}: {} splits and {leaves} leaves is not a complete binary tree",
                    tree.splits.len()
                );
            }
            for (s, split) in tree.splits.iter().enumerate() {
                if split.idx1 as usize >= features || split.idx2 as usize >= features {
                    invalid!(
                        "cascade {c}, tree {t}, split {s} reads features {} and {}, but the cascade has {features}",
                        split.idx1,
                        split.idx2
                    );
                }
                if !split.thresh.is_finite() {
                    invalid!("cascade {c}, tree {t}, split {s} has a threshold that is not finite");
                }
            }
            for (l, leaf) in tree.leaf_values.iter().enumerate() {
                if leaf.len() != 2 * parts {
                    invalid!(
                        "cascade {c}, tree {t}, leaf {l} has {} values, expected {}",
                        leaf.len(),
                        2 * parts
                    );
                }
                if !leaf.iter().all(|v| v.is_finite()) {
                    invalid!("cascade {c}, tree {t}, leaf {l} holds a value that is not finite");
                }
            }
        }
    }
    Ok(())
}

const SHAPE_LEN: usize = 2 * NUM_PARTS;

struct Tree {
    splits: Vec<Split>,
    /// All leaves back to back, `SHAPE_LEN` values each: one allocation, read sequentially.
    leaves: Vec<f32>,
}

struct Stage {
    anchors: Vec<u32>,
    deltas: Vec<[f32; 2]>,
    trees: Vec<Tree>,
}

/// A validated 5-point shape predictor, laid out for inference.
pub struct ShapePredictor {
    initial: [f32; SHAPE_LEN],
    stages: Vec<Stage>,
    max_features: usize,
}

/// Buffers reused across calls so that [`ShapePredictor::predict`] allocates nothing.
#[derive(Default)]
pub struct PredictScratch {
    features: Vec<f32>,
}

impl ShapePredictor {
    /// Validates `model` (it must have exactly 5 landmarks) and lays it out for inference.
    pub fn new(model: &ShapePredictorModel) -> Result<Self, InvalidModel> {
        validate(model)?;
        if model.num_parts as usize != NUM_PARTS {
            invalid!(
                "the model has {} landmarks; lanewatch aligns faces with dlib's 5-point model",
                model.num_parts
            );
        }
        let mut initial = [0.0f32; SHAPE_LEN];
        initial.copy_from_slice(&model.initial_shape);
        let stages = model
            .cascades
            .iter()
            .map(|c| Stage {
                anchors: c.anchor_idx.clone(),
                deltas: c.deltas.clone(),
                trees: c
                    .forest
                    .iter()
                    .map(|t| Tree {
                        splits: t.splits.clone(),
                        leaves: t.leaf_values.iter().flatten().copied().collect(),
                    })
                    .collect(),
            })
            .collect::<Vec<_>>();
        let max_features = stages.iter().map(|s| s.anchors.len()).max().unwrap_or(0);
        Ok(Self {
            initial,
            stages,
            max_features,
        })
    }

    /// Loads a `.lwsp` file (see [`super::file`]).
    pub fn open(path: &Path) -> Result<Self, LandmarkFileError> {
        let model = load_lwsp(path)?;
        Self::new(&model).map_err(|reason| LandmarkFileError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// A scratch sized for this model, so that even the first call allocates nothing.
    pub fn scratch(&self) -> PredictScratch {
        PredictScratch {
            features: vec![0.0; self.max_features],
        }
    }

    /// The 5 landmarks of the face in `face_box` (a dlib HOG-style box), in dlib's order and
    /// rounded to whole pixels exactly as dlib returns them.
    pub fn predict(
        &self,
        img: &ImageView<'_>,
        face_box: Rect,
        scratch: &mut PredictScratch,
    ) -> [Point; NUM_PARTS] {
        if scratch.features.len() < self.max_features {
            scratch.features.resize(self.max_features, 0.0);
        }
        let features = &mut scratch.features[..];
        // dlib's unnormalizing_tform: (0,0) -> top-left corner, (1,1) -> bottom-right corner.
        let to_img = |v: f32, origin: i32, extent: f64| extent * f64::from(v) + f64::from(origin);
        let width = f64::from(face_box.right) - f64::from(face_box.left);
        let height = f64::from(face_box.bottom) - f64::from(face_box.top);

        let mut shape = self.initial;
        for stage in &self.stages {
            let m = shape_similarity(&self.initial, &shape);
            for ((slot, &anchor), delta) in
                features.iter_mut().zip(&stage.anchors).zip(&stage.deltas)
            {
                let a = 2 * anchor as usize;
                // float, as dlib: tform * delta + location(current_shape, anchor)
                let px = m[0][0] * delta[0] + m[0][1] * delta[1] + shape[a];
                let py = m[1][0] * delta[0] + m[1][1] * delta[1] + shape[a + 1];
                let x = round_half_up(to_img(px, face_box.left, width));
                let y = round_half_up(to_img(py, face_box.top, height));
                *slot = f32::from(img.intensity(x, y));
            }
            for tree in &stage.trees {
                let leaf = tree.leaf_index(features);
                let values = &tree.leaves[leaf * SHAPE_LEN..(leaf + 1) * SHAPE_LEN];
                for (s, v) in shape.iter_mut().zip(values) {
                    *s += v;
                }
            }
        }
        std::array::from_fn(|i| {
            let x = round_half_up(to_img(shape[2 * i], face_box.left, width));
            let y = round_half_up(to_img(shape[2 * i + 1], face_box.top, height));
            Point::new(x as f32, y as f32)
        })
    }
}

impl Tree {
    /// dlib's regression_tree::operator(): left child `2i+1` when `f[idx1] - f[idx2] > thresh`.
    #[inline]
    fn leaf_index(&self, features: &[f32]) -> usize {
        let n = self.splits.len();
        let mut i = 0;
        while i < n {
            let s = &self.splits[i];
            i = if features[s.idx1 as usize] - features[s.idx2 as usize] > s.thresh {
                2 * i + 1
            } else {
                2 * i + 2
            };
        }
        i - n
    }
}

/// dlib's find_tform_between_shapes: the similarity from the initial shape to the current one,
/// computed in double and then cast to float (only its 2x2 part is used).
fn shape_similarity(from: &[f32; SHAPE_LEN], to: &[f32; SHAPE_LEN]) -> [[f32; 2]; 2] {
    let pts = |s: &[f32; SHAPE_LEN]| -> [[f64; 2]; NUM_PARTS] {
        std::array::from_fn(|i| [f64::from(s[2 * i]), f64::from(s[2 * i + 1])])
    };
    let t = similarity(&pts(from), &pts(to));
    [
        [t.m[0][0] as f32, t.m[0][1] as f32],
        [t.m[1][0] as f32, t.m[1][1] as f32],
    ]
}
