//! From observed activations to a quantisation range: min/max, a percentile of |x|, or the
//! threshold that minimises the KL divergence between the clipped and the quantised histogram
//! (TensorRT's "entropy" calibration). Pure functions over [`TensorStats`].

use std::fmt;
use std::str::FromStr;

/// Histogram bins over `[0, abs_max]` of |x|.
pub const BINS: usize = 2048;

/// What calibration saw of one tensor over all images.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    /// Counts of |x| in `BINS` equal bins over `[0, abs_max()]`; empty until the second pass.
    pub hist: Vec<u64>,
}

impl TensorStats {
    pub fn new() -> TensorStats {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            hist: Vec::new(),
        }
    }

    pub fn abs_max(&self) -> f32 {
        self.min.abs().max(self.max.abs())
    }

    pub fn observe_range(&mut self, values: &[f32]) {
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// Second pass: the range is fixed, bin |x|.
    pub fn observe_hist(&mut self, values: &[f32]) {
        if self.hist.is_empty() {
            self.hist = vec![0; BINS];
        }
        let top = self.abs_max();
        if top <= 0.0 {
            self.hist[0] += values.len() as u64;
            return;
        }
        let k = BINS as f32 / top;
        for &v in values {
            let b = ((v.abs() * k) as usize).min(BINS - 1);
            self.hist[b] += 1;
        }
    }
}

impl Default for TensorStats {
    fn default() -> Self {
        Self::new()
    }
}

/// How activation ranges are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    MinMax,
    /// Clip |x| at this percentile (e.g. 99.99).
    Percentile(f64),
    Entropy,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::MinMax => f.write_str("minmax"),
            Method::Percentile(p) => write!(f, "percentile:{p}"),
            Method::Entropy => f.write_str("entropy"),
        }
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "entropy" => Ok(Method::Entropy),
            _ => match s.strip_prefix("percentile:").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(Method::Percentile(p)),
                _ => Err(format!(
                    "unknown calibration method {s:?}: use minmax, percentile:P (50 < P <= 100, e.g. percentile:99.99) or entropy"
                )),
            },
        }
    }
}

/// The clipping range `[lo, hi]` for one tensor under `method`.
pub fn choose(stats: &TensorStats, method: Method) -> (f32, f32) {
    let (min, max) = (stats.min, stats.max);
    if !(min.is_finite() && max.is_finite()) {
        return (0.0, 0.0);
    }
    let t = match method {
        Method::MinMax => return (min, max),
        Method::Percentile(p) => percentile_threshold(stats, p),
        Method::Entropy => {
            // A tensor of one sign spends all 256 levels on one side; a signed one half of them.
            let levels = if min >= 0.0 || max <= 0.0 { 256 } else { 128 };
            entropy_threshold(stats, levels)
        }
    };
    (min.max(-t), max.min(t))
}

fn bin_width(stats: &TensorStats) -> f32 {
    stats.abs_max() / BINS as f32
}

fn percentile_threshold(stats: &TensorStats, p: f64) -> f32 {
    let total: u64 = stats.hist.iter().sum();
    if total == 0 {
        return stats.abs_max();
    }
    let want = (total as f64 * p / 100.0).ceil() as u64;
    let mut seen = 0;
    for (i, c) in stats.hist.iter().enumerate() {
        seen += c;
        if seen >= want {
            return (i + 1) as f32 * bin_width(stats);
        }
    }
    stats.abs_max()
}

/// TensorRT's entropy calibration over the |x| histogram, with `levels` quantisation bins.
fn entropy_threshold(stats: &TensorStats, levels: usize) -> f32 {
    let hist = &stats.hist;
    if hist.len() < levels || hist.iter().sum::<u64>() == 0 {
        return stats.abs_max();
    }
    let mut best = (f64::INFINITY, hist.len());
    let mut p = vec![0f64; hist.len()];
    let mut q = vec![0f64; hist.len()];
    for i in levels..=hist.len() {
        // Reference: the first i bins, with everything beyond folded into the last.
        let outliers: u64 = hist[i..].iter().sum();
        for (j, pj) in p[..i].iter_mut().enumerate() {
            *pj = hist[j] as f64;
        }
        p[i - 1] += outliers as f64;
        // Candidate: the first i bins merged into `levels` groups, each spread back evenly over
        // the bins of its group that were not empty.
        for g in 0..levels {
            let start = g * i / levels;
            let end = ((g + 1) * i / levels).max(start + 1);
            let sum: u64 = hist[start..end].iter().sum();
            let nonzero = hist[start..end].iter().filter(|c| **c > 0).count();
            for j in start..end {
                q[j] = if hist[j] > 0 {
                    sum as f64 / nonzero as f64
                } else {
                    0.0
                };
            }
        }
        let (ps, qs): (f64, f64) = (p[..i].iter().sum(), q[..i].iter().sum());
        if ps == 0.0 || qs == 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for j in 0..i {
            if p[j] > 0.0 {
                let pn = p[j] / ps;
                // An empty candidate bin under a non-empty reference bin: smoothed, not infinite.
                let qn = (q[j] / qs).max(1e-12);
                kl += pn * (pn / qn).ln();
            }
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    (best.1 as f32 + 0.5).min(hist.len() as f32) * bin_width(stats)
}

/// Asymmetric uint8 parameters for `[lo, hi]` (widened to include 0, so that zero padding and ReLU
/// are exact): `x = scale * (q - zero_point)`.
pub fn uint8_params(lo: f32, hi: f32) -> (f32, u8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    if hi - lo <= f32::MIN_POSITIVE {
        return (1.0, 0);
    }
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f32]) -> TensorStats {
        let mut s = TensorStats::new();
        s.observe_range(values);
        s.observe_hist(values);
        s
    }

    #[test]
    fn minmax_is_the_observed_range() {
        let s = stats(&[-1.0, 0.5, 3.0]);
        assert_eq!(choose(&s, Method::MinMax), (-1.0, 3.0));
    }

    #[test]
    fn percentile_clips_a_rare_outlier() {
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(50.0);
        let s = stats(&v);
        let (lo, hi) = choose(&s, Method::Percentile(99.9));
        assert_eq!(lo, 0.0);
        assert!(hi < 1.1 && hi > 0.9, "{hi}");
    }

    #[test]
    fn entropy_clips_a_long_continuous_tail() {
        // Exponentially distributed values: a bulk near 0 and a thin tail out to ~12.9.
        let n = 200_000;
        let v: Vec<f32> = (0..n)
            .map(|i| -((i as f32 + 0.5) / n as f32).ln())
            .collect();
        let s = stats(&v);
        let (lo, hi) = choose(&s, Method::Entropy);
        assert_eq!(lo, s.min);
        assert!(hi > 2.0 && hi < 0.95 * s.max, "{hi} of {}", s.max);
    }

    #[test]
    fn uint8_params_keep_zero_exact() {
        let (s, zp) = uint8_params(-1.0, 3.0);
        assert!((s - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(zp, 64);
        assert_eq!(uint8_params(0.0, 0.0), (1.0, 0));
        assert_eq!(uint8_params(0.5, 2.0).1, 0);
    }

    #[test]
    fn methods_parse_and_print() {
        for m in ["minmax", "entropy", "percentile:99.99"] {
            assert_eq!(m.parse::<Method>().unwrap().to_string(), m);
        }
        assert!("percentile:20".parse::<Method>().is_err());
        assert!("kl".parse::<Method>().is_err());
    }
}
