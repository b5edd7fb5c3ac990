//! `trainer import`: published weights in, lanewatch ONNX models out.

pub mod dlib;

use clap::Subcommand;

pub mod mtcnn;
pub mod mtcnn_reference;
pub mod torch_pt;

#[derive(Subcommand)]
pub enum Source {
    /// dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) to an ONNX embedder.
    Dlib(dlib::Args),
    /// dlib's 5-point face landmark model (.dat) to a lanewatch landmark model (.lwsp).
    DlibLandmarks(dlib::landmarks::Args),
    /// MTCNN (P-, R-, O-Net) from facenet-pytorch 2.6.0's `data/{pnet,rnet,onet}.pt` (MIT).
    Mtcnn(mtcnn::Args),
}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {
        Source::Dlib(args) => dlib::execute(args),
        Source::DlibLandmarks(args) => dlib::landmarks::execute(args),
        Source::Mtcnn(args) => mtcnn::execute(args),
    }
}
