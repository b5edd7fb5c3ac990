//! The model runtime against a model built here with `tract_onnx::pb`, checked by hand-computed output,
//! and every kind of bad model file. Runs on x86 and under qemu-aarch64 in CI.

use std::path::{Path, PathBuf};

use lanewatch::vision::contract::{Contract, EmbeddingSpec, InputSpec, Metric, Role, keys};
use lanewatch::vision::model::{Fingerprint, Model, ModelError, ModelFile};
use lanewatch::vision::onnx_writer::{Attr, GraphBuilder, encode};
use tract_onnx::prelude::*;

const H: usize = 4;
const W: usize = 5;

fn contract(dim: usize) -> Contract {
    Contract {
        role: Role::Embedder,
        name: "tiny-test-embedder".into(),
        source: "built by tests/vision/model_runtime.rs".into(),
        licence: "Apache-2.0".into(),
        precision: "fp32".into(),
        input: InputSpec {
            height: Some(H),
            width: Some(W),
            color: "RGB".into(),
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        embedding: Some(EmbeddingSpec {
            dim,
            metric: Metric::Euclidean,
            threshold: 0.5,
            far: 1e-3,
            alignment: "none".into(),
        }),
    }
}

/// A 1x1 conv (3 -> 2 channels, with bias), ReLU, global average pool, flatten: an "embedding" of
/// dimension 2 that can be computed by hand.
const WEIGHTS: [f32; 6] = [1.0, -1.0, 0.5, -2.0, 0.25, 1.0];
const BIAS: [f32; 2] = [0.1, -0.2];

fn tiny_model(declared_h: usize, c: &Contract) -> Vec<u8> {
    let mut g = GraphBuilder::new(
        "tiny",
        "image",
        &[Some(1), Some(3), Some(declared_h as i64), Some(W as i64)],
    );
    let w = g.initializer_f32("w", &[2, 3, 1, 1], &WEIGHTS);
    let b = g.initializer_f32("b", &[2], &BIAS);
    let conv = g.node(
        "Conv",
        &["image", &w, &b],
        &[("kernel_shape", Attr::Ints(vec![1, 1]))],
    );
    let relu = g.node("Relu", &[&conv], &[]);
    let pool = g.node("GlobalAveragePool", &[&relu], &[]);
    let flat = g.node("Flatten", &[&pool], &[("axis", Attr::Int(1))]);
    g.output(&flat, &[Some(1), Some(2)]);
    encode(&g.into_model(c, "lanewatch-tests"))
}

fn input_pixels() -> Vec<f32> {
    (0..3 * H * W)
        .map(|i| ((i * 37) % 23) as f32 - 9.0)
        .collect()
}

fn expected(pixels: &[f32]) -> [f32; 2] {
    let mut out = [0.0f32; 2];
    for (o, slot) in out.iter_mut().enumerate() {
        let mut sum = 0.0;
        for p in 0..H * W {
            let v: f32 = (0..3)
                .map(|c| WEIGHTS[o * 3 + c] * pixels[c * H * W + p])
                .sum::<f32>()
                + BIAS[o];
            sum += v.max(0.0);
        }
        *slot = sum / (H * W) as f32;
    }
    out
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        TempDir(crate::common::temp_dir(&format!("model-{tag}")))
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn loads_checks_contract_and_runs_against_hand_computed_output() {
    let dir = TempDir::new("ok");
    let bytes = tiny_model(H, &contract(2));
    let path = dir.write("tiny.onnx", &bytes);
    let model = Model::load(&path, Role::Embedder, 1).unwrap();
    assert_eq!(model.fingerprint, Fingerprint::of(&bytes));
    assert_eq!(model.contract.embedding.as_ref().unwrap().dim, 2);
    assert_eq!(model.input_shape, [1, 3, H, W]);

    let pixels = input_pixels();
    let input = Tensor::from_shape(&[1, 3, H, W], &pixels).unwrap();
    let out = model.run(input).unwrap();
    let got = out[0].to_plain_array_view::<f32>().unwrap();
    let want = expected(&pixels);
    assert_eq!(got.shape(), &[1, 2]);
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "got {g}, want {w}");
    }
}

fn load_err(path: &Path, role: Role) -> ModelError {
    match Model::load(path, role, 1) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_file_names_the_file() {
    let err = load_err(
        Path::new("/nonexistent/lanewatch/model.onnx"),
        Role::Embedder,
    );
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent/lanewatch/model.onnx"),
        "{err}"
    );
}

#[test]
fn truncated_file_is_not_onnx() {
    let dir = TempDir::new("trunc");
    let bytes = tiny_model(H, &contract(2));
    for cut in [0, 1, bytes.len() / 3, bytes.len() - 7] {
        let path = dir.write(&format!("cut{cut}.onnx"), &bytes[..cut]);
        let err = load_err(&path, Role::Embedder);
        assert!(
            matches!(
                err,
                ModelError::NotOnnx { .. } | ModelError::Contract { .. }
            ),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains(&format!("cut{cut}.onnx")), "{err}");
    }
}

#[test]
fn garbage_file_is_not_onnx() {
    let dir = TempDir::new("garbage");
    let path = dir.write("garbage.onnx", b"\xff\xfe this is not a protobuf \x00\x01");
    let err = load_err(&path, Role::Embedder);
    assert!(matches!(err, ModelError::NotOnnx { .. }), "{err}");
}

#[test]
fn model_without_contract_names_the_missing_field() {
    let dir = TempDir::new("nocontract");
    let mut model = {
        let bytes = tiny_model(H, &contract(2));
        <tract_onnx::pb::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap()
    };
    model.metadata_props.clear();
    let path = dir.write("bare.onnx", &encode(&model));
    let err = load_err(&path, Role::Embedder);
    assert!(matches!(err, ModelError::Contract { .. }), "{err}");
    assert!(err.to_string().contains(keys::CONTRACT), "{err}");
    assert!(err.to_string().contains("bare.onnx"), "{err}");
}

#[test]
fn wrong_role_is_refused() {
    let dir = TempDir::new("role");
    let path = dir.write("tiny.onnx", &tiny_model(H, &contract(2)));
    let err = load_err(&path, Role::MtcnnOnet);
    assert!(
        matches!(
            err,
            ModelError::WrongRole {
                expected: Role::MtcnnOnet,
                found: Role::Embedder,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn input_shape_disagreeing_with_contract_is_refused() {
    let dir = TempDir::new("shape");
    // The graph declares height H+3 while the contract says H.
    let path = dir.write("tall.onnx", &tiny_model(H + 3, &contract(2)));
    let err = load_err(&path, Role::Embedder);
    assert!(matches!(err, ModelError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("lanewatch.input.height"), "{err}");
    // And asking for another size than the contract's is refused before tract sees it.
    let ok = dir.write("tiny.onnx", &tiny_model(H, &contract(2)));
    let file = ModelFile::open(&ok).unwrap();
    let err = file
        .plan(1, H + 1, W)
        .err()
        .expect("plan with a wrong size must fail");
    assert!(err.to_string().contains("lanewatch.input.height"), "{err}");
}

#[test]
fn embedding_dim_disagreeing_with_output_is_refused() {
    let dir = TempDir::new("dim");
    let path = dir.write("dim.onnx", &tiny_model(H, &contract(128)));
    let err = load_err(&path, Role::Embedder);
    assert!(matches!(err, ModelError::Shape { .. }), "{err}");
    assert!(
        err.to_string().contains("lanewatch.embedding.dim = 128"),
        "{err}"
    );
}
