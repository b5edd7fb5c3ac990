//! The `.lwsp` landmark model file and shape-predictor inference on small hand-made models whose
//! output can be worked out by hand, plus every kind of damaged file.

use std::path::Path;

use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::file::{MAGIC, VERSION, encode_lwsp};
use lanewatch::vision::landmarks::{
    Cascade, LandmarkFileError, Point, Rect, RegressionTree, ShapePredictor, ShapePredictorModel,
    Split, load_lwsp, read_lwsp, write_lwsp,
};
use sha2::{Digest, Sha256};

const INITIAL: [f32; 10] = [0.8, 0.3, 0.6, 0.3, 0.2, 0.3, 0.4, 0.3, 0.5, 0.7];

/// One cascade, one depth-1 tree: feature 0 sits on landmark 4 (no offset), feature 1 on landmark 0
/// shifted by (-0.8, 0). If feature 0 is brighter than feature 1 by more than 10, leaf 0 moves every
/// landmark by (+0.1, 0); otherwise leaf 1 moves them by (0, +0.1).
fn tiny_model() -> ShapePredictorModel {
    ShapePredictorModel {
        num_parts: 5,
        initial_shape: INITIAL.to_vec(),
        cascades: vec![Cascade {
            anchor_idx: vec![4, 0],
            deltas: vec![[0.0, 0.0], [-0.8, 0.0]],
            forest: vec![RegressionTree {
                splits: vec![Split {
                    idx1: 0,
                    idx2: 1,
                    thresh: 10.0,
                }],
                leaf_values: vec![[0.1, 0.0].repeat(5).to_vec(), [0.0, 0.1].repeat(5).to_vec()],
            }],
        }],
    }
}

fn expected(shift: [f32; 2], rect: Rect) -> [Point; 5] {
    let (w, h) = (
        (rect.right - rect.left) as f64,
        (rect.bottom - rect.top) as f64,
    );
    std::array::from_fn(|i| {
        let x = f64::from(INITIAL[2 * i] + shift[0]) * w + f64::from(rect.left);
        let y = f64::from(INITIAL[2 * i + 1] + shift[1]) * h + f64::from(rect.top);
        Point::new((x + 0.5).floor() as f32, (y + 0.5).floor() as f32)
    })
}

#[test]
fn tiny_model_follows_the_tree() {
    let sp = ShapePredictor::new(&tiny_model()).unwrap();
    let mut scratch = sp.scratch();
    let rect = Rect::new(10, 20, 109, 119);
    let (w, h) = (140, 150);
    // Feature 0 lands at landmark 4: (0.5, 0.7) -> (59.5, 89.3) -> pixel (60, 89).
    // Feature 1 lands at (0.0, 0.3) -> (10, 49.7) -> pixel (10, 50).
    for (bright0, bright1, shift) in [
        (200u8, 100u8, [0.1, 0.0]),
        (100, 200, [0.0, 0.1]),
        (110, 100, [0.0, 0.1]), // a difference of exactly 10 is not "> 10"
    ] {
        let mut gray = vec![0u8; w * h];
        gray[89 * w + 60] = bright0;
        gray[50 * w + 10] = bright1;
        let img = ImageView::gray(&gray, w, h).unwrap();
        let got = sp.predict(&img, rect, &mut scratch);
        assert_eq!(got, expected(shift, rect), "{bright0} vs {bright1}");

        // dlib's intensity of an RGB pixel is the truncated mean of its channels.
        let rgb: Vec<u8> = gray
            .iter()
            .flat_map(|&v| [v.saturating_add(1), v, v.saturating_sub(1)])
            .collect();
        let img = ImageView::rgb(&rgb, w, h).unwrap();
        assert_eq!(sp.predict(&img, rect, &mut scratch), expected(shift, rect));
    }
}

#[test]
fn pixels_outside_the_image_read_as_zero() {
    let sp = ShapePredictor::new(&tiny_model()).unwrap();
    let mut scratch = sp.scratch();
    // The box hangs off the left edge: feature 1 (x = -30) falls outside and reads 0, feature 0
    // (x = 19.5 -> 20) reads 255.
    let rect = Rect::new(-30, 0, 69, 99);
    let gray = vec![255u8; 100 * 100];
    let img = ImageView::gray(&gray, 100, 100).unwrap();
    assert_eq!(
        sp.predict(&img, rect, &mut scratch),
        expected([0.1, 0.0], rect)
    );
    // Wholly outside: both features read 0, so the right branch is taken.
    let far = Rect::new(1000, 1000, 1099, 1099);
    assert_eq!(
        sp.predict(&img, far, &mut scratch),
        expected([0.0, 0.1], far)
    );
}

#[test]
fn a_scratch_from_default_still_works() {
    let sp = ShapePredictor::new(&tiny_model()).unwrap();
    let gray = vec![7u8; 64 * 64];
    let img = ImageView::gray(&gray, 64, 64).unwrap();
    let rect = Rect::new(5, 5, 60, 60);
    let a = sp.predict(&img, rect, &mut Default::default());
    let b = sp.predict(&img, rect, &mut sp.scratch());
    assert_eq!(a, b);
}

#[test]
fn file_round_trip() {
    let dir = crate::common::temp_dir("lwsp");
    let path = dir.join("tiny.lwsp");
    write_lwsp(&path, &tiny_model()).unwrap();
    assert_eq!(load_lwsp(&path).unwrap(), tiny_model());
    ShapePredictor::open(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn with_body(body: &[u8], version: u32) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

fn read(bytes: &[u8]) -> Result<ShapePredictorModel, LandmarkFileError> {
    read_lwsp(bytes, Path::new("models/test.lwsp"))
}

#[test]
fn damaged_files_are_refused_with_the_reason() {
    let good = encode_lwsp(&tiny_model()).unwrap();
    assert_eq!(read(&good).unwrap(), tiny_model());

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        read(&flipped),
        Err(LandmarkFileError::Checksum { .. })
    ));

    for cut in [0, 2, 10, good.len() - 1] {
        let err = read(&good[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                LandmarkFileError::Truncated { .. } | LandmarkFileError::Checksum { .. }
            ),
            "cut at {cut}: {err}"
        );
    }

    let err = read(b"\x01\x00\x00\x00 this is a dlib .dat file").unwrap_err();
    assert!(matches!(err, LandmarkFileError::BadMagic { .. }));
    assert!(err.to_string().contains("trainer import dlib-landmarks"));
    assert!(err.to_string().contains("models/test.lwsp"));

    let body = postcard::to_stdvec(&tiny_model()).unwrap();
    assert!(matches!(
        read(&with_body(&body, VERSION + 1)),
        Err(LandmarkFileError::UnsupportedVersion { found, .. }) if found == VERSION + 1
    ));

    let mut long = body.clone();
    long.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(
        read(&with_body(&long, VERSION)),
        Err(LandmarkFileError::TrailingBytes { count: 3, .. })
    ));

    assert!(matches!(
        read(&with_body(&body[..body.len() / 2], VERSION)),
        Err(LandmarkFileError::Decode { .. })
    ));

    // A length field claiming far more elements than the file holds fails cleanly.
    let mut huge = vec![5u8]; // num_parts
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // initial_shape: 4 billion floats
    assert!(matches!(
        read(&with_body(&huge, VERSION)),
        Err(LandmarkFileError::Decode { .. })
    ));
}

fn invalid(model: &ShapePredictorModel) -> String {
    let body = postcard::to_stdvec(model).unwrap();
    match read(&with_body(&body, VERSION)) {
        Err(e @ LandmarkFileError::Invalid { .. }) => e.to_string(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn inconsistent_models_are_refused_before_inference() {
    let mut m = tiny_model();
    m.cascades[0].forest[0].splits[0].idx2 = 2;
    assert!(invalid(&m).contains("reads features 0 and 2"));

    let mut m = tiny_model();
    m.cascades[0].anchor_idx[1] = 5;
    assert!(invalid(&m).contains("anchored to landmark 5"));

    let mut m = tiny_model();
    m.cascades[0].forest[0].leaf_values.pop();
    assert!(invalid(&m).contains("not a complete binary tree"));

    let mut m = tiny_model();
    m.cascades[0].forest[0].leaf_values[1].push(0.0);
    assert!(invalid(&m).contains("leaf 1 has 11 values"));

    let mut m = tiny_model();
    m.cascades[0].deltas.pop();
    assert!(invalid(&m).contains("2 anchors but 1 deltas"));

    let mut m = tiny_model();
    m.initial_shape[3] = f32::NAN;
    assert!(invalid(&m).contains("not finite"));

    let mut m = tiny_model();
    m.initial_shape.truncate(8);
    assert!(invalid(&m).contains("initial shape has 8 values"));

    // Valid as a model, but not a 5-point one: the predictor refuses it.
    let mut m = tiny_model();
    m.num_parts = 4;
    m.initial_shape.truncate(8);
    m.cascades[0].anchor_idx[0] = 3;
    for leaf in &mut m.cascades[0].forest[0].leaf_values {
        leaf.truncate(8);
    }
    read(&with_body(&postcard::to_stdvec(&m).unwrap(), VERSION)).unwrap();
    assert!(ShapePredictor::new(&m).is_err());
}

#[test]
fn image_views_check_their_buffers() {
    assert!(ImageView::gray(&[0; 11], 3, 4).is_err());
    assert!(ImageView::rgb(&[0; 12], 2, 2).is_ok());
    assert!(ImageView::rgb(&[0; 12], usize::MAX, 2).is_err());
}
