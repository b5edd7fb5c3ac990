//! `trainer export`: a checkpoint → an ONNX embedder with lanewatch's model contract.
//!
//! burn-onnx traces the inference-mode forward pass (batch norm folded to its running statistics,
//! the final L2 normalisation included) into ONNX opset 18; the file is then re-read as a protobuf
//! (`tract_onnx::pb`) to add the contract to `metadata_props`. Before anything is written, tract runs
//! the new file and must agree with burn's forward pass to 1e-4 on a set of inputs; otherwise the
//! export fails.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::prelude::*;
use burn_onnx::export::OnnxExporter;
use lanewatch::vision::align::ChipSpec;
use lanewatch::vision::contract::{Contract, EmbeddingSpec, InputSpec, Metric, Role};
use lanewatch::vision::model::ModelFile;
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::Tensor as TractTensor;

use crate::train::arch::{ArchConfig, EmbedNet};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::data::augment::{PIXEL_MEAN, PIXEL_STD};
use crate::train::rng::Rng;
use crate::train::run::{load_dlib_resnet, load_mobilefacenet};

/// The largest difference allowed between burn's and tract's embeddings.
pub const PARITY_TOLERANCE: f32 = 1e-4;

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Run folder (its checkpoint.lwck) or a checkpoint file.
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The ONNX file to write, e.g. models/mobilefacenet_v1.onnx.
    #[arg(long, value_name = "FILE.onnx")]
    pub out: PathBuf,
    /// Match threshold (Euclidean distance between unit embeddings); default: the one the run's
    /// last validation chose.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// The false accept rate the threshold gives; default: the run's last validation's.
    #[arg(long)]
    pub far: Option<f32>,
    /// Model name in the contract; default `ARCH-INPUT-STEP`.
    #[arg(long)]
    pub name: Option<String>,
    /// Licence of the weights (it depends on the training data).
    #[arg(long, default_value = "see the training data's terms")]
    pub licence: String,
}

/// What an export wrote and measured.
#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub contract: Contract,
    pub max_abs_diff: f32,
    pub bytes: usize,
}

/// The checkpoint a `--run` argument names: the folder's `checkpoint.lwck` or the file itself.
pub fn checkpoint_path(run: &Path) -> PathBuf {
    if run.is_dir() {
        run.join(checkpoint::FILE_NAME)
    } else {
        run.to_path_buf()
    }
}

pub fn export(args: &ExportArgs) -> anyhow::Result<Exported> {
    let ckpt = Checkpoint::read(&checkpoint_path(&args.run))?;
    let h = &ckpt.header;
    let (threshold, far) = match (args.threshold, args.far, &h.validation) {
        (Some(t), Some(f), _) => (t, f),
        (t, f, Some(v)) => (
            t.unwrap_or(v.threshold),
            // A validation with no false accept at its threshold still bounds FAR by one pair in
            // the number of different-person pairs; the contract needs a positive value.
            f.unwrap_or((v.far as f32).max(2.0 / v.pairs.max(1) as f32)),
        ),
        _ => anyhow::bail!(
            "{} has no validation to take the match threshold from: train with --pairs/--images or --hold-out, or give --threshold and --far",
            ckpt.path.display()
        ),
    };
    let spec = ChipSpec {
        size: h.chip_size,
        padding: h.chip_padding,
    };
    let contract = Contract {
        role: Role::Embedder,
        name: args
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}-step{}", h.arch.name(), spec.size, h.step)),
        source: format!(
            "lanewatch trainer: {} trained {} steps ({} mining, seed {})",
            h.arch.name(),
            h.step,
            h.settings.mining.as_str(),
            h.settings.seed
        ),
        licence: args.licence.clone(),
        precision: "fp32".into(),
        input: InputSpec {
            height: Some(spec.size),
            width: Some(spec.size),
            color: "RGB".into(),
            mean: [PIXEL_MEAN; 3],
            std: [PIXEL_STD; 3],
        },
        embedding: Some(EmbeddingSpec {
            dim: h.arch.embedding(),
            // Unit-length outputs (normalised inside the graph) compared by Euclidean distance:
            // the distance the triplet loss trained and the threshold was chosen on.
            metric: Metric::Euclidean,
            threshold,
            far,
            alignment: spec.name(),
        }),
    };
    let device = Device::flex();
    let (bytes, max_abs_diff) = match &h.arch {
        ArchConfig::Mobilefacenet(_) => {
            let model = load_mobilefacenet(&ckpt, &device)?;
            to_onnx(model, &contract, spec.size, &device)?
        }
        ArchConfig::DlibResnet => {
            let model = load_dlib_resnet(&ckpt, &device)?;
            to_onnx(model, &contract, spec.size, &device)?
        }
    };
    lanewatch::fsio::write_atomically(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(Exported {
        path: args.out.clone(),
        contract,
        max_abs_diff,
        bytes: bytes.len(),
    })
}

/// The ONNX bytes of `model` with `contract`, and the largest burn-vs-tract difference measured on
/// a few inputs (checked against [`PARITY_TOLERANCE`]). Takes the model by value: tracing moves its
/// batch-norm statistics (shared between clones) to burn's capture device, so burn's reference
/// outputs are computed first.
pub fn to_onnx<M: EmbedNet>(
    model: M,
    contract: &Contract,
    size: usize,
    device: &Device,
) -> anyhow::Result<(Vec<u8>, f32)> {
    let mut rng = Rng::new(0x0E59);
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|_| (0..3 * size * size).map(|_| rng.range(-1.0, 1.0)).collect())
        .collect();
    let wants: Vec<Vec<f32>> = inputs
        .iter()
        .map(|input| burn_embed(&model, input, size, device))
        .collect::<anyhow::Result<_>>()?;

    let sample = Tensor::<4>::zeros([1, 3, size, size], device);
    let onnx = OnnxExporter::new()
        .export(&model, sample, |m: &M, x: Tensor<4>| m.embed(x))
        .map_err(|e| anyhow::anyhow!("burn-onnx could not export the network: {e}"))?;
    let mut proto = pb::ModelProto::decode(onnx.as_bytes())
        .context("burn-onnx wrote a file that is not an ONNX protobuf")?;
    proto.producer_name = "lanewatch-trainer".into();
    proto.metadata_props = contract
        .to_metadata()
        .into_iter()
        .map(|(key, value)| pb::StringStringEntryProto { key, value })
        .collect();
    let bytes = proto.encode_to_vec();

    // Parity: the same inputs through tract, planned exactly as the box plans an embedder.
    let file = ModelFile::from_bytes(Path::new("<export>"), &bytes)?;
    let plan = file.plan_fixed(1)?;
    let mut worst = 0.0f32;
    for (input, want) in inputs.iter().zip(&wants) {
        let t = TractTensor::from_shape(&[1, 3, size, size], input)?;
        let out = plan.run(t)?;
        let got = out[0].to_plain_array_view::<f32>()?;
        anyhow::ensure!(
            got.len() == want.len(),
            "tract gave {} values, burn {}",
            got.len(),
            want.len()
        );
        worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    anyhow::ensure!(
        worst <= PARITY_TOLERANCE,
        "the exported graph disagrees with burn's forward pass by {worst:.2e} (limit {PARITY_TOLERANCE:.0e}); not written"
    );
    Ok((bytes, worst))
}

/// burn's unit embedding of one normalised NCHW input.
pub fn burn_embed<M: EmbedNet>(
    model: &M,
    input: &[f32],
    size: usize,
    device: &Device,
) -> anyhow::Result<Vec<f32>> {
    let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), [1, 3, size, size]), device);
    model
        .embed(x)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}
