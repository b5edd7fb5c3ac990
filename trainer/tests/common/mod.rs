//! What the trainer's integration tests share: inputs that are not in the repository, where the
//! LFW data lives, and scratch directories.

pub mod inputs;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The workspace root (the lanewatch repository).
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The LFW subset beside the repository, and its images folder (one sub-folder per person).
pub const LFW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/lfw");
pub const LFW_IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/lfw/images");

/// The LFW subset beside the repository (`../shared/data/lfw`).
pub fn lfw_dir() -> PathBuf {
    PathBuf::from(LFW)
}

/// A fresh, empty scratch directory named after `tag`, unique in this process and across
/// processes: tests of several modules share one test binary and run at once.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "lanewatch-trainer-test-{}-{n}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
