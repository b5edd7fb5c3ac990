//! `trainer import`: published weights in, lanewatch ONNX models out.

use clap::Subcommand;

pub mod mtcnn;
pub mod mtcnn_reference;
pub mod torch_pt;

#[derive(Subcommand)]
pub enum Source {
    /// MTCNN (P-, R-, O-Net) from facenet-pytorch 2.6.0's `data/{pnet,rnet,onet}.pt` (MIT).
    Mtcnn(mtcnn::Args),
}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {
        Source::Mtcnn(args) => mtcnn::execute(args),
    }
}
