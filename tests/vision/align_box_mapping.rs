//! The MTCNN-to-dlib box mapping: the least-squares fit recovers known parameters, refuses
//! degenerate data, and maps bad input to `None`; the committed mapping is the fit of the
//! calibration fixtures and puts the shape predictor where dlib's own boxes put it.
//!
//! Fixtures: `dlib_hog_calib.json` (dlib HOG boxes and landmarks on the 300 LFW `calib/` images,
//! from `tools/dlib_reference.py`) and `mtcnn_calib_detections.json` (lanewatch's MTCNN main face on
//! the same images). To refit after the detector changes, see `tools/fit_box_mapping.rs`.

use std::path::Path;

use lanewatch::vision::align::{
    BoxMapping, CHIP_PADDING, CHIP_SIZE, ChipScratch, FITTED_BOX_MAPPING, MtcnnFace, RgbChip,
    chip_from_mtcnn_points, extract_image_chip, face_chip_details,
};
use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::{Point, Rect, ShapePredictor};

use crate::common::align_calib::{MODEL, fixture_pairs, gray};

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

#[test]
fn committed_mapping_is_the_fit_of_the_fixtures() {
    let pairs = fixture_pairs();
    assert!(pairs.len() >= 250, "{} calibration pairs", pairs.len());
    let fit = BoxMapping::fit(&pairs.iter().map(|(f, r, _)| (*f, *r)).collect::<Vec<_>>()).unwrap();
    let c = FITTED_BOX_MAPPING;
    for (a, b) in [fit.cx, fit.cy, fit.side].iter().zip([c.cx, c.cy, c.side]) {
        assert!(
            (a[0] - b[0]).abs() < 1e-5 && (a[1] - b[1]).abs() < 1e-5,
            "refit {fit:?} differs from FITTED_BOX_MAPPING {c:?}"
        );
    }
}

#[test]
fn mapped_boxes_put_the_landmarks_where_dlib_boxes_do() {
    let sp = ShapePredictor::open(Path::new(MODEL)).unwrap();
    let mut scratch = sp.scratch();
    let (mut sum, mut n, mut identical) = (0.0f64, 0usize, 0usize);
    for (face, _, e) in fixture_pairs() {
        let img = gray(&e.image);
        let view =
            ImageView::gray(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let rect = lanewatch::vision::align::dlib_box_from_mtcnn(face.bbox, &face.points).unwrap();
        let got = sp.predict(&view, rect, &mut scratch);
        let mut all = true;
        for (p, w) in got.iter().zip(&e.landmarks) {
            sum += f64::from(((p.x - w[0]).powi(2) + (p.y - w[1]).powi(2)).sqrt());
            all &= p.x == w[0] && p.y == w[1];
        }
        identical += usize::from(all);
        n += 1;
    }
    let mean = sum / (5 * n) as f64;
    eprintln!(
        "mapped boxes: landmarks {mean:.3} px from dlib's on average; all five identical on {identical} of {n} faces"
    );
    assert!(
        mean < 0.5,
        "landmarks from mapped boxes are {mean} px from dlib's on average"
    );
}

#[test]
fn mtcnn_fallback_chip_is_close_to_dlibs() {
    let (mut scratch, mut a, mut b) = (
        ChipScratch::default(),
        RgbChip::default(),
        RgbChip::default(),
    );
    let (mut pixel_err, mut centre_err, mut n) = (0.0f64, 0.0f64, 0usize);
    for (face, _, e) in fixture_pairs() {
        let img = gray(&e.image);
        let view =
            ImageView::gray(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let pts: [Point; 5] =
            std::array::from_fn(|i| Point::new(e.landmarks[i][0], e.landmarks[i][1]));
        let exact = face_chip_details(&pts, CHIP_SIZE, CHIP_PADDING);
        let approx = chip_from_mtcnn_points(&face.points, CHIP_SIZE, CHIP_PADDING);
        extract_image_chip(&view, &exact, &mut scratch, &mut a).unwrap();
        extract_image_chip(&view, &approx, &mut scratch, &mut b).unwrap();
        pixel_err += a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| f64::from(x.abs_diff(*y)))
            .sum::<f64>()
            / a.data.len() as f64;
        let (ca, cb) = (exact.rect.center(), approx.rect.center());
        // In chip pixels: how far the approximate chip's centre is from the exact one's.
        centre_err += ((ca[0] - cb[0]).powi(2) + (ca[1] - cb[1]).powi(2)).sqrt()
            / exact.rect.width()
            * CHIP_SIZE as f64;
        n += 1;
    }
    let (pixel_err, centre_err) = (pixel_err / n as f64, centre_err / n as f64);
    eprintln!(
        "MTCNN fallback vs dlib chip: centre offset {centre_err:.2} chip px, pixels differ by {pixel_err:.2} grey levels on average"
    );
    assert!(centre_err < 4.0, "{centre_err}");
}
