//! The MTCNN-to-dlib box mapping: the least-squares fit recovers known parameters, refuses
//! degenerate data, and maps bad input to `None`. `fit_from_detections` (ignored; a development
//! tool) fits the mapping from MTCNN detections on LFW calibration images against the dlib HOG
//! boxes in `tests/fixtures/dlib_hog_calib.json` and reports how far the landmarks move.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lanewatch::vision::align::chip::FACE_TEMPLATE_5;
use lanewatch::vision::align::{BoxMapping, CHIP_PADDING, CHIP_SIZE, MtcnnFace};
use lanewatch::vision::geometry::similarity;
use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::{Point, Rect, ShapePredictor};
use serde::Deserialize;

fn synthetic_face(i: usize) -> MtcnnFace {
    // Faces of 40-200 px at varied positions, slightly varied proportions and box sizes.
    let f = i as f32;
    let s = 40.0 + (f * 37.0) % 160.0;
    let (x, y) = (100.0 + (f * 53.0) % 400.0, 80.0 + (f * 29.0) % 300.0);
    let wobble = ((f * 0.7).sin()) * 0.05;
    let points = [
        Point::new(x - 0.2 * s, y - 0.15 * s),
        Point::new(x + 0.2 * s, y - (0.15 + wobble) * s),
        Point::new(x, y + 0.05 * s),
        Point::new(x - 0.15 * s, y + (0.25 + wobble) * s),
        Point::new(x + 0.15 * s, y + 0.25 * s),
    ];
    let b = s * (0.55 + 0.1 * ((f * 1.3).cos()));
    MtcnnFace {
        bbox: [x - b, y - 1.2 * b, x + b, y + b],
        points,
    }
}

#[test]
fn fit_recovers_known_parameters() {
    let truth = BoxMapping {
        cx: [0.02, -0.01],
        cy: [-0.1, 0.05],
        side: [1.3, 0.4],
    };
    let pairs: Vec<(MtcnnFace, Rect)> = (0..200)
        .map(synthetic_face)
        .map(|f| (f, truth.apply(&f).unwrap()))
        .collect();
    let fit = BoxMapping::fit(&pairs).unwrap();
    // The targets are rounded to whole pixels, so the fit is close, not exact.
    for (a, b) in [fit.cx, fit.cy, fit.side]
        .iter()
        .zip([truth.cx, truth.cy, truth.side])
    {
        assert!(
            (a[0] - b[0]).abs() < 0.02 && (a[1] - b[1]).abs() < 0.02,
            "{fit:?}"
        );
    }
    let mut worst = 0;
    for (f, r) in &pairs {
        let g = fit.apply(f).unwrap();
        worst = worst
            .max((g.left - r.left).abs())
            .max((g.right - r.right).abs())
            .max((g.top - r.top).abs())
            .max((g.bottom - r.bottom).abs());
    }
    assert!(worst <= 1, "refitted boxes differ by {worst} px");
}

#[test]
fn degenerate_data_and_bad_input() {
    let f = synthetic_face(3);
    let r = Rect::new(0, 0, 99, 99);
    assert!(BoxMapping::fit(&[(f, r), (f, r)]).is_none());
    // Identical faces: the design matrix is singular.
    assert!(BoxMapping::fit(&vec![(f, r); 10]).is_none());
    let m = BoxMapping {
        cx: [0.0, 0.0],
        cy: [0.0, 0.0],
        side: [1.0, 1.0],
    };
    let mut bad = f;
    bad.points[1].y = f32::NAN;
    assert!(m.apply(&bad).is_none());
    let mut inf = f;
    inf.bbox[2] = f32::INFINITY;
    assert!(m.apply(&inf).is_none());
    let shrink = BoxMapping {
        side: [-1.0, 0.0],
        ..m
    };
    assert!(shrink.apply(&f).is_none());
}

#[derive(Deserialize)]
struct Calib {
    entries: Vec<CalibEntry>,
}

#[derive(Deserialize)]
struct CalibEntry {
    image: String,
    #[serde(rename = "box")]
    bbox: [i32; 4],
    landmarks: Vec<[f32; 2]>,
}

#[derive(Deserialize)]
struct Detection {
    image: String,
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
}

/// Development tool: `LANEWATCH_MTCNN_CALIB=detections.json cargo test -p lanewatch --test
/// align_box_mapping -- --ignored --nocapture`, where the JSON is a list of `{image, bbox,
/// landmarks}` (MTCNN's main face on each `calib/` image, paths relative to the LFW folder).
#[test]
#[ignore]
fn fit_from_detections() {
    let dets: Vec<Detection> = serde_json::from_str(
        &std::fs::read_to_string(std::env::var("LANEWATCH_MTCNN_CALIB").unwrap()).unwrap(),
    )
    .unwrap();
    let calib: Calib = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dlib_hog_calib.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let dlib: HashMap<&str, &CalibEntry> = calib
        .entries
        .iter()
        .map(|e| (e.image.as_str(), e))
        .collect();
    let pairs: Vec<(MtcnnFace, Rect, &CalibEntry)> = dets
        .iter()
        .filter_map(|d| {
            let e = dlib.get(d.image.as_str())?;
            let [l, t, r, b] = e.bbox;
            let face = MtcnnFace {
                bbox: d.bbox,
                points: d.landmarks.map(|p| Point::new(p[0], p[1])),
            };
            Some((face, Rect::new(l, t, r, b), *e))
        })
        .collect();
    let fit = BoxMapping::fit(&pairs.iter().map(|(f, r, _)| (*f, *r)).collect::<Vec<_>>()).unwrap();
    println!("{} pairs; fitted {fit:?}", pairs.len());

    let lfw = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/lfw"));
    let sp = ShapePredictor::open(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/dlib_5pt.lwsp"
    )))
    .unwrap();
    let mut scratch = sp.scratch();
    let (mut box_err, mut lm_err, mut lm_max, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (face, rect, e) in &pairs {
        let g = fit.apply(face).unwrap();
        box_err += f64::from(
            (g.left - rect.left).abs()
                + (g.top - rect.top).abs()
                + (g.right - rect.right).abs()
                + (g.bottom - rect.bottom).abs(),
        ) / 4.0;
        let img = image::open(lfw.join(&e.image)).unwrap().to_luma8();
        let view =
            ImageView::gray(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let got = sp.predict(&view, g, &mut scratch);
        for (p, w) in got.iter().zip(&e.landmarks) {
            let d = f64::from(((p.x - w[0]).powi(2) + (p.y - w[1]).powi(2)).sqrt());
            lm_err += d;
            lm_max = lm_max.max(d);
        }
        n += 1;
    }
    println!(
        "mean box-side error {:.2} px; landmarks from mapped boxes vs from dlib boxes: mean {:.3} px, max {:.2} px",
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
