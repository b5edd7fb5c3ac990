//! Enrolment: photos (one folder per person) → embeddings through the box's own detect → align →
//! embed code → a signed watchlist. Used by `lanewatch enroll` and by `lanewatch demo`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::vision::contract::Metric;
use crate::vision::embed::distance;
use crate::vision::faces::FaceAnalyzer;
use crate::watchlist::builder::WatchlistBuilder;
use crate::watchlist::format::{Entry, Severity, Thresholds, Views};
use crate::watchlist::verify::EmbedderId;

/// What a photo must satisfy.
#[derive(Clone, Copy, Debug)]
pub struct PhotoRules {
    /// Smallest face side, in pixels, accepted in an enrolment photo.
    pub min_face_px: f32,
    /// Two photos of one person farther apart than this are refused as disagreeing.
    pub max_distance: f32,
}

/// One person's enrolment: their embeddings and the sha256 of each photo.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: String,
    pub embeddings: Vec<Vec<f32>>,
    pub photo_sha256: Vec<[u8; 32]>,
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

/// Embeds every photo under `photos/<person>/`. Refuses (naming the photo) a photo with no face,
/// several faces or a face that is too small, and a person whose photos disagree.
pub fn enrol_folder(
    analyzer: &mut FaceAnalyzer,
    photos: &Path,
    rules: PhotoRules,
) -> anyhow::Result<Vec<Person>> {
    let metric = analyzer.embedder().spec().metric;
    let mut people = Vec::new();
    for dir in sorted_entries(photos)?.into_iter().filter(|p| p.is_dir()) {
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
            let bytes = crate::fsio::read_regular(&photo, crate::camera::pixel::MAX_PHOTO_BYTES)
                .with_context(|| format!("cannot read {}", photo.display()))?;
            person
                .embeddings
                .push(embed_photo(analyzer, &photo, &bytes, rules.min_face_px)?);
            person.photo_sha256.push(Sha256::digest(&bytes).into());
        }
        if person.embeddings.is_empty() {
            bail!(
                "{}: no photos (.jpg, .jpeg, .png) in this person's folder",
                dir.display()
            );
        }
        check_consistent(&person, &dir, metric, rules.max_distance)?;
        people.push(person);
    }
    if people.is_empty() {
        bail!(
            "{}: no person folders found (expected one sub-folder per person)",
            photos.display()
        );
    }
    Ok(people)
}

fn embed_photo(
    analyzer: &mut FaceAnalyzer,
    photo: &Path,
    bytes: &[u8],
    min_face_px: f32,
) -> anyhow::Result<Vec<f32>> {
    // Size checked from the header before decoding (MAX_FILE_DIMENSION).
    let rgb = crate::camera::pixel::decode_photo(bytes)
        .with_context(|| format!("{}: not a readable JPEG or PNG image", photo.display()))?;
    analyzer.resize(rgb.width(), rgb.height())?;
    let faces = analyzer.analyze(&rgb, min_face_px)?;
    let mut usable = faces.into_iter().filter_map(|f| f.embedding);
    match (usable.next(), usable.next(), analyzer.last_times().faces) {
        (Some(e), None, _) => Ok(e),
        (None, _, 0) => bail!(
            "{}: no face found; use a frontal photo where the face is clearly visible",
            photo.display()
        ),
        (None, _, _) => bail!(
            "{}: the face is smaller than {min_face_px} px (--min-face-px); use a closer photo",
            photo.display()
        ),
        (Some(_), Some(_), n) => bail!(
            "{}: {n} faces found; crop the photo to the one person",
            photo.display()
        ),
    }
}

fn check_consistent(
    person: &Person,
    dir: &Path,
    metric: Metric,
    threshold: f32,
) -> anyhow::Result<()> {
    for (i, a) in person.embeddings.iter().enumerate() {
        for (j, b) in person.embeddings.iter().enumerate().skip(i + 1) {
            let d = distance(metric, a, b);
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
