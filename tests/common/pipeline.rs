//! Helpers shared by the run-loop tests: real LFW faces from `../shared/data/lfw` (read at test
//! time, never copied into the repo), a throwaway issuer key, watchlists enrolled through the box's
//! own code, and a lane rig built the way `lanewatch run` builds one.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use image::RgbImage;
use lanewatch::camera::FrameSource;
use lanewatch::config::AlertsConfig;
use lanewatch::enrollment::{ListTerms, PhotoRules, enrol_folder, sign_watchlist};
use lanewatch::fsio::TempDir;
use lanewatch::pipeline::alerting::dispatcher_from_config;
use lanewatch::pipeline::{Lane, LaneRig, LaneSettings, Pacing, Watcher, WatchlistSlot};
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::faces::{FaceAnalyzer, FaceModels};
use lanewatch::watchlist::format::{DecisionMode, Severity, Thresholds, Views};
use lanewatch::watchlist::verify::unix_now;
use lanewatch::watchlist::{EmbedderId, Store, TrustedKeys, Verifier};

pub fn lfw_dir() -> PathBuf {
    super::lfw_dir().join("images")
}

/// The `i`-th image (in name order; LFW numbering has gaps in this subset) of a person.
pub fn lfw(name: &str, i: usize) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(lfw_dir().join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.swap_remove(i)
}

pub fn picture(name: &str, i: usize) -> RgbImage {
    image::open(lfw(name, i)).unwrap().to_rgb8()
}

/// LFW identities in name order with their image counts.
pub fn identities() -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = std::fs::read_dir(lfw_dir())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let n = std::fs::read_dir(e.path()).unwrap().count();
            (e.file_name().to_string_lossy().into_owned(), n)
        })
        .collect();
    v.sort();
    v
}

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn verifier() -> Verifier {
    let models = FaceModels::bundled();
    Verifier::new(TrustedKeys::new().with(key().verifying_key()))
        .with_embedder(Some(EmbedderId::from_model_file(&models.embedder).unwrap()))
}

/// A signed list of `people` (each enrolled from the given LFW images, by position), at `sequence`.
pub fn watchlist(work: &Path, people: &[(&str, &[usize])], sequence: u64) -> Vec<u8> {
    watchlist_with_views(work, people, sequence, Views::Chip)
}

/// [`watchlist`] with its embeddings made as `views` says.
pub fn watchlist_with_views(
    work: &Path,
    people: &[(&str, &[usize])],
    sequence: u64,
    views: Views,
) -> Vec<u8> {
    watchlist_made(work, people, sequence, views, DecisionMode::Passage)
}

/// [`watchlist`] deciding every face on its own (one alert per passage still): for tests whose
/// passers are single frames.
pub fn watchlist_per_frame(work: &Path, people: &[(&str, &[usize])], sequence: u64) -> Vec<u8> {
    watchlist_made(work, people, sequence, Views::Chip, DecisionMode::Frame)
}

fn watchlist_made(
    work: &Path,
    people: &[(&str, &[usize])],
    sequence: u64,
    views: Views,
    decision: DecisionMode,
) -> Vec<u8> {
    let photos = work.join(format!("photos-{sequence}"));
    for (name, images) in people {
        let dir = photos.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for n in *images {
            std::fs::copy(lfw(name, *n), dir.join(format!("{n}.jpg"))).unwrap();
        }
    }
    let models = FaceModels::bundled();
    let mut analyzer = FaceAnalyzer::open(&models, 250, 250, DetectorConfig::default()).unwrap();
    analyzer.set_augmentation(views.augmentation());
    let threshold = list_threshold(&analyzer);
    let enrolled = enrol_folder(&mut analyzer, &photos, &PhotoRules::new(60.0, threshold))
        .unwrap()
        .all_or_error()
        .unwrap();
    let now = unix_now();
    sign_watchlist(
        &enrolled,
        &ListTerms {
            embedder: EmbedderId::from_model_file(&models.embedder).unwrap(),
            thresholds: Thresholds {
                max_distance: threshold,
                min_margin: 0.0,
            },
            sequence,
            created_at: now,
            expires_at: now + 3600,
            list: "test".into(),
            severity: Severity::High,
            views,
            decision,
        },
        &key(),
    )
    .unwrap()
}

/// The match threshold of the test lists: for the cosine embedder the LFW pairs protocol's best
/// 1:1 threshold (FAR about 1e-2, models/README.md), so that a listed person's other photo matches
/// as reliably as dlib's 0.6 did; the contract's own threshold for any other embedder.
pub fn list_threshold(analyzer: &FaceAnalyzer) -> f32 {
    let spec = analyzer.embedder().spec();
    match spec.metric {
        lanewatch::vision::contract::Metric::Cosine => 0.093,
        lanewatch::vision::contract::Metric::Euclidean => spec.threshold,
    }
}

/// The lane's per-passer settings for tests that play still photos: a passer is a few frames of
/// one photo, and a blank frame or two between passers ends their track.
pub fn test_passage() -> lanewatch::passage::PassageConfig {
    lanewatch::passage::PassageConfig {
        max_gap_frames: 1,
        min_faces: 2,
        max_wait_frames: 2,
        embed_every: 1,
        // LFW stills are small grayscale JPEGs: these tests are about tracks, alerts and faults,
        // not the quality cut-off (measured by `trainer eval lane`).
        min_quality: 0.0,
        // Photos of different people shown back to back in one place: the appearance check must
        // part them (cosine distance between LFW impostors is mostly above 0.09).
        max_appearance_distance: 0.09,
        ..lanewatch::passage::PassageConfig::default()
    }
}

/// A state directory with `bytes` installed as the active watchlist.
pub fn state_with(work: &Path, bytes: &[u8]) -> Store {
    let store = Store::open(&work.join("state")).unwrap();
    store
        .install(bytes, "test list", &verifier(), unix_now())
        .unwrap();
    store
}

pub fn alerts_config(dir: &Path, cooldown_s: u64) -> AlertsConfig {
    AlertsConfig {
        journal_dir: dir.to_path_buf(),
        cooldown_s,
        stdout: false,
        include_crop: true,
        ..AlertsConfig::default()
    }
}

/// The rig `lanewatch run` would build, over `source`, with the default thresholds and sizes.
pub fn rig(
    source: Box<dyn FrameSource>,
    pacing: Pacing,
    store: Store,
    alerts: &AlertsConfig,
    reconnects: Arc<AtomicU64>,
) -> LaneRig {
    let defaults = lanewatch::config::Config::default();
    let analyzer = FaceAnalyzer::open(
        &FaceModels::bundled(),
        250,
        250,
        DetectorConfig {
            min_face: defaults.detect.min_face_px as f32,
            ..DetectorConfig::default()
        },
    )
    .unwrap();
    let lane = Lane::new(
        analyzer,
        Arc::new(WatchlistSlot::default()),
        dispatcher_from_config(alerts).unwrap(),
        LaneSettings {
            camera: "test-lane".into(),
            min_match_face_px: defaults.detect.min_match_face_px as f32,
            include_crop: alerts.include_crop,
            passage: test_passage(),
        },
    );
    LaneRig {
        source,
        pacing,
        frame_timeout: Duration::from_millis(200),
        queue_capacity: 4,
        lane,
        watcher: Some(Watcher::new(store, verifier())),
        reload_every: Duration::from_millis(20),
        reconnects,
    }
}

/// Every alert line in the journal directory, in order.
pub fn journal_alerts(dir: &Path) -> Vec<lanewatch::alerts::Alert> {
    use lanewatch::alerts::journal::{list_segments, segment_path};
    list_segments(dir)
        .unwrap()
        .into_iter()
        .flat_map(|seq| {
            std::fs::read_to_string(segment_path(dir, seq))
                .unwrap()
                .lines()
                // Passage episode records (`"record": "episode"`) sit beside the alerts.
                .filter(|l| !l.contains("\"record\":\"episode\""))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn temp(prefix: &str) -> TempDir {
    TempDir::new(prefix).unwrap()
}
