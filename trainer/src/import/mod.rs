//! `trainer import`: published weights in, lanewatch ONNX models out.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Source {}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {}
}
