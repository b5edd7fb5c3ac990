//! `trainer eval lfw`: the LFW protocol through the box's own detect → align → embed code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::embed::distance;
use lanewatch::vision::faces::{FaceAnalyzer, FaceModels, read_rgb};

use super::lfw::{PairsFile, Report, evaluate, score_pairs};

#[derive(clap::Subcommand)]
pub enum Protocol {
    /// LFW verification, 10-fold: mean accuracy ± std, TAR at FAR, the chosen threshold, no-face counts.
    Lfw(LfwArgs),
}

#[derive(clap::Args)]
pub struct LfwArgs {
    /// LFW-layout folder: IMAGES/NAME/NAME_NNNN.jpg.
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// The standard pairs file (header `FOLDS<TAB>N`).
    #[arg(long, value_name = "FILE")]
    pub pairs: PathBuf,
    /// The embedder ONNX to evaluate.
    #[arg(long, value_name = "M.onnx")]
    pub model: PathBuf,
    /// Folder holding the detector and landmark models (mtcnn_*.onnx, dlib_5pt.lwsp).
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// The FAR at which TAR is reported.
    #[arg(long, default_value_t = 1e-3)]
    pub far: f64,
    /// Smallest face the detector searches for, in pixels (facenet-pytorch's default; LFW has some small faces).
    #[arg(long, default_value_t = 20.0)]
    pub min_face: f32,
    /// Worker threads (each loads its own copy of the models).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn execute(protocol: Protocol) -> anyhow::Result<()> {
    match protocol {
        Protocol::Lfw(args) => {
            let (report, images) = run_lfw(&args)?;
            print_report(&args, &report, images);
            Ok(())
        }
    }
}

#[derive(serde::Serialize)]
struct ImagesSummary {
    images: usize,
    images_without_face: usize,
    seconds: f64,
}

/// Embeds every image the pairs need and scores the protocol.
pub fn run_lfw(args: &LfwArgs) -> anyhow::Result<(Report, (usize, usize, f64))> {
    let pairs = PairsFile::read(&args.pairs, &args.images)?;
    let images = pairs.images();
    if let Some(missing) = images.iter().find(|p| !p.is_file()) {
        anyhow::bail!(
            "{} is named by {} but does not exist: is --images the LFW folder (IMAGES/NAME/NAME_NNNN.jpg)?",
            missing.display(),
            args.pairs.display()
        );
    }
    let mut models = FaceModels::in_dir(&args.models_dir);
    models.embedder = args.model.clone();
    let config = DetectorConfig {
        min_face: args.min_face,
        ..DetectorConfig::default()
    };
    let start = Instant::now();
    let embeddings = embed_all(&images, &models, &config, args.threads.clamp(1, 64))?;
    let seconds = start.elapsed().as_secs_f64();
    let without_face = embeddings.values().filter(|e| e.is_none()).count();

    let probe = FaceAnalyzer::open(&models, 250, 250, config)?;
    let metric = probe.embedder().spec().metric;
    let mut scored = score_pairs(&pairs, &embeddings, |a, b| distance(metric, a, b));
    let mut folds = pairs.folds;
    if folds == 1 {
        // A one-fold file (such as LFW's fold 1 alone) would choose and test the threshold on the same
        // pairs; split it into 10 interleaved folds so the threshold is still chosen on held-out pairs.
        folds = 10;
        scored
            .iter_mut()
            .enumerate()
            .for_each(|(i, s)| s.fold = i % folds);
    }
    let report = evaluate(&scored, folds, args.far)?;
    Ok((report, (images.len(), without_face, seconds)))
}

/// Each image's embedding, `None` when no usable face was found in it.
type Embeddings = Vec<(PathBuf, Option<Vec<f32>>)>;

fn embed_all(
    images: &[PathBuf],
    models: &FaceModels,
    config: &DetectorConfig,
    threads: usize,
) -> anyhow::Result<BTreeMap<PathBuf, Option<Vec<f32>>>> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Vec<anyhow::Result<Embeddings>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Embeddings> {
                    let mut analyzer = FaceAnalyzer::open(models, 250, 250, config.clone())?;
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = images.get(i) else { break };
                        let rgb = read_rgb(path)?;
                        let face = analyzer
                            .main_face(&rgb)
                            .with_context(|| format!("analysing {}", path.display()))?;
                        out.push((path.clone(), face.and_then(|f| f.embedding)));
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_multiple_of(500) {
                            eprintln!("trainer eval: {n}/{} images", images.len());
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("an evaluation worker panicked"))
            .collect()
    });
    let mut map = BTreeMap::new();
    for r in results {
        map.extend(r?);
    }
    Ok(map)
}

fn print_report(args: &LfwArgs, r: &Report, (images, without_face, seconds): (usize, usize, f64)) {
    if args.json {
        let summary = ImagesSummary {
            images,
            images_without_face: without_face,
            seconds,
        };
        let v = serde_json::json!({ "model": args.model, "report": r, "images": summary });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("plain data serialises")
        );
        return;
    }
    println!(
        "LFW verification: {} ({} pairs, {} folds)",
        model_name(&args.model),
        r.pairs,
        r.folds.len()
    );
    println!(
        "  accuracy        {:.2}% ± {:.2}",
        100.0 * r.mean_accuracy,
        100.0 * r.std_accuracy
    );
    println!("  threshold       {:.4} (best on all pairs)", r.threshold);
    println!(
        "  TAR @ FAR {:<6}{:.2}% (threshold {:.4})",
        r.far_target,
        100.0 * r.tar_at_far,
        r.threshold_at_far
    );
    println!(
        "  no face found   {without_face} of {images} images ({:.2}%), {} pairs counted as errors",
        100.0 * without_face as f64 / images.max(1) as f64,
        r.pairs_without_face
    );
    println!(
        "  time            {seconds:.1} s ({:.1} ms per image)",
        1000.0 * seconds / images.max(1) as f64
    );
}

fn model_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
