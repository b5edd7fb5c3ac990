//! The acceptance gate: a quantised embedder must stay close to the fp32 one on the calibration
//! chips (mean cosine ≥ 0.99), and, when LFW pairs are given, lose at most 0.5 points of accuracy.
//! Embeddings come from the box's own `Embedder`, so the gate measures what would run.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use lanewatch::vision::align::RgbChip;
use lanewatch::vision::embed::Embedder;
use lanewatch::vision::model::ModelFile;

pub const MIN_MEAN_COSINE: f64 = 0.99;
/// Largest LFW accuracy loss allowed, as a fraction (0.5 points).
pub const MAX_LFW_DROP: f64 = 0.005;

/// Embeddings of every chip by the model in `bytes` (`label` names it in errors), and the mean
/// time per face in milliseconds.
pub fn embed_chips(
    label: &Path,
    bytes: &[u8],
    chips: &[RgbChip],
) -> anyhow::Result<(Vec<Vec<f32>>, f64)> {
    let file = ModelFile::from_bytes(label, bytes)?;
    let mut embedder = Embedder::from_model(file.plan_fixed(1)?)?;
    let start = Instant::now();
    let out = chips
        .iter()
        .map(|c| embedder.embed_packed(&c.data, c.width, c.height))
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("embedding the calibration chips with {}", label.display()))?;
    let ms = 1000.0 * start.elapsed().as_secs_f64() / chips.len().max(1) as f64;
    Ok((out, ms))
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na * nb)
}

/// Mean and minimum cosine between paired embeddings.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Drift {
    pub faces: usize,
    pub mean_cosine: f64,
    pub min_cosine: f64,
}

pub fn drift(reference: &[Vec<f32>], candidate: &[Vec<f32>]) -> Drift {
    let c: Vec<f64> = reference
        .iter()
        .zip(candidate)
        .map(|(a, b)| cosine(a, b))
        .collect();
    Drift {
        faces: c.len(),
        mean_cosine: c.iter().sum::<f64>() / c.len().max(1) as f64,
        min_cosine: c.iter().copied().fold(f64::INFINITY, f64::min),
    }
}

pub fn check_drift(what: &str, d: &Drift) -> anyhow::Result<()> {
    ensure!(
        d.mean_cosine >= MIN_MEAN_COSINE,
        "quantisation gate failed: the {what} embeddings drift from fp32 (mean cosine {:.4} over {} calibration faces, minimum {:.4}; at least {MIN_MEAN_COSINE} is required). \
         The calibration ranges do not fit this model: recalibrate from images, or try another --method",
        d.mean_cosine,
        d.faces,
        d.min_cosine
    );
    Ok(())
}

pub fn check_lfw(fp32: f64, quantised: f64) -> anyhow::Result<()> {
    ensure!(
        fp32 - quantised <= MAX_LFW_DROP,
        "quantisation gate failed: LFW accuracy drops from {:.2}% (fp32) to {:.2}% (int8), more than {:.1} points",
        100.0 * fp32,
        100.0 * quantised,
        100.0 * MAX_LFW_DROP
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_equal_and_opposite() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0], &[1.0]), 0.0);
    }

    #[test]
    fn the_gate_rejects_drift_and_accuracy_loss() {
        let d = drift(&[vec![1.0, 0.0]], &[vec![0.0, 1.0]]);
        let e = check_drift("int8", &d).unwrap_err().to_string();
        assert!(e.contains("gate failed") && e.contains("0.0000"), "{e}");
        assert!(check_lfw(0.9842, 0.9800).is_ok());
        assert!(check_lfw(0.9842, 0.9780).is_err());
    }
}
