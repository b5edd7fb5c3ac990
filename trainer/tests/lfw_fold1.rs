//! The accuracy gate: LFW fold 1 (600 pairs, grayscale, `../shared/data/lfw`) through the box's own
//! detect → align → embed code with the bundled models must stay at or above 98.5%.

use std::path::PathBuf;

use trainer::eval::command::{LfwArgs, run_lfw};

#[test]
fn fold1_accuracy_of_the_bundled_embedder_is_at_least_98_5_percent() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let lfw = root.join("../shared/data/lfw");
    let args = LfwArgs {
        images: lfw.join("images"),
        pairs: lfw.join("pairs-fold1.txt"),
        model: root.join("models/dlib_resnet_v1.onnx"),
        models_dir: root.join("models"),
        far: 1e-3,
        min_face: 20.0,
        threads: 2,
        json: false,
    };
    let (report, (images, without_face, seconds)) = run_lfw(&args).unwrap();
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
}
