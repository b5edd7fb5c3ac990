//! `lanewatch probe`: what a technician runs first on a box: which models are there and do they load.

use std::path::PathBuf;

use anyhow::Context;

use crate::vision::model::ModelFile;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX model files to check (each one's contract is printed and a plan is built).
    #[arg(long = "model")]
    pub models: Vec<PathBuf>,
    /// List the V4L2 cameras with their formats and frame sizes (the default when no --model is given).
    #[arg(long)]
    pub cameras: bool,
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    if args.cameras || args.models.is_empty() {
        print_cameras();
    }
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

#[cfg(feature = "v4l2")]
fn print_cameras() {
    let cameras = crate::camera::v4l2::list_cameras();
    if cameras.is_empty() {
        println!(
            "no V4L2 devices (/dev/video*) found: is the camera plugged in and its driver loaded?"
        );
    }
    for c in cameras {
        println!("{}", c.path.display());
        if !c.card.is_empty() {
            println!("  card:    {} (driver {}, bus {})", c.card, c.driver, c.bus);
        }
        if let Some(e) = &c.error {
            println!("  error:   {e}");
        } else if !c.usable {
            println!(
                "  not a streaming video capture node (metadata or output node): not usable as a lane camera"
            );
        }
        for (fourcc, description, sizes) in &c.formats {
            println!("  format:  {fourcc} ({description}): {}", sizes.join(", "));
        }
        if c.usable {
            println!("  use as:  --source v4l2:{}", c.path.display());
        }
    }
}

#[cfg(not(feature = "v4l2"))]
fn print_cameras() {
    println!(
        "this build has no V4L2 support: rebuild with the default feature `v4l2` to list cameras"
    );
}
