//! `trainer train`: FaceNet-style training (Schroff et al., 2015) of the embedder the boxes run: a
//! CNN whose unit-length output is trained with the triplet loss over triplets mined online in P×K
//! batches, on burn (CPU by default; `vulkan` and `cuda` cargo features for GPUs).

pub mod arch;
pub mod checkpoint;
pub mod command;
pub mod data;
pub mod loss;
pub mod progress;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod validate;

pub use command::TrainArgs;

/// Runs `trainer train` and prints a summary.
pub fn execute(args: TrainArgs) -> anyhow::Result<()> {
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
