//! `trainer import`: published weights in, lanewatch ONNX models out.

pub mod dlib;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Source {
    /// dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) to an ONNX embedder.
    Dlib(dlib::Args),
    /// dlib's 5-point face landmark model (.dat) to a lanewatch landmark model (.lwsp).
    DlibLandmarks(dlib::landmarks::Args),
}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {
        Source::Dlib(args) => dlib::execute(args),
        Source::DlibLandmarks(args) => dlib::landmarks::execute(args),
    }
}
