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
    /// Watch a camera and raise alerts for watchlisted faces: the lane box's main job.
    Run(commands::run::Args),
    /// Run the real pipeline on the bundled sample clip (no camera, no network).
    Demo(commands::demo::Args),
    /// Per-stage latency, frames per second and resident memory on the bundled clip or a source.
    Bench(commands::bench::Args),
    /// List cameras and their formats, or show a model file's contract and check that it loads.
    Probe(commands::probe::Args),
    /// Enrol people from photos (one folder per person) into a signed watchlist.
    Enroll(commands::enroll::Args),
    /// Create an ed25519 key pair for signing watchlists.
    Keygen(commands::keygen::Args),
    /// Inspect, verify, diff, install or roll back watchlist files.
    Watchlist(commands::watchlist::Args),
    /// Fetch the signed watchlist from a web server and install it when it changed.
    Sync(commands::sync::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::execute(args),
        Command::Demo(args) => commands::demo::execute(args),
        Command::Bench(args) => commands::bench::execute(args),
        Command::Probe(args) => commands::probe::execute(args),
        Command::Enroll(args) => commands::enroll::execute(args),
        Command::Keygen(args) => commands::keygen::execute(args),
        Command::Watchlist(args) => commands::watchlist::execute(args),
        Command::Sync(args) => commands::sync::execute(args),
    };
    commands::exit_code(result)
}
