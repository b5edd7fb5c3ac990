//! `trainer import`: published weights in, lanewatch ONNX models out.

pub mod dlib;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Source {}

pub fn execute(source: Source) -> anyhow::Result<()> {
    match source {}
}
