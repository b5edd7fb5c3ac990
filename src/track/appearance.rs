//! A track's appearance: one unit-length descriptor, compared by cosine distance.

/// Descriptors longer than this are not face descriptors (dlib's has 128 values); refusing them
/// bounds a track's memory whatever the caller passes.
pub const MAX_DIM: usize = 4096;
/// How much a newly associated face's descriptor moves the track's appearance when the caller
/// has not set one from its fusion: enough to follow a turning head, little enough that one
/// wrongly associated face does not take the track over.
const BLEND: f32 = 0.3;

/// A unit-length descriptor, empty until set; its buffer is reused.
#[derive(Clone, Debug, Default)]
pub struct Appearance {
    unit: Vec<f32>,
}

/// The Euclidean length of `x` when it is finite and non-zero.
pub fn usable_norm(x: &[f32]) -> Option<f32> {
    if x.is_empty() || x.len() > MAX_DIM {
        return None;
    }
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then_some(norm)
}

impl Appearance {
    pub fn is_set(&self) -> bool {
        !self.unit.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.unit.capacity()
    }

    /// Replaces the appearance with `x` normalised; returns false (and keeps the old one) when `x`
    /// is not usable.
    pub fn set(&mut self, x: &[f32]) -> bool {
        let Some(norm) = usable_norm(x) else {
            return false;
        };
        self.unit.clear();
        self.unit.extend(x.iter().map(|v| v / norm));
        true
    }

    /// Moves the appearance towards `x` (sets it when unset or of another length).
    pub fn blend(&mut self, x: &[f32]) {
        let Some(norm) = usable_norm(x) else {
            return;
        };
        if self.unit.len() != x.len() {
            self.set(x);
            return;
        }
        for (a, v) in self.unit.iter_mut().zip(x) {
            *a += BLEND * (v / norm - *a);
        }
        // Opposite descriptors could cancel to 0; then the newest view wins.
        match usable_norm(&self.unit) {
            Some(n) => self.unit.iter_mut().for_each(|a| *a /= n),
            None => {
                self.set(x);
            }
        }
    }

    /// `1 - cos` between the appearance and `x` (whose length is `x_norm`), in [0, 2]; `None` when
    /// either is unusable or their lengths differ.
    pub fn distance(&self, x: &[f32], x_norm: f32) -> Option<f32> {
        if self.unit.len() != x.len() || !(x_norm.is_finite() && x_norm > 0.0) {
            return None;
        }
        let cos = self.unit.iter().zip(x).map(|(a, v)| a * v).sum::<f32>() / x_norm;
        cos.is_finite().then(|| (1.0 - cos).clamp(0.0, 2.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_cosine_and_refuses_bad_inputs() {
        let mut a = Appearance::default();
        assert!(!a.set(&[0.0, 0.0]));
        assert!(!a.set(&[f32::NAN, 1.0]));
        assert!(!a.is_set());
        assert!(a.set(&[3.0, 0.0]));
        assert!((a.distance(&[0.0, 2.0], 2.0).unwrap() - 1.0).abs() < 1e-6);
        assert!(a.distance(&[5.0, 0.0], 5.0).unwrap() < 1e-6);
        assert_eq!(a.distance(&[1.0, 0.0, 0.0], 1.0), None);
        assert_eq!(a.distance(&[1.0, 0.0], 0.0), None);
    }

    #[test]
    fn blend_stays_unit_and_reuses_its_buffer() {
        let mut a = Appearance::default();
        a.blend(&[1.0, 0.0]);
        let cap = a.capacity();
        for _ in 0..100 {
            a.blend(&[0.0, 4.0]);
        }
        assert!(a.distance(&[0.0, 1.0], 1.0).unwrap() < 1e-3);
        assert_eq!(a.capacity(), cap);
        a.blend(&[0.0, -1.0]); // opposite: does not go NaN
        assert!(a.distance(&[0.0, -1.0], 1.0).is_some());
    }
}
