//! The bundled int8 embedders (`models/dlib_resnet_v1_int8.onnx`, QLinearConv, and
//! `models/dlib_resnet_v1_qdq.onnx`) load through the box's own `Embedder` and agree with the fp32
//! model on real face chips (LFW calibration images in `../shared/data/lfw/calib`, through the box's
//! detect → align path). Few faces, so that it also runs under qemu-aarch64 in CI: the integer
//! kernels there are NEON ones, not the x86 ones.

use std::path::{Path, PathBuf};

use crate::common::calib::calib_photos;
use lanewatch::vision::align::RgbChip;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::embed::Embedder;
use lanewatch::vision::faces::{FaceAnalyzer, FaceModels, read_rgb};

const FACES: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chips() -> Vec<RgbChip> {
    let files = calib_photos(FACES);
    let config = DetectorConfig {
        min_face: 20.0,
        ..DetectorConfig::default()
    };
    let mut analyzer = FaceAnalyzer::open(&FaceModels::bundled(), 250, 250, config).unwrap();
    let chips: Vec<RgbChip> = files
        .iter()
        .filter_map(|f| analyzer.main_face_chip(&read_rgb(f).unwrap()).unwrap())
        .collect();
    assert_eq!(chips.len(), FACES, "a calibration image without a face");
    chips
}

fn embed(model: &Path, chips: &[RgbChip]) -> (Embedder, Vec<Vec<f32>>) {
    let mut e = Embedder::load(model).unwrap_or_else(|err| panic!("{err}"));
    let v = chips
        .iter()
        .map(|c| e.embed_packed(&c.data, c.width, c.height).unwrap())
        .collect();
    (e, v)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn int8_and_qdq_embedders_agree_with_fp32_on_real_faces() {
    let chips = chips();
    let models = root().join("models");
    let (fp32, reference) = embed(&models.join("dlib_resnet_v1.onnx"), &chips);
    for name in ["dlib_resnet_v1_int8.onnx", "dlib_resnet_v1_qdq.onnx"] {
        let (q, got) = embed(&models.join(name), &chips);
        assert_eq!(q.spec(), fp32.spec(), "{name}: same embedding contract");
        assert_ne!(q.fingerprint(), fp32.fingerprint());
        for (i, (a, b)) in reference.iter().zip(&got).enumerate() {
            let c = cosine(a, b);
            println!("{name} face {i}: cosine to fp32 {c:.5}");
            assert!(c >= 0.99, "{name} face {i}: cosine {c}");
            // dlib's threshold is 0.6 on the Euclidean distance: drift must stay far below it.
            let d = fp32.distance(a, b);
            assert!(d < 0.06, "{name} face {i}: distance to fp32 {d}");
        }
    }
}

/// fp32 vs int8 (QLinearConv) vs QDQ time per face, interleaved so that all three see the same
/// machine load. A measurement, not a check: run it in release on the machine in question,
/// `cargo test --release -p lanewatch --test vision -- --ignored --nocapture model_int8::`.
#[test]
#[ignore = "timing measurement; run in release with --ignored"]
fn time_per_face_fp32_int8_qdq() {
    let chip = chips().remove(0);
    let models = root().join("models");
    let names = [
        "dlib_resnet_v1.onnx",
        "dlib_resnet_v1_int8.onnx",
        "dlib_resnet_v1_qdq.onnx",
    ];
    let mut embedders: Vec<Embedder> = names
        .iter()
        .map(|n| Embedder::load(&models.join(n)).unwrap())
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..43 {
        for (e, t) in embedders.iter_mut().zip(&mut times) {
            let start = std::time::Instant::now();
            e.embed_packed(&chip.data, chip.width, chip.height).unwrap();
            // The first rounds warm caches and tract's lazily built kernels.
            if round >= 3 {
                t.push(1000.0 * start.elapsed().as_secs_f64());
            }
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    for (n, m) in names.iter().zip(&medians) {
        println!(
            "{n:<28} median {m:6.1} ms per face, {:.2}x fp32's time",
            m / medians[0]
        );
    }
}
