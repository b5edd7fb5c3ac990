//! What the lane saw of each passer's clip: every detected face of every frame, aligned, scored and
//! embedded. Decisions (tracks, fusion, thresholds) are replayed on it, so lane settings can be
//! compared on the same faces in seconds instead of re-detecting for every run (`--faces-cache`).
//!
//! Every aligned face is embedded here, whether or not a decision mode would have embedded it;
//! each mode's replay hides the embeddings it would not have computed, and counts the rest.
//!
//! The cache file is keyed by everything that changes what is seen: the model files, the lane's
//! `[detect]` settings, the clip settings (frames, photos per clip, seed) and the descriptor views.
//! A file made with anything else is replaced; it is written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lanewatch::config::DetectConfig;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::faces::{Augmentation, FaceModels, FaceObservation};
use lanewatch::vision::landmarks::{NUM_PARTS, Point};
use lanewatch::vision::quality::QualityInputs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::cache::{pipeline_key, read_keyed, write_keyed};

const FORMAT: &str = "lanewatch-eval-lane-faces/1";

/// One detected face of a frame.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeenFace {
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: [[f32; 2]; NUM_PARTS],
    /// `None` when the face was not aligned (smaller than the match size).
    pub quality: Option<QualityInputs>,
    /// Present whenever `quality` is.
    pub embedding: Option<Vec<f32>>,
}

impl SeenFace {
    pub fn of(o: &FaceObservation) -> SeenFace {
        SeenFace {
            bbox: o.bbox,
            score: o.score,
            landmarks: o.landmarks.map(|p| [p.x, p.y]),
            quality: o.quality,
            embedding: o.embedding.clone(),
        }
    }

    /// The observation the lane hands to its passage code; the embedding only when `embedded`.
    pub fn observation(&self, embedded: bool) -> FaceObservation {
        FaceObservation {
            bbox: self.bbox,
            score: self.score,
            landmarks: self.landmarks.map(Point::from),
            quality: self.quality,
            embedding: if embedded {
                self.embedding.clone()
            } else {
                None
            },
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeenFrame {
    pub faces: Vec<SeenFace>,
    /// Which of `faces` is the passer's own (see `own_face_index`).
    pub own_face: Option<usize>,
}

/// One passer's clip as the lane saw it (empty when none of their photos had a face).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeenClip {
    pub frames: Vec<SeenFrame>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    /// Person (folder name) → clip.
    clips: BTreeMap<String, SeenClip>,
}

/// What the clip settings and models make of each passer, kept in a file or in memory.
pub struct SeenCache {
    file: Option<PathBuf>,
    key: String,
    clips: BTreeMap<String, SeenClip>,
    dirty: bool,
}

/// What a cached clip depends on besides the models.
pub struct ClipSettings<'a> {
    pub detect: &'a DetectConfig,
    pub frames: usize,
    pub clip_photos: usize,
    pub seed: u64,
}

impl SeenCache {
    pub fn in_memory() -> SeenCache {
        SeenCache {
            file: None,
            key: String::new(),
            clips: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Opens (or starts) the cache at `file`; an unreadable, foreign or stale file is reported on
    /// stderr and replaced at the next save, never half-used.
    pub fn open(
        file: &Path,
        models: &FaceModels,
        detector: &DetectorConfig,
        augmentation: Augmentation,
        clips: &ClipSettings<'_>,
    ) -> anyhow::Result<SeenCache> {
        let mut h = Sha256::new();
        h.update(pipeline_key(models, detector, augmentation)?.as_bytes());
        h.update(
            format!(
                "{} frames={} photos={} seed={}",
                clips.detect.cache_key(),
                clips.frames,
                clips.clip_photos,
                clips.seed
            )
            .as_bytes(),
        );
        let mut cache = SeenCache {
            file: Some(file.to_path_buf()),
            key: hex::encode(h.finalize()),
            clips: BTreeMap::new(),
            dirty: false,
        };
        if let Some(s) = read_keyed::<Stored>(file, FORMAT, &cache.key, "faces cache")? {
            eprintln!(
                "trainer eval lane: {} passers' faces reused from {}",
                s.clips.len(),
                file.display()
            );
            cache.clips = s.clips;
        }
        Ok(cache)
    }

    pub fn get(&self, person: &str) -> Option<&SeenClip> {
        self.clips.get(person)
    }

    pub fn insert(&mut self, person: String, clip: SeenClip) {
        self.clips.insert(person, clip);
        self.dirty = true;
    }

    /// Writes the file when anything was added (no-op in memory).
    pub fn save(&mut self) -> anyhow::Result<()> {
        let (Some(file), true) = (&self.file, self.dirty) else {
            return Ok(());
        };
        let stored = Stored {
            clips: std::mem::take(&mut self.clips),
        };
        let written = write_keyed(file, FORMAT, &self.key, "faces cache", &stored);
        self.clips = stored.clips;
        written?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::cache::test_support::{PLAIN, models};
    use super::*;
    use lanewatch::fsio::TempDir;
    use lanewatch::vision::quality::Pose;

    fn clip() -> SeenClip {
        let aligned = SeenFace {
            bbox: [10.0, 20.0, 110.0, 120.0],
            score: 0.98,
            landmarks: [[1.0, 2.0]; NUM_PARTS],
            quality: Some(QualityInputs {
                face_px: 100.0,
                sharpness: 250.0,
                pose: Pose {
                    roll_deg: 1.0,
                    yaw: 0.1,
                    pitch: -0.05,
                },
                detector_score: 0.98,
            }),
            embedding: Some(vec![0.5, -0.25]),
        };
        let small = SeenFace {
            quality: None,
            embedding: None,
            ..aligned.clone()
        };
        SeenClip {
            frames: vec![SeenFrame {
                faces: vec![aligned, small],
                own_face: Some(0),
            }],
        }
    }

    #[test]
    fn clips_are_reused_only_with_the_same_models_and_clip_settings() {
        let tmp = TempDir::new("eval-lane-faces").unwrap();
        let file = tmp.path().join("faces.json");
        let detect = DetectConfig::default();
        let detector = DetectorConfig::default();
        let settings = |seed| ClipSettings {
            detect: &detect,
            frames: 12,
            clip_photos: 3,
            seed,
        };
        let mut c = SeenCache::open(&file, &models(), &detector, PLAIN, &settings(1)).unwrap();
        assert!(c.get("Ann").is_none());
        c.insert("Ann".into(), clip());
        c.save().unwrap();

        let same = SeenCache::open(&file, &models(), &detector, PLAIN, &settings(1)).unwrap();
        let back = same.get("Ann").expect("reused");
        let face = &back.frames[0].faces[0];
        assert_eq!(face.embedding.as_deref(), Some(&[0.5f32, -0.25][..]));
        assert_eq!(face.quality, clip().frames[0].faces[0].quality);
        assert_eq!(back.frames[0].own_face, Some(0));
        // A mode that did not ask for a face's embedding does not get it.
        assert!(face.observation(false).embedding.is_none());
        assert_eq!(face.observation(true).landmarks[0], Point::new(1.0, 2.0));

        let stale = [
            SeenCache::open(&file, &models(), &detector, PLAIN, &settings(2)).unwrap(),
            SeenCache::open(
                &file,
                &models(),
                &detector,
                Augmentation {
                    jitter: 0,
                    mirror: true,
                },
                &settings(1),
            )
            .unwrap(),
        ];
        for c in stale {
            assert!(c.get("Ann").is_none());
        }
        std::fs::write(&file, b"{not json").unwrap();
        let broken = SeenCache::open(&file, &models(), &detector, PLAIN, &settings(1)).unwrap();
        assert!(broken.get("Ann").is_none());
    }
}
