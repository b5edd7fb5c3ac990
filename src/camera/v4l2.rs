//! `v4l2:/dev/videoN`: a V4L2 capture device read by mmap streaming.
//!
//! The v4l crate opens the device and negotiates the format; the buffer ring is managed here rather
//! than by `v4l::io::mmap::Stream`, whose `Drop` panics on teardown errors other than ENODEV (and
//! whose arena then panics again while unwinding, which aborts). Our teardown ignores errors, and
//! the device handle (whose `Drop` unwraps `close`) is dropped inside `catch_unwind`.
//!
//! Every dequeued buffer is sliced to `bytesused`; buffers flagged `V4L2_BUF_FLAG_ERROR` are
//! requeued and reported as corrupt. ENODEV, EIO and ENXIO are reported as `Unplugged`, for
//! [`super::reconnect::Reconnecting`] to reopen the device.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, SystemTime};

use v4l::FourCC;
use v4l::capability::Flags as CapFlags;
use v4l::device::Device;
use v4l::v4l_sys::{v4l2_buffer, v4l2_requestbuffers};
use v4l::v4l2::vidioc;
use v4l::video::Capture;

use super::pixel::{self, JpegDecoder, YuvRange};
use super::spec::{CaptureConfig, PixelFormatChoice};
use super::{Frame, FrameSource, SourceError};

const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
const MEMORY_MMAP: u32 = 1;
const BUF_FLAG_ERROR: u32 = 0x0000_0040;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pixels {
    Yuyv,
    Mjpeg,
    Nv12,
}

impl Pixels {
    fn fourcc(self) -> FourCC {
        match self {
            Pixels::Yuyv => FourCC::new(b"YUYV"),
            Pixels::Mjpeg => FourCC::new(b"MJPG"),
            Pixels::Nv12 => FourCC::new(b"NV12"),
        }
    }
}

/// One driver buffer mapped into our address space.
struct Mapped {
    ptr: *mut u8,
    len: usize,
}

/// An open, streaming V4L2 capture device.
pub struct V4l2Source {
    name: String,
    device: Option<Device>,
    fd: i32,
    buffers: Vec<Mapped>,
    streaming: bool,
    pixels: Pixels,
    width: u32,
    height: u32,
    stride: usize,
    range: YuvRange,
    jpeg: JpegDecoder,
    seq: u64,
}

// SAFETY: the mapped buffers are owned by this value alone (no other handle to them exists), so
// moving it to the capture thread is sound; it is not shared between threads (`!Sync`).
unsafe impl Send for V4l2Source {}

fn is_unplug(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV)
            | Some(libc::EIO)
            | Some(libc::ENXIO)
            | Some(libc::EPIPE)
            | Some(libc::EBADF)
    )
}

impl V4l2Source {
    /// Opens `device`, negotiates `config`'s size and pixel format, maps the buffers and starts
    /// streaming.
    pub fn open(device: &Path, name: String, config: &CaptureConfig) -> Result<Self, SourceError> {
        let open_err = |reason: String| SourceError::Open {
            origin: name.clone(),
            reason,
        };
        let dev = Device::with_path(device).map_err(|e| {
            open_err(format!(
                "{e}; check that the camera is plugged in and that this user may open {} (group video)",
                device.display()
            ))
        })?;
        let mut source = V4l2Source {
            name: name.clone(),
            fd: dev.handle().fd(),
            device: Some(dev),
            buffers: Vec::new(),
            streaming: false,
            pixels: Pixels::Yuyv,
            width: config.width,
            height: config.height,
            stride: 0,
            range: config.yuv_range,
            // A frame larger than the negotiated size is refused from its header, undecoded.
            jpeg: JpegDecoder::with_max_size(config.width, config.height),
            seq: 0,
        };
        // From here on, `source`'s Drop releases whatever was set up if a later step fails.
        source.negotiate(config).map_err(open_err)?;
        source
            .map_buffers(config.buffers.clamp(2, 32))
            .map_err(|e| SourceError::Open {
                origin: name.clone(),
                reason: format!("cannot map capture buffers: {e}"),
            })?;
        source.start().map_err(|e| SourceError::Open {
            origin: name.clone(),
            reason: format!("cannot start streaming: {e}"),
        })?;
        Ok(source)
    }

    fn device(&self) -> Result<&Device, String> {
        self.device
            .as_ref()
            .ok_or_else(|| "device already closed".to_string())
    }

    fn negotiate(&mut self, config: &CaptureConfig) -> Result<(), String> {
        let dev = self.device()?;
        let caps = dev
            .query_caps()
            .map_err(|e| format!("VIDIOC_QUERYCAP failed: {e}"))?;
        if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE) {
            return Err(format!(
                "{} ({}) is not a single-planar video capture device",
                caps.card, caps.driver
            ));
        }
        if !caps.capabilities.contains(CapFlags::STREAMING) {
            return Err(format!(
                "{} ({}) does not support streaming I/O",
                caps.card, caps.driver
            ));
        }
        let offered: Vec<FourCC> = dev
            .enum_formats()
            .map_err(|e| format!("cannot list pixel formats: {e}"))?
            .into_iter()
            .map(|d| d.fourcc)
            .collect();
        let wanted: &[Pixels] = match config.format {
            PixelFormatChoice::Auto => &[Pixels::Yuyv, Pixels::Mjpeg, Pixels::Nv12],
            PixelFormatChoice::Yuyv => &[Pixels::Yuyv],
            PixelFormatChoice::Mjpeg => &[Pixels::Mjpeg],
            PixelFormatChoice::Nv12 => &[Pixels::Nv12],
        };
        let mut refused = Vec::new();
        for &pixels in wanted {
            if !offered.contains(&pixels.fourcc()) {
                continue;
            }
            let asked = v4l::Format::new(config.width, config.height, pixels.fourcc());
            let got = dev
                .set_format(&asked)
                .map_err(|e| format!("VIDIOC_S_FMT {} failed: {e}", pixels.fourcc()))?;
            if got.fourcc == pixels.fourcc()
                && got.width == config.width
                && got.height == config.height
            {
                self.pixels = pixels;
                self.stride = got.stride as usize;
                return Ok(());
            }
            refused.push(format!(
                "{} gave {}x{} {}",
                pixels.fourcc(),
                got.width,
                got.height,
                got.fourcc
            ));
        }
        let offered: Vec<String> = offered.iter().map(|f| f.to_string()).collect();
        Err(format!(
            "no usable format at {}x{} (asked {:?}; camera offers [{}]{}); choose a size and format the camera supports (v4l2-ctl --list-formats-ext)",
            config.width,
            config.height,
            config.format,
            offered.join(", "),
            if refused.is_empty() {
                String::new()
            } else {
                format!("; driver answered: {}", refused.join("; "))
            }
        ))
    }

    fn ioctl<T>(&self, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is the struct the request expects (chosen by each caller) and `fd` is open
        // for as long as `self.device` is Some, which it is until Drop.
        unsafe { v4l::v4l2::ioctl(self.fd, request, arg as *mut T as *mut std::os::raw::c_void) }
    }

    fn buffer_desc(index: u32) -> v4l2_buffer {
        // SAFETY: v4l2_buffer is a plain C struct for which all-zero is a valid value.
        let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
        buf.type_ = BUF_TYPE_VIDEO_CAPTURE;
        buf.memory = MEMORY_MMAP;
        buf.index = index;
        buf
    }

    fn map_buffers(&mut self, count: u32) -> io::Result<()> {
        // SAFETY: all-zero is a valid v4l2_requestbuffers.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = BUF_TYPE_VIDEO_CAPTURE;
        req.memory = MEMORY_MMAP;
        self.ioctl(vidioc::VIDIOC_REQBUFS, &mut req)?;
        if req.count < 2 {
            return Err(io::Error::other(format!(
                "driver granted only {} buffers",
                req.count
            )));
        }
        for index in 0..req.count.min(32) {
            let mut buf = Self::buffer_desc(index);
            self.ioctl(vidioc::VIDIOC_QUERYBUF, &mut buf)?;
            let len = buf.length as usize;
            // SAFETY: `m.offset` is the union member the driver fills for MMAP buffers.
            let offset = unsafe { buf.m.offset };
            // SAFETY: maps a driver buffer of `len` bytes at the driver's offset; unmapped in Drop.
            let ptr = unsafe {
                v4l::v4l2::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.fd,
                    offset as libc::off_t,
                )?
            };
            self.buffers.push(Mapped {
                ptr: ptr as *mut u8,
                len,
            });
        }
        Ok(())
    }

    fn start(&mut self) -> io::Result<()> {
        for index in 0..self.buffers.len() as u32 {
            let mut buf = Self::buffer_desc(index);
            self.ioctl(vidioc::VIDIOC_QBUF, &mut buf)?;
        }
        let mut typ = BUF_TYPE_VIDEO_CAPTURE;
        self.ioctl(vidioc::VIDIOC_STREAMON, &mut typ)?;
        self.streaming = true;
        Ok(())
    }

    fn unplugged(&self, what: &str, e: &io::Error) -> SourceError {
        SourceError::Unplugged {
            origin: self.name.clone(),
            detail: format!("{what}: {e}"),
        }
    }

    /// Converts the dequeued buffer's `bytesused` bytes into `frame`.
    fn convert(&self, data: &[u8], frame: &mut Frame) -> Result<(), pixel::PixelError> {
        match self.pixels {
            Pixels::Yuyv => pixel::yuyv_to_rgb(
                data,
                self.width,
                self.height,
                self.stride,
                self.range,
                &mut frame.rgb,
            ),
            Pixels::Nv12 => pixel::nv12_to_rgb(
                data,
                self.width,
                self.height,
                self.stride,
                self.range,
                &mut frame.rgb,
            ),
            Pixels::Mjpeg => self.jpeg.decode_into(data, &mut frame.rgb),
        }
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self, frame: &mut Frame, timeout: Duration) -> Result<(), SourceError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Err(SourceError::Timeout {
                    origin: self.name.clone(),
                    waited: timeout,
                });
            }
            return Err(self.unplugged("poll", &e));
        }
        if ready == 0 {
            return Err(SourceError::Timeout {
                origin: self.name.clone(),
                waited: timeout,
            });
        }
        let mut buf = Self::buffer_desc(0);
        if let Err(e) = self.ioctl(vidioc::VIDIOC_DQBUF, &mut buf) {
            if e.raw_os_error() == Some(libc::EAGAIN) || e.kind() == io::ErrorKind::Interrupted {
                return Err(SourceError::Timeout {
                    origin: self.name.clone(),
                    waited: timeout,
                });
            }
            return Err(self.unplugged("VIDIOC_DQBUF", &e));
        }
        let index = buf.index as usize;
        let Some(mapped) = self.buffers.get(index) else {
            return Err(SourceError::Unplugged {
                origin: self.name.clone(),
                detail: format!(
                    "driver returned buffer index {index} of {}",
                    self.buffers.len()
                ),
            });
        };
        let used = (buf.bytesused as usize).min(mapped.len);
        let converted = if buf.flags & BUF_FLAG_ERROR != 0 {
            Err("driver flagged the buffer as corrupt".to_string())
        } else {
            // SAFETY: the buffer is dequeued (the driver does not write it until we queue it
            // again) and `used` is within its mapping.
            let data = unsafe { std::slice::from_raw_parts(mapped.ptr as *const u8, used) };
            self.convert(data, frame).map_err(|e| e.to_string())
        };
        let mut requeue = Self::buffer_desc(buf.index);
        if let Err(e) = self.ioctl(vidioc::VIDIOC_QBUF, &mut requeue) {
            return Err(if is_unplug(&e) {
                self.unplugged("VIDIOC_QBUF", &e)
            } else {
                SourceError::Unplugged {
                    origin: self.name.clone(),
                    detail: format!("cannot requeue buffer {index}: {e}"),
                }
            });
        }
        match converted {
            Ok(()) => {
                frame.timestamp = SystemTime::now();
                frame.seq = self.seq;
                self.seq += 1;
                Ok(())
            }
            Err(reason) => Err(SourceError::Corrupt {
                origin: self.name.clone(),
                reason: format!("{reason} ({used} bytes used)"),
            }),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // Teardown errors (the device may be gone) are ignored: there is nothing left to save.
        if self.streaming {
            let mut typ = BUF_TYPE_VIDEO_CAPTURE;
            let _ = self.ioctl(vidioc::VIDIOC_STREAMOFF, &mut typ);
        }
        for mapped in self.buffers.drain(..) {
            // SAFETY: unmaps exactly the region mapped in `map_buffers`; no slice of it outlives
            // `next_frame`.
            let _ =
                unsafe { v4l::v4l2::munmap(mapped.ptr as *mut std::os::raw::c_void, mapped.len) };
        }
        // SAFETY: all-zero is a valid v4l2_requestbuffers; count 0 frees the driver's buffers.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.type_ = BUF_TYPE_VIDEO_CAPTURE;
        req.memory = MEMORY_MMAP;
        let _ = self.ioctl(vidioc::VIDIOC_REQBUFS, &mut req);
        if let Some(device) = self.device.take() {
            // v4l's Handle::drop unwraps close(2); an unplugged device must not abort the box.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(device)));
        }
    }
}

/// One capture device as `lanewatch probe` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    pub path: std::path::PathBuf,
    pub card: String,
    pub driver: String,
    pub bus: String,
    /// Whether lanewatch can stream from it (single-planar capture with streaming I/O).
    pub usable: bool,
    /// Pixel format (fourcc and description) and the frame sizes it offers.
    pub formats: Vec<(String, String, Vec<String>)>,
    /// Why the device could not be queried, if it could not.
    pub error: Option<String>,
}

/// Every `/dev/video*` node with its capabilities, formats and frame sizes. A node that cannot be
/// opened or queried is listed with the reason rather than skipped.
pub fn list_cameras() -> Vec<CameraInfo> {
    let mut nodes: Vec<_> = v4l::context::enum_devices()
        .into_iter()
        .map(|n| n.path().to_path_buf())
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .map(|path| {
            // The crate's Device unwraps close() in Drop: query inside catch_unwind.
            catch_unwind(AssertUnwindSafe(|| describe(&path))).unwrap_or_else(|_| CameraInfo {
                path: path.clone(),
                card: String::new(),
                driver: String::new(),
                bus: String::new(),
                usable: false,
                formats: vec![],
                error: Some("the v4l library panicked while querying the device".into()),
            })
        })
        .collect()
}

fn describe(path: &Path) -> CameraInfo {
    let mut info = CameraInfo {
        path: path.to_path_buf(),
        card: String::new(),
        driver: String::new(),
        bus: String::new(),
        usable: false,
        formats: vec![],
        error: None,
    };
    let dev = match Device::with_path(path) {
        Ok(d) => d,
        Err(e) => {
            info.error = Some(format!("cannot open: {e}"));
            return info;
        }
    };
    match dev.query_caps() {
        Ok(caps) => {
            info.card = caps.card;
            info.driver = caps.driver;
            info.bus = caps.bus;
            info.usable = caps.capabilities.contains(CapFlags::VIDEO_CAPTURE)
                && caps.capabilities.contains(CapFlags::STREAMING);
        }
        Err(e) => {
            info.error = Some(format!("VIDIOC_QUERYCAP failed: {e}"));
            return info;
        }
    }
    if info.usable {
        match dev.enum_formats() {
            Ok(formats) => {
                for f in formats {
                    let sizes = dev
                        .enum_framesizes(f.fourcc)
                        .map(|sizes| sizes.into_iter().map(|s| s.size.to_string()).collect())
                        .unwrap_or_default();
                    info.formats
                        .push((f.fourcc.to_string(), f.description.clone(), sizes));
                }
            }
            Err(e) => info.error = Some(format!("cannot list pixel formats: {e}")),
        }
    }
    info
}
