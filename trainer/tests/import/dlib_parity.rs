//! Parity of the imported dlib ResNet: tract running the ONNX file against the independent plain-loop
//! forward pass (`reference.rs`) over the layers parsed from dlib's .dat, on real LFW face crops.
//!
//! The .dat (22 MB, from the PyPI sdist `face-recognition-models==0.3.0`) is not in the repository:
//! the test finds it through `LANEWATCH_DLIB_DAT`. Without it, the committed
//! `models/dlib_resnet_v1.onnx` is still loaded and checked on the same faces; with `CI` set, a
//! missing .dat is an error, so CI cannot pass without the parity check.

use std::path::{Path, PathBuf};

use lanewatch::vision::contract::{Metric, Role};
use lanewatch::vision::model::Model;
use tract_onnx::prelude::*;
use trainer::import::dlib::{self, Options, reference};

use crate::common::LFW;
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/dlib_resnet_v1.onnx");
const SIZE: usize = 150;
const TOLERANCE: f32 = 1e-4;

/// The .dat, or `None` when it is not configured (an error under CI).
fn dat_path() -> Option<PathBuf> {
    crate::common::inputs::require(
        &crate::common::inputs::DLIB_DAT,
        "parity against the .dat (the committed ONNX is still checked)",
    )
}

/// The first image of each of the first `n` people (sorted), as a centre crop resized to 150x150,
/// in RGB planes of raw 0..255 values.
fn faces(n: usize) -> Vec<(String, Vec<f32>)> {
    let dir = Path::new(LFW).join("images");
    let mut people: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot list {} ({e}); shared/ must sit beside the clone",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    people
        .iter()
        .take(n)
        .map(|person| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(person)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let img = image::open(&files[0])
                .unwrap_or_else(|e| panic!("{}: {e}", files[0].display()))
                .to_rgb8();
            // LFW faces sit in the middle of a 250x250 frame; 128 px around the centre covers a face
            // at roughly the scale of dlib's 150 px chip.
            let (w, h) = img.dimensions();
            let side = 128.min(w).min(h);
            let crop = image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side)
                .to_image();
            let chip = image::imageops::resize(
                &crop,
                SIZE as u32,
                SIZE as u32,
                image::imageops::FilterType::Triangle,
            );
            let mut planes = vec![0f32; 3 * SIZE * SIZE];
            for (x, y, p) in chip.enumerate_pixels() {
                for c in 0..3 {
                    planes[c * SIZE * SIZE + y as usize * SIZE + x as usize] = f32::from(p[c]);
                }
            }
            (
                files[0].file_name().unwrap().to_string_lossy().into_owned(),
                planes,
            )
        })
        .collect()
}

fn embed(model: &Model, planes: &[f32]) -> Vec<f32> {
    let t = Tensor::from_shape(&[1, 3, SIZE, SIZE], planes).unwrap();
    let out = model.run(t).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn load_model(path: &Path) -> Model {
    let model = Model::load(path, Role::Embedder, 1).unwrap_or_else(|e| panic!("{e}"));
    let e = model.contract.embedding.as_ref().unwrap();
    assert_eq!(model.contract.name, "dlib_resnet_v1");
    assert_eq!((e.dim, e.metric, e.threshold), (128, Metric::Cosine, 0.078));
    assert_eq!(e.alignment, "dlib-5pt-150-0.25");
    assert_eq!(model.contract.input.mean, [0.0; 3]);
    assert_eq!(model.contract.input.std, [1.0; 3]);
    model
}

/// Checks every face: tract vs the reference; returns the largest error.
fn parity(model: &Model, net: &dlib::DlibResnet, faces: &[(String, Vec<f32>)]) -> f32 {
    let mut worst = 0f32;
    for (name, planes) in faces {
        let want = reference::forward(net, planes).unwrap();
        let got = embed(model, planes);
        let err = max_abs_diff(&want, &got);
        let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
        println!("{name}: max |tract - reference| = {err:.3e} (|descriptor| = {norm:.3})");
        assert!(norm > 0.1, "{name}: a near-zero descriptor proves nothing");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn imported_onnx_matches_reference_on_lfw_faces() {
    let faces = faces(6);
    assert!(faces.len() >= 4, "need at least 4 LFW faces under {LFW}");
    let committed = load_model(Path::new(COMMITTED));

    // Without the .dat: the committed model still runs and separates different faces.
    let committed_out: Vec<Vec<f32>> = faces.iter().map(|(_, p)| embed(&committed, p)).collect();
    for (i, a) in committed_out.iter().enumerate() {
        assert!(a.iter().all(|v| v.is_finite()));
        assert_eq!(
            embed(&committed, &faces[i].1),
            *a,
            "tract is not deterministic"
        );
        for b in &committed_out[i + 1..] {
            assert!(
                distance(a, b) > 0.05,
                "two different people gave the same descriptor"
            );
        }
    }

    let Some(dat) = dat_path() else { return };
    let net = dlib::load(&dat).unwrap_or_else(|e| panic!("{e:#}"));
    let dir = crate::common::temp_dir("dlib-parity");
    let mut worst = 0f32;
    for fold_affine in [true, false] {
        let bytes = dlib::to_onnx(&net, Options { fold_affine });
        assert_eq!(
            bytes,
            dlib::to_onnx(&net, Options { fold_affine }),
            "import is not deterministic"
        );
        if fold_affine {
            // The shipped model is the default import of this very .dat.
            let shipped = std::fs::read(COMMITTED).unwrap();
            assert!(
                bytes == shipped,
                "models/dlib_resnet_v1.onnx differs from a fresh import: regenerate it with \
                 `cargo run -p trainer -- import dlib --dat $LANEWATCH_DLIB_DAT --out models/dlib_resnet_v1.onnx`"
            );
        }
        let path = dir.join(format!("fold-{fold_affine}.onnx"));
        std::fs::write(&path, &bytes).unwrap();
        let model = load_model(&path);
        let err = parity(&model, &net, &faces);
        println!(
            "fold_affine={fold_affine}: max abs error over {} faces = {err:.3e}",
            faces.len()
        );
        assert!(err <= TOLERANCE, "max abs error {err} > {TOLERANCE}");
        worst = worst.max(err);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("PARITY max abs error = {worst:.3e}");
}

/// `cargo test --release -p trainer --test import -- --ignored --nocapture dlib_parity::latency`
#[test]
#[ignore = "a timing, run by hand in a --release build"]
fn latency() {
    let model = load_model(Path::new(COMMITTED));
    let faces = faces(1);
    let planes = &faces[0].1;
    for _ in 0..3 {
        embed(&model, planes);
    }
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let t = std::time::Instant::now();
            embed(&model, planes);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "tract fp32, one 150x150 face: median {:.2} ms (min {:.2}, max {:.2}) over 20 runs",
        (times[9] + times[10]) / 2.0,
        times[0],
        times[19]
    );
}
