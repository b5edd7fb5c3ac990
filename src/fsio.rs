//! File writes that a power cut cannot leave half done.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that a reader sees the old or the new content, never a mix:
/// write a temporary file beside it, fsync, rename over it, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// A private temporary folder, removed with everything in it when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<system temp>/<prefix>-<16 random hex digits>`.
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        use anyhow::Context;
        let mut rnd = [0u8; 8];
        getrandom::getrandom(&mut rnd).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        let path = std::env::temp_dir().join(format!("{prefix}-{}", hex::encode(rnd)));
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
