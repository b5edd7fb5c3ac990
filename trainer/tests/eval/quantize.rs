//! `trainer quantize`: the committed int8 model is reproducible from the committed calibration
//! table without images, stays within the cosine gate on real face chips (LFW calibration images in
//! `../shared/data/lfw/calib`, people in no evaluation pair), the gate refuses a broken table, and
//! bad model or table files give clear errors, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;

use lanewatch::vision::model::Fingerprint;
use trainer::quantize::{self, Args, calibrate, gate, table::CalibrationTable};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

const TABLE: &str = "calib/dlib_resnet_v1.json";
const FP32: &str = "models/dlib_resnet_v1.onnx";
const INT8: &str = "models/dlib_resnet_v1_int8.onnx";
const QDQ: &str = "models/dlib_resnet_v1_qdq.onnx";

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(crate::common::temp_dir(&format!("quantize-{tag}")))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn args(model: &Path, out: &Path) -> Args {
    Args {
        model: model.to_path_buf(),
        calib_images: None,
        table: None,
        table_out: None,
        method: "minmax".into(),
        out: out.to_path_buf(),
        qdq_out: None,
        models_dir: root().join("models"),
        lfw_images: None,
        lfw_pairs: None,
        threads: 1,
    }
}

/// A folder with the first `n` calibration images (sorted by name), linked not copied.
fn calib_subset(s: &Scratch, n: usize) -> PathBuf {
    let src = crate::common::lfw_dir().join("calib");
    let files = calibrate::list_images(&src)
        .unwrap_or_else(|e| panic!("{e:#} (CI keeps shared/ beside the clone)"));
    let dir = s.path("calib-images");
    std::fs::create_dir_all(&dir).unwrap();
    for f in files.iter().take(n) {
        std::os::unix::fs::symlink(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    dir
}

fn sha(path: &Path) -> String {
    Fingerprint::of(&std::fs::read(path).unwrap()).to_hex()
}

#[test]
fn the_committed_table_rebuilds_the_committed_models_byte_for_byte() {
    let s = Scratch::new("repro");
    let mut a = args(&root().join(FP32), &s.path("int8.onnx"));
    a.table = Some(root().join(TABLE));
    a.qdq_out = Some(s.path("qdq.onnx"));
    let summary = quantize::run(&a).unwrap();
    assert!(summary.int8_drift.is_none(), "no images, no cosine gate");
    assert_eq!(sha(&s.path("int8.onnx")), sha(&root().join(INT8)));
    assert_eq!(sha(&s.path("qdq.onnx")), sha(&root().join(QDQ)));
    // The table is only read: nothing new is written beside the outputs.
    assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 2);

    // What the graphs hold: every convolution integer in the int8 one, none left in float.
    let ops = |path: &Path| {
        let m = pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        for node in &m.graph.unwrap().node {
            *n.entry(node.op_type.clone()).or_default() += 1;
        }
        let meta: BTreeMap<String, String> = m
            .metadata_props
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        (n, meta)
    };
    let (int8, meta) = ops(&root().join(INT8));
    let (qdq, _) = ops(&root().join(QDQ));
    println!("int8 ops: {int8:?}\nQDQ ops: {qdq:?}");
    assert_eq!(int8.get("QLinearConv"), Some(&29));
    assert_eq!(int8.get("Conv"), None);
    assert_eq!(qdq.get("Conv"), Some(&29));
    assert_eq!(meta["lanewatch.precision"], "int8");
    assert_eq!(meta["lanewatch.role"], "embedder");
    assert_eq!(meta["lanewatch.quantization.method"], "minmax");
    assert_eq!(
        meta["lanewatch.quantization.table_sha256"],
        CalibrationTable::read(&root().join(TABLE))
            .unwrap()
            .sha256()
    );
    assert_eq!(
        meta["lanewatch.quantization.fp32_sha256"],
        sha(&root().join(FP32))
    );
}

#[test]
fn int8_embeddings_stay_within_the_gate_on_real_face_chips() {
    let s = Scratch::new("cosine");
    let dir = calib_subset(&s, 40);
    let chips = calibrate::face_chips(&dir, &root().join("models")).unwrap();
    assert!(chips.chips.len() >= 38, "{} faces", chips.chips.len());
    let fp32 = std::fs::read(root().join(FP32)).unwrap();
    let int8 = std::fs::read(root().join(INT8)).unwrap();
    let (a, _) = gate::embed_chips(Path::new(FP32), &fp32, &chips.chips).unwrap();
    let (b, _) = gate::embed_chips(Path::new(INT8), &int8, &chips.chips).unwrap();
    let d = gate::drift(&a, &b);
    println!(
        "int8 vs fp32 on {} chips: mean cosine {:.5}, min {:.5}",
        d.faces, d.mean_cosine, d.min_cosine
    );
    assert!(d.mean_cosine >= 0.99, "{d:?}");
    assert!(d.min_cosine >= 0.97, "{d:?}");
}

#[test]
fn the_gate_fails_on_a_table_with_ranges_scaled_1000x() {
    let s = Scratch::new("broken");
    let mut t = CalibrationTable::read(&root().join(TABLE)).unwrap();
    for r in t.tensors.values_mut() {
        r.min *= 1000.0;
        r.max *= 1000.0;
        r.observed_min *= 1000.0;
        r.observed_max *= 1000.0;
        r.scale *= 1000.0;
    }
    let table = s.file("broken.json", t.to_json().as_bytes());
    let mut a = args(&root().join(FP32), &s.path("int8.onnx"));
    a.table = Some(table);
    a.calib_images = Some(calib_subset(&s, 8));
    let e = format!("{:#}", quantize::run(&a).unwrap_err());
    assert!(
        e.contains("quantisation gate failed") && e.contains("mean cosine"),
        "{e}"
    );
    assert!(
        !s.path("int8.onnx").exists(),
        "a failed gate writes no model"
    );
}

fn run_err(a: &Args) -> String {
    match quantize::run(a) {
        Ok(_) => panic!(
            "{} with table {:?} was accepted",
            a.model.display(),
            a.table
        ),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_models_and_tables_are_refused_with_clear_errors() {
    let s = Scratch::new("malformed");
    let out = s.path("int8.onnx");
    let table = root().join(TABLE);
    let with_table = |model: &Path, table: &Path| {
        let mut a = args(model, &out);
        a.table = Some(table.to_path_buf());
        a
    };
    // Neither images nor a table.
    let e = run_err(&args(&root().join(FP32), &out));
    assert!(e.contains("--calib-images") && e.contains("--table"), "{e}");

    // Model files.
    let missing = s.path("missing.onnx");
    let e = run_err(&with_table(&missing, &table));
    assert!(e.contains("missing.onnx"), "{e}");
    let garbage = s.file("garbage.onnx", b"this is not a model at all");
    let e = run_err(&with_table(&garbage, &table));
    assert!(
        e.contains("garbage.onnx") && e.contains("not a valid ONNX"),
        "{e}"
    );
    let fp32 = std::fs::read(root().join(FP32)).unwrap();
    let truncated = s.file("truncated.onnx", &fp32[..fp32.len() / 3]);
    let e = run_err(&with_table(&truncated, &table));
    assert!(e.contains("truncated.onnx"), "{e}");
    let e = run_err(&with_table(&root().join(INT8), &table));
    assert!(e.contains("already quantised"), "{e}");
    let e = run_err(&with_table(&root().join("models/mtcnn_onet.onnx"), &table));
    assert!(e.contains("embedder"), "{e}");

    // Table files.
    let fp32_path = root().join(FP32);
    for (name, text, want) in [
        (
            "empty.json",
            String::new(),
            "not a lanewatch calibration table",
        ),
        (
            "garbage.json",
            "{\"tensors\": 3".into(),
            "not a lanewatch calibration table",
        ),
        (
            "array.json",
            "[1, 2, 3]".into(),
            "not a lanewatch calibration table",
        ),
    ] {
        let p = s.file(name, text.as_bytes());
        let e = run_err(&with_table(&fp32_path, &p));
        assert!(e.contains(name) && e.contains(want), "{e}");
    }
    let good = CalibrationTable::read(&table).unwrap();
    let edit = |name: &str, f: &dyn Fn(&mut CalibrationTable)| {
        let mut t = good.clone();
        f(&mut t);
        s.file(name, t.to_json().as_bytes())
    };
    let first = good.tensors.keys().next().unwrap().clone();
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            edit("other-model.json", &|t| t.model.sha256 = "ab".repeat(32)),
            "was made for the model with sha256",
        ),
        (
            edit("negative-scale.json", &|t| {
                t.tensors.get_mut(&first).unwrap().scale = -1.0
            }),
            "must be positive",
        ),
        (
            edit("inconsistent.json", &|t| {
                t.tensors.get_mut(&first).unwrap().scale *= 2.0
            }),
            "do not match its range",
        ),
        (
            // The input normalisation's output: the first convolution's input.
            edit("no-tensor.json", &|t| {
                t.tensors.retain(|k, _| !k.starts_with("mul"));
            }),
            "has no range for tensor",
        ),
        (
            edit("method.json", &|t| t.method = "magic".into()),
            "unknown calibration method",
        ),
        (edit("format.json", &|t| t.format = "v0".into()), "format"),
    ];
    for (p, want) in cases {
        let e = run_err(&with_table(&fp32_path, &p));
        assert!(e.contains(want), "{}: {e}", p.display());
    }
    // A non-finite number cannot even be written as JSON by serde; written by hand it is refused.
    let text = good
        .to_json()
        .replacen("\"scale\": ", "\"scale\": 1e999, \"x\": ", 1);
    let p = s.file("nan.json", text.as_bytes());
    let e = run_err(&with_table(&fp32_path, &p));
    assert!(e.contains("nan.json"), "{e}");
    assert!(!out.exists());
}

#[test]
fn the_lfw_gate_runs_when_a_pairs_file_is_given() {
    // The first 10 matched and 10 mismatched pairs of fold 1: the gate's plumbing, not a figure.
    let s = Scratch::new("lfw");
    let lfw = crate::common::lfw_dir();
    let text = std::fs::read_to_string(lfw.join("pairs-fold1.txt")).unwrap();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let small = format!(
        "1\t10\n{}\n{}\n",
        lines[..10].join("\n"),
        lines[300..310].join("\n")
    );
    let mut a = args(&root().join(FP32), &s.path("int8.onnx"));
    a.table = Some(root().join(TABLE));
    a.lfw_images = Some(lfw.join("images"));
    a.lfw_pairs = Some(s.file("pairs.txt", small.as_bytes()));
    a.threads = 2;
    let summary = quantize::run(&a).unwrap();
    let (fp32, int8) = summary.lfw.expect("the LFW gate ran");
    println!("20 pairs: fp32 {fp32:.3}, int8 {int8:.3}");
    assert!(fp32 - int8 <= 0.005);
    assert_eq!(sha(&s.path("int8.onnx")), sha(&root().join(INT8)));
    assert!(
        !s.path("int8.onnx.gate-tmp").exists(),
        "the temporary model is removed"
    );
}

/// Runs a one-input ONNX graph in tract on `x` (`[1, 3, 5, 5]`).
fn run_tract(m: &pb::ModelProto, x: &[f32]) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let plan = tract_onnx::onnx()
        .model_for_proto_model(m)
        .unwrap()
        .with_input_fact(0, f32::fact([1, 3, 5, 5]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::Array4::from_shape_vec((1, 3, 5, 5), x.to_vec())
        .unwrap()
        .into_tensor();
    let out = plan.run(tvec!(input.into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn batch_norm_and_affines_fold_into_the_convolutions_exactly() {
    use lanewatch::vision::onnx_writer::{Attr, GraphBuilder};
    use trainer::quantize::graph::fold_batch_norm;
    let vals = |n: usize, seed: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.8)
            .collect()
    };
    let mut g = GraphBuilder::new("fold", "x", &[Some(1), Some(3), Some(5), Some(5)]);
    let w1 = g.initializer_f32("w1", &[4, 3, 3, 3], &vals(108, 0.1));
    let b1 = g.initializer_f32("b1", &[4], &vals(4, 0.2));
    let c1 = g.node(
        "Conv",
        &["x", &w1, &b1],
        &[
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ],
    );
    // dlib's affine_con, unfolded: a per-channel Mul then Add.
    let gamma = g.initializer_f32("gamma", &[1, 4, 1, 1], &[1.5, -0.5, 0.25, 2.0]);
    let beta = g.initializer_f32("beta", &[1, 4, 1, 1], &[0.1, 0.2, -0.3, 0.0]);
    let m = g.node("Mul", &[&c1, &gamma], &[]);
    let a = g.node("Add", &[&m, &beta], &[]);
    let w2 = g.initializer_f32("w2", &[2, 4, 1, 1], &vals(8, 0.3));
    let c2 = g.node(
        "Conv",
        &[&a, &w2],
        &[("kernel_shape", Attr::Ints(vec![1, 1]))],
    );
    let scale = g.initializer_f32("bn_scale", &[2], &[0.9, 1.1]);
    let bias = g.initializer_f32("bn_bias", &[2], &[0.05, -0.05]);
    let mean = g.initializer_f32("bn_mean", &[2], &[0.2, -0.1]);
    let var = g.initializer_f32("bn_var", &[2], &[0.5, 2.0]);
    let bn = g.node(
        "BatchNormalization",
        &[&c2, &scale, &bias, &mean, &var],
        &[("epsilon", Attr::Float(1e-3))],
    );
    let r = g.node("Relu", &[&bn], &[]);
    g.output(&r, &[Some(1), Some(2), Some(5), Some(5)]);
    let c = lanewatch::vision::contract::Contract {
        role: lanewatch::vision::contract::Role::MtcnnPnet,
        name: "fold".into(),
        source: "test".into(),
        licence: "Apache-2.0".into(),
        precision: "fp32".into(),
        input: lanewatch::vision::contract::InputSpec {
            height: None,
            width: None,
            color: "RGB".into(),
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        embedding: None,
    };
    let model = g.into_model(&c, "test");
    let mut folded = model.clone();
    assert_eq!(fold_batch_norm(folded.graph.as_mut().unwrap()).unwrap(), 2);
    let ops: Vec<&str> = folded
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert_eq!(ops, ["Conv", "Conv", "Relu"]);
    let x = vals(75, 0.7);
    let (want, got) = (run_tract(&model, &x), run_tract(&folded, &x));
    let err = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-5, "max abs error {err}");
}
