//! The bridge from MTCNN detections to dlib's alignment.
//!
//! dlib's shape predictor was trained on dlib HOG boxes and is sensitive to where the box sits, so
//! an MTCNN box is first mapped to the HOG box dlib would have drawn ([`dlib_box_from_mtcnn`], a
//! few least-squares parameters fitted on LFW calibration images). [`chip_from_mtcnn_points`] is
//! the approximate fallback that aligns from MTCNN's own five points.

use super::chip::ChipDetails;
use crate::vision::geometry::round_half_up;
use crate::vision::landmarks::{NUM_PARTS, Point, Rect};

/// One MTCNN detection: box corners `[x1, y1, x2, y2]` and five points in MTCNN's order: left eye,
/// right eye, nose tip, left mouth corner, right mouth corner (left/right as seen in the image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MtcnnFace {
    pub bbox: [f32; 4],
    pub points: [Point; NUM_PARTS],
}

impl MtcnnFace {
    fn is_finite(&self) -> bool {
        self.bbox.iter().all(|v| v.is_finite())
            && self
                .points
                .iter()
                .all(|p| p.x.is_finite() && p.y.is_finite())
    }

    /// (mean of the five points, eye-to-mouth distance, sqrt of the box area): the features the
    /// box mapping is linear in. Eye-to-mouth is less sensitive to yaw than the eye distance.
    fn features(&self) -> ([f64; 2], f64, f64) {
        let p = |i: usize| [f64::from(self.points[i].x), f64::from(self.points[i].y)];
        let mut mean = [0.0; 2];
        for i in 0..NUM_PARTS {
            mean = [mean[0] + p(i)[0], mean[1] + p(i)[1]];
        }
        mean = [mean[0] / NUM_PARTS as f64, mean[1] / NUM_PARTS as f64];
        let eyes = [(p(0)[0] + p(1)[0]) / 2.0, (p(0)[1] + p(1)[1]) / 2.0];
        let mouth = [(p(3)[0] + p(4)[0]) / 2.0, (p(3)[1] + p(4)[1]) / 2.0];
        let eye_mouth = ((eyes[0] - mouth[0]).powi(2) + (eyes[1] - mouth[1]).powi(2)).sqrt();
        let [x1, y1, x2, y2] = self.bbox.map(f64::from);
        let box_side = ((x2 - x1).max(0.0) * (y2 - y1).max(0.0)).sqrt();
        (mean, eye_mouth, box_side)
    }
}

/// dlib box from MTCNN: centre = mean of the five points + `a·(eye_mouth, box_side)` per axis,
/// side = `a·(eye_mouth, box_side)`; six numbers in the order (cx: 2, cy: 2, side: 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxMapping {
    pub cx: [f64; 2],
    pub cy: [f64; 2],
    pub side: [f64; 2],
}

impl BoxMapping {
    pub fn apply(&self, face: &MtcnnFace) -> Option<Rect> {
        if !face.is_finite() {
            return None;
        }
        let (mean, em, bs) = face.features();
        let cx = mean[0] + self.cx[0] * em + self.cx[1] * bs;
        let cy = mean[1] + self.cy[0] * em + self.cy[1] * bs;
        let side = self.side[0] * em + self.side[1] * bs;
        if side.is_nan() || side < 1.0 {
            return None;
        }
        let half = (side - 1.0) / 2.0;
        let clamp =
            |v: f64| round_half_up(v).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        Some(Rect::new(
            clamp(cx - half),
            clamp(cy - half),
            clamp(cx + half),
            clamp(cy + half),
        ))
    }

    /// Least-squares fit of the six numbers to pairs of (MTCNN face, dlib HOG box). Returns `None`
    /// with fewer than three usable pairs or when the features are degenerate.
    pub fn fit(pairs: &[(MtcnnFace, Rect)]) -> Option<BoxMapping> {
        let mut n = 0usize;
        // Normal equations for three independent 2-parameter problems with the same design.
        let mut ata = [[0.0f64; 2]; 2];
        let mut atb = [[0.0f64; 2]; 3];
        for (face, rect) in pairs {
            if !face.is_finite() || rect.is_empty() {
                continue;
            }
            let (mean, em, bs) = face.features();
            let x = [em, bs];
            let (l, t, r, b) = (
                f64::from(rect.left),
                f64::from(rect.top),
                f64::from(rect.right),
                f64::from(rect.bottom),
            );
            let targets = [
                (l + r) / 2.0 - mean[0],
                (t + b) / 2.0 - mean[1],
                ((r - l + 1.0) + (b - t + 1.0)) / 2.0,
            ];
            for i in 0..2 {
                for j in 0..2 {
                    ata[i][j] += x[i] * x[j];
                }
                for (k, y) in targets.iter().enumerate() {
                    atb[k][i] += x[i] * y;
                }
            }
            n += 1;
        }
        let det = ata[0][0] * ata[1][1] - ata[0][1] * ata[1][0];
        if n < 3 || det.is_nan() || det.abs() <= 1e-9 * ata[0][0] * ata[1][1] {
            return None;
        }
        let solve = |y: [f64; 2]| {
            [
                (ata[1][1] * y[0] - ata[0][1] * y[1]) / det,
                (ata[0][0] * y[1] - ata[1][0] * y[0]) / det,
            ]
        };
        Some(BoxMapping {
            cx: solve(atb[0]),
            cy: solve(atb[1]),
            side: solve(atb[2]),
        })
    }
}

/// MTCNN's five points in dlib's chip template frame (unit square, before padding, like
/// `FACE_TEMPLATE_5`): the mean position of lanewatch's MTCNN points on the 300 LFW calibration
/// faces once carried into the chip by dlib's own alignment of the same face (fitted by
/// `tools/fit_box_mapping.rs`).
pub const MTCNN_TEMPLATE: [[f64; 2]; NUM_PARTS] = [
    [0.234_833, 0.218_691],
    [0.781_206, 0.216_048],
    [0.502_804, 0.530_434],
    [0.270_065, 0.811_984],
    [0.745_017, 0.810_788],
];

/// The approximate chip: a similarity fit of MTCNN's five points to [`MTCNN_TEMPLATE`], in the
/// same frame and padding as dlib's chip. Use it only when the shape predictor cannot run; it
/// loses accuracy against the exact path.
pub fn chip_from_mtcnn_points(
    points: &[Point; NUM_PARTS],
    size: usize,
    padding: f64,
) -> ChipDetails {
    let s = size as f64;
    let chip: [[f64; 2]; NUM_PARTS] = std::array::from_fn(|i| {
        let t = MTCNN_TEMPLATE[i];
        [
            (padding + t[0]) / (2.0 * padding + 1.0) * s,
            (padding + t[1]) / (2.0 * padding + 1.0) * s,
        ]
    });
    let img: [[f64; 2]; NUM_PARTS] =
        std::array::from_fn(|i| [f64::from(points[i].x), f64::from(points[i].y)]);
    ChipDetails::from_points(&chip, &img, size)
}

/// The mapping fitted (least squares, `BoxMapping::fit`) from lanewatch's MTCNN detections to dlib
/// HOG boxes on the 300 LFW calibration images (`tests/fixtures/mtcnn_calib_detections.json`,
/// `tests/fixtures/dlib_hog_calib.json`). Held out (2-fold), the shape predictor run in mapped
/// boxes lands 0.36 px on average from where it lands in dlib's own boxes.
pub const FITTED_BOX_MAPPING: BoxMapping = BoxMapping {
    cx: [0.039_601, -0.060_937],
    cy: [-0.361_987, 0.114_226],
    side: [0.199_150, 0.910_349],
};

/// The dlib-style box to run the shape predictor in for an MTCNN detection (`bbox` = x1, y1, x2,
/// y2; points in MTCNN's order). `None` for non-finite input or a degenerate face.
pub fn dlib_box_from_mtcnn(bbox: [f32; 4], five_points: &[Point; NUM_PARTS]) -> Option<Rect> {
    FITTED_BOX_MAPPING.apply(&MtcnnFace {
        bbox,
        points: *five_points,
    })
}
