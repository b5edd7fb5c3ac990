//! `trainer quantize`: post-training int8 quantisation of an fp32 embedder.
//!
//! fold batch norm ([`graph`]) → calibrate on face chips ([`calibrate`], [`ranges`]) or read a
//! calibration table ([`table`]) → a `QLinearConv` graph for tract ([`qlinear`]) and a QDQ graph
//! for NPU toolchains ([`qdq`]) → the acceptance gate ([`gate`]). The models depend only on the
//! fp32 model and the table, so `--table calib/X.json` rebuilds them byte for byte without images.

pub mod calibrate;
pub mod gate;
pub mod graph;
pub mod qdq;
pub mod qlinear;
pub mod ranges;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use lanewatch::vision::contract::keys;
use tract_onnx::pb;

use crate::eval::lfw_run::{LfwArgs, run_lfw};
use graph::SourceModel;
use ranges::Method;
use table::{CalibrationTable, ImageSet, ModelRef, TensorRange};

/// Metadata keys the quantised models add to the contract.
pub mod meta {
    pub const QUANTIZATION: &str = "lanewatch.quantization";
    pub const METHOD: &str = "lanewatch.quantization.method";
    pub const TABLE_SHA256: &str = "lanewatch.quantization.table_sha256";
    pub const FP32_SHA256: &str = "lanewatch.quantization.fp32_sha256";
}

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The fp32 embedder ONNX.
    #[arg(long, value_name = "M.onnx")]
    pub model: PathBuf,
    /// Calibration images (one face each; people not in any evaluation pair). Needed to calibrate,
    /// and for the cosine gate.
    #[arg(long, value_name = "DIR")]
    pub calib_images: Option<PathBuf>,
    /// Use this calibration table instead of calibrating (reproduces the models without images).
    #[arg(long, value_name = "calib/X.json")]
    pub table: Option<PathBuf>,
    /// Where to write the table made from --calib-images [default: calib/<model name>.json].
    #[arg(long, value_name = "FILE")]
    pub table_out: Option<PathBuf>,
    /// Activation range method: minmax, percentile:P (e.g. percentile:99.99) or entropy.
    #[arg(long, default_value = "minmax")]
    pub method: String,
    /// The int8 model for tract (QLinearConv).
    #[arg(long, value_name = "M-int8.onnx")]
    pub out: PathBuf,
    /// Also write the QDQ model (for NPU toolchains).
    #[arg(long, value_name = "M-qdq.onnx")]
    pub qdq_out: Option<PathBuf>,
    /// Folder holding the detector and landmark models used to make calibration chips.
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// LFW-layout folder for the accuracy gate (with --lfw-pairs).
    #[arg(long, value_name = "DIR", requires = "lfw_pairs")]
    pub lfw_images: Option<PathBuf>,
    /// LFW pairs file: when given, the command fails if int8 loses more than 0.5 points of accuracy.
    #[arg(long, value_name = "FILE", requires = "lfw_images")]
    pub lfw_pairs: Option<PathBuf>,
    /// Worker threads for the LFW gate.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// What a run produced and measured.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub folded_batch_norms: usize,
    pub table_sha256: String,
    pub method: String,
    pub int8_sha256: String,
    pub qdq_sha256: Option<String>,
    /// Cosine to fp32 on the calibration chips (absent without --calib-images).
    pub int8_drift: Option<gate::Drift>,
    pub qdq_drift: Option<gate::Drift>,
    /// Milliseconds per face on the calibration chips, in the same run: fp32, int8, QDQ.
    pub ms_per_face: Option<(f64, f64, Option<f64>)>,
    /// LFW mean accuracy, fp32 and int8.
    pub lfw: Option<(f64, f64)>,
}

/// The quantised models as bytes, before the gate decides whether they are written.
pub struct Built {
    pub int8: Vec<u8>,
    pub qdq: Vec<u8>,
}

/// The whole command, returning what it measured.
pub fn run(args: &Args) -> anyhow::Result<Summary> {
    ensure!(
        args.calib_images.is_some() || args.table.is_some(),
        "give --calib-images DIR to calibrate, or --table calib/X.json to reuse a calibration table"
    );
    let src = SourceModel::read(&args.model)?;
    let mut folded = src.proto.clone();
    let graph = folded.graph.as_mut().expect("checked by SourceModel::read");
    let folded_count = graph::fold_batch_norm(graph)?;
    let input = src.contract.input.clone();

    let chips = match &args.calib_images {
        Some(dir) => Some(calibrate::face_chips(dir, &args.models_dir)?),
        None => None,
    };
    let (table, table_is_new) = match &args.table {
        Some(path) => {
            let t = CalibrationTable::read(path)?;
            ensure!(
                t.model.sha256 == src.fingerprint.to_hex(),
                "calibration table {} was made for the model with sha256 {}, but {} has sha256 {}",
                path.display(),
                t.model.sha256,
                args.model.display(),
                src.fingerprint.to_hex()
            );
            (t, false)
        }
        None => {
            let method: Method = args.method.parse().map_err(anyhow::Error::msg)?;
            let c = chips.as_ref().expect("checked above");
            let names = graph::activation_names(folded.graph.as_ref().expect("present"));
            let stats = calibrate::observe(&folded, &names, &input, &c.chips)?;
            let tensors = stats
                .iter()
                .map(|(n, s)| {
                    let r = TensorRange::new((s.min, s.max), ranges::choose(s, method));
                    (n.clone(), r)
                })
                .collect();
            let t = CalibrationTable {
                format: table::FORMAT.into(),
                model: ModelRef {
                    file: file_name(&args.model),
                    sha256: src.fingerprint.to_hex(),
                },
                method: method.to_string(),
                activations: table::ACTIVATIONS.into(),
                weights: table::WEIGHTS.into(),
                images: ImageSet {
                    chips: calibrate::CHIPS.into(),
                    count: c.records.len(),
                    faces: c.chips.len(),
                    files: c.records.clone(),
                },
                tensors,
            };
            (t, true)
        }
    };
    let built = build(&src, &folded, &table)?;

    let mut summary = Summary {
        folded_batch_norms: folded_count,
        table_sha256: table.sha256(),
        method: table.method.clone(),
        int8_sha256: lanewatch::vision::model::Fingerprint::of(&built.int8).to_hex(),
        qdq_sha256: args
            .qdq_out
            .as_ref()
            .map(|_| lanewatch::vision::model::Fingerprint::of(&built.qdq).to_hex()),
        int8_drift: None,
        qdq_drift: None,
        ms_per_face: None,
        lfw: None,
    };
    if let Some(c) = &chips {
        let fp32_bytes = std::fs::read(&args.model)?;
        let (reference, fp32_ms) = gate::embed_chips(&args.model, &fp32_bytes, &c.chips)?;
        let (int8, int8_ms) = gate::embed_chips(&args.out, &built.int8, &c.chips)?;
        let d = gate::drift(&reference, &int8);
        summary.int8_drift = Some(d);
        let mut qdq_ms = None;
        if let Some(p) = &args.qdq_out {
            let (qdq, ms) = gate::embed_chips(p, &built.qdq, &c.chips)?;
            summary.qdq_drift = Some(gate::drift(&reference, &qdq));
            qdq_ms = Some(ms);
        }
        summary.ms_per_face = Some((fp32_ms, int8_ms, qdq_ms));
        gate::check_drift("int8", &d)?;
        if let Some(d) = &summary.qdq_drift {
            gate::check_drift("QDQ", d)?;
        }
    }
    if let (Some(images), Some(pairs)) = (&args.lfw_images, &args.lfw_pairs) {
        // run_lfw reads a model file: evaluate a temporary copy, renamed into place only on success.
        let tmp = args.out.with_extension("onnx.gate-tmp");
        lanewatch::fsio::write_atomically(&tmp, &built.int8)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let lfw = |model: &Path| {
            let mut lfw = LfwArgs::new(
                images.clone(),
                pairs.clone(),
                model.to_path_buf(),
                args.models_dir.clone(),
            );
            lfw.threads = args.threads;
            // The gate is the pairs accuracy alone.
            lfw.watchlist_sizes.clear();
            run_lfw(&lfw).map(|r| r.pairs.mean_accuracy)
        };
        let result = lfw(&args.model).and_then(|f| lfw(&tmp).map(|i| (f, i)));
        let _ = std::fs::remove_file(&tmp);
        let (f, i) = result?;
        summary.lfw = Some((f, i));
        gate::check_lfw(f, i)?;
    }

    let write = |path: &Path, bytes: &[u8]| {
        lanewatch::fsio::write_atomically(path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write(&args.out, &built.int8)?;
    if let Some(p) = &args.qdq_out {
        write(p, &built.qdq)?;
    }
    if table_is_new {
        let path = args.table_out.clone().unwrap_or_else(|| {
            Path::new("calib").join(format!(
                "{}.json",
                args.model
                    .file_stem()
                    .map_or("model".into(), |s| s.to_string_lossy())
            ))
        });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write(&path, table.to_json().as_bytes())?;
    }
    Ok(summary)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Both quantised models from the folded fp32 graph and a table. Deterministic.
pub fn build(
    src: &SourceModel,
    folded: &pb::ModelProto,
    table: &CalibrationTable,
) -> anyhow::Result<Built> {
    let graph = folded.graph.as_ref().expect("present");
    let int8 = qlinear::rewrite(graph, table).context("building the QLinearConv graph")?;
    let qdq = qdq::rewrite(graph, table).context("building the QDQ graph")?;
    let wrap = |g: pb::GraphProto, scheme: &str| -> pb::ModelProto {
        let mut m = pb::ModelProto {
            graph: Some(g),
            producer_name: "lanewatch-trainer quantize".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            ..src.proto.clone()
        };
        for e in &mut m.metadata_props {
            if e.key == keys::PRECISION {
                e.value = "int8".into();
            }
        }
        m.metadata_props
            .retain(|e| !e.key.starts_with(meta::QUANTIZATION));
        let extra = [
            (meta::QUANTIZATION, scheme.to_string()),
            (meta::METHOD, table.method.clone()),
            (meta::TABLE_SHA256, table.sha256()),
            (meta::FP32_SHA256, src.fingerprint.to_hex()),
        ];
        m.metadata_props
            .extend(extra.into_iter().map(|(k, v)| pb::StringStringEntryProto {
                key: k.into(),
                value: v,
            }));
        m
    };
    let int8 = wrap(
        int8,
        "QLinearConv: uint8 activations per tensor, int8 weights per output channel (symmetric), int32 bias; ReLU fused; adds, pools and fc in float",
    );
    let qdq = wrap(
        qdq,
        "QDQ: QuantizeLinear/DequantizeLinear on conv, add and pool inputs (uint8 per tensor); int8 per-channel weights and int32 bias behind DequantizeLinear",
    );
    Ok(Built {
        int8: prost::Message::encode_to_vec(&int8),
        qdq: prost::Message::encode_to_vec(&qdq),
    })
}
