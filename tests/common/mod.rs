//! What the integration tests share: where the LFW data lives, scratch directories, the CLI
//! runner, and the fixtures of each area (one module each).

pub mod align_calib;
pub mod calib;
pub mod cli;
pub mod pipeline;
pub mod tls;
pub mod watchlist;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The LFW subset beside the repository, and its images folder (one sub-folder per person).
pub use align_calib::LFW;
pub const LFW_IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/lfw/images");

/// The LFW subset beside the repository (`../shared/data/lfw`): read at test time, never copied
/// into the repository.
pub fn lfw_dir() -> PathBuf {
    PathBuf::from(LFW)
}

/// `img` as a baseline JPEG at `quality` (1-100), the way a camera or a photo folder delivers it.
pub fn encode_jpeg(img: &image::RgbImage, quality: u8) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// A fresh, empty scratch directory named after `tag`, unique in this process and across
/// processes: tests of several modules share one test binary and run at once.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("lanewatch-test-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
