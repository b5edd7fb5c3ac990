//! The `trainer` command line: parses arguments and hands each subcommand to the library modules.

use clap::{Parser, Subcommand};

use trainer::import;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(source) => import::execute(source),
    };
    lanewatch::commands::exit_code(result)
}
