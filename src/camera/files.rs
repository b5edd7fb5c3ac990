//! `frames:DIR`: a folder of JPEG or PNG images delivered in file-name order, for demos, tests and
//! replaying captured lanes. Grayscale images become RGB by replicating the channel. Images wider
//! or taller than [`MAX_FILE_DIMENSION`] are refused from their header, before decoding, and
//! counted as corrupt; entries that are not regular files (a FIFO, a device, also behind a
//! symlink) are skipped as corrupt, naming the file, without blocking on them.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::pixel::{self, JpegDecoder, MAX_FILE_DIMENSION};
use super::{Frame, FrameSource, SourceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jpeg,
    Png,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => Some(Kind::Jpeg),
        "png" => Some(Kind::Png),
        _ => None,
    }
}

/// Counters of a folder source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameDirStats {
    pub delivered: u64,
    pub corrupt: u64,
}

/// Reads every `.jpg`, `.jpeg` and `.png` file of one folder (not its subfolders), sorted by name.
pub struct FrameDirSource {
    name: String,
    files: Vec<(PathBuf, Kind)>,
    next: usize,
    max_file_bytes: usize,
    bytes: Vec<u8>,
    jpeg: JpegDecoder,
    seq: u64,
    stats: FrameDirStats,
}

impl FrameDirSource {
    /// Lists the folder. Fails if it cannot be read or holds no image.
    pub fn open(dir: &Path, name: String, max_file_bytes: usize) -> Result<Self, SourceError> {
        let open_err = |reason: String| SourceError::Open {
            origin: name.clone(),
            reason,
        };
        let entries = fs::read_dir(dir).map_err(|e| {
            open_err(format!(
                "cannot list {}: {e}; check that the folder exists and is readable",
                dir.display()
            ))
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| open_err(format!("cannot list {}: {e}", dir.display())))?;
            let path = entry.path();
            let is_file = entry
                .file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .unwrap_or(false);
            if let (true, Some(kind)) = (is_file, kind_of(&path)) {
                files.push((path, kind));
            }
        }
        if files.is_empty() {
            return Err(open_err(format!(
                "{} holds no .jpg, .jpeg or .png file",
                dir.display()
            )));
        }
        files.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
        Ok(FrameDirSource {
            name,
            files,
            next: 0,
            max_file_bytes,
            bytes: Vec::new(),
            jpeg: JpegDecoder::with_max_dimension(MAX_FILE_DIMENSION),
            seq: 0,
            stats: FrameDirStats::default(),
        })
    }

    /// Number of images found when the folder was listed.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True if the folder held no image (never the case for an opened source).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn stats(&self) -> FrameDirStats {
        self.stats
    }

    fn read(&mut self, path: &Path) -> Result<(), String> {
        let file = crate::fsio::open_regular(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        self.bytes.clear();
        // Read one byte past the limit to detect oversize files without trusting metadata.
        let limit = self.max_file_bytes as u64 + 1;
        file.take(limit)
            .read_to_end(&mut self.bytes)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if self.bytes.len() > self.max_file_bytes {
            return Err(format!(
                "{} is larger than {} bytes",
                path.display(),
                self.max_file_bytes
            ));
        }
        Ok(())
    }

    fn decode(&mut self, kind: Kind, path: &Path, frame: &mut Frame) -> Result<(), String> {
        match kind {
            Kind::Jpeg => self
                .jpeg
                .decode_into(&self.bytes, &mut frame.rgb)
                .map_err(|e| format!("{}: {e}", path.display())),
            Kind::Png => decode_png(&self.bytes, frame)
                .map_err(|e| format!("{}: {}", path.display(), pixel::one_line(&e))),
        }
    }
}

fn decode_png(bytes: &[u8], frame: &mut Frame) -> Result<(), String> {
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_FILE_DIMENSION);
    limits.max_image_height = Some(MAX_FILE_DIMENSION);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    let (w, h) = (img.width(), img.height());
    match img {
        image::DynamicImage::ImageLuma8(gray) => {
            pixel::luma_to_rgb(gray.as_raw(), w, h, &mut frame.rgb).map_err(|e| e.to_string())
        }
        image::DynamicImage::ImageRgb8(rgb) => {
            pixel::reshape(&mut frame.rgb, w, h).map_err(|e| e.to_string())?;
            frame.rgb.copy_from_slice(rgb.as_raw());
            Ok(())
        }
        other => {
            let rgb = other.to_rgb8();
            pixel::reshape(&mut frame.rgb, w, h).map_err(|e| e.to_string())?;
            frame.rgb.copy_from_slice(rgb.as_raw());
            Ok(())
        }
    }
}

impl FrameSource for FrameDirSource {
    fn next_frame(&mut self, frame: &mut Frame, _timeout: Duration) -> Result<(), SourceError> {
        let Some((path, kind)) = self.files.get(self.next).cloned() else {
            return Err(SourceError::EndOfStream {
                origin: self.name.clone(),
            });
        };
        self.next += 1;
        let result = self
            .read(&path)
            .and_then(|()| self.decode(kind, &path, frame));
        match result {
            Ok(()) => {
                frame.timestamp = SystemTime::now();
                frame.seq = self.seq;
                self.seq += 1;
                self.stats.delivered += 1;
                Ok(())
            }
            Err(reason) => {
                self.stats.corrupt += 1;
                Err(SourceError::Corrupt {
                    origin: self.name.clone(),
                    reason,
                })
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}
