//! The calibration table (`calib/*.json`): everything needed to rebuild the quantised models
//! without the calibration images. Per activation tensor the scale and zero point the graphs use
//! (authoritative), with the range they came from and the raw observed range; plus the source
//! model's sha256, the method, and the sha256 of every calibration image.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};

use super::ranges::uint8_params;

pub const FORMAT: &str = "lanewatch-calibration-table-1";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationTable {
    pub format: String,
    /// The fp32 model the ranges were measured on.
    pub model: ModelRef,
    /// `minmax`, `percentile:P` or `entropy`.
    pub method: String,
    /// Activations: per-tensor asymmetric uint8. Weights: per-output-channel symmetric int8
    /// (computed from the model, so not stored here).
    pub activations: String,
    pub weights: String,
    pub images: ImageSet,
    pub tensors: BTreeMap<String, TensorRange>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    pub file: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSet {
    /// How the images became face chips.
    pub chips: String,
    /// Images read, and how many gave a face chip.
    pub count: usize,
    pub faces: usize,
    pub files: Vec<ImageRecord>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub name: String,
    pub sha256: String,
    pub face: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorRange {
    /// What calibration saw over all images.
    pub observed_min: f32,
    pub observed_max: f32,
    /// The range the method chose (clipped inside the observed one).
    pub min: f32,
    pub max: f32,
    /// `x = scale * (q - zero_point)`, q in 0..=255.
    pub scale: f32,
    pub zero_point: u8,
}

impl TensorRange {
    pub fn new(observed: (f32, f32), chosen: (f32, f32)) -> TensorRange {
        let (scale, zero_point) = uint8_params(chosen.0, chosen.1);
        TensorRange {
            observed_min: observed.0,
            observed_max: observed.1,
            min: chosen.0,
            max: chosen.1,
            scale,
            zero_point,
        }
    }
}

pub const ACTIVATIONS: &str = "uint8 asymmetric, per tensor";
pub const WEIGHTS: &str = "int8 symmetric (zero point 0, -127..=127), per output channel";

impl CalibrationTable {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serialises");
        s.push('\n');
        s
    }

    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.to_json().as_bytes()))
    }

    /// Reads and checks a table; every problem is an error naming the file and the tensor.
    pub fn read(path: &Path) -> anyhow::Result<CalibrationTable> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the calibration table {}", path.display()))?;
        let table: CalibrationTable = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a lanewatch calibration table (JSON written by `trainer quantize`)",
                path.display()
            )
        })?;
        table
            .check()
            .with_context(|| format!("calibration table {}", path.display()))?;
        Ok(table)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.format == FORMAT,
            "format {:?} is not {FORMAT:?}",
            self.format
        );
        ensure!(
            self.activations == ACTIVATIONS && self.weights == WEIGHTS,
            "it describes another quantisation scheme (activations {:?}, weights {:?})",
            self.activations,
            self.weights
        );
        self.method
            .parse::<super::ranges::Method>()
            .map_err(anyhow::Error::msg)?;
        ensure!(
            self.model.sha256.len() == 64 && hex::decode(&self.model.sha256).is_ok(),
            "model.sha256 {:?} is not a sha256",
            self.model.sha256
        );
        ensure!(!self.tensors.is_empty(), "it holds no tensor ranges");
        for (name, r) in &self.tensors {
            let vals = [r.observed_min, r.observed_max, r.min, r.max, r.scale];
            if vals.iter().any(|v| !v.is_finite()) {
                bail!("tensor `{name}`: a range or scale is not a finite number");
            }
            ensure!(
                r.scale > 0.0,
                "tensor `{name}`: scale {} must be positive",
                r.scale
            );
            ensure!(
                r.min <= r.max,
                "tensor `{name}`: min {} is above max {}",
                r.min,
                r.max
            );
            // The scale and zero point are what the graphs use; they must be the ones the range
            // gives (a hand edit of one without the other is a mistake, not a quantisation).
            let (scale, zp) = uint8_params(r.min, r.max);
            let rel = (scale - r.scale).abs() / scale.max(f32::MIN_POSITIVE);
            ensure!(
                rel < 1e-4 && (i32::from(zp) - i32::from(r.zero_point)).abs() <= 1,
                "tensor `{name}`: scale {} / zero point {} do not match its range [{}, {}] (expected {scale} / {zp})",
                r.scale,
                r.zero_point,
                r.min,
                r.max
            );
        }
        Ok(())
    }

    pub fn range(&self, tensor: &str) -> anyhow::Result<&TensorRange> {
        self.tensors.get(tensor).with_context(|| {
            format!("the calibration table has no range for tensor `{tensor}`: was it made for another model?")
        })
    }
}
