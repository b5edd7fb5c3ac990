//! `lanewatch probe`: what a technician runs first on a box: which models are there and do they load.

use std::path::PathBuf;

use anyhow::Context;

use crate::vision::model::ModelFile;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model files to check (each one's contract is printed and a plan is built).
    #[arg(long = "model")]
    pub models: Vec<PathBuf>,
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    for path in &args.models {
        let file = ModelFile::open(path)?;
        let c = &file.contract;
        println!("{}", path.display());
        println!("  role:        {}", c.role);
        println!("  name:        {} ({})", c.name, c.precision);
        println!("  source:      {}", c.source);
        println!("  licence:     {}", c.licence);
        println!("  fingerprint: {}", file.fingerprint);
        let size = match (c.input.height, c.input.width) {
            (Some(h), Some(w)) => format!("{h}x{w}"),
            _ => "dynamic".into(),
        };
        println!(
            "  input:       NCHW {} {size}, (p - {:?}) / {:?}",
            c.input.color, c.input.mean, c.input.std
        );
        if let Some(e) = &c.embedding {
            println!(
                "  embedding:   {} dims, {}, threshold {} at FAR {}, chip {}",
                e.dim,
                e.metric.as_str(),
                e.threshold,
                e.far,
                e.alignment
            );
            file.plan_fixed(1)
                .with_context(|| format!("planning {}", path.display()))?;
            println!("  plan:        ok");
        }
    }
    Ok(())
}
