//! Running the `lanewatch` binary from integration tests.

use std::process::{Command, Output};

/// Runs `lanewatch ARGS` in the crate folder (so `models/` resolves) and waits for it.
pub fn lanewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanewatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run lanewatch")
}

/// Its stdout and stderr, one after the other.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
