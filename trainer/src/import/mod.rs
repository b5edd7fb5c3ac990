//! `trainer import`: published weights in, lanewatch ONNX models out.

pub mod dlib;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Source {
    /// dlib's 5-point face landmark model (.dat) to a lanewatch landmark model (.lwsp).
    DlibLandmarks(dlib::landmarks::Args),
}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {
        Source::DlibLandmarks(args) => dlib::landmarks::execute(args),
    }
}
