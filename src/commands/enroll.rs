//! `lanewatch enroll`: photos (one folder per person) → a signed watchlist, through the box's own
//! detect → align → embed code, so enrolment and matching see faces the same way.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::enrollment::{
    ListTerms, PhotoRule, PhotoRules, enrol_folder, lookalikes, sign_watchlist,
};
use crate::fsio::write_atomically;
use crate::vision::detect::DetectorConfig;
use crate::vision::faces::{FaceAnalyzer, FaceModels};
use crate::watchlist::format::{DecisionMode, Severity, Thresholds, Views};
use crate::watchlist::keys::read_signing_key;
use crate::watchlist::threshold_table::{self, ThresholdTable};
use crate::watchlist::verify::EmbedderId;

#[derive(clap::Args)]
pub struct Args {
    /// Folder with one sub-folder per person (the folder name is the person's id); photos are JPEG or PNG.
    #[arg(long, value_name = "DIR")]
    pub photos: PathBuf,
    /// Secret key to sign with (`lanewatch keygen`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The watchlist file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Sequence number; must be above the one installed on the boxes, at most 2^53. Default: the current Unix time.
    #[arg(long, value_parser = crate::commands::watchlist::parse_sequence)]
    pub sequence: Option<u64>,
    /// Validity from now, e.g. `30d`, `12h`, `90m` (default 30 days).
    #[arg(long, default_value = "30d")]
    pub expires: String,
    /// List name recorded in every entry (shown in alerts).
    #[arg(long, default_value = "watchlist")]
    pub list: String,
    /// Severity of every entry: low, medium, high or critical.
    #[arg(long, default_value = "high")]
    pub severity: String,
    /// Folder with the bundled models (detector, landmarks, embedder).
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Describe every face by the mean of its chip's and its mirror image's descriptors, here and on
    /// the lanes that load this list (the list records it): on LFW it finds more listed people at
    /// the same false-alert rate, for twice the embedding work per live face (models/README.md).
    #[arg(long)]
    pub mirror: bool,
    /// Smallest face side, in pixels, accepted in an enrolment photo.
    #[arg(long, default_value_t = 80.0)]
    pub min_face_px: f32,
    /// Match threshold written into the list (distance); default: the embedder's recommended one,
    /// or with --fpir the one the threshold table gives for this list's size.
    #[arg(long, conflicts_with = "fpir")]
    pub max_distance: Option<f32>,
    /// Choose the threshold that keeps false alerts on strangers (FPIR) to this share for a list of
    /// this size, from the embedder's threshold table (`trainer eval lfw --thresholds-out`).
    #[arg(long)]
    pub fpir: Option<f64>,
    /// The threshold table; default: NAME.thresholds.json beside the embedder.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// How lanes decide with this list, and so which rows of the threshold table --fpir reads:
    /// `passage` (one decision per tracked passer on their fused faces; FPIR counted per passer) or
    /// `frame` (every face on its own, the old behaviour).
    #[arg(long, default_value = "passage", value_parser = parse_decision)]
    pub decision: DecisionMode,
    /// Build the list from the photos that pass and print what was refused, instead of refusing
    /// the whole run (which lists every refused photo).
    #[arg(long)]
    pub skip_refused: bool,
    /// In a photo showing several people, enrol the largest face instead of refusing the photo.
    #[arg(long)]
    pub largest_face: bool,
    /// Least face quality score (0..1) a photo needs; default: the lane's `passage.min_quality`.
    #[arg(long)]
    pub min_quality: Option<f32>,
    /// How several photos of one person make their entry: `mean` (one averaged embedding: on full
    /// LFW it misses fewer listed people at the same FPIR, models/README.md) or `closest` (one
    /// embedding per photo, a live face is as close as its closest photo).
    #[arg(long, default_value = "mean", value_parser = parse_photo_rule)]
    pub photo_rule: PhotoRule,
    /// Required margin between the best and the second-best identity for an alert.
    #[arg(long, default_value_t = 0.0)]
    pub min_margin: f32,
}

fn parse_validity(text: &str) -> anyhow::Result<u64> {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .with_context(|| format!("--expires {text:?}: expected a number and d, h or m"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => bail!("--expires {text:?}: expected a number followed by d, h or m"),
    };
    anyhow::ensure!(n > 0, "--expires {text:?} must be positive");
    n.checked_mul(secs).context("--expires is too large")
}

fn parse_photo_rule(text: &str) -> Result<PhotoRule, String> {
    PhotoRule::parse(text).ok_or_else(|| format!("--photo-rule {text:?}: expected closest or mean"))
}

fn parse_decision(text: &str) -> Result<DecisionMode, String> {
    match text {
        "passage" => Ok(DecisionMode::Passage),
        "frame" => Ok(DecisionMode::Frame),
        _ => Err(format!("--decision {text:?}: expected passage or frame")),
    }
}

fn parse_severity(text: &str) -> anyhow::Result<Severity> {
    Ok(match text {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => bail!("--severity {text:?}: expected low, medium, high or critical"),
    })
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    let key = read_signing_key(&args.key)?;
    let severity = parse_severity(&args.severity)?;
    let validity = parse_validity(&args.expires)?;
    let models = FaceModels::in_dir(&args.models_dir);
    let embedder = EmbedderId::from_model_file(&models.embedder)?;
    let mut analyzer = FaceAnalyzer::open(&models, 640, 480, DetectorConfig::default())?;
    // Photos are described exactly as the lanes will describe live faces (the list records how):
    // an entry made another way, e.g. with dlib's jitter, drifts from the faces it is compared with.
    let views = Views::with_mirror(args.mirror);
    analyzer.set_augmentation(views.augmentation());
    let spec = analyzer.embedder().spec().clone();
    let table_file = args
        .thresholds
        .clone()
        .unwrap_or_else(|| threshold_table::default_path(&models.embedder, views));
    // A table named on the command line must be readable; the default one is optional.
    let table = if args.thresholds.is_some() || args.fpir.is_some() || table_file.is_file() {
        let t = ThresholdTable::read(&table_file)?;
        t.check_embedder(&embedder.fingerprint, &table_file)?;
        t.check_views(views, &table_file)?;
        Some(t)
    } else {
        None
    };

    // Two photos of one person are a 1:1 comparison. The contract's threshold is its FAR-1e-3
    // point, which parts about 5% of genuine pairs on LFW; this is a sanity check that must refuse
    // only clearly different people, so it allows half as much again (above the pairs protocol's
    // best-accuracy threshold, about 1.2 times it).
    let mut rules = PhotoRules::new(
        args.min_face_px,
        args.max_distance.unwrap_or(1.5 * spec.threshold),
    );
    rules.largest_face = args.largest_face;
    rules.combine = args.photo_rule;
    if let Some(q) = args.min_quality {
        rules.min_quality = q;
    }
    let enrolment = enrol_folder(&mut analyzer, &args.photos, &rules)?;
    let people = if args.skip_refused {
        for r in &enrolment.refused {
            eprintln!("lanewatch enroll: refused {r}");
        }
        eprintln!(
            "lanewatch enroll: {} people enrolled, {} photo(s) or folder(s) refused",
            enrolment.people.len(),
            enrolment.refused.len()
        );
        anyhow::ensure!(
            !enrolment.people.is_empty(),
            "{}: every photo was refused; nothing to enrol",
            args.photos.display()
        );
        enrolment.people
    } else {
        enrolment.all_or_error()?
    };
    let threshold = match (args.fpir, &table) {
        (Some(fpir), Some(table)) => {
            let choice = table
                .choose(people.len(), fpir, args.decision)
                .with_context(|| format!("choosing a threshold from {}", table_file.display()))?;
            eprintln!(
                "lanewatch enroll: threshold {:.4} keeps FPIR at {fpir} per {} for lists of up to {} people with {} decisions; it missed {:.1}% of listed {}s ({}, {})",
                choice.threshold,
                choice.row.per.as_str(),
                choice.row.watchlist_size,
                choice.row.decision.as_str(),
                100.0 * choice.row.fnir,
                choice.row.per.as_str(),
                choice.row.method,
                table.measured_on
            );
            if choice.row.false_alerts < threshold_table::FEW_FALSE_ALERTS {
                eprintln!(
                    "lanewatch enroll: warning: that row rests on {} false alerts in the evaluation set; the threshold is uncertain",
                    choice.row.false_alerts
                );
            }
            choice.threshold
        }
        _ => {
            let threshold = args.max_distance.unwrap_or(spec.threshold);
            if let Some(row) = table
                .as_ref()
                .and_then(|t| t.at_threshold(people.len(), threshold))
            {
                eprintln!(
                    "lanewatch enroll: warning: at threshold {threshold}, lists of up to {} people alerted on {:.1}% of strangers ({}); pass --fpir 0.01 to choose the threshold by list size",
                    row.watchlist_size,
                    100.0 * row.fpir,
                    table.as_ref().map_or("", |t| t.measured_on.as_str())
                );
            }
            threshold
        }
    };
    // A wide threshold can make most pairs look alike: name a few dozen, count the rest.
    const LOOKALIKES_SHOWN: usize = 30;
    let mut pairs = lookalikes(&people, spec.metric, threshold);
    pairs.sort_by(|x, y| x.2.total_cmp(&y.2));
    for (a, b, d) in pairs.iter().take(LOOKALIKES_SHOWN) {
        eprintln!(
            "lanewatch enroll: warning: {a} and {b} are closer than the threshold ({d:.3} < {threshold}); alerts may name the wrong one"
        );
    }
    if pairs.len() > LOOKALIKES_SHOWN {
        eprintln!(
            "lanewatch enroll: warning: {} more pairs of people are closer than the threshold (the closest {LOOKALIKES_SHOWN} are named above)",
            pairs.len() - LOOKALIKES_SHOWN
        );
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let terms = ListTerms {
        embedder,
        thresholds: Thresholds {
            max_distance: threshold,
            min_margin: args.min_margin,
        },
        sequence: args.sequence.unwrap_or(now),
        created_at: now,
        expires_at: now.saturating_add(validity),
        list: args.list.clone(),
        severity,
        views,
        decision: args.decision,
    };
    let bytes = sign_watchlist(&people, &terms, &key)
        .with_context(|| format!("cannot build the watchlist {}", args.out.display()))?;
    write_atomically(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let photos: usize = people.iter().map(|p| p.photo_sha256.len()).sum();
    println!(
        "enrolled {} people from {photos} photos into {} (sequence {}, threshold {threshold}, {} decisions)",
        people.len(),
        args.out.display(),
        terms.sequence,
        args.decision.as_str()
    );
    Ok(())
}
