//! The shipped MTCNN-to-dlib box mapping against a fresh fit: MTCNN's main face on each of the 300 LFW
//! calibration images (`../shared/data/lfw/calib`, no one there is in the evaluation pairs) paired with
//! dlib's HOG box for the same image (`tests/fixtures/dlib_hog_calib.json`, made by tools/dlib_reference.py).
//! The landmarks found from mapped boxes must sit where dlib's own boxes put them.

use lanewatch::vision::align::mtcnn::FITTED_BOX_MAPPING;
use lanewatch::vision::align::{BoxMapping, MtcnnFace};
use lanewatch::vision::detect::{Detector, DetectorConfig, main_face};
use lanewatch::vision::faces::FaceModels;
use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::{Point, Rect, ShapePredictor};
use serde::Deserialize;

#[derive(Deserialize)]
struct Calib {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    image: String,
    #[serde(rename = "box")]
    bbox: [i32; 4],
    landmarks: Vec<[f32; 2]>,
}

#[test]
fn shipped_mapping_matches_a_fresh_fit_and_keeps_landmarks_in_place() {
    let lfw = crate::common::lfw_dir();
    let calib: Calib = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dlib_hog_calib.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let models = FaceModels::bundled();
    let detector = Detector::from_files(
        &models.pnet,
        &models.rnet,
        &models.onet,
        250,
        250,
        DetectorConfig {
            min_face: 40.0,
            ..DetectorConfig::default()
        },
    )
    .unwrap();
    let sp = ShapePredictor::open(&models.landmarks).unwrap();
    let mut scratch = sp.scratch();

    let mut samples = vec![];
    for e in &calib.entries {
        let rgb = image::open(lfw.join(&e.image)).unwrap().to_rgb8();
        let faces = detector.detect(&rgb).unwrap();
        let Some(f) = main_face(&faces, 250, 250) else {
            continue;
        };
        let face = MtcnnFace {
            bbox: f.bbox,
            points: f.landmarks.map(|p| Point::new(p[0], p[1])),
        };
        let [l, t, r, b] = e.bbox;
        samples.push((face, Rect::new(l, t, r, b), e, rgb));
    }
    assert!(
        samples.len() >= 280,
        "MTCNN found only {} of {} calibration faces",
        samples.len(),
        calib.entries.len()
    );
    let pairs: Vec<(MtcnnFace, Rect)> = samples.iter().map(|(f, r, _, _)| (*f, *r)).collect();
    let fit = BoxMapping::fit(&pairs).unwrap();
    println!("{} pairs; fresh fit {fit:?}", pairs.len());

    let landmark_error = |m: &BoxMapping, scratch: &mut _| {
        let (mut sum, mut n) = (0.0f64, 0usize);
        for (face, _, e, rgb) in &samples {
            let view = ImageView::rgb(rgb.as_raw(), 250, 250).unwrap();
            let got = sp.predict(&view, m.apply(face).unwrap(), scratch);
            for (p, w) in got.iter().zip(&e.landmarks) {
                sum += f64::from(((p.x - w[0]).powi(2) + (p.y - w[1]).powi(2)).sqrt());
                n += 1;
            }
        }
        sum / n as f64
    };
    let fresh = landmark_error(&fit, &mut scratch);
    let shipped = landmark_error(&FITTED_BOX_MAPPING, &mut scratch);
    println!(
        "mean landmark displacement vs dlib's boxes: fresh fit {fresh:.3} px, shipped {shipped:.3} px"
    );
    assert!(
        shipped <= fresh + 0.05,
        "the shipped mapping ({shipped:.3} px) is worse than a fresh fit ({fresh:.3} px): update FITTED_BOX_MAPPING to {fit:?}"
    );
    assert!(
        shipped < 1.5,
        "landmarks from mapped boxes are {shipped:.3} px from dlib's on average"
    );
}
