//! One module per `trainer` subcommand, as the box keeps `src/commands/`: the command line (clap
//! types) and what the command prints. The work is in the library modules they call.

pub mod eval;
pub mod export;
pub mod import;
pub mod quantize;
pub mod train;
