//! The MTCNN detector on the 807 LFW images of `../shared/data/lfw/images` (250x250, grayscale
//! replicated to RGB): at minimum face size 40 at least 99% must yield a face, and the chosen face's
//! landmarks must be plausible (eyes above nose above mouth corners, left before right, inside
//! the box). Prints the count and the detection time per image.
//!
//! `cargo test --release -p lanewatch --test vision -- --nocapture detect_lfw::` for representative timing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lanewatch::vision::detect::{Detector, DetectorConfig, Face, main_face};

use crate::common::LFW_IMAGES as LFW;
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

fn lfw_images() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(LFW)
        .unwrap_or_else(|e| panic!("cannot read {LFW}: {e} (CI keeps shared/ beside the clone)"))
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files
}

/// Why a face's landmarks are implausible, if they are.
fn implausible(f: &Face) -> Option<String> {
    let [le, re, nose, lm, rm] = f.landmarks;
    let [x1, y1, x2, y2] = f.bbox;
    // Allow landmarks a tenth of the box outside it: O-Net's box regression and landmarks are
    // separate outputs and need not agree to the pixel.
    let (mx, my) = ((x2 - x1) * 0.1, (y2 - y1) * 0.1);
    for (i, p) in f.landmarks.iter().enumerate() {
        if p[0] < x1 - mx || p[0] > x2 + mx || p[1] < y1 - my || p[1] > y2 + my {
            return Some(format!("landmark {i} {p:?} outside box {:?}", f.bbox));
        }
    }
    if le[0] >= re[0] || lm[0] >= rm[0] {
        return Some("left/right order".into());
    }
    let eyes = le[1].max(re[1]);
    let mouth = lm[1].min(rm[1]);
    if !(eyes < nose[1] && nose[1] < mouth) {
        return Some(format!(
            "vertical order: eyes {eyes}, nose {}, mouth {mouth}",
            nose[1]
        ));
    }
    None
}

#[test]
fn finds_faces_in_lfw_with_plausible_landmarks() {
    let files = lfw_images();
    assert_eq!(files.len(), 807, "the LFW subset should hold 807 images");
    let config = DetectorConfig {
        min_face: 40.0,
        ..Default::default()
    };
    let t = Instant::now();
    let det = Detector::new(Path::new(MODELS), 250, 250, config).unwrap();
    println!(
        "planned {} P-Net levels {:?} + R/O-Net in {:.2?}",
        det.pyramid_sizes().len(),
        det.pyramid_sizes(),
        t.elapsed()
    );
    let mut found = 0;
    let mut faces_total = 0;
    let mut bad = Vec::new();
    let mut missed = Vec::new();
    let mut times: Vec<Duration> = Vec::with_capacity(files.len());
    for f in &files {
        let img = image::open(f).unwrap().to_rgb8();
        let t = Instant::now();
        let faces = det.detect(&img).unwrap();
        times.push(t.elapsed());
        faces_total += faces.len();
        let Some(face) = main_face(&faces, 250, 250) else {
            missed.push(f.file_name().unwrap().to_string_lossy().to_string());
            continue;
        };
        found += 1;
        assert!(
            face.score > 0.7 && face.score <= 1.0,
            "{}: score {}",
            f.display(),
            face.score
        );
        if let Some(why) = implausible(face) {
            bad.push(format!("{}: {why}", f.display()));
        }
    }
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "found a face in {found}/{} images ({:.2}%), {faces_total} faces in all; missed: {missed:?}",
        files.len(),
        100.0 * found as f64 / files.len() as f64
    );
    println!(
        "detection time per 250x250 image: mean {:.2?}, median {:.2?}, p95 {:.2?}",
        total / files.len() as u32,
        times[times.len() / 2],
        times[times.len() * 95 / 100]
    );
    println!(
        "implausible landmarks on {} chosen faces: {bad:#?}",
        bad.len()
    );
    assert!(
        found * 100 >= files.len() * 99,
        "only {found}/{} images had a face",
        files.len()
    );
    assert!(bad.is_empty(), "implausible landmarks: {bad:#?}");
}

/// A photo looked at with thresholds that reject every face is looked at again with
/// `PHOTO_RETRY_THRESHOLDS` (the detector's own thresholds are kept afterwards); a frame is not.
#[test]
fn a_photo_gets_a_second_look_at_lower_thresholds() {
    use lanewatch::vision::detect::PHOTO_RETRY_THRESHOLDS;
    let strict = DetectorConfig {
        thresholds: [0.999, 0.999, 0.9999],
        ..DetectorConfig::default()
    };
    let mut detector = Detector::from_files(
        &Path::new(MODELS).join("mtcnn_pnet.onnx"),
        &Path::new(MODELS).join("mtcnn_rnet.onnx"),
        &Path::new(MODELS).join("mtcnn_onet.onnx"),
        250,
        250,
        strict.clone(),
    )
    .unwrap();
    let image = image::open(&lfw_images()[0]).unwrap().to_rgb8();
    assert!(detector.detect(&image).unwrap().is_empty());
    let faces = detector.detect_in_photo(&image).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    assert!(faces[0].score > PHOTO_RETRY_THRESHOLDS[2]);
    assert_eq!(detector.config(), &strict);
    // Bad thresholds are refused and leave the detector as it was.
    assert!(detector.set_thresholds([0.5, 1.5, 0.5]).is_err());
    assert_eq!(detector.config(), &strict);
}
