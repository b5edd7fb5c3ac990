//! The LFW calibration photos in `../shared/data/lfw/calib` (people in no LFW pair), for tests that
//! need a few real faces.

use std::path::PathBuf;

/// The first `n` calibration photos, in name order.
pub fn calib_photos(n: usize) -> Vec<PathBuf> {
    let dir = super::lfw_dir().join("calib");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e} (CI keeps shared/ beside the clone)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files.truncate(n);
    files
}
