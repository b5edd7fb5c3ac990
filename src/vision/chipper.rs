//! The one path from an image to a face chip: MTCNN (planned for the image size, re-planned when
//! it changes), the fitted mapping from MTCNN's box to dlib's landmark box, dlib's 5-point
//! landmarks and the chip cut. Lanes and enrolment (through [`super::faces::FaceAnalyzer`]), the
//! trainer's chip cache, quantisation calibration and evaluation all cut their chips here, so that
//! what is trained, calibrated and measured is what the lanes see.

use anyhow::Context;
use image::RgbImage;

use super::align::mtcnn::FITTED_BOX_MAPPING;
use super::align::{Aligned, Aligner, BoxMapping, ChipSpec, MtcnnFace, RgbChip};
use super::detect::guided::{Guidance, GuidanceStats, Pass, PassKind};
use super::detect::{DetectWork, Detector, DetectorConfig, Face, main_face};
use super::faces::FaceModels;
use super::image::ImageView;
use super::landmarks::Point;

pub struct FaceChipper {
    detector: Detector,
    aligner: Aligner,
    mapping: BoxMapping,
    spec: ChipSpec,
    frame_size: (u32, u32),
    detector_config: DetectorConfig,
    models: FaceModels,
    /// Full and near passes over live frames ([`Self::detect`]); every frame full unless
    /// [`Self::guide_detection`] says otherwise.
    guidance: Guidance,
    /// How the last live frame was searched and where the time went.
    last_work: DetectWork,
}

impl FaceChipper {
    /// Loads the detector and landmark models (not the embedder) and plans the detector for
    /// `frame_w` x `frame_h` images.
    pub fn open(
        models: &FaceModels,
        spec: ChipSpec,
        frame_w: u32,
        frame_h: u32,
        config: DetectorConfig,
    ) -> anyhow::Result<FaceChipper> {
        let detector = Detector::from_files(
            &models.pnet,
            &models.rnet,
            &models.onet,
            frame_w,
            frame_h,
            config.clone(),
        )?;
        Ok(FaceChipper {
            detector,
            aligner: Aligner::open(&models.landmarks)?,
            mapping: FITTED_BOX_MAPPING,
            spec,
            frame_size: (frame_w, frame_h),
            detector_config: config,
            models: models.clone(),
            guidance: Guidance::new(1, 0.0),
            last_work: DetectWork::default(),
        })
    }

    /// The chip geometry cut (the embedder contract's).
    pub fn spec(&self) -> ChipSpec {
        self.spec
    }

    /// Re-plans the detector for another image size (a camera renegotiated, a folder or photos of
    /// several sizes): every detection calls it first. Nothing happens when the size is the planned
    /// one.
    fn resize(&mut self, frame_w: u32, frame_h: u32) -> anyhow::Result<()> {
        if (frame_w, frame_h) != self.frame_size {
            let m = &self.models;
            self.detector = Detector::from_files(
                &m.pnet,
                &m.rnet,
                &m.onet,
                frame_w,
                frame_h,
                self.detector_config.clone(),
            )?;
            self.frame_size = (frame_w, frame_h);
            self.guidance.reset();
        }
        Ok(())
    }

    /// Track-guided detection of live frames ([`super::detect::guided`]): a full pass at least
    /// every `full_every` frames, near searches around the followed faces between them (1: a full
    /// pass every frame); an empty lane unchanged by less than `unchanged_level` grey levels since
    /// it was searched whole is not searched again (0: always searched).
    pub fn guide_detection(&mut self, full_every: u32, unchanged_level: f32) {
        self.guidance = Guidance::new(full_every, unchanged_level);
    }

    /// Forgets the faces followed: the next live frame is searched whole (a new clip, a reopened
    /// camera).
    pub fn reset_guidance(&mut self) {
        self.guidance.reset();
    }

    pub fn guidance_stats(&self) -> GuidanceStats {
        self.guidance.stats()
    }

    /// How the last live frame ([`Self::detect`]) was searched and where the time went (both
    /// passes summed when a near search was followed by a full one).
    pub fn last_work(&self) -> DetectWork {
        self.last_work
    }

    /// Every face in a live frame (planned for the frame's size): the whole frame, or near the
    /// faces being followed when detection is guided (see [`Self::guide_detection`]).
    pub fn detect(&mut self, frame: &RgbImage) -> anyhow::Result<Vec<Face>> {
        self.resize(frame.width(), frame.height())?;
        let pass = self.guidance.next_pass();
        if pass == Pass::Full && self.guidance.skip_unchanged(frame) {
            self.last_work = DetectWork {
                pass: PassKind::Unchanged,
                ..DetectWork::default()
            };
            return Ok(Vec::new());
        }
        let mut faces = match &pass {
            Pass::Full => self.detector.detect(frame),
            Pass::Near(expected) => self.detector.detect_near(frame, expected),
        }
        .context("detecting faces")?;
        let mut work = self.detector.last_work();
        work.pass = match pass {
            Pass::Full => PassKind::Full,
            Pass::Near(_) => PassKind::Near,
        };
        let fell_back = self.guidance.near_missed(&pass, faces.len());
        if fell_back {
            faces = self.detector.detect(frame).context("detecting faces")?;
            let full = self.detector.last_work();
            work = DetectWork {
                pass: PassKind::NearThenFull,
                pnet: work.pnet + full.pnet,
                rnet: work.rnet + full.rnet,
                onet: work.onet + full.onet,
                rnet_crops: work.rnet_crops + full.rnet_crops,
                onet_crops: work.onet_crops + full.onet_crops,
            };
        }
        self.last_work = work;
        if pass == Pass::Full || fell_back {
            self.guidance.searched_whole(frame, faces.len());
        }
        self.guidance.record(&pass, fell_back, &faces);
        Ok(faces)
    }

    /// The face a photo is about (an enrolment photo, a dataset image): detected with the
    /// detector's second look, then the largest face weighted towards the centre
    /// ([`main_face`], facenet-pytorch's choice), so a bystander at the edge is not picked.
    pub fn photo_main_face(&mut self, image: &RgbImage) -> anyhow::Result<Option<Face>> {
        self.resize(image.width(), image.height())?;
        let faces = self
            .detector
            .detect_in_photo(image)
            .context("detecting faces")?;
        Ok(main_face(&faces, image.width(), image.height()).cloned())
    }

    /// Landmarks and chip of one detected face; `None` when its box cannot be mapped to a
    /// landmark box (a degenerate detection). The chip borrows the aligner's buffer.
    pub fn align(
        &mut self,
        view: &ImageView<'_>,
        face: &Face,
    ) -> anyhow::Result<Option<Aligned<'_>>> {
        let Some(dlib_box) = self.mapping.apply(&mtcnn_face(face)) else {
            return Ok(None);
        };
        let aligned = self
            .aligner
            .align_to(view, dlib_box, self.spec)
            .context("aligning a face")?;
        Ok(Some(aligned))
    }

    /// The chip of a photo's main face ([`Self::photo_main_face`]). `None` when no face is found or
    /// it cannot be aligned.
    pub fn main_face_chip(&mut self, image: &RgbImage) -> anyhow::Result<Option<RgbChip>> {
        let Some(face) = self.photo_main_face(image)? else {
            return Ok(None);
        };
        let view = ImageView::of(image)?;
        Ok(self.align(&view, &face)?.map(|a| a.chip.clone()))
    }
}

/// MTCNN's detection in the form the box mapping reads.
pub fn mtcnn_face(face: &Face) -> MtcnnFace {
    MtcnnFace {
        bbox: face.bbox,
        points: face.landmarks.map(|p| Point::new(p[0], p[1])),
    }
}
