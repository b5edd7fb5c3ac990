//! `trainer import`: published weights in, lanewatch models out (dlib's face-recognition ResNet to
//! ONNX, dlib's 5-point landmark model to `.lwsp`, MTCNN to three ONNX files), each checked after
//! writing. The work is in [`crate::import`].

use std::path::PathBuf;

use anyhow::Context;
use lanewatch::vision::landmarks::write_lwsp;
use lanewatch::vision::model::Fingerprint;
use lanewatch::vision::onnx_writer::encode;
use sha2::{Digest, Sha256};

use crate::import::dlib::landmarks::import_file;
use crate::import::dlib::{Options, load, resnet, to_onnx, write_atomically};
use crate::import::mtcnn::{Net, build, check_parity};
use crate::import::torch_pt::StateDict;

#[derive(clap::Subcommand)]
pub enum Source {
    /// dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) to an ONNX embedder.
    Dlib(DlibArgs),
    /// dlib's 5-point face landmark model (.dat) to a lanewatch landmark model (.lwsp).
    DlibLandmarks(LandmarksArgs),
    /// MTCNN (P-, R-, O-Net) from facenet-pytorch 2.6.0's `data/{pnet,rnet,onet}.pt` (MIT).
    Mtcnn(MtcnnArgs),
}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {
        Source::Dlib(args) => dlib_resnet(args),
        Source::DlibLandmarks(args) => dlib_landmarks(args),
        Source::Mtcnn(args) => mtcnn(args),
    }
}

#[derive(clap::Args)]
pub struct DlibArgs {
    /// dlib's `dlib_face_recognition_resnet_model_v1.dat` (from PyPI face-recognition-models==0.3.0).
    #[arg(long, value_name = "FILE")]
    pub dat: PathBuf,
    /// Where to write the ONNX model (e.g. models/dlib_resnet_v1.onnx).
    #[arg(long, value_name = "FILE.onnx")]
    pub out: PathBuf,
    /// Keep each affine (scale+shift) as its own Mul/Add instead of folding it into the convolution
    /// before it.
    #[arg(long)]
    pub keep_affine: bool,
}

#[derive(clap::Args)]
pub struct LandmarksArgs {
    /// dlib's 5-point shape predictor (`shape_predictor_5_face_landmarks.dat`, CC0). dlib's 68-point
    /// model is refused: its training data forbids commercial use.
    #[arg(long)]
    pub dat: PathBuf,
    /// Where to write the lanewatch landmark model.
    #[arg(long, default_value = "models/dlib_5pt.lwsp")]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct MtcnnArgs {
    /// Folder holding facenet-pytorch's pnet.pt, rnet.pt and onet.pt (its `data/` folder).
    #[arg(long)]
    pub weights: PathBuf,
    /// Folder to write mtcnn_pnet.onnx, mtcnn_rnet.onnx and mtcnn_onet.onnx into.
    #[arg(long)]
    pub out: PathBuf,
}

fn dlib_resnet(args: DlibArgs) -> anyhow::Result<()> {
    let net = load(&args.dat)?;
    let bytes = to_onnx(
        &net,
        Options {
            fold_affine: !args.keep_affine,
        },
    );
    write_atomically(&args.out, &bytes)?;
    let (params, macs) = resnet::cost(&net);
    println!(
        "wrote {} ({} bytes, sha256 {}): {} layers, {params} parameters, {macs} multiply-accumulates",
        args.out.display(),
        bytes.len(),
        hex::encode(Sha256::digest(&bytes)),
        net.layers.len(),
    );
    Ok(())
}

fn dlib_landmarks(args: LandmarksArgs) -> anyhow::Result<()> {
    let model = import_file(&args.dat)?;
    write_lwsp(&args.out, &model)?;
    let bytes = std::fs::read(&args.out)
        .with_context(|| format!("cannot read back {}", args.out.display()))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    println!(
        "wrote {} ({} bytes, sha256 {sha}): {} landmarks, {} cascades of {} trees",
        args.out.display(),
        bytes.len(),
        model.num_parts,
        model.cascades.len(),
        model.cascades.first().map_or(0, |c| c.forest.len()),
    );
    Ok(())
}

/// Imports all three nets, writes them, and checks each written file against the reference.
fn mtcnn(args: MtcnnArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the output folder {}", args.out.display()))?;
    for net in Net::ALL {
        let src = args.weights.join(net.weights_file());
        let sd = StateDict::open(&src)?;
        let bytes = encode(&build(net, &sd)?);
        let dst = args.out.join(net.model_file());
        write_atomically(&dst, &bytes)?;
        let parity = check_parity(net, &sd, &dst)?;
        println!(
            "{}: {} bytes, {}, max |tract - reference| = {:.2e}",
            dst.display(),
            bytes.len(),
            Fingerprint::of(&bytes),
            parity.max_abs_err
        );
    }
    Ok(())
}
