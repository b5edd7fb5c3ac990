//! One quality score per face in [0, 1]: how much a face's descriptor can be trusted.
//!
//! Four factors, each measured cheaply on what the pipeline already has:
//! - size: the shorter side of the detector box, in pixels (small faces are upsampled mush);
//! - sharpness: the variance of the Laplacian of the grey aligned chip ([`laplacian_variance`]);
//! - pose: roll, yaw and a pitch proxy from dlib's five landmarks ([`pose_from_landmarks`]);
//! - the detector's score.
//!
//! [`QualityModel`] maps each factor through a [`Ramp`] from `bad` (0) to `good` (1) and combines
//! them by a weighted geometric mean (see [`QualityModel::score`] for why).

use serde::{Deserialize, Serialize};

use crate::vision::align::RgbChip;
use crate::vision::landmarks::{NUM_PARTS, Point};

/// What a face's quality is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityInputs {
    /// Shorter side of the detector box, in pixels.
    pub face_px: f32,
    /// [`laplacian_variance`] of the aligned chip.
    pub sharpness: f32,
    pub pose: Pose,
    /// The detector's score for the face.
    pub detector_score: f32,
}

/// Head pose from the five landmarks, in image terms. Not finite when the landmarks are degenerate
/// (eyes on one point, a point not finite); such a pose scores 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Angle of the eye line (image-left eye → image-right eye) from the horizontal, in degrees;
    /// positive is clockwise on screen (y points down).
    pub roll_deg: f32,
    /// The nose base's offset from the eyes' midpoint along the eye line, over the inter-ocular
    /// distance: 0 frontal, positive when the nose is towards the image-right eye.
    pub yaw: f32,
    /// The nose base's distance below the eye line over the inter-ocular distance, minus the same
    /// ratio of dlib's mean face ([`FRONTAL_NOSE_DROP`]): 0 as the mean face, a proxy for pitch.
    pub pitch: f32,
}

/// The nose base's drop below the eye line over the inter-ocular distance in dlib's mean face
/// (`FACE_TEMPLATE_5`): what [`Pose::pitch`] is measured from.
pub const FRONTAL_NOSE_DROP: f32 = 0.7735;

/// Pose from dlib's five landmarks. dlib's order (see `FACE_TEMPLATE_5` in
/// `vision/align/chip.rs`): 0 and 1 are the outer and inner corners of the image-right eye, 2 and 3
/// the outer and inner corners of the image-left eye, 4 the base of the nose.
pub fn pose_from_landmarks(points: &[Point; NUM_PARTS]) -> Pose {
    let mid = |a: Point, b: Point| ((a.x + b.x) / 2.0, (a.y + b.y) / 2.0);
    let right_eye = mid(points[0], points[1]);
    let left_eye = mid(points[2], points[3]);
    let nose = points[4];
    let (dx, dy) = (right_eye.0 - left_eye.0, right_eye.1 - left_eye.1);
    let iod = dx.hypot(dy);
    if !(iod.is_finite() && iod > 0.0) {
        return Pose {
            roll_deg: f32::NAN,
            yaw: f32::NAN,
            pitch: f32::NAN,
        };
    }
    // Unit vector along the eye line and its perpendicular pointing down the face.
    let (ux, uy) = (dx / iod, dy / iod);
    let (px, py) = (-uy, ux);
    let centre = (
        (right_eye.0 + left_eye.0) / 2.0,
        (right_eye.1 + left_eye.1) / 2.0,
    );
    let (ox, oy) = (nose.x - centre.0, nose.y - centre.1);
    Pose {
        roll_deg: dy.atan2(dx).to_degrees(),
        yaw: (ox * ux + oy * uy) / iod,
        pitch: (ox * px + oy * py) / iod - FRONTAL_NOSE_DROP,
    }
}

/// Variance of the 4-neighbour Laplacian of the grey chip over its interior: high for sharp
/// edges, near 0 for blur, exactly 0 for a flat chip. Grey is `(77 r + 150 g + 29 b) >> 8`
/// (BT.601 weights summing to 256). Allocates nothing. 0 for a chip smaller than 3x3 or whose
/// data is shorter than `width * height * 3`.
///
/// Chips of different sizes are not comparable (the Laplacian is per pixel); the embedder's chip
/// size is fixed, so scores of one lane are.
pub fn laplacian_variance(chip: &RgbChip) -> f32 {
    let (w, h) = (chip.width, chip.height);
    let needed = w.checked_mul(h).and_then(|n| n.checked_mul(3));
    if w < 3 || h < 3 || needed.is_none_or(|n| chip.data.len() < n) {
        return 0.0;
    }
    let grey = |x: usize, y: usize| -> i64 {
        let i = 3 * (y * w + x);
        let d = &chip.data[i..i + 3];
        ((77 * u32::from(d[0]) + 150 * u32::from(d[1]) + 29 * u32::from(d[2])) >> 8) as i64
    };
    // |L| <= 1020, so L² sums stay far inside i64 for any chip up to MAX_CHIP_SIDE².
    let (mut sum, mut sum_sq) = (0i64, 0i64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l =
                grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1) - 4 * grey(x, y);
            sum += l;
            sum_sq += l * l;
        }
    }
    let n = ((w - 2) * (h - 2)) as f64;
    let mean = sum as f64 / n;
    (sum_sq as f64 / n - mean * mean).max(0.0) as f32
}

/// A linear map from `bad` (0) to `good` (1), clamped to [0, 1]. `good` may be below `bad` for a
/// factor where less is better (pose angles).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    pub bad: f32,
    pub good: f32,
}

impl Ramp {
    pub const fn new(bad: f32, good: f32) -> Ramp {
        Ramp { bad, good }
    }

    /// The ramp's value at `x`; 0 when `x` is not finite.
    pub fn at(&self, x: f32) -> f32 {
        if !x.is_finite() {
            return 0.0;
        }
        let t = (x - self.bad) / (self.good - self.bad);
        if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn validate(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.bad.is_finite() && self.good.is_finite() && self.bad != self.good,
            "quality.{name}: bad and good must be finite and differ (bad = {}, good = {})",
            self.bad,
            self.good
        );
        Ok(())
    }
}

/// How much each factor counts in the geometric mean; 0 leaves a factor out.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityWeights {
    pub size: f32,
    pub sharpness: f32,
    pub pose: f32,
    pub detector: f32,
}

impl Default for QualityWeights {
    fn default() -> Self {
        QualityWeights {
            size: 1.0,
            sharpness: 1.0,
            pose: 1.0,
            detector: 0.5,
        }
    }
}

impl QualityWeights {
    fn as_array(&self) -> [f32; 4] {
        [self.size, self.sharpness, self.pose, self.detector]
    }
}

/// Per-factor ramps and their weights. The pose factor is the worst of its three ramps (roll,
/// yaw, pitch, each on the absolute value): one bad angle is enough to spoil a descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityModel {
    /// On [`QualityInputs::face_px`].
    pub face_px: Ramp,
    /// On [`QualityInputs::sharpness`].
    pub sharpness: Ramp,
    /// On `|roll_deg|`. Alignment undoes roll, so only large rolls (a sign of poor landmarks) hurt.
    pub roll_deg: Ramp,
    /// On `|yaw|`.
    pub yaw: Ramp,
    /// On `|pitch|`.
    pub pitch: Ramp,
    /// On [`QualityInputs::detector_score`].
    pub detector_score: Ramp,
    pub weights: QualityWeights,
}

/// PROVISIONAL defaults: reasoned, not measured. The lead sets them from measurements
/// ([`QualityModel::components`] gives each factor for that).
impl Default for QualityModel {
    fn default() -> Self {
        QualityModel {
            face_px: Ramp::new(30.0, 100.0),
            sharpness: Ramp::new(5.0, 150.0),
            roll_deg: Ramp::new(45.0, 15.0),
            yaw: Ramp::new(0.6, 0.15),
            pitch: Ramp::new(0.5, 0.15),
            detector_score: Ramp::new(0.6, 0.98),
            weights: QualityWeights::default(),
        }
    }
}

/// Index of each factor in [`QualityModel::components`].
pub const SIZE: usize = 0;
pub const SHARPNESS: usize = 1;
pub const POSE: usize = 2;
pub const DETECTOR: usize = 3;

impl QualityModel {
    /// Each factor's ramp value in [0, 1]: `[size, sharpness, pose, detector]` (indices [`SIZE`],
    /// [`SHARPNESS`], [`POSE`], [`DETECTOR`]). A factor whose input is not finite is 0.
    pub fn components(&self, inputs: &QualityInputs) -> [f32; 4] {
        let p = &inputs.pose;
        let pose = self
            .roll_deg
            .at(p.roll_deg.abs())
            .min(self.yaw.at(p.yaw.abs()))
            .min(self.pitch.at(p.pitch.abs()));
        // f32::min ignores a NaN operand, so a NaN pose angle must zero the factor explicitly.
        let pose_finite = p.roll_deg.is_finite() && p.yaw.is_finite() && p.pitch.is_finite();
        [
            self.face_px.at(inputs.face_px),
            self.sharpness.at(inputs.sharpness),
            if pose_finite { pose } else { 0.0 },
            self.detector_score.at(inputs.detector_score),
        ]
    }

    /// The face's quality in [0, 1]: the weighted geometric mean of [`Self::components`].
    ///
    /// Why geometric: a descriptor is only as good as its worst factor: a large, sharp face in
    /// profile or a frontal face blurred by motion both give poor descriptors. A weighted
    /// arithmetic mean would let three good factors hide one at 0; the geometric mean is 0 when
    /// any weighted factor is 0 and drops steeply as one approaches 0, while faces whose factors
    /// are all `q` still score `q` (the weights are normalised), so a threshold reads the same
    /// whatever the weights. Any non-finite input scores 0.
    pub fn score(&self, inputs: &QualityInputs) -> f32 {
        let p = &inputs.pose;
        let finite = [
            inputs.face_px,
            inputs.sharpness,
            inputs.detector_score,
            p.roll_deg,
            p.yaw,
            p.pitch,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return 0.0;
        }
        let weights = self.weights.as_array();
        let total: f32 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
        if !(total.is_finite() && total > 0.0) {
            return 0.0;
        }
        let mut log_sum = 0.0f32;
        for (c, w) in self.components(inputs).into_iter().zip(weights) {
            if !(w.is_finite() && w > 0.0) {
                continue;
            }
            if c <= 0.0 {
                return 0.0;
            }
            log_sum += w * c.ln();
        }
        let q = (log_sum / total).exp();
        if q.is_finite() {
            q.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Refuses ramps that cannot map (bad = good, not finite) and weights that are negative, not
    /// finite or all 0.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.face_px.validate("face_px")?;
        self.sharpness.validate("sharpness")?;
        self.roll_deg.validate("roll_deg")?;
        self.yaw.validate("yaw")?;
        self.pitch.validate("pitch")?;
        self.detector_score.validate("detector_score")?;
        let w = self.weights.as_array();
        anyhow::ensure!(
            w.iter().all(|w| w.is_finite() && *w >= 0.0) && w.iter().sum::<f32>() > 0.0,
            "quality.weights must be finite, non-negative and not all 0 (got {w:?})"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::vision::align::chip::FACE_TEMPLATE_5;

    fn chip_from_grey(w: usize, h: usize, grey: impl Fn(usize, usize) -> u8) -> RgbChip {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let g = grey(x, y);
                data.extend_from_slice(&[g, g, g]);
            }
        }
        RgbChip {
            data,
            width: w,
            height: h,
        }
    }

    fn box_blur(chip: &RgbChip, radius: usize) -> RgbChip {
        let (w, h) = (chip.width, chip.height);
        chip_from_grey(w, h, |x, y| {
            let (mut sum, mut n) = (0u32, 0u32);
            for yy in y.saturating_sub(radius)..=(y + radius).min(h - 1) {
                for xx in x.saturating_sub(radius)..=(x + radius).min(w - 1) {
                    sum += u32::from(chip.data[3 * (yy * w + xx)]);
                    n += 1;
                }
            }
            (sum / n) as u8
        })
    }

    /// dlib's mean face at `scale` pixels, rotated by `roll_deg` (clockwise on screen) about its
    /// centre and shifted to `(ox, oy)`.
    fn template_face(scale: f32, roll_deg: f32, ox: f32, oy: f32) -> [Point; NUM_PARTS] {
        let (s, c) = roll_deg.to_radians().sin_cos();
        FACE_TEMPLATE_5.map(|[x, y]| {
            let (x, y) = ((x as f32 - 0.5) * scale, (y as f32 - 0.5) * scale);
            Point::new(c * x - s * y + ox, s * x + c * y + oy)
        })
    }

    fn good_inputs() -> QualityInputs {
        QualityInputs {
            face_px: 110.0,
            sharpness: 160.0,
            pose: Pose {
                roll_deg: 5.0,
                yaw: 0.1,
                pitch: 0.05,
            },
            detector_score: 0.97,
        }
    }

    #[test]
    fn sharp_chip_has_much_higher_laplacian_variance_than_blurred() {
        let sharp = chip_from_grey(
            150,
            150,
            |x, y| if (x / 6 + y / 6) % 2 == 0 { 30 } else { 220 },
        );
        let blurred = box_blur(&sharp, 3);
        let (vs, vb) = (laplacian_variance(&sharp), laplacian_variance(&blurred));
        assert!(vs > 1000.0, "sharp {vs}");
        assert!(vs > 10.0 * vb, "sharp {vs} vs blurred {vb}");
    }

    #[test]
    fn flat_and_degenerate_chips_have_zero_variance() {
        assert_eq!(
            laplacian_variance(&chip_from_grey(150, 150, |_, _| 123)),
            0.0
        );
        assert_eq!(laplacian_variance(&RgbChip::default()), 0.0);
        assert_eq!(
            laplacian_variance(&chip_from_grey(2, 50, |x, _| x as u8 * 200)),
            0.0
        );
        // Data shorter than the size claims: refused, not a panic.
        let mut short = chip_from_grey(10, 10, |x, _| x as u8 * 20);
        short.width = 11;
        assert_eq!(laplacian_variance(&short), 0.0);
        short.width = usize::MAX;
        short.height = usize::MAX;
        assert_eq!(laplacian_variance(&short), 0.0);
    }

    #[test]
    fn colour_edges_count_through_grey() {
        // A pure red/blue split has a grey edge (77·255 >> 8 vs 29·255 >> 8).
        let mut chip = chip_from_grey(20, 20, |_, _| 0);
        for y in 0..20 {
            for x in 0..20 {
                let i = 3 * (y * 20 + x);
                chip.data[i..i + 3].copy_from_slice(if x < 10 {
                    &[255, 0, 0]
                } else {
                    &[0, 0, 255]
                });
            }
        }
        assert!(laplacian_variance(&chip) > 0.0);
    }

    #[test]
    fn frontal_landmarks_give_level_frontal_pose() {
        let pose = pose_from_landmarks(&template_face(100.0, 0.0, 320.0, 240.0));
        assert!(pose.roll_deg.abs() < 0.1, "{pose:?}");
        assert!(pose.yaw.abs() < 0.01, "{pose:?}");
        assert!(pose.pitch.abs() < 0.01, "{pose:?}");
    }

    #[test]
    fn rotated_landmarks_give_their_roll_and_keep_yaw_and_pitch() {
        for roll in [-60.0f32, -20.0, 10.0, 35.0, 170.0] {
            let pose = pose_from_landmarks(&template_face(80.0, roll, 200.0, 100.0));
            assert!((pose.roll_deg - roll).abs() < 0.2, "{roll}: {pose:?}");
            assert!(pose.yaw.abs() < 0.01, "{roll}: {pose:?}");
            assert!(pose.pitch.abs() < 0.01, "{roll}: {pose:?}");
        }
    }

    #[test]
    fn nose_shifted_sideways_gives_signed_yaw() {
        let mut right = template_face(100.0, 0.0, 0.0, 0.0);
        right[4].x += 20.0;
        let mut left = template_face(100.0, 0.0, 0.0, 0.0);
        left[4].x -= 20.0;
        let (r, l) = (pose_from_landmarks(&right), pose_from_landmarks(&left));
        // Inter-ocular distance is ~52.5 px: 20 px is ~0.38.
        assert!((r.yaw - 0.38).abs() < 0.02, "{r:?}");
        assert!((l.yaw + 0.38).abs() < 0.02, "{l:?}");
        // Along the eye line even when the head is rolled: a nose shifted along a 30° eye line.
        let mut rolled = template_face(100.0, 30.0, 0.0, 0.0);
        let (s, c) = 30f32.to_radians().sin_cos();
        rolled[4].x += 20.0 * c;
        rolled[4].y += 20.0 * s;
        let p = pose_from_landmarks(&rolled);
        assert!((p.yaw - 0.38).abs() < 0.02 && p.pitch.abs() < 0.01, "{p:?}");
    }

    #[test]
    fn nose_lower_gives_positive_pitch() {
        let mut face = template_face(100.0, 0.0, 0.0, 0.0);
        face[4].y += 10.0;
        assert!(pose_from_landmarks(&face).pitch > 0.15);
    }

    #[test]
    fn degenerate_landmarks_give_a_pose_that_scores_zero() {
        let same = [Point::new(5.0, 5.0); NUM_PARTS];
        let mut nan = template_face(100.0, 0.0, 0.0, 0.0);
        nan[1].x = f32::NAN;
        let model = QualityModel::default();
        for points in [same, nan] {
            let pose = pose_from_landmarks(&points);
            assert!(!pose.yaw.is_finite(), "{pose:?}");
            let q = model.score(&QualityInputs {
                pose,
                ..good_inputs()
            });
            assert_eq!(q, 0.0);
        }
    }

    #[test]
    fn scores_stay_in_unit_range_for_any_input() {
        let model = QualityModel::default();
        let mut rng = SplitMix64::new(7);
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -1.0,
            1e30,
            -1e30,
        ];
        let draw = |rng: &mut SplitMix64| -> f32 {
            let r = rng.next_u64();
            if r.is_multiple_of(4) {
                specials[(r / 4) as usize % specials.len()]
            } else {
                (rng.unit_f64() as f32 - 0.3) * 300.0
            }
        };
        for _ in 0..20_000 {
            let inputs = QualityInputs {
                face_px: draw(&mut rng),
                sharpness: draw(&mut rng),
                pose: Pose {
                    roll_deg: draw(&mut rng),
                    yaw: draw(&mut rng) / 100.0,
                    pitch: draw(&mut rng) / 100.0,
                },
                detector_score: draw(&mut rng) / 200.0,
            };
            let q = model.score(&inputs);
            assert!((0.0..=1.0).contains(&q), "{inputs:?} → {q}");
            let any_nan = [inputs.face_px, inputs.sharpness, inputs.detector_score]
                .iter()
                .chain([inputs.pose.roll_deg, inputs.pose.yaw, inputs.pose.pitch].iter())
                .any(|v| !v.is_finite());
            if any_nan {
                assert_eq!(q, 0.0, "{inputs:?}");
            }
            for c in model.components(&inputs) {
                assert!((0.0..=1.0).contains(&c), "{inputs:?} → {c}");
            }
        }
    }

    #[test]
    fn a_good_face_scores_high_and_one_bad_factor_pulls_it_down() {
        let model = QualityModel::default();
        let good = model.score(&good_inputs());
        assert!(good > 0.9, "{good}");
        let profile = QualityInputs {
            pose: Pose {
                yaw: 0.58,
                ..good_inputs().pose
            },
            ..good_inputs()
        };
        assert!(model.score(&profile) < 0.5, "{}", model.score(&profile));
        let tiny = QualityInputs {
            face_px: 20.0,
            ..good_inputs()
        };
        assert_eq!(model.score(&tiny), 0.0);
    }

    #[test]
    fn better_factors_never_score_lower() {
        let model = QualityModel::default();
        let mut rng = SplitMix64::new(11);
        let mut u = |lo: f32, hi: f32| lo + (hi - lo) * rng.unit_f64() as f32;
        for _ in 0..5_000 {
            let base = QualityInputs {
                face_px: u(10.0, 150.0),
                sharpness: u(0.0, 250.0),
                pose: Pose {
                    roll_deg: u(-60.0, 60.0),
                    yaw: u(-0.8, 0.8),
                    pitch: u(-0.7, 0.7),
                },
                detector_score: u(0.5, 1.0),
            };
            let q = model.score(&base);
            let (k, d) = (u(0.0, 1.0), u(0.0, 1.0));
            let shrink = |v: f32| v * (1.0 - k); // towards frontal
            let better = [
                QualityInputs {
                    face_px: base.face_px + 40.0 * d,
                    ..base
                },
                QualityInputs {
                    sharpness: base.sharpness + 100.0 * d,
                    ..base
                },
                QualityInputs {
                    detector_score: (base.detector_score + 0.3 * d).min(1.0),
                    ..base
                },
                QualityInputs {
                    pose: Pose {
                        roll_deg: shrink(base.pose.roll_deg),
                        ..base.pose
                    },
                    ..base
                },
                QualityInputs {
                    pose: Pose {
                        yaw: shrink(base.pose.yaw),
                        ..base.pose
                    },
                    ..base
                },
                QualityInputs {
                    pose: Pose {
                        pitch: shrink(base.pose.pitch),
                        ..base.pose
                    },
                    ..base
                },
            ];
            for b in better {
                assert!(model.score(&b) >= q, "{b:?} scored below {base:?}");
            }
        }
    }

    #[test]
    fn validate_refuses_unusable_models() {
        assert!(QualityModel::default().validate().is_ok());
        let flat = QualityModel {
            yaw: Ramp::new(0.3, 0.3),
            ..QualityModel::default()
        };
        assert!(flat.validate().is_err());
        let nan = QualityModel {
            face_px: Ramp::new(f32::NAN, 100.0),
            ..QualityModel::default()
        };
        assert!(nan.validate().is_err());
        let zero = QualityModel {
            weights: QualityWeights {
                size: 0.0,
                sharpness: 0.0,
                pose: 0.0,
                detector: 0.0,
            },
            ..QualityModel::default()
        };
        assert!(zero.validate().is_err());
        assert_eq!(zero.score(&good_inputs()), 0.0);
        let negative = QualityModel {
            weights: QualityWeights {
                pose: -1.0,
                ..QualityWeights::default()
            },
            ..QualityModel::default()
        };
        assert!(negative.validate().is_err());
    }

    #[test]
    fn model_reads_partial_settings_and_refuses_unknown_fields() {
        let m: QualityModel =
            serde_json::from_str(r#"{"face_px": {"bad": 40, "good": 120}}"#).unwrap();
        assert_eq!(m.face_px, Ramp::new(40.0, 120.0));
        assert_eq!(m.yaw, QualityModel::default().yaw);
        assert!(
            serde_json::from_str::<QualityModel>(r#"{"size": {"bad": 1, "good": 2}}"#).is_err()
        );
    }
}
