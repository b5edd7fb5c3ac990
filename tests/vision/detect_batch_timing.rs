//! Measures R-Net and O-Net time per crop for several batch sizes in tract, to choose
//! `detect::BATCH`. A measurement, not a check: run it in release,
//! `cargo test --release -p lanewatch --test vision -- --ignored --nocapture detect_batch_timing::`.

use std::path::Path;
use std::time::Instant;

use lanewatch::vision::detect::{ONET_FILE, RNET_FILE};
use lanewatch::vision::model::ModelFile;
use tract_onnx::prelude::*;

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models");

#[test]
#[ignore = "timing measurement; run in release with --ignored"]
fn time_per_crop_by_batch_size() {
    for (file, side) in [(RNET_FILE, 24), (ONET_FILE, 48)] {
        let mf = ModelFile::open(&Path::new(MODELS).join(file)).unwrap();
        for batch in [1usize, 2, 4, 8, 16, 32] {
            let plan = mf.plan(batch, side, side).unwrap();
            let data: Vec<f32> = (0..batch * 3 * side * side)
                .map(|i| (i * 7 % 256) as f32)
                .collect();
            let input = tract_ndarray::Array4::from_shape_vec((batch, 3, side, side), data)
                .unwrap()
                .into_tensor();
            plan.run(input.clone()).unwrap();
            let runs = (256 / batch).max(8);
            let t = Instant::now();
            for _ in 0..runs {
                plan.run(input.clone()).unwrap();
            }
            let per_run = t.elapsed() / runs as u32;
            println!(
                "{file} batch {batch:>2}: {per_run:>10.2?} per run, {:>8.2?} per crop",
                per_run / batch as u32
            );
        }
    }
}
