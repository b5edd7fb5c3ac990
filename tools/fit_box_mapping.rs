//! Development tool: fits the MTCNN-to-dlib box mapping (`FITTED_BOX_MAPPING`) and the MTCNN
//! template (`MTCNN_TEMPLATE`) in `src/vision/align/` from calibration detections, and prints them
//! with a two-fold held-out check. `tests/vision/align_box_mapping.rs` checks that the committed mapping is
//! the fit of the committed fixtures.
//!
//! To refit after the detector changes, write lanewatch's MTCNN main face on the 300 LFW `calib/`
//! images as a JSON list of `{image, bbox, landmarks}` (e.g. `Detector::new(models, 250, 250,
//! DetectorConfig { min_face: 40.0, ..Default::default() })`, `main_face` per image), then run
//! `cargo run --release --example fit_box_mapping -- that.json` (without an argument it refits the
//! committed `tests/fixtures/mtcnn_calib_detections.json`) and copy the printed numbers into
//! `FITTED_BOX_MAPPING` and `MTCNN_TEMPLATE`. Needs `../shared/data/lfw` beside the repository.

use std::path::Path;

use lanewatch::vision::align::chip::FACE_TEMPLATE_5;
use lanewatch::vision::align::{BoxMapping, CHIP_PADDING, CHIP_SIZE, MtcnnFace};
use lanewatch::vision::geometry::similarity;
use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::{Rect, ShapePredictor};

#[path = "../tests/common/align_calib.rs"]
mod align_calib;
use align_calib::{FIXTURES, MODEL, calibration_pairs, gray};

fn main() {
    let detections = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{FIXTURES}/mtcnn_calib_detections.json"));
    let pairs = calibration_pairs(Path::new(&detections));
    let fit = BoxMapping::fit(&pairs.iter().map(|(f, r, _)| (*f, *r)).collect::<Vec<_>>()).unwrap();
    println!("{} pairs; fitted {fit:?}", pairs.len());

    let sp = ShapePredictor::open(Path::new(MODEL)).unwrap();
    let mut scratch = sp.scratch();
    // Two-fold cross-validation: each half is scored with the mapping fitted on the other half.
    let halves: Vec<BoxMapping> = (0..2)
        .map(|h| {
            let train: Vec<(MtcnnFace, Rect)> = pairs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 != h)
                .map(|(_, (f, r, _))| (*f, *r))
                .collect();
            BoxMapping::fit(&train).unwrap()
        })
        .collect();
    let (mut box_err, mut lm_err, mut lm_max, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let mut identical = 0usize;
    for (i, (face, rect, e)) in pairs.iter().enumerate() {
        let g = halves[i % 2].apply(face).unwrap();
        box_err += f64::from(
            (g.left - rect.left).abs()
                + (g.top - rect.top).abs()
                + (g.right - rect.right).abs()
                + (g.bottom - rect.bottom).abs(),
        ) / 4.0;
        let img = gray(&e.image);
        let view =
            ImageView::gray(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let got = sp.predict(&view, g, &mut scratch);
        identical += usize::from(
            got.iter()
                .zip(&e.landmarks)
                .all(|(p, w)| p.x == w[0] && p.y == w[1]),
        );
        for (p, w) in got.iter().zip(&e.landmarks) {
            let d = f64::from(((p.x - w[0]).powi(2) + (p.y - w[1]).powi(2)).sqrt());
            lm_err += d;
            lm_max = lm_max.max(d);
        }
        n += 1;
    }
    println!(
        "held out (2-fold): mean box-side error {:.2} px; landmarks from mapped boxes vs from dlib \
         boxes: mean {:.3} px, max {:.2} px, all five identical on {identical} of {n} faces",
        box_err / n as f64,
        lm_err / (5 * n) as f64,
        lm_max
    );

    // The MTCNN template: MTCNN's points carried into dlib's chip frame by the similarity that
    // dlib's own alignment uses, averaged, in the unpadded unit square of FACE_TEMPLATE_5.
    let (size, pad) = (CHIP_SIZE as f64, CHIP_PADDING);
    let chip5: Vec<[f64; 2]> = FACE_TEMPLATE_5
        .iter()
        .map(|t| {
            [
                (pad + t[0]) / (2.0 * pad + 1.0) * size,
                (pad + t[1]) / (2.0 * pad + 1.0) * size,
            ]
        })
        .collect();
    let mut sum = [[0.0f64; 2]; 5];
    for (face, _, e) in &pairs {
        let img: Vec<[f64; 2]> = e
            .landmarks
            .iter()
            .map(|p| [f64::from(p[0]), f64::from(p[1])])
            .collect();
        // chip -> image is dlib's similarity; invert it to carry MTCNN's points into the chip.
        let t = similarity(&chip5, &img);
        let det = t.m[0][0] * t.m[1][1] - t.m[0][1] * t.m[1][0];
        for (k, p) in face.points.iter().enumerate() {
            let d = [f64::from(p.x) - t.b[0], f64::from(p.y) - t.b[1]];
            let c = [
                (t.m[1][1] * d[0] - t.m[0][1] * d[1]) / det,
                (t.m[0][0] * d[1] - t.m[1][0] * d[0]) / det,
            ];
            for a in 0..2 {
                sum[k][a] += (c[a] / size) * (2.0 * pad + 1.0) - pad;
            }
        }
    }
    let template = sum.map(|p| [p[0] / n as f64, p[1] / n as f64]);
    println!("MTCNN template (unit square, unpadded): {template:?}");
}
