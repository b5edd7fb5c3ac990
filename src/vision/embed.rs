//! The embedder: an aligned face chip in, a descriptor out, exactly as the model contract says.

use std::path::Path;

use anyhow::Context;
use image::RgbImage;
use tract_onnx::prelude::*;

use super::contract::{EmbeddingSpec, Metric, Role};
use super::model::{Fingerprint, Model, ModelError};

pub struct Embedder {
    model: Model,
    spec: EmbeddingSpec,
    /// Reused NCHW input buffer: no allocation per face beyond tract's own.
    input: Tensor,
}

impl Embedder {
    pub fn load(path: &Path) -> Result<Embedder, ModelError> {
        Self::from_model(Model::load(path, Role::Embedder, 1)?)
    }

    pub fn from_model(model: Model) -> Result<Embedder, ModelError> {
        let spec = model
            .contract
            .embedding
            .clone()
            .ok_or_else(|| ModelError::Shape {
                path: model.path.clone(),
                what: "an embedder must carry lanewatch.embedding.* in its contract".into(),
            })?;
        let input = Tensor::zero::<f32>(&model.input_shape).expect("static shape");
        Ok(Embedder { model, spec, input })
    }

    pub fn spec(&self) -> &EmbeddingSpec {
        &self.spec
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.model.fingerprint
    }

    /// Chip size the network expects, (width, height).
    pub fn chip_size(&self) -> (u32, u32) {
        let [_, _, h, w] = self.model.input_shape;
        (w as u32, h as u32)
    }

    /// Embeds one aligned chip whose size must be [`Self::chip_size`].
    pub fn embed(&mut self, chip: &RgbImage) -> anyhow::Result<Vec<f32>> {
        self.embed_packed(chip.as_raw(), chip.width() as usize, chip.height() as usize)
    }

    /// Embeds a packed RGB chip (`width * height * 3` bytes, rows top to bottom) into the
    /// descriptor the contract's metric compares (unit length for cosine).
    pub fn embed_packed(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> anyhow::Result<Vec<f32>> {
        let v = self.embed_raw_packed(rgb, width, height)?;
        Ok(match self.spec.metric {
            Metric::Cosine => l2_normalised(v),
            Metric::Euclidean => v,
        })
    }

    /// The network's own output for a packed RGB chip, before the metric's normalisation: what
    /// parity tests compare with reference runtimes, and what augmented views average.
    pub fn embed_raw_packed(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> anyhow::Result<Vec<f32>> {
        let (w, h) = self.chip_size();
        anyhow::ensure!(
            (width, height) == (w as usize, h as usize) && rgb.len() == width * height * 3,
            "face chip is {width}x{height} ({} bytes), the embedder {} needs {w}x{h} RGB",
            rgb.len(),
            self.model.path.display()
        );
        fill_nchw(&mut self.input, rgb, &self.model.contract.input);
        let out = self
            .model
            .run(self.input.clone())
            .context("running the embedder")?;
        let view = out[0].to_plain_array_view::<f32>()?;
        let v: Vec<f32> = view.iter().copied().collect();
        anyhow::ensure!(
            v.iter().all(|x| x.is_finite()),
            "the embedder produced a non-finite value"
        );
        Ok(v)
    }

    /// Distance between two descriptors under the model's metric (smaller is closer).
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        distance(self.spec.metric, a, b)
    }
}

pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Euclidean => a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt(),
        Metric::Cosine => 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
    }
}

pub fn l2_normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// Writes an RGB chip into a `[1, 3, H, W]` tensor applying the contract's channel order and `(p - mean) / std`.
fn fill_nchw(t: &mut Tensor, rgb: &[u8], input: &super::contract::InputSpec) {
    let plane = rgb.len() / 3;
    let bgr = input.color == "BGR";
    let mut view = t.to_plain_array_view_mut::<f32>().expect("f32 tensor");
    let data = view.as_slice_mut().expect("a fresh tensor is contiguous");
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let src = if bgr { 2 - c } else { c };
            data[c * plane + i] = (px[src] as f32 - input.mean[c]) / input.std[c];
        }
    }
}
