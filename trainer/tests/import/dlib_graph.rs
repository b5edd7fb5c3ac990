//! The ONNX graph builder against the plain-loop reference on a small synthetic dlib-style network
//! with random weights: every layer kind of the face-recognition ResNet, including add_prev's
//! zero-extension in channels and the 3x3-vs-4x4 spatial case. Needs no dlib file, so CI always runs it.

use std::path::Path;

use lanewatch::vision::contract::Role;
use lanewatch::vision::model::Model;
use tract_onnx::prelude::*;
use trainer::import::dlib::resnet::{Conv, DlibResnet, EMBEDDING_DIM, INPUT_SIZE, Layer, Pool};
use trainer::import::dlib::{Options, reference, to_onnx};

struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

fn conv(rng: &mut Rng, channels: usize, filters: usize, size: usize, stride: usize) -> Layer {
    // He-like scale keeps activations of order 1 through the stack.
    let scale = (2.0 / (channels * size * size) as f32).sqrt() * 1.7;
    Layer::Conv(Conv {
        filters,
        channels,
        size,
        stride,
        padding: if stride == 1 { size / 2 } else { 0 },
        weights: rng.vec(filters * channels * size * size, scale),
        bias: rng.vec(filters, 0.1),
    })
}

fn affine(rng: &mut Rng, channels: usize) -> Layer {
    Layer::Affine {
        gamma: (0..channels).map(|_| 1.0 + 0.3 * rng.next()).collect(),
        beta: rng.vec(channels, 0.2),
    }
}

/// relu(add_prev2(avg_pool(skip1(tag2(conv/2, affine, relu, conv, affine (tag1 x)))))).
fn down(rng: &mut Rng, layers: &mut Vec<Layer>, cin: usize, cout: usize) {
    layers.push(Layer::Tag(1));
    layers.push(conv(rng, cin, cout, 3, 2));
    layers.push(affine(rng, cout));
    layers.push(Layer::Relu);
    layers.push(conv(rng, cout, cout, 3, 1));
    layers.push(affine(rng, cout));
    layers.push(Layer::Tag(2));
    layers.push(Layer::Skip(1));
    layers.push(Layer::AvgPool(Pool {
        size: 2,
        stride: 2,
        padding: 0,
    }));
    layers.push(Layer::AddPrev(2));
    layers.push(Layer::Relu);
}

fn synthetic() -> DlibResnet {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut layers = vec![
        conv(&mut rng, 3, 4, 7, 2), // 150 -> 72
        affine(&mut rng, 4),
        Layer::Relu,
        Layer::MaxPool(Pool {
            size: 3,
            stride: 2,
            padding: 0,
        }), // 72 -> 35
        // A same-size residual block.
        Layer::Tag(1),
        conv(&mut rng, 4, 4, 3, 1),
        affine(&mut rng, 4),
        Layer::Relu,
        conv(&mut rng, 4, 4, 3, 1),
        affine(&mut rng, 4),
        Layer::AddPrev(1),
        Layer::Relu,
    ];
    down(&mut rng, &mut layers, 4, 6); // 35 -> 17 (conv and pool agree)
    down(&mut rng, &mut layers, 6, 8); // 17 -> 8
    down(&mut rng, &mut layers, 8, 8); // 8 -> conv 3x3, pool 4x4: zero-extension in space
    layers.push(Layer::AvgPool(Pool {
        size: 0,
        stride: 1,
        padding: 0,
    }));
    layers.push(Layer::Fc {
        inputs: 8,
        outputs: EMBEDDING_DIM,
        weights: rng.vec(8 * EMBEDDING_DIM, 0.5),
    });
    DlibResnet {
        mean: [122.782, 117.001, 104.298],
        input_size: INPUT_SIZE,
        layers,
        margin: 0.04,
        distance_threshold: 0.6,
    }
}

fn pixels(seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..3 * INPUT_SIZE * INPUT_SIZE)
        .map(|_| ((rng.next() + 1.0) * 127.5).round())
        .collect()
}

fn run_tract(onnx: &[u8], input: &[f32]) -> Vec<f32> {
    let dir = crate::common::temp_dir("dlib-graph");
    let path = dir.join(format!("net-{}.onnx", onnx.len()));
    std::fs::write(&path, onnx).unwrap();
    let model = Model::load(Path::new(&path), Role::Embedder, 1).unwrap();
    let t = Tensor::from_shape(&[1, 3, INPUT_SIZE, INPUT_SIZE], input).unwrap();
    let out = model.run(t).unwrap();
    let _ = std::fs::remove_file(&path);
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

#[test]
fn synthetic_network_matches_reference_with_and_without_folding() {
    let net = synthetic();
    for fold_affine in [false, true] {
        let onnx = to_onnx(&net, Options { fold_affine });
        for seed in [1u64, 2, 3] {
            let input = pixels(seed);
            let want = reference::forward(&net, &input).unwrap();
            let got = run_tract(&onnx, &input);
            assert_eq!(got.len(), EMBEDDING_DIM);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                scale > 1e-2,
                "degenerate output, the test would prove nothing"
            );
            let err = max_abs_diff(&want, &got);
            println!(
                "fold_affine={fold_affine} seed={seed}: max |err| {err:.3e} (max |y| {scale:.3})"
            );
            assert!(err <= 1e-4 * scale.max(1.0), "max error {err}");
        }
    }
}

#[test]
fn zero_extension_changes_the_result() {
    // Guards the test above: if add_prev dropped the extended part, outputs would differ.
    let mut net = synthetic();
    let input = pixels(7);
    let full = reference::forward(&net, &input).unwrap();
    // Replace the last skip/pool path by the plain block output (no add): a different network.
    let last_add = net
        .layers
        .iter()
        .rposition(|l| matches!(l, Layer::AddPrev(_)))
        .unwrap();
    net.layers.remove(last_add);
    let without = reference::forward(&net, &input).unwrap();
    assert!(max_abs_diff(&full, &without) > 1e-3);
}

#[test]
fn import_is_deterministic() {
    let net = synthetic();
    let a = to_onnx(&net, Options { fold_affine: true });
    let b = to_onnx(&net, Options { fold_affine: true });
    assert_eq!(a, b);
    assert_ne!(a, to_onnx(&net, Options { fold_affine: false }));
}
