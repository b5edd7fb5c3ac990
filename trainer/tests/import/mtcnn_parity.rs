//! tract running the imported MTCNN graphs against the independent plain-Rust reference.
//!
//! - Random weights (always runs): exercises the import's layout changes (folded normalisation,
//!   permuted dense weights, both PReLU forms) without needing the published weights.
//! - facenet-pytorch's published weights on real LFW images (found through `$LANEWATCH_MTCNN_WEIGHTS`;
//!   required under CI, a skip notice elsewhere), and the committed `models/mtcnn_*.onnx` must be
//!   byte-identical to a fresh import.

use std::path::{Path, PathBuf};

use trainer::commands::import::{MtcnnArgs, Source, execute as import};
use trainer::import::mtcnn::{self, Net, PARITY_TOLERANCE};
use trainer::import::torch_pt::{StateDict, Tensor};

use crate::common::LFW_IMAGES as LFW;
const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        TempDir(crate::common::temp_dir(&format!("mtcnn-{tag}")))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A state dict with facenet-pytorch's names and shapes, filled with small random values.
/// `negative_slopes` puts PReLU slopes outside [0, 1] so the Relu-difference form is used.
fn random_state_dict(net: Net, negative_slopes: bool, seed: u64) -> StateDict {
    let convs: &[(&str, [usize; 4])] = match net {
        Net::P => &[
            ("conv1", [10, 3, 3, 3]),
            ("conv2", [16, 10, 3, 3]),
            ("conv3", [32, 16, 3, 3]),
            ("conv4_1", [2, 32, 1, 1]),
            ("conv4_2", [4, 32, 1, 1]),
        ],
        Net::R => &[
            ("conv1", [28, 3, 3, 3]),
            ("conv2", [48, 28, 3, 3]),
            ("conv3", [64, 48, 2, 2]),
        ],
        Net::O => &[
            ("conv1", [32, 3, 3, 3]),
            ("conv2", [64, 32, 3, 3]),
            ("conv3", [64, 64, 3, 3]),
            ("conv4", [128, 64, 2, 2]),
        ],
    };
    let denses: &[(&str, [usize; 2])] = match net {
        Net::P => &[],
        Net::R => &[
            ("dense4", [128, 576]),
            ("dense5_1", [2, 128]),
            ("dense5_2", [4, 128]),
        ],
        Net::O => &[
            ("dense5", [256, 1152]),
            ("dense6_1", [2, 256]),
            ("dense6_2", [4, 256]),
            ("dense6_3", [10, 256]),
        ],
    };
    let prelus: &[(&str, usize)] = match net {
        Net::P => &[("prelu1", 10), ("prelu2", 16), ("prelu3", 32)],
        Net::R => &[
            ("prelu1", 28),
            ("prelu2", 48),
            ("prelu3", 64),
            ("prelu4", 128),
        ],
        Net::O => &[
            ("prelu1", 32),
            ("prelu2", 64),
            ("prelu3", 64),
            ("prelu4", 128),
            ("prelu5", 256),
        ],
    };
    let mut rng = Rng(seed);
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, shift: f32| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| (rng.next() - shift) * scale).collect();
        tensors.push((name, Tensor { shape, data }));
    };
    for (name, s) in convs {
        let fan_in = (s[1] * s[2] * s[3]) as f32;
        add(
            format!("{name}.weight"),
            s.to_vec(),
            3.0 / fan_in.sqrt(),
            0.5,
        );
        add(format!("{name}.bias"), vec![s[0]], 0.2, 0.5);
    }
    for (name, c) in prelus {
        let (scale, shift) = if negative_slopes {
            (3.0, 0.5)
        } else {
            (1.0, 0.0)
        };
        add(format!("{name}.weight"), vec![*c], scale, shift);
    }
    for (name, s) in denses {
        add(
            format!("{name}.weight"),
            s.to_vec(),
            3.0 / (s[1] as f32).sqrt(),
            0.5,
        );
        add(format!("{name}.bias"), vec![s[0]], 0.2, 0.5);
    }
    StateDict {
        path: PathBuf::from(format!("random-{net:?}.pt")),
        tensors,
    }
}

fn write_model(dir: &Path, net: Net, sd: &StateDict) -> PathBuf {
    let bytes = lanewatch::vision::onnx_writer::encode(&mtcnn::build(net, sd).unwrap());
    let path = dir.join(net.model_file());
    std::fs::write(&path, bytes).unwrap();
    path
}

fn random_images(n: usize, h: usize, w: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            (0..3 * h * w)
                .map(|_| (rng.next() * 256.0).floor())
                .collect()
        })
        .collect()
}

#[test]
fn random_weights_tract_matches_reference() {
    let dir = TempDir::new("random");
    for negative in [false, true] {
        for (net, h, w, batch) in [
            (Net::P, 37, 29, 1),
            (Net::R, 24, 24, 3),
            (Net::O, 48, 48, 2),
        ] {
            let sd = random_state_dict(net, negative, 0x9e37_79b9_7f4a_7c15);
            let path = write_model(&dir.0, net, &sd);
            let images = random_images(batch, h, w, 7);
            let err = mtcnn::max_error(net, &sd, &path, &images, h, w).unwrap();
            println!("{net:?} (negative slopes: {negative}): max |tract - reference| = {err:.2e}");
            assert!(err <= PARITY_TOLERANCE, "{net:?}: {err}");
        }
    }
}

#[test]
fn a_wrong_or_extra_tensor_is_refused_by_name() {
    let mut sd = random_state_dict(Net::R, false, 3);
    sd.tensors.push((
        "num_batches_tracked".into(),
        Tensor {
            shape: vec![],
            data: vec![0.0],
        },
    ));
    let e = mtcnn::build(Net::R, &sd).unwrap_err().to_string();
    assert!(e.contains("unexpected tensor `num_batches_tracked`"), "{e}");
    let mut sd = random_state_dict(Net::O, false, 3);
    sd.tensors[0].1.shape = vec![32, 3, 2, 4];
    let e = mtcnn::build(Net::O, &sd).unwrap_err().to_string();
    assert!(
        e.contains("conv1.weight") && e.contains("[32, 3, 2, 4]"),
        "{e}"
    );
}

#[test]
fn import_names_a_missing_or_broken_weights_file() {
    let dir = TempDir::new("broken");
    let out = dir.0.join("out");
    let run = |weights: &Path| {
        import_mtcnn(MtcnnArgs {
            weights: weights.to_path_buf(),
            out: out.clone(),
        })
        .unwrap_err()
        .to_string()
    };
    let e = run(&dir.0.join("nowhere"));
    assert!(e.contains("nowhere/pnet.pt"), "{e}");
    std::fs::write(dir.0.join("pnet.pt"), b"\x80\x02\x8a\x0a\x6c\xfc\x9c").unwrap();
    let e = run(&dir.0);
    assert!(e.contains("pnet.pt") && e.contains("truncated"), "{e}");
}

fn weights_dir() -> Option<PathBuf> {
    crate::common::inputs::require(
        &crate::common::inputs::MTCNN_WEIGHTS,
        "MTCNN parity against facenet-pytorch's weights",
    )
}

/// CHW raw pixels of a centre crop of an LFW image, resized to `side`.
fn lfw_crops(count: usize, crop: (u32, u32, u32), side: u32) -> Vec<Vec<f32>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(LFW)
        .expect("LFW images (../shared/data/lfw/images)")
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .step_by(files.len() / count)
        .take(count)
        .map(|f| {
            let img = image::open(f).unwrap().to_rgb8();
            let (x, y, s) = crop;
            let c = image::imageops::crop_imm(&img, x, y, s, s).to_image();
            let r = image::imageops::resize(&c, side, side, image::imageops::FilterType::Triangle);
            let n = (side * side) as usize;
            let mut chw = vec![0.0; 3 * n];
            for (i, p) in r.pixels().enumerate() {
                for ch in 0..3 {
                    chw[ch * n + i] = p.0[ch] as f32;
                }
            }
            chw
        })
        .collect()
}

#[test]
fn published_weights_on_lfw_match_reference_and_committed_models() {
    let Some(weights) = weights_dir() else { return };
    let dir = TempDir::new("published");
    import_mtcnn(MtcnnArgs {
        weights: weights.clone(),
        out: dir.0.clone(),
    })
    .unwrap();
    for (net, images, side) in [
        // P-Net on whole faces at two pyramid-like sizes; R/O-Net on face crops.
        (Net::P, lfw_crops(3, (0, 0, 250), 75), 75),
        (Net::P, lfw_crops(2, (0, 0, 250), 131), 131),
        (Net::R, lfw_crops(16, (65, 65, 120), 24), 24),
        (Net::O, lfw_crops(16, (65, 65, 120), 48), 48),
    ] {
        let sd = StateDict::open(&weights.join(net.weights_file())).unwrap();
        let path = dir.0.join(net.model_file());
        let mut worst = 0.0f32;
        // P-Net plans are per size and batch 1; R/O-Net run as one batch.
        if net == Net::P {
            for im in &images {
                worst = worst.max(
                    mtcnn::max_error(net, &sd, &path, std::slice::from_ref(im), side, side)
                        .unwrap(),
                );
            }
        } else {
            worst = mtcnn::max_error(net, &sd, &path, &images, side, side).unwrap();
        }
        println!(
            "{net:?} on {} LFW inputs of {side}x{side}: max |tract - reference| = {worst:.2e}",
            images.len()
        );
        assert!(worst <= PARITY_TOLERANCE, "{net:?}: {worst}");
        let fresh = std::fs::read(&path).unwrap();
        let committed = std::fs::read(Path::new(MODELS).join(net.model_file()))
            .expect("models/mtcnn_*.onnx are committed");
        assert!(
            fresh == committed,
            "models/{} differs from a fresh import: re-run `trainer import mtcnn --out models`",
            net.model_file()
        );
    }
}

/// `trainer import mtcnn`.
fn import_mtcnn(args: MtcnnArgs) -> anyhow::Result<()> {
    import(Source::Mtcnn(args))
}
