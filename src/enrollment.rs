//! Enrolment: photos (one folder per person) → embeddings through the box's own detect → align →
//! embed code → a signed watchlist. Used by `lanewatch enroll` and by `lanewatch demo`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::vision::contract::Metric;
use crate::vision::embed::{distance, l2_normalised};
use crate::vision::faces::FaceAnalyzer;
use crate::vision::quality::QualityModel;
use crate::watchlist::builder::WatchlistBuilder;
use crate::watchlist::format::{DecisionMode, Entry, Severity, Thresholds, Views};
use crate::watchlist::verify::EmbedderId;

/// What a photo must satisfy.
#[derive(Clone, Debug)]
pub struct PhotoRules {
    /// Smallest face side, in pixels, accepted in an enrolment photo.
    pub min_face_px: f32,
    /// Two photos of one person farther apart than this are refused as disagreeing.
    pub max_distance: f32,
    /// The lane's quality score (src/vision/quality.rs) and the least a photo needs: a photo a lane
    /// would not trust as evidence makes no entry either.
    pub quality: QualityModel,
    pub min_quality: f32,
    /// A photo showing several people: take the largest face instead of refusing it.
    pub largest_face: bool,
    /// How a person's photos become their entry.
    pub combine: PhotoRule,
}

impl PhotoRules {
    /// The lane's default quality model and cut-off, one embedding per photo, no bystanders.
    pub fn new(min_face_px: f32, max_distance: f32) -> PhotoRules {
        let lane = crate::passage::PassageConfig::default();
        PhotoRules {
            min_face_px,
            max_distance,
            quality: lane.quality,
            min_quality: lane.min_quality,
            largest_face: false,
            combine: PhotoRule::Closest,
        }
    }
}

/// How several photos of one person make their entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PhotoRule {
    /// One embedding per photo; a live face is as close as its closest photo.
    #[default]
    Closest,
    /// The mean of the photos' descriptors (unit length for cosine): one embedding per person.
    Mean,
}

impl PhotoRule {
    pub fn parse(s: &str) -> Option<PhotoRule> {
        match s {
            "closest" => Some(PhotoRule::Closest),
            "mean" => Some(PhotoRule::Mean),
            _ => None,
        }
    }
}

/// One person's enrolment: their embeddings and the sha256 of each photo.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: String,
    pub embeddings: Vec<Vec<f32>>,
    pub photo_sha256: Vec<[u8; 32]>,
}

/// A photo (or a whole person's folder) that could not be enrolled, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub path: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.why)
    }
}

/// What a folder of photos gave: the people enrolled and everything refused.
#[derive(Clone, Debug)]
pub struct Enrolment {
    pub people: Vec<Person>,
    pub refused: Vec<Refusal>,
}

impl Enrolment {
    /// The people, or an error listing every refused photo (a technician fixes them all in one go).
    pub fn all_or_error(self) -> anyhow::Result<Vec<Person>> {
        if self.refused.is_empty() {
            return Ok(self.people);
        }
        bail!(
            "{} photo(s) or folder(s) refused:\n  {}\n(fix them, or pass --skip-refused to build the list from the rest)",
            self.refused.len(),
            self.refused
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
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

/// Embeds every photo under `photos/<person>/`. A photo with no face, several faces (unless
/// `largest_face`), a face that is too small or too poor, and a person whose photos disagree are
/// refused and listed, never the first one alone; the folder itself must hold person folders.
pub fn enrol_folder(
    analyzer: &mut FaceAnalyzer,
    photos: &Path,
    rules: &PhotoRules,
) -> anyhow::Result<Enrolment> {
    let metric = analyzer.embedder().spec().metric;
    let mut people = Vec::new();
    let mut refused = Vec::new();
    let dirs: Vec<PathBuf> = sorted_entries(photos)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if dirs.is_empty() {
        bail!(
            "{}: no person folders found (expected one sub-folder per person)",
            photos.display()
        );
    }
    for dir in dirs {
        let Some(id) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            refused.push(Refusal {
                path: dir.clone(),
                why: "the folder name is not UTF-8".into(),
            });
            continue;
        };
        let mut person = Person {
            id,
            embeddings: vec![],
            photo_sha256: vec![],
        };
        let mut any_photo = false;
        for photo in sorted_entries(&dir)?.into_iter().filter(|p| is_photo(p)) {
            any_photo = true;
            match read_photo(&photo).and_then(|(bytes, rgb)| {
                embed_photo(analyzer, &rgb, rules).map(|e| (e, Sha256::digest(&bytes).into()))
            }) {
                Ok((e, sha)) => {
                    person.embeddings.push(e);
                    person.photo_sha256.push(sha);
                }
                Err(why) => refused.push(Refusal {
                    path: photo,
                    why: format!("{why:#}"),
                }),
            }
        }
        if !any_photo {
            refused.push(Refusal {
                path: dir,
                why: "no photos (.jpg, .jpeg, .png) in this person's folder".into(),
            });
            continue;
        }
        if person.embeddings.is_empty() {
            continue; // every photo refused, each listed above
        }
        if let Err(why) = check_consistent(&person, metric, rules.max_distance) {
            refused.push(Refusal { path: dir, why });
            continue;
        }
        if rules.combine == PhotoRule::Mean && person.embeddings.len() > 1 {
            person.embeddings = vec![mean_descriptor(&person.embeddings, metric)];
        }
        people.push(person);
    }
    Ok(Enrolment { people, refused })
}

/// The mean of several descriptors; unit length again for a cosine embedder.
pub fn mean_descriptor(embeddings: &[Vec<f32>], metric: Metric) -> Vec<f32> {
    let mut sum = vec![0.0f32; embeddings.first().map_or(0, Vec::len)];
    for e in embeddings {
        sum.iter_mut().zip(e).for_each(|(s, x)| *s += x);
    }
    let n = embeddings.len().max(1) as f32;
    sum.iter_mut().for_each(|s| *s /= n);
    match metric {
        Metric::Cosine => l2_normalised(sum),
        Metric::Euclidean => sum,
    }
}

fn read_photo(photo: &Path) -> anyhow::Result<(Vec<u8>, image::RgbImage)> {
    let bytes = crate::fsio::read_regular(photo, crate::camera::pixel::MAX_PHOTO_BYTES)
        .context("cannot read the file")?;
    // Size checked from the header before decoding (MAX_FILE_DIMENSION).
    let rgb =
        crate::camera::pixel::decode_photo(&bytes).context("not a readable JPEG or PNG image")?;
    Ok((bytes, rgb))
}

fn embed_photo(
    analyzer: &mut FaceAnalyzer,
    rgb: &image::RgbImage,
    rules: &PhotoRules,
) -> anyhow::Result<Vec<f32>> {
    let mut faces = analyzer.analyze(rgb, rules.min_face_px)?;
    let found = analyzer.last_times().faces;
    if rules.largest_face {
        // The person the photo is of is the one nearest the camera.
        faces.sort_by(|a, b| b.size_px().total_cmp(&a.size_px()));
        faces.truncate(1);
    }
    let mut usable = faces.into_iter().filter(|f| f.embedding.is_some());
    let face = match (usable.next(), usable.next(), found) {
        (Some(f), None, _) => f,
        (None, _, 0) => {
            bail!("no face found; use a frontal photo where the face is clearly visible")
        }
        (None, _, _) => bail!(
            "the face is smaller than {} px (--min-face-px); use a closer photo",
            rules.min_face_px
        ),
        (Some(_), Some(_), n) => {
            bail!("{n} faces found; crop the photo to the one person, or pass --largest-face")
        }
    };
    if let Some(q) = &face.quality {
        let score = rules.quality.score(q);
        if score < rules.min_quality {
            bail!(
                "face quality {score:.2} is below {:.2} (size {:.0} px, sharpness {:.0}, roll {:.0}°, yaw {:.2}); use a sharper, more frontal photo",
                rules.min_quality,
                q.face_px,
                q.sharpness,
                q.pose.roll_deg,
                q.pose.yaw
            );
        }
    }
    Ok(face.embedding.expect("filtered on embedding"))
}

fn check_consistent(person: &Person, metric: Metric, threshold: f32) -> Result<(), String> {
    for (i, a) in person.embeddings.iter().enumerate() {
        for (j, b) in person.embeddings.iter().enumerate().skip(i + 1) {
            let d = distance(metric, a, b);
            if d > threshold {
                return Err(format!(
                    "photos {} and {} disagree (distance {d:.3} > threshold {threshold}): are they the same person?",
                    i + 1,
                    j + 1
                ));
            }
        }
    }
    Ok(())
}

/// Pairs of enrolled people closer than `threshold`: the lane could confuse them.
pub fn lookalikes(people: &[Person], metric: Metric, threshold: f32) -> Vec<(String, String, f32)> {
    let mut out = Vec::new();
    for (i, a) in people.iter().enumerate() {
        for b in &people[i + 1..] {
            let closest = a
                .embeddings
                .iter()
                .flat_map(|x| b.embeddings.iter().map(move |y| distance(metric, x, y)))
                .fold(f32::INFINITY, f32::min);
            if closest < threshold {
                out.push((a.id.clone(), b.id.clone(), closest));
            }
        }
    }
    out
}

/// Everything written into the list besides the people.
#[derive(Clone, Debug)]
pub struct ListTerms {
    pub embedder: EmbedderId,
    pub thresholds: Thresholds,
    pub sequence: u64,
    pub created_at: u64,
    pub expires_at: u64,
    pub list: String,
    pub severity: Severity,
    /// How the embeddings were made (the analyser's augmentation); lanes make theirs the same way.
    pub views: Views,
    /// What the threshold was calibrated for: lanes decide per passer or per face accordingly.
    pub decision: DecisionMode,
}

/// The signed watchlist file's bytes.
pub fn sign_watchlist(
    people: &[Person],
    terms: &ListTerms,
    key: &SigningKey,
) -> anyhow::Result<Vec<u8>> {
    let mut builder = WatchlistBuilder::new(
        terms.embedder,
        terms.thresholds,
        terms.sequence,
        terms.created_at,
        terms.expires_at,
    );
    builder.views(terms.views);
    builder.decision(terms.decision);
    for p in people {
        builder.add(Entry {
            id: p.id.clone(),
            display_name: p.id.replace('_', " "),
            list: terms.list.clone(),
            severity: terms.severity,
            embeddings: p.embeddings.clone(),
            photo_sha256: p.photo_sha256.clone(),
        });
    }
    Ok(builder.sign(key)?)
}
