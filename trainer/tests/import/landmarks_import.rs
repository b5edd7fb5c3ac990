//! `trainer import dlib-landmarks`: dlib's serialisation of a shape_predictor, written here by a
//! small encoder, decodes to the model it describes; damaged files are refused; and importing dlib's
//! real 5-point model (`LANEWATCH_DLIB_SP5_DAT`; required under CI) reproduces the committed
//! models/dlib_5pt.lwsp.

use lanewatch::vision::landmarks::{
    Cascade, RegressionTree, ShapePredictorModel, Split, file::encode_lwsp,
};
use trainer::import::dlib::landmarks::{import_file, parse_shape_predictor};

/// dlib's integer encoding: a control byte (byte count, 0x80 if negative), magnitude little-endian.
fn int(out: &mut Vec<u8>, v: i64) {
    let mag = v.unsigned_abs();
    let bytes = mag.to_le_bytes();
    let n = (8 - mag.leading_zeros() as usize / 8).max(1);
    out.push(n as u8 | if v < 0 { 0x80 } else { 0 });
    out.extend_from_slice(&bytes[..n]);
}

/// dlib's `float_details`: value = mantissa * 2^exponent.
fn float(out: &mut Vec<u8>, v: f32) {
    let (m, e) = if v == 0.0 {
        (0i64, 0i64)
    } else {
        let bits = v.to_bits();
        let exp = ((bits >> 23) & 0xff) as i64;
        let frac = i64::from(bits & 0x7f_ffff);
        let (m, e) = if exp == 0 {
            (frac, -149)
        } else {
            (frac | 0x80_0000, exp - 150)
        };
        (if v < 0.0 { -m } else { m }, e)
    };
    int(out, m);
    int(out, e);
}

fn column(out: &mut Vec<u8>, v: &[f32]) {
    int(out, -(v.len() as i64));
    int(out, -1);
    for &x in v {
        float(out, x);
    }
}

fn encode(model: &ShapePredictorModel) -> Vec<u8> {
    let mut o = Vec::new();
    int(&mut o, 1);
    column(&mut o, &model.initial_shape);
    int(&mut o, model.cascades.len() as i64);
    for c in &model.cascades {
        int(&mut o, c.forest.len() as i64);
        for t in &c.forest {
            int(&mut o, t.splits.len() as i64);
            for s in &t.splits {
                int(&mut o, s.idx1.into());
                int(&mut o, s.idx2.into());
                float(&mut o, s.thresh);
            }
            int(&mut o, t.leaf_values.len() as i64);
            for l in &t.leaf_values {
                column(&mut o, l);
            }
        }
    }
    int(&mut o, model.cascades.len() as i64);
    for c in &model.cascades {
        int(&mut o, c.anchor_idx.len() as i64);
        for &a in &c.anchor_idx {
            int(&mut o, a.into());
        }
    }
    int(&mut o, model.cascades.len() as i64);
    for c in &model.cascades {
        int(&mut o, c.deltas.len() as i64);
        for d in &c.deltas {
            float(&mut o, d[0]);
            float(&mut o, d[1]);
        }
    }
    o
}

fn model(parts: usize) -> ShapePredictorModel {
    let leaf = |k: f32| (0..2 * parts).map(|i| k * (i as f32 - 3.25)).collect();
    let tree = |k: f32| RegressionTree {
        splits: vec![
            Split {
                idx1: 0,
                idx2: 2,
                thresh: -12.5,
            },
            Split {
                idx1: 1,
                idx2: 0,
                thresh: 3.0e-3,
            },
            Split {
                idx1: 2,
                idx2: 1,
                thresh: 0.0,
            },
        ],
        leaf_values: vec![leaf(k), leaf(-k), leaf(2.0 * k), leaf(1e-7 * k)],
    };
    ShapePredictorModel {
        num_parts: parts as u32,
        initial_shape: (0..2 * parts).map(|i| 0.1 * i as f32 - 0.05).collect(),
        cascades: (0..3)
            .map(|c| Cascade {
                anchor_idx: vec![0, (c as u32 + 1) % parts as u32, parts as u32 - 1],
                deltas: vec![[0.25, -0.125], [-1.5e-3, 0.75], [0.0, -0.0]],
                forest: vec![tree(0.01 * (c + 1) as f32), tree(-0.02)],
            })
            .collect(),
    }
}

#[test]
fn dlib_encoding_decodes_to_the_same_model() {
    let m = model(5);
    assert_eq!(parse_shape_predictor(&encode(&m)).unwrap(), m);
}

#[test]
fn damaged_dlib_files_are_refused() {
    let bytes = encode(&model(5));
    for cut in [0, 1, bytes.len() / 3, bytes.len() - 1] {
        assert!(
            parse_shape_predictor(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut extra = bytes.clone();
    extra.push(0x01);
    assert!(parse_shape_predictor(&extra).is_err());

    let mut wrong_version = bytes.clone();
    wrong_version[1] = 2;
    let err = parse_shape_predictor(&wrong_version).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn other_than_five_points_is_refused_with_the_licence_reason() {
    let dir = crate::common::temp_dir("sp-import");
    let path = dir.join("sp68.dat");
    std::fs::write(&path, encode(&model(68))).unwrap();
    let err = format!("{:#}", import_file(&path).unwrap_err());
    assert!(err.contains("68-point") && err.contains("licence"), "{err}");

    std::fs::write(&path, encode(&model(5))).unwrap();
    assert_eq!(import_file(&path).unwrap(), model(5));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// dlib's 5-point model (`LANEWATCH_DLIB_SP5_DAT`): required under CI, else a skip notice.
fn sp5_dat() -> Option<std::path::PathBuf> {
    crate::common::inputs::require(
        &crate::common::inputs::DLIB_SP5_DAT,
        "importing dlib's real 5-point model and comparing with models/dlib_5pt.lwsp",
    )
}

#[test]
fn real_dlib_model_reproduces_the_committed_file() {
    let Some(dat) = sp5_dat() else { return };
    let model = import_file(&dat).unwrap();
    assert_eq!(model.num_parts, 5);
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/dlib_5pt.lwsp"
    ))
    .unwrap();
    assert!(
        encode_lwsp(&model).unwrap() == committed,
        "models/dlib_5pt.lwsp differs from a fresh import"
    );
}
