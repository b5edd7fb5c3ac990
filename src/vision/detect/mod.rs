//! MTCNN face detection: facenet-pytorch 2.6.0's cascade (`models/utils/detect_face.py`) over the
//! three ONNX nets written by `trainer import mtcnn`.
//!
//! P-Net runs on an image pyramid (one tract plan per scale, built once for the frame size), its
//! candidates are thresholded, merged by NMS per scale and across scales, regressed and squared;
//! R-Net rescores 24x24 crops, O-Net 48x48 crops and adds five landmarks; a final "Min" NMS removes
//! boxes nested in others. Resampling is PyTorch's `interpolate(mode="area")` (adaptive average
//! pooling), as facenet-pytorch uses for both the pyramid and the crops, so that candidates match.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;

use super::contract::Role;
use super::model::{Model, ModelError, ModelFile};
use ops::{Cand, Planes, crops, nms, nms_min, regress, square};

pub mod guided;
mod ops;
pub mod unchanged;

/// File names inside a models folder.
pub const PNET_FILE: &str = "mtcnn_pnet.onnx";
pub const RNET_FILE: &str = "mtcnn_rnet.onnx";
pub const ONET_FILE: &str = "mtcnn_onet.onnx";

#[derive(Clone, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Smallest face side searched for, in pixels (facenet-pytorch's `min_face_size`).
    pub min_face: f32,
    /// Score thresholds of P-, R- and O-Net.
    pub thresholds: [f32; 3],
    /// Pyramid scale step (f64 like Python's, so the level sizes match facenet-pytorch's).
    pub factor: f64,
    /// The part of the frame a full pass searches, as fractions of its width and height
    /// (x0, y0, x1, y1): a lane camera that also sees a ceiling or a wall need not search them.
    /// The pyramid is built for this part, so a smaller region makes every level smaller.
    pub region: [f32; 4],
}

/// The whole frame, as [`DetectorConfig::region`].
pub const WHOLE_FRAME: [f32; 4] = [0.0, 0.0, 1.0, 1.0];

impl DetectorConfig {
    /// A text naming these settings, for keys of caches made with them: the form older caches
    /// were keyed with while the region is the whole frame, so they stay valid.
    pub fn cache_key(&self) -> String {
        let DetectorConfig {
            min_face,
            thresholds,
            factor,
            region,
        } = self;
        let mut key = format!(
            "DetectorConfig {{ min_face: {min_face:?}, thresholds: {thresholds:?}, factor: {factor:?} }}"
        );
        if *region != WHOLE_FRAME {
            key.push_str(&format!(" region={region:?}"));
        }
        key
    }
}

impl Default for DetectorConfig {
    /// facenet-pytorch's defaults.
    fn default() -> Self {
        DetectorConfig {
            min_face: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            factor: 0.709,
            region: WHOLE_FRAME,
        }
    }
}

/// P-, R- and O-Net thresholds of [`Detector::detect_in_photo`]'s second look.
pub const PHOTO_RETRY_THRESHOLDS: [f32; 3] = [0.3, 0.5, 0.6];

/// A detected face, in image pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    /// x1, y1, x2, y2.
    pub bbox: [f32; 4],
    /// O-Net's face probability.
    pub score: f32,
    /// (x, y) of: left eye, right eye, nose, left mouth corner, right mouth corner, where "left"
    /// is the image's left (the person's right).
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {what}")]
    Network { path: PathBuf, what: String },
    #[error("invalid detector configuration: {0}")]
    Config(String),
    #[error(
        "the detector was built for {want_w}x{want_h} frames but got {got_w}x{got_h}; build one Detector per camera resolution"
    )]
    FrameSize {
        want_w: u32,
        want_h: u32,
        got_w: u32,
        got_h: u32,
    },
}

/// One pyramid level: its scale, P-Net input size and plan.
struct Level {
    /// As torch uses it in box arithmetic (f32); the sizes come from the f64 value, as in Python.
    scale: f32,
    h: usize,
    w: usize,
    plan: Model,
}

/// R- or O-Net, planned for one crop per run: tract 0.23.9 takes the same time per crop at batch
/// 1 as at 2..32 (`tests/vision/detect_batch_timing.rs`), so batching would only add padding.
struct Stage {
    plan: Model,
    side: usize,
    outputs: usize,
}

/// Side of the square searched around a face expected from earlier frames
/// ([`Detector::detect_near`]), in face sides: the face may move by one face side and still lie
/// inside it.
pub const NEAR_WINDOW: f32 = 3.0;

/// P-Net levels of a near search, as powers of the pyramid factor: the expected face is scaled to
/// 12/factor, 12 and 12*factor pixels (P-Net's cell is 12), so a face that shrank to 0.7x or grew
/// to 2x its expected size is still found. Each level's input side is fixed (the window is a
/// fixed number of face sides), so the plans are made once.
const NEAR_STEPS: [i32; 3] = [-1, 0, 1];

/// The IoU above which facenet-pytorch merges candidates after P-Net's levels and after R-Net.
const CASCADE_MERGE_IOU: f32 = 0.7;

/// The same for a near search: it looks for faces known to be there, one per window, so fewer
/// overlapping candidates go on to R- and O-Net (at 0.7 a face sends about six boxes to O-Net,
/// which is most of a near search's time).
const NEAR_MERGE_IOU: f32 = 0.5;

/// A P-Net level of the near search.
struct NearLevel {
    side: usize,
    plan: Model,
}

/// What [`Detector::onet_follow`] made of the expected boxes: the faces found, the boxes where
/// O-Net saw none, and how many O-Net runs it took.
struct Followed {
    found: Vec<Face>,
    missed: Vec<[f32; 4]>,
    looks: usize,
}

/// A square of the frame searched by [`Detector::detect_near`], in whole pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    x: usize,
    y: usize,
    side: usize,
}

pub struct Detector {
    frame_w: u32,
    frame_h: u32,
    config: DetectorConfig,
    /// The region of a full pass in pixels: x0, y0, x1, y1 (exclusive ends).
    region: [usize; 4],
    levels: Vec<Level>,
    near: Vec<NearLevel>,
    rnet: Stage,
    onet: Stage,
    /// Where the last detection's time went.
    last_work: Cell<DetectWork>,
}

/// Where one detection's time went, for benchmarks: P-Net (with the image planes and the
/// candidates' merging), R-Net and O-Net, and how many crops the last two were given.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DetectWork {
    /// How the frame was searched (set by [`guided`]'s callers; a plain detection is full).
    pub pass: guided::PassKind,
    pub pnet: Duration,
    pub rnet: Duration,
    pub onet: Duration,
    pub rnet_crops: usize,
    pub onet_crops: usize,
}

/// One network run inside [`Detector::detect`], as recorded by [`Detector::trace`]: what the
/// network was given and what it answered (for parity checks against another runtime).
#[derive(Clone, Debug)]
pub struct NetRun {
    pub role: Role,
    /// NCHW input shape.
    pub shape: [usize; 4],
    /// The input exactly as fed to the network (RGB planes, 0..=255: the graph normalises).
    pub input: Vec<f32>,
    /// Every output, flattened in its NCHW / NC order.
    pub outputs: Vec<Vec<f32>>,
}

impl Detector {
    /// Loads `mtcnn_{pnet,rnet,onet}.onnx` from `models_dir`.
    pub fn new(
        models_dir: &Path,
        frame_w: u32,
        frame_h: u32,
        config: DetectorConfig,
    ) -> Result<Detector, DetectError> {
        Self::from_files(
            &models_dir.join(PNET_FILE),
            &models_dir.join(RNET_FILE),
            &models_dir.join(ONET_FILE),
            frame_w,
            frame_h,
            config,
        )
    }

    /// Plans every pyramid level for `frame_w` x `frame_h` once; [`Detector::detect`] then only runs.
    pub fn from_files(
        pnet: &Path,
        rnet: &Path,
        onet: &Path,
        frame_w: u32,
        frame_h: u32,
        config: DetectorConfig,
    ) -> Result<Detector, DetectError> {
        check_config(&config)?;
        if frame_w == 0 || frame_h == 0 || frame_w > 8192 || frame_h > 8192 {
            return Err(DetectError::Config(format!(
                "frame size {frame_w}x{frame_h} is outside 1..=8192"
            )));
        }
        let pfile = ModelFile::open(pnet)?;
        pfile.expect_role(Role::MtcnnPnet)?;
        let region = region_pixels(config.region, frame_w, frame_h);
        let (rw, rh) = (region[2] - region[0], region[3] - region[1]);
        let mut levels = Vec::new();
        for scale in pyramid(rw as u32, rh as u32, &config) {
            let h = (rh as f64 * scale + 1.0) as usize;
            let w = (rw as f64 * scale + 1.0) as usize;
            levels.push(Level {
                scale: scale as f32,
                h,
                w,
                plan: plan_pnet(&pfile, h, w)?,
            });
        }
        let mut near = Vec::new();
        for step in NEAR_STEPS {
            let side = (NEAR_WINDOW as f64 * 12.0 * config.factor.powi(step)).round() as usize;
            near.push(NearLevel {
                side,
                plan: plan_pnet(&pfile, side, side)?,
            });
        }
        Ok(Detector {
            frame_w,
            frame_h,
            config,
            region,
            levels,
            near,
            rnet: Stage::load(rnet, Role::MtcnnRnet, 24, 2)?,
            onet: Stage::load(onet, Role::MtcnnOnet, 48, 3)?,
            last_work: Cell::default(),
        })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Where the last detection's time went.
    pub fn last_work(&self) -> DetectWork {
        self.last_work.get()
    }

    /// Changes the three score thresholds (the pyramid does not depend on them, so nothing is
    /// re-planned).
    pub fn set_thresholds(&mut self, thresholds: [f32; 3]) -> Result<(), DetectError> {
        let config = DetectorConfig {
            thresholds,
            ..self.config.clone()
        };
        check_config(&config)?;
        self.config = config;
        Ok(())
    }

    /// Input sizes of the P-Net pyramid, largest first.
    pub fn pyramid_sizes(&self) -> Vec<(usize, usize)> {
        self.levels.iter().map(|l| (l.w, l.h)).collect()
    }

    /// All faces in `image`, highest score first.
    pub fn detect(&self, image: &image::RgbImage) -> Result<Vec<Face>, DetectError> {
        self.detect_traced(image, &mut None)
    }

    /// Faces in a photo known to show someone (an enrolment photo, a dataset image): when the
    /// configured thresholds find nothing, one more look with thresholds no higher than
    /// [`PHOTO_RETRY_THRESHOLDS`]. MTCNN was trained on colour; on grayscale LFW some clear, tilted
    /// faces score just under P-Net's 0.6 (12 of the 13 images missed at facenet-pytorch's defaults
    /// are found on the second look). Live frames do not retry: a lane sees the face again a frame
    /// later, and the lower thresholds cost time.
    pub fn detect_in_photo(&mut self, image: &image::RgbImage) -> Result<Vec<Face>, DetectError> {
        let faces = self.detect(image)?;
        let own = self.config.thresholds;
        let retry: [f32; 3] = std::array::from_fn(|i| own[i].min(PHOTO_RETRY_THRESHOLDS[i]));
        if !faces.is_empty() || retry == own {
            return Ok(faces);
        }
        self.set_thresholds(retry)?;
        let again = self.detect(image);
        self.config.thresholds = own;
        again
    }

    /// [`Detector::detect`], also returning every network run in order (P-Net levels largest
    /// first, then each R-Net and O-Net crop).
    pub fn trace(&self, image: &image::RgbImage) -> Result<(Vec<Face>, Vec<NetRun>), DetectError> {
        let mut runs = Vec::new();
        let faces = self.detect_traced(image, &mut Some(&mut runs))?;
        Ok((faces, runs))
    }

    /// Faces near where `expected` boxes say they are (the faces of earlier frames, moved as they
    /// were moving), instead of the whole frame's pyramid:
    /// - O-Net looks at each expected box, then once more at the box it regressed to (a face that
    ///   moved less than about a third of its side is found with these two runs);
    /// - where O-Net sees no face, P-Net searches a square of [`NEAR_WINDOW`] face sides around
    ///   the box at three scales around its size, and R- and O-Net follow as in [`Self::detect`]
    ///   (a window larger than the frame: the frame is searched whole).
    ///
    /// Faces elsewhere are not found: a caller runs a full pass now and then
    /// ([`guided::Guidance`]).
    pub fn detect_near(
        &self,
        image: &image::RgbImage,
        expected: &[[f32; 4]],
    ) -> Result<Vec<Face>, DetectError> {
        self.check_size(image)?;
        if expected.is_empty() {
            self.last_work.set(DetectWork::default());
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let img = Planes::from_rgb(image);
        let Followed {
            found: mut faces,
            missed,
            looks,
        } = self.onet_follow(&img, expected)?;
        let followed = started.elapsed();
        self.last_work.set(DetectWork::default());
        if !missed.is_empty() {
            let started = Instant::now();
            let searched = match self.near_windows(&missed) {
                Some(windows) => {
                    let cands = self.stage1_near(&img, &windows)?;
                    let p = started.elapsed();
                    self.finish(&img, cands, NEAR_MERGE_IOU, &mut None, started, p)?
                }
                // A window larger than the frame: the frame is searched whole.
                None => self.whole_pass(&img, &mut None, started)?,
            };
            faces.extend(searched);
        }
        let mut work = self.last_work.get();
        work.onet += followed;
        work.onet_crops += looks;
        self.last_work.set(work);
        Ok(distinct(faces))
    }

    /// The square searched around each usable expected box (boxes that are not finite or empty are
    /// skipped), moved inside the frame; `None` when one does not fit in the frame.
    fn near_windows(&self, expected: &[[f32; 4]]) -> Option<Vec<Window>> {
        let (fw, fh) = (self.frame_w as usize, self.frame_h as usize);
        let mut out = Vec::with_capacity(expected.len());
        for b in expected {
            let side = (b[2] - b[0]).max(b[3] - b[1]);
            if !(b.iter().all(|v| v.is_finite()) && side >= 1.0) {
                continue;
            }
            // At least P-Net's cell; the f32 -> usize cast saturates.
            let win = ((NEAR_WINDOW * side).round() as usize).max(12);
            if win > fw.min(fh) {
                return None;
            }
            let at = |centre: f32, limit: usize| {
                ((centre - win as f32 / 2.0).round().max(0.0) as usize).min(limit - win)
            };
            out.push(Window {
                x: at((b[0] + b[2]) / 2.0, fw),
                y: at((b[1] + b[3]) / 2.0, fh),
                side: win,
            });
        }
        Some(out)
    }

    fn check_size(&self, image: &image::RgbImage) -> Result<(), DetectError> {
        let (w, h) = image.dimensions();
        if (w, h) != (self.frame_w, self.frame_h) {
            return Err(DetectError::FrameSize {
                want_w: self.frame_w,
                want_h: self.frame_h,
                got_w: w,
                got_h: h,
            });
        }
        Ok(())
    }

    fn detect_traced(
        &self,
        image: &image::RgbImage,
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Face>, DetectError> {
        self.check_size(image)?;
        let started = Instant::now();
        let img = Planes::from_rgb(image);
        self.whole_pass(&img, trace, started)
    }

    /// The whole cascade over the pyramid of the region (P-Net's time counted from `started`).
    fn whole_pass(
        &self,
        img: &Planes,
        trace: &mut Option<&mut Vec<NetRun>>,
        started: Instant,
    ) -> Result<Vec<Face>, DetectError> {
        let cands = self.stage1(img, trace)?;
        let p = started.elapsed();
        self.finish(img, cands, CASCADE_MERGE_IOU, trace, started, p)
    }

    /// R- and O-Net on P-Net's candidates; records where the call's time went.
    fn finish(
        &self,
        img: &Planes,
        cands: Vec<Cand>,
        merge_iou: f32,
        trace: &mut Option<&mut Vec<NetRun>>,
        started: Instant,
        pnet: Duration,
    ) -> Result<Vec<Face>, DetectError> {
        let rnet_crops = cands.len();
        let cands = self.stage2(img, cands, merge_iou, trace)?;
        let rnet = started.elapsed() - pnet;
        let onet_crops = cands.len();
        let faces = self.stage3(img, cands, trace)?;
        let total = started.elapsed();
        self.last_work.set(DetectWork {
            pass: guided::PassKind::Full,
            pnet,
            rnet,
            onet: total - pnet - rnet,
            rnet_crops,
            onet_crops,
        });
        Ok(faces)
    }

    /// P-Net over the pyramid of the searched region; candidates in frame pixels.
    fn stage1(
        &self,
        img: &Planes,
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Cand>, DetectError> {
        let [x0, y0, x1, y1] = self.region;
        let mut all = Vec::new();
        for level in &self.levels {
            let input = img.resample(y0, x0, y1, x1, level.h, level.w);
            let shape = [1, 3, level.h, level.w];
            let found = self.pnet_candidates(
                &level.plan,
                input,
                shape,
                level.scale,
                (x0 as f32, y0 as f32),
                trace,
            )?;
            all.extend(nms(found, 0.5));
        }
        Ok(merge_levels(all, CASCADE_MERGE_IOU))
    }

    /// P-Net over the windows around expected faces ([`Self::detect_near`]).
    fn stage1_near(&self, img: &Planes, windows: &[Window]) -> Result<Vec<Cand>, DetectError> {
        let mut all = Vec::new();
        for w in windows {
            for level in &self.near {
                let input =
                    img.resample(w.y, w.x, w.y + w.side, w.x + w.side, level.side, level.side);
                let shape = [1, 3, level.side, level.side];
                let scale = level.side as f32 / w.side as f32;
                let origin = (w.x as f32, w.y as f32);
                let found =
                    self.pnet_candidates(&level.plan, input, shape, scale, origin, &mut None)?;
                all.extend(nms(found, 0.5));
            }
        }
        Ok(merge_levels(all, NEAR_MERGE_IOU))
    }

    /// One P-Net run on `input` (the image part at `origin`, resampled by `scale`): the cells
    /// scoring at least P-Net's threshold, as boxes in frame pixels with their regression.
    fn pnet_candidates(
        &self,
        plan: &Model,
        input: Vec<f32>,
        shape: [usize; 4],
        scale: f32,
        origin: (f32, f32),
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Cand>, DetectError> {
        let th = self.config.thresholds[0];
        // Only a trace pays for the copy.
        let kept = trace.is_some().then(|| input.clone());
        let out = run(plan, input, shape)?;
        let (probs, reg) = (view(plan, &out[0])?, view(plan, &out[1])?);
        if let (Some(runs), Some(input)) = (trace.as_deref_mut(), kept) {
            runs.push(NetRun {
                role: Role::MtcnnPnet,
                shape,
                input,
                outputs: vec![
                    probs.iter().copied().collect(),
                    reg.iter().copied().collect(),
                ],
            });
        }
        let (oh, ow) = (probs.shape()[2], probs.shape()[3]);
        let (ox, oy) = origin;
        let mut found = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let score = probs[[0, 1, y, x]];
                if score >= th {
                    // generateBoundingBox: stride 2, cell 12 (then moved to the part's origin).
                    let (bx, by) = (x as f32, y as f32);
                    found.push(Cand {
                        b: [
                            ((2.0 * bx + 1.0) / scale).floor() + ox,
                            ((2.0 * by + 1.0) / scale).floor() + oy,
                            ((2.0 * bx + 12.0) / scale).floor() + ox,
                            ((2.0 * by + 12.0) / scale).floor() + oy,
                        ],
                        score,
                        reg: [0, 1, 2, 3].map(|c| reg[[0, c, y, x]]),
                    });
                }
            }
        }
        Ok(found)
    }

    fn stage2(
        &self,
        img: &Planes,
        cands: Vec<Cand>,
        merge_iou: f32,
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Cand>, DetectError> {
        let (cands, crops) = crops(img, cands, self.rnet.side);
        let outs = self.rnet.run(&crops)?;
        if let Some(runs) = trace.as_deref_mut() {
            self.rnet.record(Role::MtcnnRnet, &crops, &outs, runs);
        }
        let th = self.config.thresholds[1];
        let passed: Vec<Cand> = cands
            .iter()
            .zip(&outs)
            .filter(|(_, o)| o[0][1] > th)
            .map(|(c, o)| Cand {
                b: c.b,
                score: o[0][1],
                reg: [o[1][0], o[1][1], o[1][2], o[1][3]],
            })
            .collect();
        Ok(nms(passed, merge_iou)
            .into_iter()
            .map(|c| Cand {
                b: square(regress(c.b, c.reg)),
                ..c
            })
            .collect())
    }

    fn stage3(
        &self,
        img: &Planes,
        cands: Vec<Cand>,
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Face>, DetectError> {
        let (cands, crops) = crops(img, cands, self.onet.side);
        let outs = self.onet.run(&crops)?;
        if let Some(runs) = trace.as_deref_mut() {
            self.onet.record(Role::MtcnnOnet, &crops, &outs, runs);
        }
        let th = self.config.thresholds[2];
        let faces: Vec<Face> = cands
            .iter()
            .zip(&outs)
            .filter_map(|(c, o)| onet_face(c.b, o, th))
            .collect();
        Ok(distinct(faces))
    }

    /// O-Net alone on each expected box (squared), and once more on the box it regressed to:
    /// a face that moved less than about a third of its side since the last frame is found with
    /// two O-Net runs. Returns the faces found and the boxes where O-Net saw none.
    fn onet_follow(&self, img: &Planes, expected: &[[f32; 4]]) -> Result<Followed, DetectError> {
        let th = self.config.thresholds[2];
        let (mut found, mut missed, mut looks) = (Vec::new(), Vec::new(), 0);
        for b in expected {
            let mut face = None;
            let mut look = square(*b);
            for _ in 0..2 {
                looks += 1;
                face = self.onet_once(img, look, th)?;
                match &face {
                    Some(f) => look = square(f.bbox),
                    None => break,
                }
            }
            match face {
                Some(f) => found.push(f),
                None => missed.push(*b),
            }
        }
        Ok(Followed {
            found,
            missed,
            looks,
        })
    }

    /// One O-Net run on one box: the face it sees there, if any.
    fn onet_once(&self, img: &Planes, b: [f32; 4], th: f32) -> Result<Option<Face>, DetectError> {
        let cand = Cand {
            b,
            score: 0.0,
            reg: [0.0; 4],
        };
        let (kept, crop) = crops(img, vec![cand], self.onet.side);
        let Some(c) = kept.first() else {
            return Ok(None);
        };
        let outs = self.onet.run(&crop)?;
        Ok(outs.first().and_then(|o| onet_face(c.b, o, th)))
    }
}

/// O-Net's answer for the crop of box `b` (outputs: probabilities, box offsets, landmarks), if it
/// scores above `th`: the regressed box, and the landmarks, relative to the input box with
/// facenet-pytorch's +1/-1 pixel conventions.
fn onet_face(b: [f32; 4], o: &[Vec<f32>], th: f32) -> Option<Face> {
    let score = o[0][1];
    if score <= th {
        return None;
    }
    let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    let p = &o[2];
    let landmarks = [0, 1, 2, 3, 4].map(|i| [bw * p[i] + b[0] - 1.0, bh * p[i + 5] + b[1] - 1.0]);
    let reg = [o[1][0], o[1][1], o[1][2], o[1][3]];
    Some(Face {
        bbox: regress(b, reg),
        score,
        landmarks,
    })
}

/// The final "Min" NMS: faces nested in a better one go; highest score first.
fn distinct(faces: Vec<Face>) -> Vec<Face> {
    let cands: Vec<Cand> = faces
        .iter()
        .map(|f| Cand {
            b: f.bbox,
            score: f.score,
            reg: [0.0; 4],
        })
        .collect();
    nms_min(&cands, 0.7)
        .into_iter()
        .map(|i| faces[i].clone())
        .collect()
}

/// P-Net's candidates of every level merged (NMS at `iou`), regressed and squared.
fn merge_levels(all: Vec<Cand>, iou: f32) -> Vec<Cand> {
    nms(all, iou)
        .into_iter()
        .map(|c| {
            let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
            let b = [
                c.b[0] + c.reg[0] * w,
                c.b[1] + c.reg[1] * h,
                c.b[2] + c.reg[2] * w,
                c.b[3] + c.reg[3] * h,
            ];
            Cand { b: square(b), ..c }
        })
        .collect()
}

impl DetectorConfig {
    /// Whether these settings are usable (every detector is built with them checked).
    pub fn check(&self) -> Result<(), DetectError> {
        check_config(self)
    }
}

fn check_config(c: &DetectorConfig) -> Result<(), DetectError> {
    if !(c.min_face.is_finite() && c.min_face >= 12.0) {
        return Err(DetectError::Config(format!(
            "min_face {} must be at least 12 pixels (P-Net's cell)",
            c.min_face
        )));
    }
    if !(c.factor.is_finite() && c.factor > 0.1 && c.factor < 0.95) {
        return Err(DetectError::Config(format!(
            "pyramid factor {} must be in (0.1, 0.95)",
            c.factor
        )));
    }
    let [x0, y0, x1, y1] = c.region;
    let fraction = |v: f32| (0.0..=1.0).contains(&v);
    if !(c.region.iter().all(|v| fraction(*v)) && x0 < x1 && y0 < y1) {
        return Err(DetectError::Config(format!(
            "region {:?} must be x0, y0, x1, y1 fractions of the frame with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1",
            c.region
        )));
    }
    if c.thresholds.iter().any(|t| !(0.0..1.0).contains(t)) {
        return Err(DetectError::Config(format!(
            "thresholds {:?} must each be in [0, 1)",
            c.thresholds
        )));
    }
    Ok(())
}

/// facenet-pytorch's scale list: from `12 / min_face` down by `factor` while the scaled short
/// side is at least 12 (P-Net's input cell), in f64 like Python.
fn pyramid(w: u32, h: u32, c: &DetectorConfig) -> Vec<f64> {
    let m = 12.0 / c.min_face as f64;
    let factor = c.factor;
    let mut minl = w.min(h) as f64 * m;
    let mut scale = m;
    let mut out = Vec::new();
    while minl >= 12.0 {
        out.push(scale);
        scale *= factor;
        minl *= factor;
    }
    out
}

/// P-Net planned for an `h` x `w` input, its output shapes checked.
fn plan_pnet(file: &ModelFile, h: usize, w: usize) -> Result<Model, DetectError> {
    let plan = file.plan(1, h, w)?;
    // Valid 3x3 conv, 2x2 ceil pool, two valid 3x3 convs.
    let (oh, ow) = ((h - 2).div_ceil(2) - 4, (w - 2).div_ceil(2) - 4);
    check_outputs(&plan, &[vec![1, 2, oh, ow], vec![1, 4, oh, ow]])?;
    Ok(plan)
}

/// A region given in fractions, in whole pixels of a `w` x `h` frame (at least one pixel).
fn region_pixels([x0, y0, x1, y1]: [f32; 4], w: u32, h: u32) -> [usize; 4] {
    let at = |f: f32, n: u32, up: bool| {
        let v = f * n as f32;
        (if up { v.ceil() } else { v.floor() }).clamp(0.0, n as f32) as usize
    };
    let (x0, y0) = (at(x0, w, false), at(y0, h, false));
    let (x1, y1) = (at(x1, w, true).max(x0 + 1), at(y1, h, true).max(y0 + 1));
    [x0, y0, x1.min(w as usize), y1.min(h as usize)]
}

fn check_outputs(plan: &Model, want: &[Vec<usize>]) -> Result<(), DetectError> {
    if plan.output_shapes != want {
        return Err(DetectError::Network {
            path: plan.path.clone(),
            what: format!(
                "outputs have shapes {:?}, expected {:?} (probs, boxes[, landmarks]); re-import it with `trainer import mtcnn`",
                plan.output_shapes, want
            ),
        });
    }
    Ok(())
}

fn run(plan: &Model, data: Vec<f32>, shape: [usize; 4]) -> Result<TVec<TValue>, DetectError> {
    let net_err = |what: String| DetectError::Network {
        path: plan.path.clone(),
        what,
    };
    let input = tract_ndarray::Array4::from_shape_vec(shape, data)
        .map_err(|e| net_err(format!("input: {e}")))?;
    plan.run(input.into_tensor())
        .map_err(|e| net_err(format!("tract failed: {e:#}")))
}

fn view<'a>(
    plan: &Model,
    v: &'a TValue,
) -> Result<tract_ndarray::ArrayViewD<'a, f32>, DetectError> {
    v.to_plain_array_view::<f32>()
        .map_err(|e| DetectError::Network {
            path: plan.path.clone(),
            what: format!("output is not f32: {e}"),
        })
}

impl Stage {
    fn load(path: &Path, role: Role, side: usize, outputs: usize) -> Result<Stage, DetectError> {
        let file = ModelFile::open(path)?;
        file.expect_role(role)?;
        let plan = file.plan(1, side, side)?;
        let widths: &[usize] = &[2, 4, 10][..outputs];
        check_outputs(
            &plan,
            &widths.iter().map(|w| vec![1, *w]).collect::<Vec<_>>(),
        )?;
        Ok(Stage {
            plan,
            side,
            outputs,
        })
    }

    fn record(&self, role: Role, crops: &[f32], outs: &[Vec<Vec<f32>>], runs: &mut Vec<NetRun>) {
        let per = 3 * self.side * self.side;
        for (crop, outputs) in crops.chunks_exact(per).zip(outs) {
            runs.push(NetRun {
                role,
                shape: [1, 3, self.side, self.side],
                input: crop.to_vec(),
                outputs: outputs.clone(),
            });
        }
    }

    /// Runs every crop (3 x side x side, concatenated); returns per crop its outputs.
    fn run(&self, crops: &[f32]) -> Result<Vec<Vec<Vec<f32>>>, DetectError> {
        let per = 3 * self.side * self.side;
        crops
            .chunks_exact(per)
            .map(|crop| {
                let res = run(&self.plan, crop.to_vec(), [1, 3, self.side, self.side])?;
                res.iter()
                    .take(self.outputs)
                    .map(|v| Ok(view(&self.plan, v)?.iter().copied().collect()))
                    .collect()
            })
            .collect()
    }
}

/// The face a single-subject frame is about: the largest, ties broken towards the centre.
pub fn main_face(faces: &[Face], frame_w: u32, frame_h: u32) -> Option<&Face> {
    let (cx, cy) = (frame_w as f32 / 2.0, frame_h as f32 / 2.0);
    let key = |f: &Face| {
        let (fx, fy) = ((f.bbox[0] + f.bbox[2]) / 2.0, (f.bbox[1] + f.bbox[3]) / 2.0);
        // facenet-pytorch's "center_weighted_size": area minus twice the squared offset.
        f.width() * f.height() - 2.0 * ((fx - cx).powi(2) + (fy - cy).powi(2))
    };
    faces.iter().max_by(|a, b| key(a).total_cmp(&key(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_matches_facenet_pytorch() {
        // 250x250, min face 40: m = 0.3, short side 75 -> 75, 53.2, 37.7, 26.7, 18.9, 13.4.
        let c = DetectorConfig {
            min_face: 40.0,
            ..Default::default()
        };
        let s = pyramid(250, 250, &c);
        assert_eq!(s.len(), 6);
        assert!((s[0] - 0.3).abs() < 1e-7 && (s[5] - 0.3 * 0.709f64.powi(5)).abs() < 1e-6);
        assert_eq!(pyramid(250, 250, &DetectorConfig::default()).len(), 8);
        // Too small a frame for the smallest face: no level at all.
        assert!(pyramid(30, 300, &c).is_empty());
    }

    #[test]
    fn regions_cover_whole_pixels_inside_the_frame() {
        assert_eq!(region_pixels(WHOLE_FRAME, 640, 480), [0, 0, 640, 480]);
        // Fractions that fall between pixels take the pixels they touch.
        assert_eq!(
            region_pixels([0.25, 0.1, 0.751, 0.5], 640, 480),
            [160, 48, 481, 240]
        );
        // A sliver is at least one pixel.
        assert_eq!(region_pixels([0.5, 0.5, 0.5, 0.5], 10, 10), [5, 5, 6, 6]);
        assert_eq!(
            region_pixels([1.0, 1.0, 1.0, 1.0], 10, 10),
            [10, 10, 10, 10]
        );
    }

    #[test]
    fn cache_keys_stay_those_of_older_caches_for_the_whole_frame() {
        let c = DetectorConfig {
            min_face: 40.0,
            ..Default::default()
        };
        assert_eq!(
            c.cache_key(),
            "DetectorConfig { min_face: 40.0, thresholds: [0.6, 0.7, 0.7], factor: 0.709 }"
        );
        let r = DetectorConfig {
            region: [0.0, 0.2, 1.0, 1.0],
            ..c
        };
        assert!(r.cache_key().ends_with(" region=[0.0, 0.2, 1.0, 1.0]"));
    }
}
