//! The calibration fixtures shared by `tests/vision/align_box_mapping.rs` and the development tool
//! `tools/fit_box_mapping.rs`: dlib HOG boxes and landmarks on the 300 LFW `calib/` images
//! (`dlib_hog_calib.json`) paired with lanewatch's MTCNN detections of the same images.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lanewatch::vision::align::MtcnnFace;
use lanewatch::vision::landmarks::{Point, Rect};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Calib {
    pub entries: Vec<CalibEntry>,
}

#[derive(Deserialize)]
pub struct CalibEntry {
    pub image: String,
    #[serde(rename = "box")]
    pub bbox: [i32; 4],
    pub landmarks: Vec<[f32; 2]>,
}

#[derive(Deserialize)]
pub struct Detections {
    pub entries: Vec<Detection>,
}

#[derive(Deserialize)]
pub struct Detection {
    pub image: String,
    pub bbox: [f32; 4],
    pub landmarks: [[f32; 2]; 5],
}

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The LFW subset beside the repository (defined here, not in `common`, because
/// `tools/fit_box_mapping.rs` mounts this module alone).
pub const LFW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/lfw");
pub const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/dlib_5pt.lwsp");

/// (MTCNN face, dlib HOG box, dlib entry) for every calibration image both found a face in.
pub fn calibration_pairs(detections: &Path) -> Vec<(MtcnnFace, Rect, CalibEntry)> {
    let text = std::fs::read_to_string(detections).unwrap();
    // The fixture wraps the list; a freshly dumped file may be the bare list.
    let dets: Vec<Detection> = serde_json::from_str::<Detections>(&text)
        .map(|d| d.entries)
        .or_else(|_| serde_json::from_str(&text))
        .unwrap();
    let calib: Calib = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/dlib_hog_calib.json")).unwrap(),
    )
    .unwrap();
    let mut dlib: HashMap<String, CalibEntry> = calib
        .entries
        .into_iter()
        .map(|e| (e.image.clone(), e))
        .collect();
    dets.iter()
        .filter_map(|d| {
            let e = dlib.remove(&d.image)?;
            let [l, t, r, b] = e.bbox;
            let face = MtcnnFace {
                bbox: d.bbox,
                points: d.landmarks.map(|p| Point::new(p[0], p[1])),
            };
            Some((face, Rect::new(l, t, r, b), e))
        })
        .collect()
}

pub fn fixture_pairs() -> Vec<(MtcnnFace, Rect, CalibEntry)> {
    calibration_pairs(Path::new(&format!(
        "{FIXTURES}/mtcnn_calib_detections.json"
    )))
}

pub fn gray(image: &str) -> image::GrayImage {
    let path = PathBuf::from(LFW).join(image);
    image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e} (the tests expect shared/ beside the repository)",
                path.display()
            )
        })
        .to_luma8()
}
