//! `trainer import dlib-landmarks`: dlib's `shape_predictor_5_face_landmarks.dat` to lanewatch's
//! `.lwsp` landmark model.
//!
//! dlib writes a `shape_predictor` as: int version (1), the initial shape (`matrix<float,0,1>`),
//! the forests (`vector<vector<regression_tree>>`, a tree being its splits `{unsigned long idx1,
//! unsigned long idx2, float thresh}` then its leaf values `vector<matrix<float,0,1>>`), then per
//! cascade the feature pixels' anchor landmarks (`vector<vector<unsigned long>>`) and offsets
//! (`vector<vector<vector<float,2>>>`). See dlib/image_processing/shape_predictor.h.

use std::path::Path;

use anyhow::Context;
use lanewatch::vision::landmarks::{
    Cascade, NUM_PARTS, RegressionTree, ShapePredictor, ShapePredictorModel, Split,
};

use super::serialize::{Cursor, DecodeError, MIN_FLOAT_BYTES, MIN_INT_BYTES, Matrix};

/// Reads and converts a dlib shape predictor file, refusing anything but a 5-point model.
pub fn import_file(path: &Path) -> anyhow::Result<ShapePredictorModel> {
    // dlib's 5-point model is 9 MB; a file many times that is not one.
    const MAX_BYTES: u64 = 256 * 1024 * 1024;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read dlib shape predictor {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_BYTES,
        "{} is {size} bytes, too large for a dlib shape predictor",
        path.display()
    );
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read dlib shape predictor {}", path.display()))?;
    let model = parse_shape_predictor(&bytes).with_context(|| {
        format!(
            "{} is not a dlib shape_predictor file (or it is damaged)",
            path.display()
        )
    })?;
    anyhow::ensure!(
        model.num_parts as usize == NUM_PARTS,
        "{} is a {}-point shape predictor; lanewatch aligns with dlib's 5-point model \
         (shape_predictor_5_face_landmarks.dat). Do not use the 68-point model: its licence forbids commercial use",
        path.display(),
        model.num_parts
    );
    ShapePredictor::new(&model)
        .with_context(|| format!("{} converts to an inconsistent model", path.display()))?;
    Ok(model)
}

/// Decodes dlib's serialisation of a `shape_predictor` (the whole buffer must be consumed).
pub fn parse_shape_predictor(bytes: &[u8]) -> Result<ShapePredictorModel, DecodeError> {
    let mut c = Cursor::new(bytes);
    let version = c.i32("shape_predictor version")?;
    if version != 1 {
        return Err(c.error(
            "shape_predictor version",
            format!("version {version} is not the only known version, 1"),
        ));
    }
    let initial = column(&mut c, "initial_shape")?;
    if initial.is_empty() || initial.len() % 2 != 0 {
        return Err(c.error(
            "initial_shape",
            format!(
                "{} values is not a non-empty list of (x, y) pairs",
                initial.len()
            ),
        ));
    }
    let num_parts = u32::try_from(initial.len() / 2)
        .map_err(|_| c.error("initial_shape", "too many landmarks"))?;

    // A tree takes at least: two vector lengths; a cascade at least one vector length.
    let forests = c.vec(MIN_INT_BYTES, "forests", |c, _| {
        c.vec(2 * MIN_INT_BYTES, "forest", |c, _| tree(c))
    })?;
    let anchor_idx = c.vec(MIN_INT_BYTES, "anchor_idx", |c, _| {
        c.vec(MIN_INT_BYTES, "anchor_idx", |c, _| index(c, "anchor index"))
    })?;
    let deltas = c.vec(MIN_INT_BYTES, "deltas", |c, _| {
        c.vec(2 * MIN_FLOAT_BYTES, "deltas", |c, _| {
            Ok([c.finite_f32("delta x")?, c.finite_f32("delta y")?])
        })
    })?;
    c.expect_end("shape_predictor")?;
    if forests.len() != anchor_idx.len() || forests.len() != deltas.len() {
        return Err(c.error(
            "shape_predictor",
            format!(
                "{} forests but {} anchor lists and {} delta lists",
                forests.len(),
                anchor_idx.len(),
                deltas.len()
            ),
        ));
    }
    let cascades = forests
        .into_iter()
        .zip(anchor_idx)
        .zip(deltas)
        .map(|((forest, anchor_idx), deltas)| Cascade {
            anchor_idx,
            deltas,
            forest,
        })
        .collect();
    Ok(ShapePredictorModel {
        num_parts,
        initial_shape: initial,
        cascades,
    })
}

fn tree(c: &mut Cursor<'_>) -> Result<RegressionTree, DecodeError> {
    let splits = c.vec(2 * MIN_INT_BYTES + MIN_FLOAT_BYTES, "splits", |c, _| {
        Ok(Split {
            idx1: index(c, "split idx1")?,
            idx2: index(c, "split idx2")?,
            thresh: c.finite_f32("split threshold")?,
        })
    })?;
    let leaf_values = c.vec(2 * MIN_INT_BYTES, "leaf_values", |c, _| {
        column(c, "leaf value")
    })?;
    Ok(RegressionTree {
        splits,
        leaf_values,
    })
}

/// An `unsigned long` index, which must fit the u32 the model stores.
fn index(c: &mut Cursor<'_>, what: &str) -> Result<u32, DecodeError> {
    let start = c.clone();
    let v = c.u64(what)?;
    u32::try_from(v).map_err(|_| start.error(what, format!("index {v} is out of range")))
}

/// A `matrix<float,0,1>` (a column vector) of finite values.
fn column(c: &mut Cursor<'_>, what: &str) -> Result<Vec<f32>, DecodeError> {
    let start = c.clone();
    let Matrix { rows, cols, data } = c.matrix_f32(what)?;
    if cols != 1 && !data.is_empty() {
        return Err(start.error(
            what,
            format!("expected a column vector, found {rows} x {cols}"),
        ));
    }
    if let Some(v) = data.iter().find(|v| !v.is_finite()) {
        return Err(start.error(what, format!("holds the non-finite value {v}")));
    }
    Ok(data)
}
