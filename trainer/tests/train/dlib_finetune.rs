//! dlib's ResNet rebuilt in burn from the published .dat must give the same descriptors as the
//! imported ONNX file (`models/dlib_resnet_v1.onnx`, itself checked against dlib) on real face chips
//! aligned by the box's own code; then a short fine-tune from those weights must run, checkpoint,
//! and export to a file the box loads, matching burn in tract.
//!
//! The .dat is found through `LANEWATCH_DLIB_DAT` (as in `dlib_parity.rs`); without it the test is a
//! no-op, except under CI where that is an error.

use std::path::PathBuf;

use burn::prelude::*;
use lanewatch::vision::align::ChipSpec;
use lanewatch::vision::embed::Embedder;
use trainer::export::{ExportArgs, PARITY_TOLERANCE, export};
use trainer::train::arch::{ArchConfig, DlibResnetNet, EmbedNet};
use trainer::train::checkpoint::Checkpoint;
use trainer::train::command::{Backend, Settings};
use trainer::train::data::augment::{Augment, render};
use trainer::train::data::{Dataset, chips};
use trainer::train::loss::Mining;
use trainer::train::rng::Rng;
use trainer::train::run::{Job, ValidationSource, load_dlib_resnet, run};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn dat() -> Option<PathBuf> {
    crate::common::inputs::require(
        &crate::common::inputs::DLIB_DAT,
        "the dlib fine-tuning test",
    )
}

fn burn_features(net: &DlibResnetNet, chip: &[u8], device: &Device, unit: bool) -> Vec<f32> {
    let mut input = vec![0.0; 3 * 150 * 150];
    render(chip, 150, &Augment::NONE, &mut Rng::new(0), &mut input);
    let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, 150, 150]), device);
    let y = if unit { net.embed(x) } else { net.features(x) };
    y.into_data().try_to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn dlib_resnet_in_burn_matches_the_imported_model_and_fine_tunes() {
    let Some(dat) = dat() else { return };
    let device = Device::flex();
    let net =
        DlibResnetNet::from_dlib(&trainer::import::dlib::load(&dat).unwrap(), &device).unwrap();
    assert_eq!(net.convs.len(), 29);

    let lfw = crate::common::lfw_dir().join("images");
    let images: Vec<PathBuf> = Dataset::scan(&lfw)
        .unwrap()
        .images()
        .into_iter()
        .step_by(100)
        .collect();
    let cached =
        chips::align_all(&images, &root().join("models"), ChipSpec::DLIB, None, 2).unwrap();
    let mut bundled = Embedder::load(&root().join("models/dlib_resnet_v1.onnx")).unwrap();
    let mut worst = 0.0f32;
    let mut n = 0;
    for chip in cached.chips.iter().flatten() {
        let want = bundled.embed_raw_packed(chip, 150, 150).unwrap();
        worst = worst.max(max_diff(&burn_features(&net, chip, &device, false), &want));
        n += 1;
    }
    println!(
        "dlib ResNet, burn vs the imported ONNX in tract on {n} LFW chips: max |diff| {worst:.2e}"
    );
    assert!(n >= 5);
    assert!(
        worst <= 1e-4,
        "burn's dlib ResNet differs from the imported ONNX by {worst}"
    );

    // A short fine-tune from the .dat: it must run, checkpoint and export.
    let run_dir = crate::common::temp_dir("dlib-finetune");
    let job = Job {
        data: lfw,
        run: run_dir.clone(),
        models_dir: root().join("models"),
        arch: ArchConfig::DlibResnet,
        dlib_dat: Some(dat),
        chip_padding: 0.25,
        settings: Settings {
            steps: 2,
            p: 3,
            k: 2,
            min_images: 2,
            margin: 0.2,
            mining: Mining::SemiHard,
            hard_share: 0.5,
            lr: 1e-5,
            weight_decay: 0.0,
            warmup: 0,
            seed: 3,
            augment: Augment::DEFAULT,
            validate_every: 100,
            checkpoint_every: 100,
        },
        validation: Some(ValidationSource::HeldOut(0.05)),
        resume: false,
        stop_at: None,
        threads: 2,
        backend: Backend::Cpu,
        quiet: true,
    };
    let out = run(&job).unwrap();
    assert_eq!(out.history.len(), 2);
    let (before, after) = (&out.validations[0], out.validations.last().unwrap());
    println!(
        "fine-tune: loss {:.4} → {:.4}; held-out accuracy {:.2}% → {:.2}% on {} pairs",
        out.history[0].loss,
        out.history[1].loss,
        100.0 * before.accuracy,
        100.0 * after.accuracy,
        after.pairs
    );
    // The published network already verifies people it never saw.
    assert!(before.accuracy >= 0.9, "{}", before.accuracy);

    let onnx = run_dir.join("dlib-finetuned.onnx");
    let e = export(&ExportArgs {
        run: run_dir.clone(),
        out: onnx.clone(),
        threshold: None,
        far: None,
        name: None,
        licence: "CC0-1.0 weights fine-tuned on LFW (test only)".into(),
    })
    .unwrap();
    assert!(e.max_abs_diff <= PARITY_TOLERANCE);
    let mut tuned = Embedder::load(&onnx).unwrap();
    assert_eq!(tuned.spec().alignment, "dlib-5pt-150-0.25");
    let model = load_dlib_resnet(
        &Checkpoint::read(&run_dir.join("checkpoint.lwck")).unwrap(),
        &device,
    )
    .unwrap();
    let mut worst = 0.0f32;
    for chip in cached.chips.iter().flatten() {
        let got = tuned.embed_packed(chip, 150, 150).unwrap();
        worst = worst.max(max_diff(&burn_features(&model, chip, &device, true), &got));
    }
    println!("fine-tuned export, burn vs tract on {n} chips: max |diff| {worst:.2e}");
    assert!(worst <= PARITY_TOLERANCE, "{worst}");
    std::fs::remove_dir_all(&run_dir).unwrap();
}
