//! `lanewatch enroll`: photos (one folder per person) → a signed watchlist, through the box's own
//! detect → align → embed code, so enrolment and matching see faces the same way.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::fsio::write_atomically;
use crate::vision::detect::DetectorConfig;
use crate::vision::embed::distance;
use crate::vision::faces::{FaceAnalyzer, FaceModels};
use crate::watchlist::builder::WatchlistBuilder;
use crate::watchlist::format::{Entry, Severity, Thresholds};
use crate::watchlist::keys::read_signing_key;
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
    /// Sequence number; must be above the one installed on the boxes. Default: the current Unix time.
    #[arg(long)]
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
    /// Smallest face side, in pixels, accepted in an enrolment photo.
    #[arg(long, default_value_t = 80.0)]
    pub min_face_px: f32,
    /// Match threshold written into the list (distance); default: the embedder's recommended one.
    #[arg(long)]
    pub max_distance: Option<f32>,
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

fn parse_severity(text: &str) -> anyhow::Result<Severity> {
    Ok(match text {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => bail!("--severity {text:?}: expected low, medium, high or critical"),
    })
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    v.sort();
    Ok(v)
}

fn is_photo(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

/// One person's enrolment: their embeddings and the sha256 of each photo.
struct Person {
    id: String,
    embeddings: Vec<Vec<f32>>,
    photo_sha256: Vec<[u8; 32]>,
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    let key = read_signing_key(&args.key)?;
    let severity = parse_severity(&args.severity)?;
    let validity = parse_validity(&args.expires)?;
    let models = FaceModels::in_dir(&args.models_dir);
    let embedder_id = EmbedderId::from_model_file(&models.embedder)?;
    let mut analyzer = FaceAnalyzer::open(&models, 640, 480, DetectorConfig::default())?;
    let spec = analyzer.embedder().spec().clone();
    let threshold = args.max_distance.unwrap_or(spec.threshold);

    let mut people = Vec::new();
    for dir in sorted_entries(&args.photos)?
        .into_iter()
        .filter(|p| p.is_dir())
    {
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .context("a person folder name is not UTF-8")?
            .to_string();
        let mut person = Person {
            id,
            embeddings: vec![],
            photo_sha256: vec![],
        };
        for photo in sorted_entries(&dir)?.into_iter().filter(|p| is_photo(p)) {
            let bytes = std::fs::read(&photo)
                .with_context(|| format!("cannot read {}", photo.display()))?;
            let rgb = image::load_from_memory(&bytes)
                .with_context(|| format!("{}: not a readable JPEG or PNG image", photo.display()))?
                .to_rgb8();
            analyzer.resize(rgb.width(), rgb.height())?;
            let faces = analyzer.analyze(&rgb, args.min_face_px)?;
            let usable: Vec<_> = faces.iter().filter(|f| f.embedding.is_some()).collect();
            match (usable.len(), faces.len()) {
                (1, _) => {}
                (0, 0) => bail!(
                    "{}: no face found; use a frontal photo where the face is clearly visible",
                    photo.display()
                ),
                (0, _) => bail!(
                    "{}: the face is smaller than {} px (--min-face-px); use a closer photo",
                    photo.display(),
                    args.min_face_px
                ),
                (n, _) => bail!(
                    "{}: {n} faces found; crop the photo to the one person",
                    photo.display()
                ),
            }
            person
                .embeddings
                .push(usable[0].embedding.clone().expect("filtered"));
            person.photo_sha256.push(Sha256::digest(&bytes).into());
        }
        if person.embeddings.is_empty() {
            bail!(
                "{}: no photos (.jpg, .jpeg, .png) in this person's folder",
                dir.display()
            );
        }
        for (i, a) in person.embeddings.iter().enumerate() {
            for (j, b) in person.embeddings.iter().enumerate().skip(i + 1) {
                let d = distance(spec.metric, a, b);
                if d > threshold {
                    bail!(
                        "{}: photos {} and {} disagree (distance {d:.3} > threshold {threshold}): are they the same person?",
                        dir.display(),
                        i + 1,
                        j + 1
                    );
                }
            }
        }
        people.push(person);
    }
    if people.is_empty() {
        bail!(
            "{}: no person folders found (expected one sub-folder per person)",
            args.photos.display()
        );
    }
    warn_about_lookalikes(&people, spec.metric, threshold);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let mut builder = WatchlistBuilder::new(
        embedder_id,
        Thresholds {
            max_distance: threshold,
            min_margin: args.min_margin,
        },
        args.sequence.unwrap_or(now),
        now,
        now.saturating_add(validity),
    );
    for p in &people {
        builder.add(Entry {
            id: p.id.clone(),
            display_name: p.id.replace('_', " "),
            list: args.list.clone(),
            severity,
            embeddings: p.embeddings.clone(),
            photo_sha256: p.photo_sha256.clone(),
        });
    }
    let bytes = builder
        .sign(&key)
        .with_context(|| format!("cannot build the watchlist {}", args.out.display()))?;
    write_atomically(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let photos: usize = people.iter().map(|p| p.embeddings.len()).sum();
    println!(
        "enrolled {} people from {photos} photos into {} (sequence {}, threshold {threshold})",
        people.len(),
        args.out.display(),
        builder.body().sequence
    );
    Ok(())
}

/// Two enrolled people closer than the threshold would be confused with each other at the lane.
fn warn_about_lookalikes(
    people: &[Person],
    metric: crate::vision::contract::Metric,
    threshold: f32,
) {
    for (i, a) in people.iter().enumerate() {
        for b in &people[i + 1..] {
            let closest = a
                .embeddings
                .iter()
                .flat_map(|x| b.embeddings.iter().map(move |y| distance(metric, x, y)))
                .fold(f32::INFINITY, f32::min);
            if closest < threshold {
                eprintln!(
                    "lanewatch enroll: warning: {} and {} are closer than the threshold ({closest:.3} < {threshold}); alerts may name the wrong one",
                    a.id, b.id
                );
            }
        }
    }
}
