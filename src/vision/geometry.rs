//! The few pieces of dlib's 2-D geometry that alignment depends on, computed in the same precision
//! and order as dlib so that the results agree with it to the last bit where it matters.

/// `x' = m * x + b` (dlib's `point_transform_affine`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub m: [[f64; 2]; 2],
    pub b: [f64; 2],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        m: [[1.0, 0.0], [0.0, 1.0]],
        b: [0.0, 0.0],
    };

    #[inline]
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.m[0][0] * p[0] + self.m[0][1] * p[1] + self.b[0],
            self.m[1][0] * p[0] + self.m[1][1] * p[1] + self.b[1],
        ]
    }

    pub fn is_finite(&self) -> bool {
        self.m
            .iter()
            .flatten()
            .chain(&self.b)
            .all(|v| v.is_finite())
    }

    /// The affine map that takes `from[k]` to `to[k]` for three points; `None` when the `from`
    /// points are collinear. dlib solves this with a pseudo-inverse; for three points that is the
    /// exact inverse, which this computes directly.
    pub fn from_three_points(from: [[f64; 2]; 3], to: [[f64; 2]; 3]) -> Option<Affine> {
        let (u1, u2) = (sub(from[1], from[0]), sub(from[2], from[0]));
        let det = u1[0] * u2[1] - u2[0] * u1[1];
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let (v1, v2) = (sub(to[1], to[0]), sub(to[2], to[0]));
        // M [u1 u2] = [v1 v2]  =>  M = [v1 v2] [u1 u2]^-1
        let inv = [[u2[1] / det, -u2[0] / det], [-u1[1] / det, u1[0] / det]];
        let m = [
            [
                v1[0] * inv[0][0] + v2[0] * inv[1][0],
                v1[0] * inv[0][1] + v2[0] * inv[1][1],
            ],
            [
                v1[1] * inv[0][0] + v2[1] * inv[1][0],
                v1[1] * inv[0][1] + v2[1] * inv[1][1],
            ],
        ];
        let b = [
            to[0][0] - (m[0][0] * from[0][0] + m[0][1] * from[0][1]),
            to[0][1] - (m[1][0] * from[0][0] + m[1][1] * from[0][1]),
        ];
        Some(Affine { m, b })
    }
}

fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

/// dlib's `find_similarity_transform`: the least-squares rotation + uniform scale + translation
/// taking `from` onto `to` (Umeyama 1991). dlib takes an SVD of the 2x2 cross-covariance; in 2-D
/// the optimum has the closed form used here (the same value up to rounding in the last bits).
/// Needs at least one point pair; with fewer than two the result is the translation of the means.
pub fn similarity(from: &[[f64; 2]], to: &[[f64; 2]]) -> Affine {
    let n = from.len().min(to.len());
    if n == 0 {
        return Affine::IDENTITY;
    }
    let (from, to) = (&from[..n], &to[..n]);
    let mut mean_from = [0.0f64; 2];
    let mut mean_to = [0.0f64; 2];
    for (f, t) in from.iter().zip(to) {
        mean_from = [mean_from[0] + f[0], mean_from[1] + f[1]];
        mean_to = [mean_to[0] + t[0], mean_to[1] + t[1]];
    }
    let nf = n as f64;
    mean_from = [mean_from[0] / nf, mean_from[1] / nf];
    mean_to = [mean_to[0] / nf, mean_to[1] / nf];

    let mut sigma_from = 0.0f64;
    let mut cov = [[0.0f64; 2]; 2];
    for (f, t) in from.iter().zip(to) {
        let df = sub(*f, mean_from);
        let dt = sub(*t, mean_to);
        sigma_from += df[0] * df[0] + df[1] * df[1];
        for r in 0..2 {
            for c in 0..2 {
                cov[r][c] += dt[r] * df[c];
            }
        }
    }
    sigma_from /= nf;
    for row in &mut cov {
        for v in row {
            *v /= nf;
        }
    }

    let m = if sigma_from == 0.0 {
        // dlib: scale 1 and the rotation of an SVD of a zero matrix, the identity.
        Affine::IDENTITY.m
    } else {
        // The best rotation has (cos, sin) along (cov00 + cov11, cov10 - cov01); the best scale
        // times that rotation is this matrix divided by the variance of `from`.
        let a = (cov[0][0] + cov[1][1]) / sigma_from;
        let b = (cov[1][0] - cov[0][1]) / sigma_from;
        [[a, -b], [b, a]]
    };
    let b = [
        mean_to[0] - (m[0][0] * mean_from[0] + m[0][1] * mean_from[1]),
        mean_to[1] - (m[1][0] * mean_from[0] + m[1][1] * mean_from[1]),
    ];
    Affine { m, b }
}

/// dlib's conversion of a real point to an integer one: `floor(v + 0.5)`.
#[inline]
pub fn round_half_up(v: f64) -> i64 {
    // `as` saturates and maps NaN to 0: a broken value lands somewhere harmless, never a panic.
    (v + 0.5).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let (s, th, tx, ty) = (1.7f64, 0.3f64, 12.5, -4.0);
        let from = [
            [0.0, 0.0],
            [10.0, 1.0],
            [3.0, 7.0],
            [-2.0, 5.0],
            [6.0, -3.0],
        ];
        let to: Vec<[f64; 2]> = from
            .iter()
            .map(|p| {
                [
                    s * (th.cos() * p[0] - th.sin() * p[1]) + tx,
                    s * (th.sin() * p[0] + th.cos() * p[1]) + ty,
                ]
            })
            .collect();
        let t = similarity(&from, &to);
        for (p, q) in from.iter().zip(&to) {
            let r = t.apply(*p);
            assert!((r[0] - q[0]).abs() < 1e-9 && (r[1] - q[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn similarity_of_a_mirror_image_is_still_a_rotation() {
        // A reflection cannot be fitted by a similarity: the best fit keeps det(m) >= 0.
        let from = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]];
        let to = [[0.0, 0.0], [-1.0, 0.0], [0.0, 2.0]];
        let t = similarity(&from, &to);
        let det = t.m[0][0] * t.m[1][1] - t.m[0][1] * t.m[1][0];
        assert!(det >= 0.0);
    }

    #[test]
    fn three_point_affine_maps_its_points() {
        let from = [[0.0, 0.0], [149.0, 0.0], [0.0, 149.0]];
        let to = [[10.0, 20.0], [100.0, 40.0], [-5.0, 130.0]];
        let a = Affine::from_three_points(from, to).unwrap();
        for k in 0..3 {
            let r = a.apply(from[k]);
            assert!((r[0] - to[k][0]).abs() < 1e-9 && (r[1] - to[k][1]).abs() < 1e-9);
        }
        assert!(Affine::from_three_points([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], to).is_none());
    }

    #[test]
    fn rounding_is_half_up_and_never_panics() {
        assert_eq!(round_half_up(2.5), 3);
        assert_eq!(round_half_up(-2.5), -2);
        assert_eq!(round_half_up(-2.6), -3);
        assert_eq!(round_half_up(f64::NAN), 0);
        assert_eq!(round_half_up(f64::INFINITY), i64::MAX);
    }
}
