//! `trainer eval`: the LFW protocol (1:1 and 1:N) and the per-passer lane evaluation, through the
//! box's own detect → align → embed code. The work is in [`crate::eval`].

use crate::eval::lfw_run::{self as lfw, LfwArgs};

#[derive(clap::Subcommand)]
pub enum Protocol {
    /// LFW verification, 10-fold: mean accuracy ± std, TAR at FAR, the chosen threshold, no-face counts;
    /// then 1:N identification: FNIR at FPIR targets and the threshold for each watchlist size.
    Lfw(LfwArgs),
    /// Per-passer accuracy of a lane: walk-through clips of people through the lane's own tracks,
    /// quality, fusion and decisions; FNIR at per-passer FPIR for frame against passage decisions,
    /// DET curves, and the per-passer rows of the threshold table.
    Lane(crate::eval::lane::LaneArgs),
}

pub fn execute(protocol: Protocol) -> anyhow::Result<()> {
    match protocol {
        Protocol::Lfw(args) => {
            // A table is read by `lanewatch enroll`, and lanes never jitter: one made from jittered
            // descriptors would pick thresholds for distances no lane sees.
            anyhow::ensure!(
                args.thresholds_out.is_none() || args.jitter <= 1,
                "--thresholds-out cannot be used with --jitter: lanes describe faces without jitter"
            );
            let run = lfw::run_lfw(&args)?;
            lfw::print_report(&args, &run);
            if args.enrolment_rules {
                lfw::print_enrolment_rules(&args, &run);
            }
            if let Some(plot) = &args.plot {
                lfw::plot_identification(&run, plot)?;
            }
            if let Some(out) = &args.thresholds_out {
                lfw::write_threshold_table(&args, &run, out)?;
            }
            Ok(())
        }
        Protocol::Lane(args) => crate::eval::lane::execute(&args).map(|_| ()),
    }
}
