//! Track-guided detection on the bundled lane clip: a near search around where a face was finds the
//! same face as the whole-frame pass, a search elsewhere finds nothing, a region leaves out what
//! lies outside it, and the guided chipper over the whole clip finds every face a full pass finds
//! (while leaving the unchanged empty lane unsearched).

use std::path::Path;
use std::time::Duration;

use image::RgbImage;
use lanewatch::camera::mjpeg::MjpegFileSource;
use lanewatch::camera::{Frame, FrameSource};
use lanewatch::vision::align::ChipSpec;
use lanewatch::vision::chipper::FaceChipper;
use lanewatch::vision::detect::{Detector, DetectorConfig, Face};
use lanewatch::vision::faces::FaceModels;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn clip() -> Vec<RgbImage> {
    let path = Path::new(ROOT).join("samples/lane_clip.mjpeg");
    let mut src = MjpegFileSource::open(&path, "clip".into(), 1 << 22).unwrap();
    let mut frames = Vec::new();
    let mut f = Frame::empty();
    while src.next_frame(&mut f, Duration::from_secs(1)).is_ok() {
        frames.push(f.rgb.clone());
    }
    assert_eq!(frames.len(), 24, "the bundled clip has 24 frames");
    frames
}

fn config() -> DetectorConfig {
    DetectorConfig {
        min_face: 40.0,
        ..Default::default()
    }
}

fn detector(config: DetectorConfig) -> Detector {
    Detector::new(&Path::new(ROOT).join("models"), 640, 480, config).unwrap()
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    iw * ih / (area(a) + area(b) - iw * ih)
}

fn shifted(b: &[f32; 4], dx: f32, dy: f32, grow: f32) -> [f32; 4] {
    let (cx, cy) = ((b[0] + b[2]) / 2.0 + dx, (b[1] + b[3]) / 2.0 + dy);
    let (hw, hh) = ((b[2] - b[0]) * grow / 2.0, (b[3] - b[1]) * grow / 2.0);
    [cx - hw, cy - hh, cx + hw, cy + hh]
}

/// Frames with a face, and that face as the whole-frame pass finds it.
fn faces_of_clip(det: &Detector, frames: &[RgbImage]) -> Vec<(usize, Face)> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let faces = det.detect(f).unwrap();
        assert!(faces.len() <= 1, "frame {i}: {} faces", faces.len());
        out.extend(faces.into_iter().map(|face| (i, face)));
    }
    assert!(out.len() >= 12, "faces in {} frames", out.len());
    out
}

#[test]
fn near_search_finds_the_face_the_full_pass_finds() {
    let frames = clip();
    let det = detector(config());
    let mut checked_away = 0;
    for (i, face) in faces_of_clip(&det, &frames) {
        let side = face.width().max(face.height());
        // Where the face was expected to be: off by a third of a face, 10% smaller or larger.
        for (dx, dy, grow) in [(0.0, 0.0, 1.0), (0.3, -0.2, 0.9), (-0.3, 0.25, 1.15)] {
            let expected = shifted(&face.bbox, dx * side, dy * side, grow);
            let near = det.detect_near(&frames[i], &[expected]).unwrap();
            assert_eq!(near.len(), 1, "frame {i}, expected {expected:?}: {near:?}");
            let overlap = iou(&near[0].bbox, &face.bbox);
            assert!(
                overlap > 0.8,
                "frame {i}: near {:?} vs full {:?} (IoU {overlap})",
                near[0].bbox,
                face.bbox
            );
            let eye = |f: &Face| f.landmarks[0];
            let (a, b) = (eye(&near[0]), eye(&face));
            assert!(
                (a[0] - b[0]).hypot(a[1] - b[1]) < 0.08 * side,
                "frame {i}: eye {a:?} vs {b:?}"
            );
        }
        // Looked for, at half its size, on the other side of the frame where the searched square
        // does not reach it: not found.
        let cx = (face.bbox[0] + face.bbox[2]) / 2.0;
        let away = shifted(&face.bbox, 640.0 - 2.0 * cx, 0.0, 0.5);
        if (2.0 * cx - 640.0).abs() > 1.25 * side {
            checked_away += 1;
            let found = det.detect_near(&frames[i], &[away]).unwrap();
            assert!(
                found.is_empty(),
                "frame {i}: face {:?} looked for at {away:?}, found {:?}",
                face.bbox,
                found.iter().map(|f| (f.bbox, f.score)).collect::<Vec<_>>()
            );
        }
    }
    assert!(
        checked_away >= 4,
        "{checked_away} frames checked away from the face"
    );
    // Nothing expected: nothing searched. An expected box larger than the frame: a full pass.
    let (i, face) = faces_of_clip(&det, &frames)[0].clone();
    assert!(det.detect_near(&frames[i], &[]).unwrap().is_empty());
    let huge = [-500.0, -500.0, 900.0, 900.0];
    let full = det.detect_near(&frames[i], &[huge]).unwrap();
    assert_eq!(full.len(), 1);
    assert!(iou(&full[0].bbox, &face.bbox) > 0.99);
    // Unusable boxes are skipped, never a panic.
    for bad in [
        [f32::NAN, 0.0, 10.0, 10.0],
        [5.0, 5.0, 5.0, 5.0],
        [1e30, 1e30, 2e30, 2e30],
    ] {
        let _ = det.detect_near(&frames[i], &[bad]).unwrap();
    }
}

#[test]
fn the_region_bounds_the_full_pass() {
    let frames = clip();
    let det = detector(config());
    let found = faces_of_clip(&det, &frames);
    let (i, face) = &found[found.len() / 2];
    let cx = (face.bbox[0] + face.bbox[2]) / 2.0 / 640.0;
    // The half of the frame without the face: nothing; the half with it: the same face.
    let (without, with) = if cx > 0.5 {
        ([0.0, 0.0, 0.45, 1.0], [0.4, 0.0, 1.0, 1.0])
    } else {
        ([0.55, 0.0, 1.0, 1.0], [0.0, 0.0, 0.6, 1.0])
    };
    let region = |r: [f32; 4]| {
        detector(DetectorConfig {
            region: r,
            ..config()
        })
    };
    let narrow = region(without);
    assert!(narrow.pyramid_sizes()[0].0 < det.pyramid_sizes()[0].0);
    assert!(narrow.detect(&frames[*i]).unwrap().is_empty());
    let faces = region(with).detect(&frames[*i]).unwrap();
    assert_eq!(faces.len(), 1);
    assert!(iou(&faces[0].bbox, &face.bbox) > 0.8, "{:?}", faces[0].bbox);
    // Bad regions are refused.
    for r in [
        [0.5, 0.0, 0.5, 1.0],
        [0.0, 0.0, 1.2, 1.0],
        [f32::NAN, 0.0, 1.0, 1.0],
    ] {
        let e = Detector::new(
            &Path::new(ROOT).join("models"),
            640,
            480,
            DetectorConfig {
                region: r,
                ..config()
            },
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("region"), "{e}");
    }
}

#[test]
fn guided_chipper_finds_every_face_of_the_clip() {
    let frames = clip();
    let models = FaceModels::bundled();
    let open = || FaceChipper::open(&models, ChipSpec::DLIB, 640, 480, config()).unwrap();
    let mut full = open();
    let mut guided = open();
    guided.guide_detection(4, 6.0);
    // Twice through the clip: the second time starts with the last frame's expectations.
    for round in 0..2 {
        for (i, f) in frames.iter().enumerate() {
            let want = full.detect(f).unwrap();
            let got = guided.detect(f).unwrap();
            assert_eq!(got.len(), want.len(), "round {round}, frame {i}");
            for (g, w) in got.iter().zip(&want) {
                assert!(iou(&g.bbox, &w.bbox) > 0.8, "round {round}, frame {i}");
            }
        }
    }
    let stats = guided.guidance_stats();
    assert_eq!(full.guidance_stats().near, 0);
    assert!(stats.near >= 10, "{stats:?}");
    // The clip's empty lane is the same picture each time: searched whole once per stretch.
    assert!(stats.skipped_unchanged >= 8, "{stats:?}");
    assert_eq!(stats.full + stats.near + stats.skipped_unchanged, 48);
}
