//! The trainer end to end on CPU: a compact MobileFaceNet trained from scratch on the LFW subset in
//! `../shared/data/lfw/images` (aligned through the box's own detect → align code), validated on
//! people held out of training. Accuracy on the held-out pairs must rise well above chance and above
//! the untrained network, the loss must fall, a seed must give the same weights twice, a resumed run
//! must equal an uninterrupted one, and the export must load in the box and match burn in tract.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use lanewatch::vision::embed::Embedder;
use trainer::export::{ExportArgs, PARITY_TOLERANCE, export};
use trainer::train::arch::{ArchConfig, EmbedNet, MobileFaceNetConfig};
use trainer::train::checkpoint::Checkpoint;
use trainer::train::command::{Backend, Settings};
use trainer::train::data::augment::{Augment, render};
use trainer::train::data::chips;
use trainer::train::loss::Mining;
use trainer::train::rng::Rng;
use trainer::train::run::{Job, Outcome, ValidationSource, load_mobilefacenet, run};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn lfw() -> PathBuf {
    crate::common::lfw_dir().join("images")
}

fn arch() -> MobileFaceNetConfig {
    MobileFaceNetConfig {
        input: 32,
        width: 0.5,
        embedding: 64,
    }
}

fn settings(steps: u64) -> Settings {
    Settings {
        steps,
        p: 8,
        k: 4,
        min_images: 1,
        // A wide margin keeps triplets active longer on this tiny set: 0.2 (FaceNet's) gave ~61%
        // held-out accuracy in a 250-step budget where 1.0 gave ~62-66% (the seed decides).
        margin: 1.0,
        mining: Mining::BatchAll,
        hard_share: 0.5,
        lr: 2e-3,
        weight_decay: 5e-4,
        warmup: 10,
        seed: 7,
        augment: Augment::DEFAULT,
        validate_every: 1000,
        checkpoint_every: 1000,
    }
}

fn job(run_dir: &Path, settings: Settings, validation: bool, resume: bool) -> Job {
    Job {
        data: lfw(),
        run: run_dir.to_path_buf(),
        models_dir: root().join("models"),
        dlib_dat: None,
        arch: ArchConfig::Mobilefacenet(arch()),
        chip_padding: 0.25,
        settings,
        validation: validation.then_some(ValidationSource::HeldOut(0.3)),
        resume,
        stop_at: None,
        threads: 2,
        backend: Backend::Cpu,
        quiet: true,
    }
}

fn fresh(name: &str) -> PathBuf {
    crate::common::temp_dir(&format!("train-lfw-{name}"))
}

/// Copies the chip cache so that later runs do not align the images again.
fn share_cache(from: &Path, to: &Path) {
    let spec = lanewatch::vision::align::ChipSpec {
        size: arch().input,
        padding: 0.25,
    };
    std::fs::copy(chips::cache_path(from, spec), chips::cache_path(to, spec)).unwrap();
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len() as f32
}

/// What a run's checkpoint computes: its header and its raw features of a fixed batch, bit for bit.
/// (The checkpoint bytes themselves differ between processes: burn records parameter ids, which
/// are drawn per process.)
fn weights(run_dir: &Path) -> (String, Vec<u32>) {
    let ckpt = Checkpoint::read(&run_dir.join("checkpoint.lwck")).unwrap();
    let device = Device::flex();
    let model = load_mobilefacenet(&ckpt, &device).unwrap();
    let mut rng = Rng::new(11);
    let input: Vec<f32> = (0..4 * 3 * 32 * 32).map(|_| rng.range(-1.0, 1.0)).collect();
    let x = Tensor::<4>::from_data(TensorData::new(input, [4, 3, 32, 32]), &device);
    let out: Vec<f32> = model.features(x).into_data().try_to_vec::<f32>().unwrap();
    (
        serde_json::to_string(&ckpt.header).unwrap(),
        out.iter().map(|v| v.to_bits()).collect(),
    )
}

#[test]
fn compact_network_learns_to_verify_held_out_people() {
    let t0 = Instant::now();
    let main = fresh("main");
    // Measured on this subset (2026-12-03), held-out accuracy untrained → trained:
    // 250 steps, seeds 1, 2, 3, 7: 52.0 → 63.5, 51.5 → 60.7, 57.3 → 63.2, 55.5 → 62.0%;
    // 400 steps, seeds 1, 7: 52.0 → 64.9, 55.5 → 65.4%. The trajectory depends on the seed and
    // on the CPU's float kernels, so the bounds below sit well inside what every run reached.
    let steps = 400;
    let out: Outcome = run(&job(&main, settings(steps), true, false)).unwrap();
    let took = t0.elapsed().as_secs_f64();
    let losses: Vec<f32> = out.history.iter().map(|s| s.loss).collect();
    let tenth = (losses.len() / 5).max(1);
    let (early, late) = (
        mean(&losses[..tenth]),
        mean(&losses[losses.len() - tenth..]),
    );
    let (before, after) = (&out.validations[0], out.validations.last().unwrap());
    println!(
        "{} train images ({} without a face), {} identities used, {} skipped; loss {early:.4} → {late:.4}; held-out accuracy {:.2}% → {:.2}% on {} pairs; {took:.0} s",
        out.images,
        out.images_without_face,
        out.identities_used,
        out.identities_skipped,
        100.0 * before.accuracy,
        100.0 * after.accuracy,
        after.pairs
    );
    assert_eq!(out.history.len() as u64, steps);
    assert!(
        late < 0.8 * early,
        "the loss did not fall: {early} → {late}"
    );
    assert!(
        after.accuracy >= 0.60,
        "held-out accuracy {:.3} is below 0.60",
        after.accuracy
    );
    assert!(
        after.accuracy >= before.accuracy + 0.06,
        "held-out accuracy {:.3} is not clearly above the untrained network's {:.3}",
        after.accuracy,
        before.accuracy
    );
    assert!(after.pairs >= 100, "only {} held-out pairs", after.pairs);

    // Same seed, same weights: two short runs, and one interrupted and resumed.
    let short = settings(4);
    let (a, b, c) = (fresh("a"), fresh("b"), fresh("c"));
    for d in [&a, &b, &c] {
        share_cache(&main, d);
    }
    run(&job(&a, short.clone(), false, false)).unwrap();
    run(&job(&b, short.clone(), false, false)).unwrap();
    assert!(
        weights(&a) == weights(&b),
        "two runs with one seed gave different checkpoints"
    );
    let mut interrupted = job(&c, short.clone(), false, false);
    interrupted.stop_at = Some(2);
    run(&interrupted).unwrap();
    let resumed = run(&job(&c, short.clone(), false, true)).unwrap();
    assert_eq!(resumed.first_step, 2);
    assert!(
        weights(&a) == weights(&c),
        "a resumed run differs from an uninterrupted one"
    );

    // Export: contract, the box's loader, and burn vs tract on real face chips.
    let onnx = main.join("embedder.onnx");
    let exported = export(&ExportArgs {
        run: main.clone(),
        out: onnx.clone(),
        threshold: None,
        far: None,
        name: None,
        licence: "test".into(),
    })
    .unwrap();
    assert!(exported.max_abs_diff <= PARITY_TOLERANCE);
    let mut embedder = Embedder::load(&onnx).unwrap();
    assert_eq!(embedder.chip_size(), (32, 32));
    assert_eq!(embedder.spec().alignment, "dlib-5pt-32-0.25");
    assert_eq!(embedder.spec().threshold, after.threshold);
    let ckpt = Checkpoint::read(&main.join("checkpoint.lwck")).unwrap();
    let device = Device::flex();
    let model = load_mobilefacenet(&ckpt, &device).unwrap();
    let spec = lanewatch::vision::align::ChipSpec {
        size: 32,
        padding: 0.25,
    };
    let some_images: Vec<PathBuf> = trainer::train::data::Dataset::scan(&lfw())
        .unwrap()
        .images()
        .into_iter()
        .step_by(60)
        .collect();
    let cached = chips::align_all(
        &some_images,
        &root().join("models"),
        spec,
        Some(&chips::cache_path(&main, spec)),
        1,
    )
    .unwrap();
    let mut worst = 0.0f32;
    let mut compared = 0;
    for chip in cached.chips.iter().flatten() {
        let tract = embedder.embed_packed(chip, 32, 32).unwrap();
        let mut input = vec![0.0; 3 * 32 * 32];
        render(chip, 32, &Augment::NONE, &mut Rng::new(0), &mut input);
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, 32, 32]), &device);
        let burn: Vec<f32> = model.embed(x).into_data().try_to_vec::<f32>().unwrap();
        worst = tract
            .iter()
            .zip(&burn)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
        compared += 1;
    }
    println!(
        "export parity on {compared} LFW chips: max |burn - tract| = {worst:.2e}; whole test {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(compared >= 8);
    assert!(worst <= PARITY_TOLERANCE, "burn vs tract differ by {worst}");
    for d in [&main, &a, &b, &c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
