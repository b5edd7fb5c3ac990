//! The `trainer` command line: parses arguments and hands each subcommand to the library modules.

use clap::{Parser, Subcommand};

use trainer::{eval, import};

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
    Eval(eval::command::Protocol),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(source) => import::execute(source),
        Command::Eval(protocol) => eval::command::execute(protocol),
    };
    lanewatch::commands::exit_code(result)
}
