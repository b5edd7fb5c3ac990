//! `trainer train`: FaceNet-style triplet training on burn. The work is in [`crate::train`].

pub use crate::train::TrainArgs as Args;
use crate::train::run;

/// Runs `trainer train` and prints a summary.
pub fn execute(args: Args) -> anyhow::Result<()> {
    let job = run::Job::from_args(&args)?;
    let out = run::run(&job)?;
    if let (Some(first), Some(last)) = (out.history.first(), out.history.last()) {
        println!(
            "trained steps {}..{}: loss {:.4} → {:.4}, active triplets {:.0}% → {:.0}%",
            out.first_step + 1,
            out.first_step + out.history.len() as u64,
            first.loss,
            last.loss,
            100.0 * first.active,
            100.0 * last.active
        );
    }
    if let (Some(first), Some(last)) = (out.validations.first(), out.validations.last()) {
        println!(
            "validation accuracy {:.2}% (step {}) → {:.2}% (step {})",
            100.0 * first.accuracy,
            first.step,
            100.0 * last.accuracy,
            last.step
        );
    }
    println!("checkpoint: {}", out.checkpoint.display());
    Ok(())
}
