//! The detector's refusals and edge cases: bad configuration, wrong or missing model files, frames
//! of another size, frames too small for any pyramid level, and odd-sized noise.

use std::path::{Path, PathBuf};

use lanewatch::vision::detect::{
    DetectError, Detector, DetectorConfig, ONET_FILE, PNET_FILE, RNET_FILE,
};
use lanewatch::vision::model::ModelError;

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

fn model(name: &str) -> PathBuf {
    Path::new(MODELS).join(name)
}

fn config(min_face: f32) -> DetectorConfig {
    DetectorConfig {
        min_face,
        ..Default::default()
    }
}

#[test]
fn bad_configurations_are_refused() {
    for c in [
        config(5.0),
        config(f32::NAN),
        DetectorConfig {
            factor: 1.0,
            ..Default::default()
        },
        DetectorConfig {
            thresholds: [0.6, 1.5, 0.7],
            ..Default::default()
        },
    ] {
        let e = Detector::new(Path::new(MODELS), 64, 64, c).err().unwrap();
        assert!(matches!(e, DetectError::Config(_)), "{e}");
    }
    let e = Detector::new(Path::new(MODELS), 0, 64, config(40.0))
        .err()
        .unwrap();
    assert!(matches!(e, DetectError::Config(_)), "{e}");
}

#[test]
fn missing_and_swapped_models_are_named() {
    let e = Detector::new(Path::new("/nonexistent/models"), 64, 64, config(40.0))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("/nonexistent/models/mtcnn_pnet.onnx"),
        "{e}"
    );
    let e = Detector::from_files(
        &model(RNET_FILE),
        &model(RNET_FILE),
        &model(ONET_FILE),
        64,
        64,
        config(40.0),
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, DetectError::Model(ModelError::WrongRole { .. })),
        "{e}"
    );
    let e = Detector::from_files(
        &model(PNET_FILE),
        &model(ONET_FILE),
        &model(RNET_FILE),
        64,
        64,
        config(40.0),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("mtcnn_onet.onnx"), "{e}");
}

#[test]
fn frames_of_another_size_are_refused() {
    let det = Detector::new(Path::new(MODELS), 80, 60, config(40.0)).unwrap();
    let e = det.detect(&image::RgbImage::new(60, 80)).err().unwrap();
    assert!(matches!(e, DetectError::FrameSize { .. }), "{e}");
}

#[test]
fn tiny_blank_and_noisy_frames_give_no_faces_and_no_panic() {
    // 30 px short side < min face 40: no pyramid level at all.
    let det = Detector::new(Path::new(MODELS), 300, 30, config(40.0)).unwrap();
    assert!(det.pyramid_sizes().is_empty());
    assert!(
        det.detect(&image::RgbImage::new(300, 30))
            .unwrap()
            .is_empty()
    );

    let det = Detector::new(Path::new(MODELS), 97, 61, config(20.0)).unwrap();
    assert!(!det.pyramid_sizes().is_empty());
    assert!(
        det.detect(&image::RgbImage::new(97, 61))
            .unwrap()
            .is_empty()
    );
    let mut s = 12345u32;
    let noise = image::RgbImage::from_fn(97, 61, |_, _| {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
        image::Rgb([(s >> 16) as u8, (s >> 8) as u8, (s >> 24) as u8])
    });
    for f in det.detect(&noise).unwrap() {
        assert!(
            f.score > 0.7 && f.bbox.iter().all(|v| v.is_finite()),
            "{f:?}"
        );
    }
}
