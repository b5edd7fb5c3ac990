//! Pixel conversion into reused RGB buffers: packed YUYV and semi-planar NV12 (BT.601) and JPEG.
//!
//! The fast paths use yuvutils-rs and zune-jpeg, which have NEON kernels on aarch64 (armv7 falls back
//! to scalar). [`reference`] holds straightforward float versions that tests and benches measure
//! the fast paths against.

use image::RgbImage;
use yuvutils_rs::{YuvBiPlanarImage, YuvConversionMode, YuvPackedImage, YuvStandardMatrix};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// Largest width or height accepted from any source: bounds every allocation made from a header.
pub const MAX_DIMENSION: u32 = 8192;

/// Largest width or height of an image read from a file: a `frames:` folder, an `mjpeg:`
/// recording, an enrolment photo. Checked from the header before anything is decoded, so a tiny
/// file claiming a huge image costs nothing (a 4096x4096 frame is 48 MiB of RGB). Cameras are
/// held to their configured capture size instead.
pub const MAX_FILE_DIMENSION: u32 = 4096;

/// `text` on one line: every control character (a decoder's multi-line message) becomes a
/// space, so an error never splits a log line.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// How luma and chroma codes map to light. USB cameras send YUYV in limited ("TV") range; JPEG
/// (and so MJPEG) is always full range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvRange {
    /// Y in 16..=235, Cb/Cr in 16..=240.
    #[default]
    Limited,
    /// Y, Cb and Cr use all of 0..=255.
    Full,
}

impl YuvRange {
    fn to_yuvutils(self) -> yuvutils_rs::YuvRange {
        match self {
            YuvRange::Limited => yuvutils_rs::YuvRange::Limited,
            YuvRange::Full => yuvutils_rs::YuvRange::Full,
        }
    }
}

/// Why a buffer could not be converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PixelError {
    #[error("frame size {width}x{height} is not allowed: {why}")]
    BadSize {
        width: u32,
        height: u32,
        why: &'static str,
    },
    #[error("buffer holds {got} bytes but a {width}x{height} {format} frame needs {need}")]
    Short {
        format: &'static str,
        width: u32,
        height: u32,
        need: usize,
        got: usize,
    },
    #[error("JPEG decode failed: {0}")]
    Jpeg(String),
    #[error("conversion failed: {0}")]
    Convert(String),
}

/// Resizes `img` to `width` x `height` keeping its allocation when it is large enough.
pub fn reshape(img: &mut RgbImage, width: u32, height: u32) -> Result<(), PixelError> {
    if img.dimensions() == (width, height) {
        return Ok(());
    }
    check_dimensions(width, height)?;
    let len = rgb_len(width, height)?;
    let mut buf = std::mem::take(img).into_raw();
    buf.resize(len, 0);
    *img = RgbImage::from_raw(width, height, buf).ok_or(PixelError::BadSize {
        width,
        height,
        why: "buffer length does not match",
    })?;
    Ok(())
}

fn check_dimensions(width: u32, height: u32) -> Result<(), PixelError> {
    if width == 0 || height == 0 {
        return Err(PixelError::BadSize {
            width,
            height,
            why: "zero width or height",
        });
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(PixelError::BadSize {
            width,
            height,
            why: "larger than 8192 pixels on a side",
        });
    }
    Ok(())
}

fn rgb_len(width: u32, height: u32) -> Result<usize, PixelError> {
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or(PixelError::BadSize {
            width,
            height,
            why: "size overflows",
        })
}

fn check_even(width: u32, height: u32, format: &'static str) -> Result<(), PixelError> {
    check_dimensions(width, height)?;
    if !width.is_multiple_of(2) || (format == "NV12" && !height.is_multiple_of(2)) {
        return Err(PixelError::BadSize {
            width,
            height,
            why: "chroma subsampling needs even dimensions",
        });
    }
    Ok(())
}

/// Converts packed YUYV 4:2:2 (`Y0 U Y1 V`) with `stride` bytes per row into `dst` (BT.601).
pub fn yuyv_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    range: YuvRange,
    dst: &mut RgbImage,
) -> Result<(), PixelError> {
    check_even(width, height, "YUYV")?;
    let row = width as usize * 2;
    let stride = if stride == 0 { row } else { stride };
    let need = packed_need(stride, row, height);
    if stride < row || src.len() < need {
        return Err(PixelError::Short {
            format: "YUYV",
            width,
            height,
            need,
            got: src.len(),
        });
    }
    reshape(dst, width, height)?;
    let convert = |yuy: &[u8], rgb: &mut [u8], rows: u32| {
        let image = YuvPackedImage {
            yuy,
            yuy_stride: width * 2,
            width,
            height: rows,
        };
        yuvutils_rs::yuyv422_to_rgb(
            &image,
            rgb,
            width * 3,
            range.to_yuvutils(),
            YuvStandardMatrix::Bt601,
        )
        .map_err(|e| PixelError::Convert(e.to_string()))
    };
    if stride == row {
        return convert(&src[..need], dst.as_mut(), height);
    }
    // yuvutils-rs 0.8 requires packed input to be exactly 2 * width * height bytes, so padded rows
    // (drivers may align bytesperline) are first packed into a reused per-thread buffer.
    with_scratch(row * height as usize, |packed| {
        for (y, out) in packed.chunks_exact_mut(row).enumerate() {
            out.copy_from_slice(&src[y * stride..y * stride + row]);
        }
        convert(packed, dst.as_mut(), height)
    })
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread buffer of `len` bytes that keeps its allocation between frames.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.resize(len, 0);
            f(&mut buf[..len])
        }
        // Re-entered (not possible through this module): fall back to a temporary buffer.
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Bytes needed for `height` rows of `row` bytes at `stride`: the last row need not be padded.
fn packed_need(stride: usize, row: usize, height: u32) -> usize {
    stride
        .saturating_mul(height.saturating_sub(1) as usize)
        .saturating_add(row)
}

/// Converts NV12 (a Y plane, then an interleaved CbCr plane at half resolution) laid out as V4L2's
/// single-plane `NV12`: both planes use `stride` bytes per row and the CbCr plane starts right after
/// `height` luma rows.
pub fn nv12_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    range: YuvRange,
    dst: &mut RgbImage,
) -> Result<(), PixelError> {
    check_even(width, height, "NV12")?;
    let row = width as usize;
    let stride = if stride == 0 { row } else { stride };
    let y_len = stride.saturating_mul(height as usize);
    let need = y_len.saturating_add(packed_need(stride, row, height / 2));
    if stride < row || src.len() < need {
        return Err(PixelError::Short {
            format: "NV12",
            width,
            height,
            need,
            got: src.len(),
        });
    }
    reshape(dst, width, height)?;
    let convert = |y_plane: &[u8],
                   y_stride: usize,
                   uv_plane: &[u8],
                   uv_stride: usize,
                   rgb: &mut [u8],
                   rows: u32| {
        let image = YuvBiPlanarImage {
            y_plane,
            y_stride: u32::try_from(y_stride).map_err(|_| PixelError::Convert("stride".into()))?,
            uv_plane,
            uv_stride: u32::try_from(uv_stride)
                .map_err(|_| PixelError::Convert("stride".into()))?,
            width,
            height: rows,
        };
        yuvutils_rs::yuv_nv12_to_rgb(
            &image,
            rgb,
            width * 3,
            range.to_yuvutils(),
            YuvStandardMatrix::Bt601,
            YuvConversionMode::default(),
        )
        .map_err(|e| PixelError::Convert(e.to_string()))
    };
    if stride == row {
        return convert(
            &src[..y_len],
            row,
            &src[y_len..need],
            row,
            dst.as_mut(),
            height,
        );
    }
    // yuvutils-rs 0.8 requires the chroma plane to be exactly width * height / 2 bytes, so padded
    // planes are first packed into a reused per-thread buffer.
    let luma_len = row * height as usize;
    with_scratch(luma_len + row * (height as usize / 2), |packed| {
        let (luma, chroma) = packed.split_at_mut(luma_len);
        for (y, out) in luma.chunks_exact_mut(row).enumerate() {
            out.copy_from_slice(&src[y * stride..y * stride + row]);
        }
        for (y, out) in chroma.chunks_exact_mut(row).enumerate() {
            let at = y_len + y * stride;
            out.copy_from_slice(&src[at..at + row]);
        }
        convert(luma, row, chroma, row, dst.as_mut(), height)
    })
}

/// Copies an 8-bit grayscale image into `dst`, replicating the channel.
pub fn luma_to_rgb(
    src: &[u8],
    width: u32,
    height: u32,
    dst: &mut RgbImage,
) -> Result<(), PixelError> {
    check_dimensions(width, height)?;
    let need = (width as usize) * (height as usize);
    if src.len() < need {
        return Err(PixelError::Short {
            format: "GRAY8",
            width,
            height,
            need,
            got: src.len(),
        });
    }
    reshape(dst, width, height)?;
    for (px, &y) in dst.as_mut().chunks_exact_mut(3).zip(&src[..need]) {
        px.fill(y);
    }
    Ok(())
}

/// Largest photo file read for enrolment.
pub const MAX_PHOTO_BYTES: u64 = 32 << 20;

/// Decodes a JPEG or PNG photo (enrolment) as RGB, refusing from its header, before decoding,
/// an image wider or taller than [`MAX_FILE_DIMENSION`].
pub fn decode_photo(bytes: &[u8]) -> Result<RgbImage, PixelError> {
    // The header only, so that the error names the size.
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PixelError::Convert(one_line(&e.to_string())))?
        .into_dimensions()
        .map_err(|e| PixelError::Convert(one_line(&e.to_string())))?;
    if w > MAX_FILE_DIMENSION || h > MAX_FILE_DIMENSION {
        return Err(PixelError::BadSize {
            width: w,
            height: h,
            why: "larger than the 4096x4096 limit for image files",
        });
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PixelError::Convert(one_line(&e.to_string())))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_FILE_DIMENSION);
    limits.max_image_height = Some(MAX_FILE_DIMENSION);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| PixelError::Convert(one_line(&e.to_string())))?;
    Ok(img.to_rgb8())
}

/// Decodes baseline and progressive JPEG (and camera MJPEG frames that omit their Huffman tables)
/// into RGB. Grayscale JPEGs come out with the channel replicated.
#[derive(Debug, Clone, Copy)]
pub struct JpegDecoder {
    max_width: u32,
    max_height: u32,
}

impl Default for JpegDecoder {
    fn default() -> Self {
        Self::with_max_dimension(MAX_DIMENSION)
    }
}

impl JpegDecoder {
    /// A decoder that refuses images wider or taller than `max_dimension` before allocating.
    pub fn with_max_dimension(max_dimension: u32) -> Self {
        Self::with_max_size(max_dimension, max_dimension)
    }

    /// A decoder that refuses, from the header and before allocating, images wider than
    /// `max_width` or taller than `max_height` (a camera's configured capture size).
    pub fn with_max_size(max_width: u32, max_height: u32) -> Self {
        JpegDecoder {
            max_width: max_width.clamp(1, MAX_DIMENSION),
            max_height: max_height.clamp(1, MAX_DIMENSION),
        }
    }

    /// Reads only the header: `(width, height)`.
    pub fn dimensions(&self, data: &[u8]) -> Result<(u32, u32), PixelError> {
        let mut decoder =
            zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), self.options());
        contain(|| decoder.decode_headers())?;
        let (w, h) = decoder
            .dimensions()
            .ok_or_else(|| PixelError::Jpeg("no dimensions after header".into()))?;
        Ok((w as u32, h as u32))
    }

    /// Decodes `data` into `dst`, resizing it to the image's size.
    pub fn decode_into(&self, data: &[u8], dst: &mut RgbImage) -> Result<(), PixelError> {
        let mut decoder =
            zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), self.options());
        contain(|| decoder.decode_headers())?;
        let (w, h) = decoder
            .dimensions()
            .ok_or_else(|| PixelError::Jpeg("no dimensions after header".into()))?;
        let (w, h) = (w as u32, h as u32);
        if w > self.max_width || h > self.max_height {
            return Err(PixelError::BadSize {
                width: w,
                height: h,
                why: "larger than the configured maximum",
            });
        }
        reshape(dst, w, h)?;
        if decoder.output_colorspace() != Some(ColorSpace::RGB) {
            return Err(PixelError::Jpeg(format!(
                "decoder would output {:?}, not RGB",
                decoder.output_colorspace()
            )));
        }
        contain(|| decoder.decode_into(dst.as_mut()))
    }

    fn options(&self) -> DecoderOptions {
        DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            // The absolute cap; the decoder's own (smaller) one is checked after the header, so
            // the error names the size.
            .set_max_width(MAX_DIMENSION as usize)
            .set_max_height(MAX_DIMENSION as usize)
            .set_strict_mode(false)
    }
}

/// Runs a decoder step, turning both its errors and any panic into [`PixelError::Jpeg`]: a camera
/// can send anything, and one bad frame must not take the box down.
fn contain<T>(
    f: impl FnOnce() -> Result<T, zune_jpeg::errors::DecodeErrors>,
) -> Result<T, PixelError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PixelError::Jpeg(one_line(&format!("{e:?}")))),
        Err(_) => Err(PixelError::Jpeg(
            "decoder panicked on malformed data".into(),
        )),
    }
}

/// Straightforward float BT.601 conversions: the yardstick for tests and benches, not for the box.
pub mod reference {
    use super::YuvRange;

    /// One BT.601 pixel from 8-bit Y, Cb, Cr codes, rounded and clamped.
    pub fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8, range: YuvRange) -> [u8; 3] {
        let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
        let (y, cb, cr) = match range {
            YuvRange::Full => (y, cb, cr),
            YuvRange::Limited => (
                (y - 16.0) * 255.0 / 219.0,
                cb * 255.0 / 224.0,
                cr * 255.0 / 224.0,
            ),
        };
        // Kr = 0.299, Kb = 0.114.
        let r = y + 1.402 * cr;
        let g = y - 0.344_136 * cb - 0.714_136 * cr;
        let b = y + 1.772 * cb;
        [clamp(r), clamp(g), clamp(b)]
    }

    fn clamp(v: f32) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }

    /// Packed YUYV with `stride` bytes per row to tightly packed RGB.
    pub fn yuyv_to_rgb(
        src: &[u8],
        width: usize,
        height: usize,
        stride: usize,
        range: YuvRange,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(width * height * 3);
        for row in 0..height {
            let line = &src[row * stride..row * stride + width * 2];
            for quad in line.chunks_exact(4) {
                let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
                out.extend_from_slice(&ycbcr_to_rgb(y0, u, v, range));
                out.extend_from_slice(&ycbcr_to_rgb(y1, u, v, range));
            }
        }
        out
    }

    /// Single-plane NV12 (`stride` bytes per row for both planes) to tightly packed RGB.
    pub fn nv12_to_rgb(
        src: &[u8],
        width: usize,
        height: usize,
        stride: usize,
        range: YuvRange,
    ) -> Vec<u8> {
        let uv = &src[stride * height..];
        let mut out = Vec::with_capacity(width * height * 3);
        for row in 0..height {
            for col in 0..width {
                let y = src[row * stride + col];
                let c = (row / 2) * stride + (col / 2) * 2;
                out.extend_from_slice(&ycbcr_to_rgb(y, uv[c], uv[c + 1], range));
            }
        }
        out
    }
}
