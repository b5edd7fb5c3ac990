//! The source spec a user writes on the command line or in the config: `v4l2:/dev/video0`
//! (or `v4l2:0`), `frames:DIR`, `mjpeg:FILE`, plus the capture settings that go with it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::pixel::YuvRange;
use super::{FrameSource, SourceError};

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A V4L2 capture device node.
    V4l2 { device: PathBuf },
    /// A folder of JPEG/PNG images, read in file-name order.
    Frames { dir: PathBuf },
    /// A file of concatenated JPEG frames, as cameras record MJPEG.
    Mjpeg { file: PathBuf },
}

/// Why a spec string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "bad frame source {spec:?}: {why}; expected v4l2:/dev/videoN (or v4l2:N), frames:DIR or mjpeg:FILE"
)]
pub struct SpecError {
    pub spec: String,
    pub why: String,
}

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let err = |why: &str| SpecError {
            spec: s.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = s.split_once(':').ok_or_else(|| err("no scheme"))?;
        if rest.is_empty() {
            return Err(err("nothing after the scheme"));
        }
        // A NUL cannot be passed to open(2) (and the v4l crate panics on one).
        if rest.contains('\0') {
            return Err(err("the path contains a NUL byte"));
        }
        match scheme {
            "v4l2" => {
                if rest.bytes().all(|b| b.is_ascii_digit()) {
                    let n: u32 = rest.parse().map_err(|_| err("device number too large"))?;
                    return Ok(SourceSpec::V4l2 {
                        device: PathBuf::from(format!("/dev/video{n}")),
                    });
                }
                if !rest.starts_with('/') {
                    return Err(err(
                        "the device must be an absolute path such as /dev/video0",
                    ));
                }
                Ok(SourceSpec::V4l2 {
                    device: PathBuf::from(rest),
                })
            }
            "frames" => Ok(SourceSpec::Frames {
                dir: PathBuf::from(rest),
            }),
            "mjpeg" => Ok(SourceSpec::Mjpeg {
                file: PathBuf::from(rest),
            }),
            other => Err(err(&format!("unknown scheme {other:?}"))),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::V4l2 { device } => write!(f, "v4l2:{}", device.display()),
            SourceSpec::Frames { dir } => write!(f, "frames:{}", dir.display()),
            SourceSpec::Mjpeg { file } => write!(f, "mjpeg:{}", file.display()),
        }
    }
}

/// Which pixel format to ask a V4L2 camera for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelFormatChoice {
    /// YUYV if the camera offers it at the size, else MJPEG, else NV12.
    #[default]
    Auto,
    Yuyv,
    Mjpeg,
    Nv12,
}

impl FromStr for PixelFormatChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(PixelFormatChoice::Auto),
            "yuyv" => Ok(PixelFormatChoice::Yuyv),
            "mjpeg" | "mjpg" => Ok(PixelFormatChoice::Mjpeg),
            "nv12" => Ok(PixelFormatChoice::Nv12),
            _ => Err(format!(
                "unknown pixel format {s:?}: use auto, yuyv, mjpeg or nv12"
            )),
        }
    }
}

/// Capture settings for a camera. Folder and recording sources take the size of their images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormatChoice,
    /// Number of mmap buffers the driver fills in turn (2..=32).
    pub buffers: u32,
    /// Range of the camera's YUV output; most USB cameras send limited range.
    pub yuv_range: YuvRange,
    /// Largest file or JPEG frame read from disk, in bytes.
    pub max_file_bytes: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            width: 1280,
            height: 720,
            format: PixelFormatChoice::Auto,
            buffers: 4,
            yuv_range: YuvRange::Limited,
            max_file_bytes: 32 << 20,
        }
    }
}

impl SourceSpec {
    /// Opens the source. A camera is negotiated to `config`'s size and format.
    pub fn open(&self, config: &CaptureConfig) -> Result<Box<dyn FrameSource>, SourceError> {
        let name = self.to_string();
        match self {
            SourceSpec::V4l2 { device } => open_v4l2(device, name, config),
            SourceSpec::Frames { dir } => Ok(Box::new(super::files::FrameDirSource::open(
                dir,
                name,
                config.max_file_bytes,
            )?)),
            SourceSpec::Mjpeg { file } => Ok(Box::new(super::mjpeg::MjpegFileSource::open(
                file,
                name,
                config.max_file_bytes,
            )?)),
        }
    }
}

#[cfg(feature = "v4l2")]
fn open_v4l2(
    device: &std::path::Path,
    name: String,
    config: &CaptureConfig,
) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(Box::new(super::v4l2::V4l2Source::open(
        device, name, config,
    )?))
}

#[cfg(not(feature = "v4l2"))]
fn open_v4l2(
    _device: &std::path::Path,
    name: String,
    _config: &CaptureConfig,
) -> Result<Box<dyn FrameSource>, SourceError> {
    Err(SourceError::Open {
        origin: name,
        reason: "this build has no V4L2 support: rebuild with the default feature `v4l2`".into(),
    })
}
