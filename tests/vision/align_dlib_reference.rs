//! Landmarks and face chips against the real dlib, on LFW images.
//!
//! `tests/fixtures/dlib_align_reference.json` holds what dlib 20.x computed (see
//! `tools/dlib_reference.py`): HOG boxes, the 5 landmarks, the chip geometry, and chip statistics
//! with a fixed set of sampled chip pixels. Here the same images are decoded, run through
//! lanewatch's predictor and chip extraction, and compared. Needs `../shared/data/lfw` (CI has it).

use std::path::{Path, PathBuf};

use lanewatch::vision::align::{
    Aligner, CHIP_PADDING, CHIP_SIZE, ChipScratch, RgbChip, extract_image_chip, face_chip_details,
};
use lanewatch::vision::image::ImageView;
use lanewatch::vision::landmarks::{Point, Rect, ShapePredictor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::common::LFW;
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/dlib_5pt.lwsp");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dlib_align_reference.json"
);

#[derive(Deserialize)]
struct Fixture {
    chip_size: usize,
    padding: f64,
    sample_positions: Vec<[usize; 2]>,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    image: String,
    scale: usize,
    width: usize,
    height: usize,
    pixels_sha256: String,
    #[serde(rename = "box")]
    bbox: [i32; 4],
    landmarks: Vec<[f32; 2]>,
    chip_rect: [f64; 4],
    chip_angle: f64,
    chip_mean: f64,
    samples: Vec<u8>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(FIXTURE).expect("read the dlib reference fixture");
    serde_json::from_str(&text).expect("parse the dlib reference fixture")
}

/// Decodes as the fixture's generator did (grayscale), enlarged by pixel replication.
fn load(entry: &Entry) -> Vec<u8> {
    let path = PathBuf::from(LFW).join(&entry.image);
    assert!(
        Path::new(LFW).is_dir(),
        "LFW test data not found at {LFW}: the tests expect shared/ beside the repository"
    );
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("cannot decode {}: {e}", path.display()))
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let s = entry.scale;
    let mut out = Vec::with_capacity(w * h * s * s);
    for y in 0..h * s {
        for x in 0..w * s {
            out.push(img.as_raw()[(y / s) * w + x / s]);
        }
    }
    assert_eq!(
        (w * s, h * s),
        (entry.width, entry.height),
        "{}",
        entry.image
    );
    assert_eq!(
        hex::encode(Sha256::digest(&out)),
        entry.pixels_sha256,
        "{}: the image crate decodes this JPEG differently from the fixture's generator, so the \
         comparison with dlib would be meaningless; regenerate the fixture or fix the decoder",
        entry.image
    );
    out
}

fn points(entry: &Entry) -> [Point; 5] {
    std::array::from_fn(|i| Point::new(entry.landmarks[i][0], entry.landmarks[i][1]))
}

#[test]
fn landmarks_match_dlib() {
    let fx = fixture();
    let sp = ShapePredictor::open(Path::new(MODEL)).expect("load models/dlib_5pt.lwsp");
    let mut scratch = sp.scratch();
    let mut worst = 0.0f32;
    let mut differing = 0;
    for e in &fx.entries {
        let pixels = load(e);
        let img = ImageView::gray(&pixels, e.width, e.height).unwrap();
        let [l, t, r, b] = e.bbox;
        let got = sp.predict(&img, Rect::new(l, t, r, b), &mut scratch);
        let want = points(e);
        let err = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g.x - w.x).abs().max((g.y - w.y).abs()))
            .fold(0.0f32, f32::max);
        if err > 0.0 {
            differing += 1;
            eprintln!("{} x{}: got {got:?}, dlib {want:?}", e.image, e.scale);
        }
        worst = worst.max(err);
    }
    eprintln!(
        "landmarks: {} faces, {differing} differ from dlib, worst coordinate error {worst} px",
        fx.entries.len()
    );
    assert!(
        fx.entries.len() >= 30,
        "the fixture should hold at least 30 faces"
    );
    assert!(
        worst <= 0.05,
        "worst landmark error {worst} px exceeds 0.05 px"
    );
}

#[test]
fn chip_geometry_matches_dlib() {
    let fx = fixture();
    let mut worst = (0.0f64, 0.0f64);
    for e in &fx.entries {
        let d = face_chip_details(&points(e), fx.chip_size, fx.padding);
        let got = [d.rect.left, d.rect.top, d.rect.right, d.rect.bottom];
        for (g, w) in got.iter().zip(&e.chip_rect) {
            worst.0 = worst.0.max((g - w).abs());
        }
        worst.1 = worst.1.max((d.angle - e.chip_angle).abs());
        assert_eq!((d.rows, d.cols), (fx.chip_size, fx.chip_size));
    }
    eprintln!(
        "chip geometry: worst corner error {:e} px, worst angle error {:e} rad",
        worst.0, worst.1
    );
    assert!(worst.0 < 1e-6 && worst.1 < 1e-9, "{worst:?}");
}

#[test]
fn chips_match_dlib() {
    let fx = fixture();
    assert_eq!((fx.chip_size, fx.padding), (CHIP_SIZE, CHIP_PADDING));
    let mut scratch = ChipScratch::default();
    let mut chip = RgbChip::default();
    let (mut total_abs, mut total_n, mut worst_chip, mut worst_mean) =
        (0u64, 0usize, 0.0f64, 0.0f64);
    let dumps = std::env::var_os("LANEWATCH_DLIB_CHIP_DUMPS").map(PathBuf::from);
    let (mut full_abs, mut full_n, mut full_max) = (0u64, 0usize, 0u8);
    for e in &fx.entries {
        let pixels = load(e);
        let img = ImageView::gray(&pixels, e.width, e.height).unwrap();
        let details = face_chip_details(&points(e), CHIP_SIZE, CHIP_PADDING);
        extract_image_chip(&img, &details, &mut scratch, &mut chip).unwrap();
        assert_eq!((chip.width, chip.height), (CHIP_SIZE, CHIP_SIZE));
        let mut abs = 0u64;
        for (&[x, y], &want) in fx.sample_positions.iter().zip(&e.samples) {
            let got = chip.pixel(x, y).unwrap();
            assert!(
                got[0] == got[1] && got[1] == got[2],
                "a gray chip has equal channels"
            );
            abs += u64::from(got[0].abs_diff(want));
        }
        let mean_abs = abs as f64 / e.samples.len() as f64;
        let mean = chip
            .data
            .iter()
            .step_by(3)
            .map(|&v| f64::from(v))
            .sum::<f64>()
            / (CHIP_SIZE * CHIP_SIZE) as f64;
        worst_chip = worst_chip.max(mean_abs);
        worst_mean = worst_mean.max((mean - e.chip_mean).abs());
        total_abs += abs;
        total_n += e.samples.len();
        assert!(
            mean_abs <= 1.0,
            "{} x{}: sampled chip pixels differ from dlib's by {mean_abs} grey levels on average",
            e.image,
            e.scale
        );
        if let Some(dir) = &dumps {
            // Development only: dlib's full chips written by tools/dlib_reference.py --dump-chips.
            let name = format!("{}.x{}.rgb", e.image.replace('/', "__"), e.scale);
            if let Ok(want) = std::fs::read(dir.join(name)) {
                for (g, w) in chip.data.iter().zip(&want) {
                    let d = g.abs_diff(*w);
                    full_abs += u64::from(d);
                    full_max = full_max.max(d);
                }
                full_n += want.len();
            }
        }
    }
    eprintln!(
        "chips: {} faces, sampled pixels mean abs error {:.4} grey levels (worst chip {:.4}), worst chip-mean error {:.4}",
        fx.entries.len(),
        total_abs as f64 / total_n as f64,
        worst_chip,
        worst_mean
    );
    if full_n > 0 {
        eprintln!(
            "full chips: {full_n} values, mean abs error {:.5}, max {full_max}",
            full_abs as f64 / full_n as f64
        );
    }
    assert!(
        worst_mean <= 0.5,
        "chip mean differs from dlib's by {worst_mean}"
    );
    assert!(
        fx.entries.iter().any(|e| e.scale > 1),
        "the fixture should include enlarged images that exercise the pyramid"
    );
}

/// The whole path as the box runs it: dlib box -> landmarks -> chip, all from lanewatch.
#[test]
fn aligner_reproduces_dlib_end_to_end() {
    let fx = fixture();
    let mut aligner = Aligner::open(Path::new(MODEL)).expect("load models/dlib_5pt.lwsp");
    let mut worst = 0.0f64;
    for e in &fx.entries {
        let pixels = load(e);
        let img = ImageView::gray(&pixels, e.width, e.height).unwrap();
        let [l, t, r, b] = e.bbox;
        let out = aligner.align(&img, Rect::new(l, t, r, b)).unwrap();
        let abs: u32 = fx
            .sample_positions
            .iter()
            .zip(&e.samples)
            .map(|(&[x, y], &want)| u32::from(out.chip.pixel(x, y).unwrap()[0].abs_diff(want)))
            .sum();
        worst = worst.max(f64::from(abs) / e.samples.len() as f64);
    }
    eprintln!("end to end: worst chip mean abs error {worst:.4} grey levels");
    assert!(worst <= 1.0, "{worst}");
}
