//! The `trainer` command line: parses arguments and hands each subcommand to the library modules.

use clap::{Parser, Subcommand};

use trainer::commands::{eval, export, import, quantize, train};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "lanewatch's central trainer: import, train, export, quantise, evaluate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert published source weights into lanewatch ONNX models with the model contract.
    #[command(subcommand)]
    Import(import::Source),
    /// Evaluate an embedder through the box's own detect → align → embed code.
    #[command(subcommand)]
    Eval(eval::Protocol),
    /// Post-training int8 quantisation of an embedder: calibration table, QLinearConv and QDQ models, acceptance gate.
    Quantize(quantize::Args),
    /// Train an embedder with the triplet loss (FaceNet) on a folder-per-identity dataset.
    Train(Box<train::Args>),
    /// Write a run's checkpoint as an ONNX embedder with the model contract (checked against burn in tract).
    Export(export::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(source) => import::execute(source),
        Command::Eval(protocol) => eval::execute(protocol),
        Command::Quantize(args) => quantize::execute(args),
        Command::Train(args) => train::execute(*args),
        Command::Export(args) => export::execute(args),
    };
    lanewatch::commands::exit_code(result)
}
