//! The accuracy gate: LFW fold 1 (600 pairs, grayscale, `../shared/data/lfw`) through the box's own
//! detect → align → embed code with the bundled models must stay at or above 98.5%. The same run
//! checks the 1:N table on those images and that the embeddings cache gives the same figures back.

use std::path::PathBuf;

use lanewatch::fsio::TempDir;
use trainer::eval::lfw_run::{LfwArgs, run_lfw};

#[test]
fn fold1_accuracy_of_the_bundled_embedder_is_at_least_98_5_percent() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let lfw = crate::common::lfw_dir();
    let tmp = TempDir::new("lfw-fold1").unwrap();
    let mut args = LfwArgs::new(
        lfw.join("images"),
        lfw.join("pairs-fold1.txt"),
        root.join("models/dlib_resnet_v1.onnx"),
        root.join("models"),
    );
    args.cache = Some(tmp.path().join("embeddings.json"));
    let run = run_lfw(&args).unwrap();
    let (report, im) = (&run.pairs, &run.images);
    let (images, without_face, seconds) = (im.images, im.images_without_face, im.seconds);
    println!(
        "fold 1: {:.2}% at threshold {:.4}, TAR {:.2}% @ FAR 1e-3, {without_face} of {images} images without a face, {seconds:.0} s",
        100.0 * report.mean_accuracy,
        report.threshold,
        100.0 * report.tar_at_far
    );
    assert_eq!(report.pairs, 600);
    assert!(
        report.mean_accuracy >= 0.985,
        "fold-1 accuracy {:.2}% is below 98.5%",
        100.0 * report.mean_accuracy
    );
    assert!(
        without_face * 200 <= images,
        "{without_face} of {images} images had no face (limit 0.5%)"
    );

    // 1:N on the same 807 images: 435 people, 372 mated searches. A list of 100 is measured on random
    // draws; 1,000 and 10,000 are more people than the set holds, so they are modelled.
    let id = &run.identification;
    for row in &id.rows {
        println!("{row:?}");
    }
    assert_eq!(id.people_enrolled + id.people_without_face, 435);
    assert_eq!(id.mated_searches, 807 - 435);
    // Two FPIR targets and the model's own threshold (0.6) for each of three sizes.
    assert_eq!(id.rows.len(), 9);
    let row = |n: usize, fpir: f64| {
        id.rows
            .iter()
            .find(|r| r.watchlist_size == n && r.fpir_target == Some(fpir))
            .unwrap()
    };
    let at_default = |n: usize| {
        id.rows
            .iter()
            .find(|r| r.watchlist_size == n && r.fpir_target.is_none())
            .unwrap()
    };
    let (m100, m1000, m10k) = (row(100, 0.01), row(1000, 0.01), row(10_000, 0.01));
    assert_eq!(m100.method, "measured");
    assert_eq!(m1000.method, "modelled");
    assert!(m100.fpir <= 0.01, "{m100:?}");
    // Measured on this small set (10 lists of 100 people): at FPIR 1% the threshold is near 0.45 and
    // about 45% of mated searches are missed; the model lands within 0.05 of the measured threshold.
    assert!(m100.fnir < 0.6, "{m100:?}");
    assert!(
        (m100.threshold - m100.model_threshold).abs() < 0.05,
        "{m100:?}"
    );
    // A longer list needs a threshold at least as strict for the same FPIR, and misses as many.
    assert!(m10k.threshold <= m1000.threshold && m1000.threshold < m100.threshold);
    assert!(m10k.fnir >= m1000.fnir && m1000.fnir >= m100.fnir);
    assert!(row(100, 0.001).threshold <= m100.threshold);
    // The contract's own threshold (cosine 0.078, its FAR-1e-3 point) is a 1:1 threshold: on a
    // list of 100 it misses few but alerts on strangers far more often than 1%, and more so as the
    // list grows.
    let (d100, d1000) = (at_default(100), at_default(1000));
    assert_eq!(d100.threshold, 0.078);
    assert!(d100.fnir < m100.fnir && d100.fpir > 0.05, "{d100:?}");
    assert!(d1000.fpir > d100.fpir, "{d1000:?}");

    // The second run takes every embedding from the cache and gives the same figures.
    let again = run_lfw(&args).unwrap();
    assert_eq!(again.images.embedded, 0);
    assert_eq!(again.pairs.mean_accuracy, report.mean_accuracy);
    assert_eq!(again.pairs.threshold, report.threshold);
    assert_eq!(
        serde_json::to_string(&again.identification).unwrap(),
        serde_json::to_string(id).unwrap()
    );
}
