//! MTCNN face detection: facenet-pytorch 2.6.0's cascade (`models/utils/detect_face.py`) over the
//! three ONNX nets written by `trainer import mtcnn`.
//!
//! P-Net runs on an image pyramid (one tract plan per scale, built once for the frame size), its
//! candidates are thresholded, merged by NMS per scale and across scales, regressed and squared;
//! R-Net rescores 24x24 crops, O-Net 48x48 crops and adds five landmarks; a final "Min" NMS removes
//! boxes nested in others. Resampling is PyTorch's `interpolate(mode="area")` (adaptive average
//! pooling), as facenet-pytorch uses for both the pyramid and the crops, so that candidates match.

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

use super::contract::Role;
use super::model::{Model, ModelError, ModelFile};

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
}

impl Default for DetectorConfig {
    /// facenet-pytorch's defaults.
    fn default() -> Self {
        DetectorConfig {
            min_face: 20.0,
            thresholds: [0.6, 0.7, 0.7],
            factor: 0.709,
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

pub struct Detector {
    frame_w: u32,
    frame_h: u32,
    config: DetectorConfig,
    levels: Vec<Level>,
    rnet: Stage,
    onet: Stage,
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

/// A candidate box with its score and regression offsets.
#[derive(Clone, Copy, Debug)]
struct Cand {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
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
        let mut levels = Vec::new();
        for scale in pyramid(frame_w, frame_h, &config) {
            let h = (frame_h as f64 * scale + 1.0) as usize;
            let w = (frame_w as f64 * scale + 1.0) as usize;
            let plan = pfile.plan(1, h, w)?;
            // Valid 3x3 conv, 2x2 ceil pool, two valid 3x3 convs.
            let (oh, ow) = ((h - 2).div_ceil(2) - 4, (w - 2).div_ceil(2) - 4);
            check_outputs(&plan, &[vec![1, 2, oh, ow], vec![1, 4, oh, ow]])?;
            levels.push(Level {
                scale: scale as f32,
                h,
                w,
                plan,
            });
        }
        Ok(Detector {
            frame_w,
            frame_h,
            config,
            levels,
            rnet: Stage::load(rnet, Role::MtcnnRnet, 24, 2)?,
            onet: Stage::load(onet, Role::MtcnnOnet, 48, 3)?,
        })
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
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

    fn detect_traced(
        &self,
        image: &image::RgbImage,
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Face>, DetectError> {
        let (w, h) = image.dimensions();
        if (w, h) != (self.frame_w, self.frame_h) {
            return Err(DetectError::FrameSize {
                want_w: self.frame_w,
                want_h: self.frame_h,
                got_w: w,
                got_h: h,
            });
        }
        let img = Planes::from_rgb(image);
        let cands = self.stage1(&img, trace)?;
        let cands = self.stage2(&img, cands, trace)?;
        self.stage3(&img, cands, trace)
    }

    fn stage1(
        &self,
        img: &Planes,
        trace: &mut Option<&mut Vec<NetRun>>,
    ) -> Result<Vec<Cand>, DetectError> {
        let th = self.config.thresholds[0];
        let mut all = Vec::new();
        for level in &self.levels {
            let input = img.resample(0, 0, img.h, img.w, level.h, level.w);
            let shape = [1, 3, level.h, level.w];
            // Only a trace pays for the copy.
            let kept = trace.is_some().then(|| input.clone());
            let out = run(&level.plan, input, shape)?;
            let (probs, reg) = (view(&level.plan, &out[0])?, view(&level.plan, &out[1])?);
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
            let mut found = Vec::new();
            for y in 0..oh {
                for x in 0..ow {
                    let score = probs[[0, 1, y, x]];
                    if score >= th {
                        // generateBoundingBox: stride 2, cell 12.
                        let (bx, by) = (x as f32, y as f32);
                        found.push(Cand {
                            b: [
                                ((2.0 * bx + 1.0) / level.scale).floor(),
                                ((2.0 * by + 1.0) / level.scale).floor(),
                                ((2.0 * bx + 12.0) / level.scale).floor(),
                                ((2.0 * by + 12.0) / level.scale).floor(),
                            ],
                            score,
                            reg: [0, 1, 2, 3].map(|c| reg[[0, c, y, x]]),
                        });
                    }
                }
            }
            all.extend(nms(found, 0.5));
        }
        let picked = nms(all, 0.7);
        Ok(picked
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
            .collect())
    }

    fn stage2(
        &self,
        img: &Planes,
        cands: Vec<Cand>,
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
        Ok(nms(passed, 0.7)
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
        let mut faces = Vec::new();
        for (c, o) in cands.iter().zip(&outs) {
            let score = o[0][1];
            if score <= th {
                continue;
            }
            // Landmarks are relative to the O-Net input box, with facenet-pytorch's +1/-1 pixel
            // conventions.
            let (bw, bh) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
            let p = &o[2];
            let landmarks =
                [0, 1, 2, 3, 4].map(|i| [bw * p[i] + c.b[0] - 1.0, bh * p[i + 5] + c.b[1] - 1.0]);
            let reg = [o[1][0], o[1][1], o[1][2], o[1][3]];
            faces.push((
                Cand {
                    b: regress(c.b, reg),
                    score,
                    reg,
                },
                landmarks,
            ));
        }
        let keep = nms_min(&faces.iter().map(|(c, _)| *c).collect::<Vec<_>>(), 0.7);
        Ok(keep
            .into_iter()
            .map(|i| Face {
                bbox: faces[i].0.b,
                score: faces[i].0.score,
                landmarks: faces[i].1,
            })
            .collect())
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

/// The image as three f32 planes (R, G, B), values 0..=255.
struct Planes {
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Planes {
    fn from_rgb(img: &image::RgbImage) -> Planes {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0.0f32; 3 * h * w];
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = px.0[c] as f32;
            }
        }
        Planes { h, w, data }
    }

    /// `interpolate(mode="area")` of rows `y0..y1`, columns `x0..x1` to `oh` x `ow`, CHW: each
    /// output pixel is the mean of the input window `[floor(i*in/out), ceil((i+1)*in/out))`.
    fn resample(
        &self,
        y0: usize,
        x0: usize,
        y1: usize,
        x1: usize,
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; 3 * oh * ow];
        self.resample_into(y0, x0, y1, x1, oh, ow, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn resample_into(
        &self,
        y0: usize,
        x0: usize,
        y1: usize,
        x1: usize,
        oh: usize,
        ow: usize,
        out: &mut [f32],
    ) {
        let (ih, iw) = (y1 - y0, x1 - x0);
        let ys = windows(ih, oh);
        let xs = windows(iw, ow);
        // Horizontal pass over the needed rows, then vertical: the window is a rectangle of
        // uniform weight, so the mean separates.
        let mut rows = vec![0.0f32; ih * ow];
        for c in 0..3 {
            let plane = &self.data[c * self.h * self.w..(c + 1) * self.h * self.w];
            for r in 0..ih {
                let line = &plane[(y0 + r) * self.w + x0..(y0 + r) * self.w + x1];
                for (o, (s, e)) in xs.iter().enumerate() {
                    rows[r * ow + o] = line[*s..*e].iter().sum::<f32>() / (e - s) as f32;
                }
            }
            let dst = &mut out[c * oh * ow..(c + 1) * oh * ow];
            for (o, (s, e)) in ys.iter().enumerate() {
                for x in 0..ow {
                    let sum: f32 = (*s..*e).map(|r| rows[r * ow + x]).sum();
                    dst[o * ow + x] = sum / (e - s) as f32;
                }
            }
        }
    }
}

/// Adaptive-average-pool windows for `input` -> `output` samples (both >= 1).
fn windows(input: usize, output: usize) -> Vec<(usize, usize)> {
    (0..output)
        .map(|i| ((i * input) / output, ((i + 1) * input).div_ceil(output)))
        .collect()
}

/// facenet-pytorch's `pad` + crop + `imresample`: truncates the box to integers, clips it to the
/// image (1-based, as in the MATLAB original) and resamples what is left. Boxes with nothing
/// inside the image are dropped here (facenet-pytorch skips them too but then misaligns its lists).
fn crops(img: &Planes, cands: Vec<Cand>, side: usize) -> (Vec<Cand>, Vec<f32>) {
    let per = 3 * side * side;
    let mut kept = Vec::with_capacity(cands.len());
    let mut data = vec![0.0f32; cands.len() * per];
    for c in cands {
        if !c.b.iter().all(|v| v.is_finite()) {
            continue;
        }
        // `trunc().int()`: toward zero; f32 -> i64 saturates, so huge values cannot wrap.
        let [x, y, ex, ey] = c.b.map(|v| v.trunc() as i64);
        let (x, y) = (x.max(1), y.max(1));
        let (ex, ey) = (ex.min(img.w as i64), ey.min(img.h as i64));
        if ey > y - 1 && ex > x - 1 {
            let at = kept.len() * per;
            img.resample_into(
                (y - 1) as usize,
                (x - 1) as usize,
                ey as usize,
                ex as usize,
                side,
                side,
                &mut data[at..at + per],
            );
            kept.push(c);
        }
    }
    data.truncate(kept.len() * per);
    (kept, data)
}

/// facenet-pytorch's `bbreg`: offsets scaled by the inclusive width/height.
fn regress(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// facenet-pytorch's `rerec`: a square of the longer side, same centre.
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// torchvision `nms`: highest score first, drop boxes whose IoU (no +1 on widths) with a kept one
/// exceeds `th`.
fn nms(mut c: Vec<Cand>, th: f32) -> Vec<Cand> {
    c.sort_by(|a, b| b.score.total_cmp(&a.score));
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut keep: Vec<Cand> = Vec::with_capacity(c.len());
    let mut dead = vec![false; c.len()];
    for i in 0..c.len() {
        if dead[i] {
            continue;
        }
        keep.push(c[i]);
        let a = &c[i].b;
        for j in i + 1..c.len() {
            if dead[j] {
                continue;
            }
            let b = &c[j].b;
            let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = iw * ih;
            let iou = inter / (area(a) + area(b) - inter);
            if iou > th {
                dead[j] = true;
            }
        }
    }
    keep
}

/// facenet-pytorch's `nms_numpy(.., 'Min')`: overlap is the intersection over the smaller box, with
/// +1 inclusive widths. Returns indices into `c`, highest score first.
fn nms_min(c: &[Cand], th: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|a, b| c[*b].score.total_cmp(&c[*a].score));
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut keep = Vec::new();
    while let Some((&i, rest)) = order.split_first() {
        keep.push(i);
        let a = &c[i].b;
        order = rest
            .iter()
            .copied()
            .filter(|&j| {
                let b = &c[j].b;
                let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
                let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
                iw * ih / area(a).min(area(b)) <= th
            })
            .collect();
    }
    keep
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

    fn cand(b: [f32; 4], score: f32) -> Cand {
        Cand {
            b,
            score,
            reg: [0.0; 4],
        }
    }

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
    fn area_windows_are_adaptive_pooling() {
        assert_eq!(windows(5, 2), [(0, 3), (2, 5)]);
        assert_eq!(windows(2, 4), [(0, 1), (0, 1), (1, 2), (1, 2)]);
        assert_eq!(windows(4, 2), [(0, 2), (2, 4)]);
    }

    #[test]
    fn resample_averages_each_window() {
        let (h, w) = (4, 6);
        let data: Vec<f32> = (0..3 * h * w).map(|i| i as f32).collect();
        let img = Planes { h, w, data };
        let out = img.resample(0, 0, 4, 6, 2, 3);
        // Channel 0, output (0,0): mean of rows 0..2, cols 0..2 = mean(0,1,6,7) = 3.5.
        assert_eq!(out[0], 3.5);
        // Channel 2, output (1,2): rows 2..4, cols 4..6 of plane 2 (offset 48): mean(64,65,70,71).
        assert_eq!(out[2 * 6 + 5], 67.5);
        // A sub-rectangle upsampled: every output is one input pixel.
        let up = img.resample(1, 2, 2, 3, 2, 2);
        assert!(up[..4].iter().all(|v| *v == 8.0), "{up:?}");
    }

    #[test]
    fn nms_keeps_best_and_drops_overlaps() {
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 1.0, 11.0, 11.0], 0.9),
            cand([20.0, 20.0, 30.0, 30.0], 0.7),
        ];
        let k = nms(c, 0.5);
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].score, 0.9);
        assert_eq!(k[1].score, 0.7);
        // IoU of the first two is 81/119 = 0.68: kept apart at 0.7.
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 1.0, 11.0, 11.0], 0.9),
        ];
        assert_eq!(nms(c, 0.7).len(), 2);
    }

    #[test]
    fn nms_min_drops_nested_boxes() {
        let c = [
            cand([0.0, 0.0, 99.0, 99.0], 0.8),
            cand([10.0, 10.0, 39.0, 39.0], 0.95),
            cand([200.0, 0.0, 220.0, 20.0], 0.5),
        ];
        // The small box lies inside the big one: overlap 1 over the smaller area.
        assert_eq!(nms_min(&c, 0.7), [1, 2]);
    }

    #[test]
    fn crops_clip_and_drop_outside_boxes() {
        let img = Planes {
            h: 10,
            w: 10,
            data: vec![1.0; 300],
        };
        let cands = vec![
            cand([-5.0, -5.0, 4.0, 4.0], 0.9),
            cand([50.0, 50.0, 60.0, 60.0], 0.9),
            cand([f32::NAN, 0.0, 5.0, 5.0], 0.9),
            cand([2.0, 2.0, 1e30, 1e30], 0.9),
        ];
        let (kept, data) = crops(&img, cands, 24);
        assert_eq!(kept.len(), 2);
        assert_eq!(data.len(), 2 * 3 * 24 * 24);
        assert!(data.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn square_and_regress_follow_facenet_pytorch() {
        assert_eq!(square([0.0, 0.0, 10.0, 20.0]), [-5.0, 0.0, 15.0, 20.0]);
        assert_eq!(
            regress([0.0, 0.0, 9.0, 9.0], [0.1, -0.1, 0.2, 0.0]),
            [1.0, -1.0, 11.0, 9.0]
        );
    }
}
