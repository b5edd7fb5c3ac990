//! One description per track: the quality-weighted mean of its faces' descriptors.
//!
//! Why a weighted mean: each descriptor is the true identity plus noise from pose, blur and
//! lighting; averaging several views of one person shrinks that noise (the same effect as dlib's
//! jittered or mirrored descriptors, but from real, independent views), and weighting by quality lets
//! a sharp frontal face count for more than a blurred, turned one. Descriptors are L2-normalised
//! before they are added (for a cosine embedder they already are), so no single face weighs more
//! because its raw descriptor happens to be longer.

use crate::vision::contract::Metric;
use crate::vision::embed::l2_normalised;

/// A running weighted sum of descriptors; no allocation after the first face.
#[derive(Clone, Debug, Default)]
pub struct Fusion {
    sum: Vec<f32>,
    weight: f32,
    /// Weighted sum of the raw descriptors' lengths (Euclidean embedders compare raw lengths).
    norm_sum: f32,
    faces: u32,
}

impl Fusion {
    /// Adds one face's descriptor with weight `quality` (ignored when not finite and positive).
    pub fn add(&mut self, descriptor: &[f32], quality: f32) {
        if !(quality.is_finite() && quality > 0.0) || descriptor.is_empty() {
            return;
        }
        let norm = descriptor.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return;
        }
        if self.sum.len() != descriptor.len() {
            // First face, or a list of another dimension took over: start again.
            self.sum.clear();
            self.sum.resize(descriptor.len(), 0.0);
            self.weight = 0.0;
            self.norm_sum = 0.0;
            self.faces = 0;
        }
        let k = quality / norm;
        self.sum
            .iter_mut()
            .zip(descriptor)
            .for_each(|(s, x)| *s += k * x);
        self.weight += quality;
        self.norm_sum += quality * norm;
        self.faces += 1;
    }

    /// Faces added so far.
    pub fn faces(&self) -> u32 {
        self.faces
    }

    pub fn is_empty(&self) -> bool {
        self.faces == 0
    }

    /// The fused descriptor in the embedder's terms: unit length for cosine; for Euclidean the
    /// weighted mean direction scaled to the weighted mean length of the faces' raw descriptors
    /// (raw distances assume raw lengths).
    pub fn descriptor(&self, metric: Metric) -> Option<Vec<f32>> {
        if self.faces == 0 || self.weight <= 0.0 {
            return None;
        }
        let mean = l2_normalised(self.sum.clone());
        if !mean.iter().all(|x| x.is_finite()) || mean.iter().all(|x| *x == 0.0) {
            return None;
        }
        Some(match metric {
            Metric::Cosine => mean,
            Metric::Euclidean => {
                let length = self.norm_sum / self.weight;
                mean.into_iter().map(|x| x * length).collect()
            }
        })
    }

    pub fn clear(&mut self) {
        self.sum.clear();
        self.weight = 0.0;
        self.norm_sum = 0.0;
        self.faces = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_noisy_views_is_closer_to_the_identity_than_the_views() {
        let identity = [1.0f32, 0.0, 0.0, 0.0];
        let views = [
            [1.0f32, 0.5, 0.0, 0.0],
            [1.0, -0.4, 0.1, 0.0],
            [1.0, 0.0, -0.5, 0.2],
            [1.0, -0.1, 0.4, -0.2],
        ];
        let mut f = Fusion::default();
        for v in &views {
            f.add(v, 1.0);
        }
        let fused = f.descriptor(Metric::Cosine).unwrap();
        let cos = |a: &[f32]| {
            let n = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            a.iter().zip(&identity).map(|(x, y)| x * y).sum::<f32>() / n
        };
        let best_view = views.iter().map(|v| cos(v)).fold(0.0f32, f32::max);
        assert!(cos(&fused) > best_view, "{} vs {best_view}", cos(&fused));
        assert_eq!(f.faces(), 4);
    }

    #[test]
    fn weights_pull_towards_the_better_face_and_bad_input_is_ignored() {
        let mut f = Fusion::default();
        f.add(&[1.0, 0.0], 0.9);
        f.add(&[0.0, 1.0], 0.1);
        f.add(&[f32::NAN, 1.0], 1.0);
        f.add(&[0.0, 0.0], 1.0);
        f.add(&[0.0, 1.0], f32::NAN);
        let d = f.descriptor(Metric::Cosine).unwrap();
        assert!(d[0] > 0.99 * 0.9 / (0.9f32.hypot(0.1)), "{d:?}");
        assert_eq!(f.faces(), 2);
        assert!(Fusion::default().descriptor(Metric::Cosine).is_none());
    }
}
