//! The `lanewatch` command line: parses arguments and hands each subcommand to `lanewatch::commands`.

use clap::{Parser, Subcommand};
use lanewatch::commands;

#[derive(Parser)]
#[command(
    name = "lanewatch",
    version,
    about = "Spots watchlisted people at checkpoint lanes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model file's contract and fingerprint, and check that it loads.
    Probe(commands::probe::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Probe(args) => commands::probe::execute(args),
    };
    commands::exit_code(result)
}
