//! Frame sources: everything that turns a camera, a folder or a recording into RGB frames.
//!
//! Every source implements [`FrameSource`]: fill a caller-owned [`Frame`] (its buffer is reused, so
//! the hot loop does not allocate) or say why not with a typed [`SourceError`]. The run loop wraps a
//! source factory in [`reconnect::Reconnecting`] so that an unplugged camera comes back by itself.

pub mod files;
pub mod mjpeg;
pub mod pixel;
pub mod reconnect;
pub mod scripted;
pub mod spec;
#[cfg(feature = "v4l2")]
pub mod v4l2;

use std::time::{Duration, SystemTime};

use image::RgbImage;

pub use spec::{CaptureConfig, PixelFormatChoice, SourceSpec};

/// One decoded frame. Sources overwrite it in place; `rgb` keeps its allocation between frames of
/// the same size.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Tightly packed RGB8, row-major.
    pub rgb: RgbImage,
    /// Wall-clock time at which the frame was taken off the device or read from disk.
    pub timestamp: SystemTime,
    /// Frame counter of the source that produced it (monotonic across reconnects when the source
    /// is wrapped in [`reconnect::Reconnecting`]).
    pub seq: u64,
}

impl Frame {
    /// An empty frame (0x0) to be filled by a source.
    pub fn empty() -> Self {
        Frame {
            rgb: RgbImage::default(),
            timestamp: SystemTime::UNIX_EPOCH,
            seq: 0,
        }
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::empty()
    }
}

/// Why a source gave no frame. Each variant names the source (its spec string) so that a log line
/// is enough to find the device or file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Nothing arrived in time. Transient: call again.
    #[error("{origin}: no frame within {waited:?}")]
    Timeout { origin: String, waited: Duration },
    /// The device went away or failed at the I/O level (ENODEV, EIO, ...). Close and reopen it.
    #[error("{origin}: device unplugged or failing: {detail}")]
    Unplugged { origin: String, detail: String },
    /// One frame could not be used; the source itself is fine and the next call continues.
    #[error("{origin}: corrupt frame skipped: {reason}")]
    Corrupt { origin: String, reason: String },
    /// A finite source (folder, recording) has delivered everything.
    #[error("{origin}: end of stream")]
    EndOfStream { origin: String },
    /// The source could not be opened or configured.
    #[error("cannot open {origin}: {reason}")]
    Open { origin: String, reason: String },
}

impl SourceError {
    /// Short name of the variant, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Timeout { .. } => "timeout",
            SourceError::Unplugged { .. } => "unplugged",
            SourceError::Corrupt { .. } => "corrupt",
            SourceError::EndOfStream { .. } => "end-of-stream",
            SourceError::Open { .. } => "open",
        }
    }
}

/// A producer of frames: a camera, a folder of images, a recording, or a test script.
pub trait FrameSource: Send {
    /// Waits at most `timeout` for the next frame and writes it into `frame`, reusing its buffer.
    /// On error `frame` holds unspecified pixels and must not be used.
    fn next_frame(&mut self, frame: &mut Frame, timeout: Duration) -> Result<(), SourceError>;

    /// The spec string of this source (`v4l2:/dev/video0`, `frames:/data/in`, ...), for messages.
    fn name(&self) -> &str;
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn next_frame(&mut self, frame: &mut Frame, timeout: Duration) -> Result<(), SourceError> {
        (**self).next_frame(frame, timeout)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}
