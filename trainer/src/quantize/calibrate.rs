//! Calibration: face chips from images through the box's own detect → align path, then the fp32
//! model run by tract with every intermediate tensor exposed as an output, collecting per-tensor
//! min/max (first pass) and |x| histograms over that range (second pass).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use lanewatch::vision::align::RgbChip;
use lanewatch::vision::contract::InputSpec;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::faces::{FaceAnalyzer, FaceModels, read_rgb};
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::ranges::TensorStats;
use super::table::ImageRecord;

/// How calibration images become chips; recorded in the table.
pub const CHIPS: &str = "MTCNN (min face 20 px) -> mapped dlib box -> dlib 5-point landmarks -> 150x150 chip (lanewatch FaceAnalyzer::main_face_chip)";

pub struct Chips {
    pub chips: Vec<RgbChip>,
    pub records: Vec<ImageRecord>,
}

/// Image files directly inside `dir` (jpg, jpeg, png), sorted by name.
pub fn list_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the calibration image folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
        })
        .collect();
    files.sort();
    ensure!(
        !files.is_empty(),
        "{} holds no .jpg or .png images to calibrate on",
        dir.display()
    );
    Ok(files)
}

/// The main face's chip of every image, and a record (name, sha256, face found) of each.
pub fn face_chips(dir: &Path, models_dir: &Path) -> anyhow::Result<Chips> {
    let files = list_images(dir)?;
    let config = DetectorConfig {
        min_face: 20.0,
        ..DetectorConfig::default()
    };
    let mut analyzer = FaceAnalyzer::open(&FaceModels::in_dir(models_dir), 250, 250, config)
        .with_context(|| {
            format!(
                "loading the detector and landmark models from {}",
                models_dir.display()
            )
        })?;
    let mut chips = Vec::new();
    let mut records = Vec::new();
    for path in &files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let rgb = read_rgb(path)?;
        let chip = analyzer
            .main_face_chip(&rgb)
            .with_context(|| format!("finding the face in {}", path.display()))?;
        records.push(ImageRecord {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            face: chip.is_some(),
        });
        chips.extend(chip);
    }
    ensure!(
        !chips.is_empty(),
        "no face was found in any of the {} images in {}",
        files.len(),
        dir.display()
    );
    Ok(Chips { chips, records })
}

/// A chip as the network's `[1, 3, H, W]` input, applying the contract's colour order and
/// normalisation (the box's `Embedder` does the same).
pub fn chip_tensor(chip: &RgbChip, input: &InputSpec) -> Tensor {
    let (w, h) = (chip.width, chip.height);
    let plane = w * h;
    let mut data = vec![0f32; 3 * plane];
    let bgr = input.color == "BGR";
    for (i, px) in chip.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let src = if bgr { 2 - c } else { c };
            data[c * plane + i] = (f32::from(px[src]) - input.mean[c]) / input.std[c];
        }
    }
    tract_ndarray::Array4::from_shape_vec((1, 3, h, w), data)
        .expect("sizes agree")
        .into_tensor()
}

/// Runs the fp32 graph on every chip and returns each tensor's statistics.
pub fn observe(
    model: &pb::ModelProto,
    tensors: &[String],
    input: &InputSpec,
    chips: &[RgbChip],
) -> anyhow::Result<BTreeMap<String, TensorStats>> {
    let first = chips.first().context("no chips to calibrate on")?;
    let mut m = tract_onnx::onnx()
        .model_for_proto_model(model)
        .context("tract cannot read the model")?;
    m.select_outputs_by_name(tensors)
        .context("exposing the intermediate tensors")?;
    m.set_input_fact(0, f32::fact([1, 3, first.height, first.width]).into())?;
    let plan = m.into_optimized()?.into_runnable()?;
    let mut stats: Vec<TensorStats> = vec![TensorStats::new(); tensors.len()];
    for pass in 0..2 {
        for chip in chips {
            let outputs = plan.run(tvec!(chip_tensor(chip, input).into()))?;
            for (s, o) in stats.iter_mut().zip(&outputs) {
                let view = o.to_plain_array_view::<f32>()?;
                let owned;
                let values = match view.as_slice() {
                    Some(v) => v,
                    None => {
                        owned = view.iter().copied().collect::<Vec<f32>>();
                        &owned
                    }
                };
                if pass == 0 {
                    s.observe_range(values);
                } else {
                    s.observe_hist(values);
                }
            }
        }
    }
    Ok(tensors.iter().cloned().zip(stats).collect())
}
