//! One module per subcommand: each has `Args` (clap) and `execute`, so that `main.rs` only dispatches.

pub mod bench;
pub mod demo;
pub mod enroll;
pub mod keygen;
pub mod probe;
pub mod run;
pub mod sync;
pub mod watchlist;

/// Prints an error chain the way a user can act on it and maps it to an exit code.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lanewatch: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
