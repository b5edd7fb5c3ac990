//! detect → align → embed in one place: what the box runs on every frame, what `lanewatch enroll`
//! runs on every photo, and what `trainer eval lfw` measures. One code path, so that what is measured
//! is what runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use image::RgbImage;

use super::align::{ChipScratch, ChipSpec, JitterRng, RgbChip, jitter_chip, mirror_chip};
use super::chipper::{FaceChipper, mtcnn_face};
use super::contract::Metric;
use super::detect::guided::GuidanceStats;
use super::detect::{DetectWork, DetectorConfig, Face};
use super::embed::{Embedder, l2_normalised};
use super::image::ImageView;
use super::landmarks::{NUM_PARTS, Point};
use super::quality::{QualityInputs, laplacian_variance, pose_from_landmarks};

/// The model files the analyser needs.
#[derive(Clone, Debug)]
pub struct FaceModels {
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
    pub landmarks: PathBuf,
    pub embedder: PathBuf,
}

impl FaceModels {
    /// The bundled defaults inside a models folder.
    pub fn in_dir(dir: &Path) -> FaceModels {
        FaceModels {
            pnet: dir.join("mtcnn_pnet.onnx"),
            rnet: dir.join("mtcnn_rnet.onnx"),
            onet: dir.join("mtcnn_onet.onnx"),
            landmarks: dir.join("dlib_5pt.lwsp"),
            embedder: dir.join("dlib_resnet_v1.onnx"),
        }
    }

    /// The models shipped in this repository's `models/` folder.
    pub fn bundled() -> FaceModels {
        Self::in_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
    }
}

/// One analysed face.
#[derive(Clone, Debug)]
pub struct FaceObservation {
    /// Detector box x1, y1, x2, y2 in frame pixels, and its score.
    pub bbox: [f32; 4],
    pub score: f32,
    /// dlib's five landmarks (eye corners, nose base) used for the chip.
    pub landmarks: [Point; NUM_PARTS],
    /// What the quality score is made of; `None` when the face was not aligned (smaller than the
    /// match size, or no landmark box could be mapped).
    pub quality: Option<QualityInputs>,
    /// `None` when the face is smaller than the match size (counted, not matched) or the caller
    /// chose not to embed it (a tracked face whose view did not improve).
    pub embedding: Option<Vec<f32>>,
}

/// An aligned face before it is embedded: what a caller decides on (see
/// [`FaceAnalyzer::observe_faces`]).
pub struct FaceView<'a> {
    /// Index of the face in the detector's list.
    pub index: usize,
    pub bbox: [f32; 4],
    pub quality: &'a QualityInputs,
}

impl FaceObservation {
    /// The shorter side of the detector box, in pixels.
    pub fn size_px(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).min(self.bbox[3] - self.bbox[1])
    }
}

/// Where the time of the last [`FaceAnalyzer::analyze`] call went (for `lanewatch bench` and the run
/// loop's status line). Align and embed are summed over the faces embedded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    pub detect: Duration,
    /// How the frame was searched and the detector's own stages.
    pub detect_work: DetectWork,
    pub align: Duration,
    pub embed: Duration,
    /// Faces found, how many of them were large enough to be aligned, and how many of those were
    /// embedded.
    pub faces: usize,
    pub aligned: usize,
    pub embedded: usize,
}

pub struct FaceAnalyzer {
    /// Detection and chips, cut to the embedder contract's geometry (dlib's 150x150 for the
    /// bundled model).
    chipper: FaceChipper,
    embedder: Embedder,
    times: StageTimes,
    augmentation: Augmentation,
    jitter_scratch: ChipScratch,
    jitter_chip: RgbChip,
}

/// Test-time augmentation: a descriptor averaged over several views of one chip. Both sides of a
/// comparison must be made the same way: on full LFW a jittered watchlist photo against a plain
/// probe scores worse (98.38%) than plain against plain (98.58%), so only evaluation uses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augmentation {
    /// Average over this many jittered crops of the chip (dlib's `num_jitters`); 0 or 1: the chip.
    pub jitter: usize,
    /// Also average in the left-right mirror of every view.
    pub mirror: bool,
}

impl FaceAnalyzer {
    /// Loads every model and plans the detector for `frame_w` x `frame_h` frames.
    pub fn open(
        models: &FaceModels,
        frame_w: u32,
        frame_h: u32,
        config: DetectorConfig,
    ) -> anyhow::Result<Self> {
        let embedder = Embedder::load(&models.embedder)?;
        let chip = chip_spec_of(&embedder, &models.embedder)?;
        Ok(FaceAnalyzer {
            chipper: FaceChipper::open(models, chip, frame_w, frame_h, config)?,
            embedder,
            times: StageTimes::default(),
            augmentation: Augmentation::default(),
            jitter_scratch: ChipScratch::default(),
            jitter_chip: RgbChip::default(),
        })
    }

    /// Makes every descriptor from augmented views of its chip (see [`Augmentation`]).
    pub fn set_augmentation(&mut self, augmentation: Augmentation) {
        self.augmentation = augmentation;
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Stage timings of the last [`Self::analyze`] call.
    pub fn last_times(&self) -> StageTimes {
        self.times
    }

    /// Detects every face; aligns and embeds those whose box side is at least `min_match_px`.
    pub fn analyze(
        &mut self,
        frame: &RgbImage,
        min_match_px: f32,
    ) -> anyhow::Result<Vec<FaceObservation>> {
        let faces = self.detect(frame)?;
        self.observe_faces(frame, &faces, min_match_px, |_| true)
    }

    /// Track-guided detection of live frames (see [`FaceChipper::guide_detection`]).
    pub fn guide_detection(&mut self, full_every: u32, unchanged_level: f32) {
        self.chipper.guide_detection(full_every, unchanged_level);
    }

    /// The next frame is searched whole (a new clip or stream).
    pub fn reset_guidance(&mut self) {
        self.chipper.reset_guidance();
    }

    pub fn guidance_stats(&self) -> GuidanceStats {
        self.chipper.guidance_stats()
    }

    /// Detects every face in a frame, re-planning the detector when the frame size changed (starts
    /// a new [`Self::last_times`]).
    pub fn detect(&mut self, frame: &RgbImage) -> anyhow::Result<Vec<Face>> {
        self.times = StageTimes::default();
        let started = Instant::now();
        let faces = self.chipper.detect(frame)?;
        self.times.detect = started.elapsed();
        self.times.detect_work = self.chipper.last_work();
        self.times.faces = faces.len();
        Ok(faces)
    }

    /// Aligns the faces of [`Self::detect`] whose box side is at least `min_match_px`, measures
    /// their quality, and embeds those for which `embed` says yes: a lane skips the embedding of a
    /// tracked face whose view did not improve.
    pub fn observe_faces(
        &mut self,
        frame: &RgbImage,
        faces: &[Face],
        min_match_px: f32,
        mut embed: impl FnMut(&FaceView<'_>) -> bool,
    ) -> anyhow::Result<Vec<FaceObservation>> {
        let view = ImageView::of(frame)?;
        let mut out = Vec::with_capacity(faces.len());
        for (index, face) in faces.iter().enumerate() {
            out.push(self.observe(&view, index, face, min_match_px, &mut embed)?);
        }
        Ok(out)
    }

    fn observe(
        &mut self,
        view: &ImageView<'_>,
        index: usize,
        face: &Face,
        min_match_px: f32,
        embed: &mut impl FnMut(&FaceView<'_>) -> bool,
    ) -> anyhow::Result<FaceObservation> {
        let mut obs = FaceObservation {
            bbox: face.bbox,
            score: face.score,
            landmarks: mtcnn_face(face).points,
            quality: None,
            embedding: None,
        };
        if obs.size_px() < min_match_px {
            return Ok(obs);
        }
        let started = Instant::now();
        let Some(aligned) = self.chipper.align(view, face)? else {
            return Ok(obs);
        };
        obs.landmarks = aligned.landmarks;
        let chip = aligned.chip;
        let quality = QualityInputs {
            face_px: obs.size_px(),
            sharpness: laplacian_variance(chip),
            pose: pose_from_landmarks(&obs.landmarks),
            detector_score: face.score,
        };
        self.times.align += started.elapsed();
        self.times.aligned += 1;
        let wanted = embed(&FaceView {
            index,
            bbox: obs.bbox,
            quality: &quality,
        });
        obs.quality = Some(quality);
        if wanted {
            let embed_started = Instant::now();
            obs.embedding = Some(describe(
                &mut self.embedder,
                chip,
                self.augmentation,
                &mut self.jitter_scratch,
                &mut self.jitter_chip,
            )?);
            self.times.embed += embed_started.elapsed();
            self.times.embedded += 1;
        }
        Ok(obs)
    }

    /// Detects in a photo (with the detector's second look) and picks its main face.
    fn photo_main_face(&mut self, image: &RgbImage) -> anyhow::Result<Option<Face>> {
        self.chipper.photo_main_face(image)
    }

    /// The detector box of a photo's main face (see [`Self::main_face`]), without aligning it.
    pub fn main_face_box(&mut self, image: &RgbImage) -> anyhow::Result<Option<[f32; 4]>> {
        Ok(self.photo_main_face(image)?.map(|f| f.bbox))
    }

    /// The face an enrolment photo or an LFW image is about: the largest, weighted towards the
    /// centre (facenet-pytorch's choice), so a bystander at the edge is not picked. `None` when no
    /// face is found or it cannot be aligned.
    pub fn main_face(&mut self, image: &RgbImage) -> anyhow::Result<Option<FaceObservation>> {
        let Some(face) = self.photo_main_face(image)? else {
            return Ok(None);
        };
        let view = ImageView::of(image)?;
        let obs = self.observe(&view, 0, &face, 0.0, &mut |_| true)?;
        Ok(obs.embedding.is_some().then_some(obs))
    }

    /// The aligned chip of [`Self::main_face`], without embedding it: what the embedder is fed, for
    /// calibrating and checking a quantised embedder on the box's own chips. `None` when no face is
    /// found or it cannot be aligned.
    pub fn main_face_chip(&mut self, image: &RgbImage) -> anyhow::Result<Option<RgbChip>> {
        self.chipper.main_face_chip(image)
    }
}

/// A chip's descriptor, averaged over the views `augmentation` asks for.
fn describe(
    embedder: &mut Embedder,
    chip: &RgbChip,
    augmentation: Augmentation,
    scratch: &mut ChipScratch,
    view: &mut RgbChip,
) -> anyhow::Result<Vec<f32>> {
    let Augmentation { jitter, mirror } = augmentation;
    if jitter <= 1 && !mirror {
        return embedder.embed_packed(&chip.data, chip.width, chip.height);
    }
    let mut rng = JitterRng::for_chip(chip);
    let mut sum: Vec<f32> = Vec::new();
    let mut views = 0usize;
    // Views are averaged raw and normalised once at the end (for a cosine embedder), so an
    // augmented descriptor is the metric's view of the mean network output.
    let mut add = |view: &RgbChip| -> anyhow::Result<()> {
        let d = embedder.embed_raw_packed(&view.data, view.width, view.height)?;
        if sum.is_empty() {
            sum = d;
        } else {
            sum.iter_mut().zip(&d).for_each(|(s, x)| *s += x);
        }
        views += 1;
        Ok(())
    };
    for _ in 0..jitter.max(1) {
        if jitter > 1 {
            jitter_chip(chip, &mut rng, scratch, view).context("jittering a face chip")?;
        } else {
            view.clone_from(chip);
        }
        add(view)?;
        if mirror {
            mirror_chip(view);
            add(view)?;
        }
    }
    let n = views as f32;
    sum.iter_mut().for_each(|s| *s /= n);
    // dlib averages raw descriptors; a cosine embedder's descriptors stay unit length.
    Ok(match embedder.spec().metric {
        Metric::Cosine => l2_normalised(sum),
        Metric::Euclidean => sum,
    })
}

/// The chip an embedder takes, from its contract's `lanewatch.alignment`; refuses a name this box
/// cannot produce or a chip size that disagrees with the network's input.
fn chip_spec_of(embedder: &Embedder, path: &Path) -> anyhow::Result<ChipSpec> {
    let name = &embedder.spec().alignment;
    let chip = ChipSpec::parse(name).with_context(|| {
        format!(
            "model file {}: lanewatch.alignment {name:?} is not a chip this box makes (expected dlib-5pt-SIZE-PADDING)",
            path.display()
        )
    })?;
    let (w, h) = embedder.chip_size();
    anyhow::ensure!(
        (w as usize, h as usize) == (chip.size, chip.size),
        "model file {}: lanewatch.alignment {name:?} makes {s}x{s} chips but the network takes {w}x{h}",
        path.display(),
        s = chip.size
    );
    Ok(chip)
}

/// Reads any image file as RGB (grayscale photos get their channel replicated).
pub fn read_rgb(path: &Path) -> anyhow::Result<RgbImage> {
    let img = image::open(path).with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(img.to_rgb8())
}
