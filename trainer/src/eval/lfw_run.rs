//! `trainer eval lfw`'s work: the LFW protocol through the box's own detect → align → embed code
//! (1:1 verification, 1:N identification), the threshold table, and the reports it prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use lanewatch::fsio::write_atomically;
use lanewatch::vision::contract::Metric;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::embed::{Embedder, distance, l2_normalised};
use lanewatch::vision::faces::{Augmentation, FaceAnalyzer, FaceModels, read_rgb};
use lanewatch::watchlist::format::{DecisionMode, Views};
use lanewatch::watchlist::threshold_table::{
    self, FEW_FALSE_ALERTS, RateUnit, ThresholdRow, ThresholdTable,
};
use sha2::{Digest, Sha256};

use super::cache::EmbeddingCache;
use super::identification::{IdentificationReport, SearchSet};
use super::lfw::{PairsFile, Report, evaluate, score_pairs, split_folds};

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
    /// Average each descriptor over this many jittered crops of its chip (dlib's num_jitters; its
    /// published 99.38% used 100). 0 embeds each chip once, as a lane does.
    #[arg(long, default_value_t = 0)]
    pub jitter: usize,
    /// Also average in the left-right mirror of every view (two embeddings per chip without
    /// --jitter). Like --jitter, it describes both images of a pair the same way.
    #[arg(long)]
    pub mirror: bool,
    /// Worker threads (each loads its own copy of the models).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Embed every image in --images, not only those the pairs name: more people and searches for the
    /// 1:N figures (the pairs protocol is unchanged).
    #[arg(long)]
    pub all_images: bool,
    /// Watchlist sizes for the 1:N table.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub watchlist_sizes: Vec<usize>,
    /// FPIR targets for the 1:N table.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.001")]
    pub fpir: Vec<f64>,
    /// Also report FPIR and FNIR at this one threshold for each size (default: the embedder's
    /// recommended threshold from its contract, what a box uses unless configured otherwise).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Random watchlists drawn per size where the set has enough people to measure rather than model.
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    /// Seed for the watchlist draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the 1:N rows as the embedder's threshold table (read by `lanewatch enroll --fpir`),
    /// e.g. models/dlib_resnet_v1.thresholds.json.
    #[arg(long, value_name = "FILE")]
    pub thresholds_out: Option<PathBuf>,
    /// Score with this metric instead of the embedder contract's (`cosine` L2-normalises the
    /// descriptors first): compares metrics on identical embeddings.
    #[arg(long, value_parser = parse_metric)]
    pub metric: Option<Metric>,
    /// Also compare enrolling listed people from 1, 2 or 3 photos, searched by the closest photo
    /// or by their mean (people with at least 4 images; FNIR at FPIR 1%).
    #[arg(long)]
    pub enrolment_rules: bool,
    /// Draw the 1:N DET curves (FNIR against FPIR, log axes, one per watchlist size) to this SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Keep embeddings in FILE and reuse them when the models and settings are the same (a full-LFW
    /// run takes tens of minutes on a small machine).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
}

impl LfwArgs {
    /// The descriptor views `--jitter` and `--mirror` ask for.
    pub fn augmentation(&self) -> Augmentation {
        Augmentation {
            jitter: self.jitter,
            mirror: self.mirror,
        }
    }

    /// The defaults of the command line for these three paths.
    pub fn new(images: PathBuf, pairs: PathBuf, model: PathBuf, models_dir: PathBuf) -> LfwArgs {
        LfwArgs {
            images,
            pairs,
            model,
            models_dir,
            far: 1e-3,
            min_face: 20.0,
            jitter: 0,
            mirror: false,
            threads: 2,
            json: false,
            all_images: false,
            watchlist_sizes: vec![100, 1000, 10_000],
            fpir: vec![0.01, 0.001],
            threshold: None,
            draws: 10,
            seed: 1,
            thresholds_out: None,
            metric: None,
            enrolment_rules: false,
            plot: None,
            cache: None,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImagesSummary {
    pub images: usize,
    pub images_without_face: usize,
    /// Images embedded in this run (the rest came from --cache).
    pub embedded: usize,
    pub seconds: f64,
}

/// What `trainer eval lfw` measured.
pub struct LfwRun {
    pub pairs: Report,
    pub identification: IdentificationReport,
    pub images: ImagesSummary,
    /// DET curve points (FPIR, FNIR) per measured watchlist size.
    pub det: Vec<(usize, Vec<(f64, f64)>)>,
    /// The embeddings scored (normalised when the metric is cosine) and the metric.
    pub embeddings: BTreeMap<PathBuf, Option<Vec<f32>>>,
    pub metric: Metric,
}

/// Embeds every image the pairs (or, with --all-images, the folder) holds, scores the pairs protocol
/// and the 1:N searches.
pub fn run_lfw(args: &LfwArgs) -> anyhow::Result<LfwRun> {
    let pairs = PairsFile::read(&args.pairs, &args.images)?;
    let mut images = pairs.images();
    if let Some(missing) = images.iter().find(|p| !p.is_file()) {
        anyhow::bail!(
            "{} is named by {} but does not exist: is --images the LFW folder (IMAGES/NAME/NAME_NNNN.jpg)?",
            missing.display(),
            args.pairs.display()
        );
    }
    if args.all_images {
        images = all_images(&args.images)?;
    }
    let mut models = FaceModels::in_dir(&args.models_dir);
    models.embedder = args.model.clone();
    let config = DetectorConfig {
        min_face: args.min_face,
        ..DetectorConfig::default()
    };
    let mut cache = match &args.cache {
        Some(file) => {
            EmbeddingCache::open(file, &args.images, &models, &config, args.augmentation())?
        }
        None => EmbeddingCache::in_memory(),
    };
    let todo: Vec<PathBuf> = images
        .iter()
        .filter(|p| !cache.contains(p))
        .cloned()
        .collect();
    let start = Instant::now();
    let fresh = embed_all(
        &todo,
        &models,
        &config,
        args.augmentation(),
        args.threads.clamp(1, 64),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    cache.extend(fresh);
    cache.save()?;
    let embeddings: BTreeMap<PathBuf, Option<Vec<f32>>> = images
        .iter()
        .map(|p| (p.clone(), cache.get(p).cloned().flatten()))
        .collect();
    let without_face = embeddings.values().filter(|e| e.is_none()).count();

    // The metric and recommended threshold come from the embedder's contract unless --metric says
    // otherwise (the contract's threshold is then meaningless and not reported).
    let spec = Embedder::load(&models.embedder)?.spec().clone();
    let metric = args.metric.unwrap_or(spec.metric);
    let embeddings = if metric == Metric::Cosine {
        embeddings
            .into_iter()
            .map(|(p, e)| (p, e.map(l2_normalised)))
            .collect()
    } else {
        embeddings
    };
    let mut scored = score_pairs(&pairs, &embeddings, |a, b| distance(metric, a, b));
    let folds = split_folds(&mut scored, pairs.folds);
    let report = evaluate(&scored, folds, args.far)?;
    let searches = SearchSet::build(&embeddings, |a, b| distance(metric, a, b), args.threads);
    let contract_threshold = (metric == spec.metric).then_some(spec.threshold);
    let fixed = args.threshold.or(contract_threshold);
    let identification = searches.report(
        &args.watchlist_sizes,
        &args.fpir,
        fixed,
        args.draws,
        args.seed,
    );
    let det = if args.plot.is_some() {
        args.watchlist_sizes
            .iter()
            .filter_map(|&n| searches.det(n, args.draws, args.seed).map(|c| (n, c)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(LfwRun {
        pairs: report,
        identification,
        det,
        embeddings,
        metric,
        images: ImagesSummary {
            images: images.len(),
            images_without_face: without_face,
            embedded: todo.len(),
            seconds,
        },
    })
}

/// The 1:N rows as the embedder's threshold table, bound to the model file by its sha256.
pub fn write_threshold_table(args: &LfwArgs, run: &LfwRun, out: &Path) -> anyhow::Result<()> {
    let model = std::fs::read(&args.model)
        .with_context(|| format!("cannot read model file {}", args.model.display()))?;
    let id = &run.identification;
    let table = ThresholdTable {
        format: threshold_table::FORMAT.to_string(),
        views: Views::with_mirror(args.mirror),
        embedder_sha256: hex::encode(Sha256::digest(&model)),
        measured_on: format!(
            "trainer eval lfw on the folder {:?} ({} images, {} people enrolled with one image each, {} mated searches, {} random lists per measured size)",
            args.images.file_name().map_or_else(
                || args.images.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            run.images.images,
            id.people_enrolled,
            id.mated_searches,
            id.draws
        ),
        rows: id
            .rows
            .iter()
            .map(|r| ThresholdRow {
                watchlist_size: r.watchlist_size,
                fpir_target: r.fpir_target,
                threshold: r.threshold,
                fpir: r.fpir,
                fnir: r.fnir,
                method: r.method.to_string(),
                false_alerts: r.false_alerts,
                per: RateUnit::Search,
                decision: DecisionMode::Frame,
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&table).expect("plain data serialises");
    bytes.push(b'\n');
    // Read back through the box's own parser before writing: never ship a table it would refuse.
    ThresholdTable::parse(&bytes, out)?;
    write_atomically(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("trainer eval: threshold table written to {}", out.display());
    Ok(())
}

/// Every `NAME/NAME_NNNN.jpg` under an LFW folder, sorted.
pub(crate) fn all_images(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let people = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list LFW folder {}", dir.display()))?;
    for person in people {
        let person = person.with_context(|| format!("listing {}", dir.display()))?;
        if !person.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let files = std::fs::read_dir(person.path())
            .with_context(|| format!("cannot list {}", person.path().display()))?;
        for f in files {
            let path = f
                .with_context(|| format!("listing {}", person.path().display()))?
                .path();
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg"))
            {
                out.push(path);
            }
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "{} holds no NAME/NAME_NNNN.jpg images",
        dir.display()
    );
    out.sort();
    Ok(out)
}

pub(crate) fn embed_all(
    images: &[PathBuf],
    models: &FaceModels,
    config: &DetectorConfig,
    augmentation: Augmentation,
    threads: usize,
) -> anyhow::Result<BTreeMap<PathBuf, Option<Vec<f32>>>> {
    let embeddings = crate::pool::map_with(
        images,
        threads,
        || {
            let mut analyzer = FaceAnalyzer::open(models, 250, 250, config.clone())?;
            analyzer.set_augmentation(augmentation);
            Ok(analyzer)
        },
        |analyzer, _, path| {
            let rgb = read_rgb(path)?;
            let face = analyzer
                .main_face(&rgb)
                .with_context(|| format!("analysing {}", path.display()))?;
            Ok(face.and_then(|f| f.embedding))
        },
        |n| {
            if n.is_multiple_of(500) {
                eprintln!("trainer eval: {n}/{} images", images.len());
            }
        },
    )?;
    Ok(images.iter().cloned().zip(embeddings).collect())
}

pub fn print_report(args: &LfwArgs, run: &LfwRun) {
    let (r, im, id) = (&run.pairs, &run.images, &run.identification);
    if args.json {
        let v = serde_json::json!({
            "model": args.model,
            "report": r,
            "identification": id,
            "images": im,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("plain data serialises")
        );
        return;
    }
    println!(
        "LFW verification: {} ({} pairs, {} folds{}{})",
        model_name(&args.model),
        r.pairs,
        r.folds.len(),
        describe_augmentation(args.augmentation()),
        args.metric
            .map_or_else(String::new, |m| format!(", {} distance", m.as_str()))
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
        "  no face found   {} of {} images ({:.2}%), {} pairs counted as errors",
        im.images_without_face,
        im.images,
        100.0 * im.images_without_face as f64 / im.images.max(1) as f64,
        r.pairs_without_face
    );
    if im.embedded == 0 {
        println!(
            "  time            nothing to embed: all {} images from the cache",
            im.images
        );
    } else {
        println!(
            "  time            {:.1} s for {} images embedded ({:.1} ms per image), {} from the cache",
            im.seconds,
            im.embedded,
            1000.0 * im.seconds / im.embedded as f64,
            im.images - im.embedded
        );
    }
    println!();
    println!(
        "1:N identification: one enrolled image for each of {} people ({} without any face), {} mated searches ({} without a face, counted as misses)",
        id.people_enrolled, id.people_without_face, id.mated_searches, id.mated_without_face
    );
    println!(
        "  {:>9}  {:>11}  {:>9}  {:>7}  {:>8}  {:>12}  {:<18}  model: threshold, FPIR, FNIR",
        "watchlist", "FPIR target", "threshold", "FNIR", "FPIR", "false alerts", "how"
    );
    for row in &id.rows {
        let mut how = if row.method == "measured" {
            format!("measured, {} lists", id.draws)
        } else {
            "modelled".to_string()
        };
        if row.false_alerts < FEW_FALSE_ALERTS {
            how.push_str(" *");
        }
        let target = row
            .fpir_target
            .map_or_else(|| "(given)".to_string(), |t| t.to_string());
        println!(
            "  {:>9}  {:>11}  {:>9.4}  {:>6.2}%  {:>8.5}  {:>12}  {:<18}  {:.4}, {:.5}, {:.2}%",
            row.watchlist_size,
            target,
            row.threshold,
            100.0 * row.fnir,
            row.fpir,
            row.false_alerts,
            how,
            row.model_threshold,
            row.model_fpir,
            100.0 * row.model_fnir
        );
    }
    println!(
        "  alert iff distance < threshold; FNIR counts a wrong person at rank 1, a distance over the threshold, or no face"
    );
    if id.rows.iter().any(|r| r.false_alerts < FEW_FALSE_ALERTS) {
        println!(
            "  * fewer than {FEW_FALSE_ALERTS} false alerts behind the row: the set is too small to pin that threshold down"
        );
    }
}

pub fn print_enrolment_rules(args: &LfwArgs, run: &LfwRun) {
    let rows = super::enrolment::report(
        &run.embeddings,
        run.metric,
        &args.watchlist_sizes,
        0.01,
        args.draws,
        args.seed,
    );
    println!();
    println!(
        "Enrolment from several photos (people with at least {} images; FNIR at FPIR 1%, {} lists per size):",
        super::enrolment::MAX_PHOTOS + 1,
        args.draws
    );
    println!(
        "  {:>9}  {:>6}  {:<8}  {:>9}  {:>7}",
        "watchlist", "photos", "rule", "threshold", "FNIR"
    );
    for r in &rows {
        println!(
            "  {:>9}  {:>6}  {:<8}  {:>9.4}  {:>6.2}%",
            r.watchlist_size,
            r.photos,
            r.rule,
            r.threshold,
            100.0 * r.fnir
        );
    }
}

pub fn plot_identification(run: &LfwRun, plot: &Path) -> anyhow::Result<()> {
    let curves: Vec<super::det::Curve> = run
        .det
        .iter()
        .map(|(n, points)| super::det::Curve {
            label: format!("{n} listed, one search per face"),
            points: points.clone(),
            dashed: false,
        })
        .collect();
    super::det::write_svg(
        plot,
        "lanewatch 1:N identification on LFW: FNIR against FPIR per search",
        "FPIR (non-mated searches alerted)",
        "FNIR (mated searches missed)",
        &curves,
    )?;
    eprintln!("trainer eval: DET curves written to {}", plot.display());
    Ok(())
}

fn model_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// How the report's descriptors were made, for its title line.
fn describe_augmentation(a: Augmentation) -> String {
    match (a.jitter > 1, a.mirror) {
        (false, false) => String::new(),
        (true, false) => format!(", descriptors averaged over {} jittered crops", a.jitter),
        (false, true) => ", descriptors averaged with the mirrored chip".to_string(),
        (true, true) => format!(
            ", descriptors averaged over {} jittered crops and their mirrors",
            a.jitter
        ),
    }
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Metric::parse(s).ok_or_else(|| format!("unknown metric {s:?}: expected euclidean or cosine"))
}
