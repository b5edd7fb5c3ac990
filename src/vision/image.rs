//! A borrowed view of an 8-bit image (grayscale or packed RGB), checked once when it is made so that
//! the alignment code can index it without further checks.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Gray8,
    Rgb8,
}

impl PixelFormat {
    pub const fn channels(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 => 3,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Gray8 => "8-bit grayscale",
            PixelFormat::Rgb8 => "8-bit RGB",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("a {width}x{height} {format} image needs {needed} bytes but the buffer holds {len}")]
    WrongLength {
        width: usize,
        height: usize,
        format: PixelFormat,
        needed: usize,
        len: usize,
    },
    #[error("a {width}x{height} image is too large to address")]
    TooLarge { width: usize, height: usize },
}

/// Rows top to bottom, pixels packed without padding (`width * channels` bytes per row).
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    format: PixelFormat,
}

impl<'a> ImageView<'a> {
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        format: PixelFormat,
    ) -> Result<Self, ImageError> {
        // Coordinates are handled as i64/f64 downstream; keep every index well inside both.
        const MAX_SIDE: usize = 1 << 20;
        let needed = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(format.channels()))
            .filter(|_| width <= MAX_SIDE && height <= MAX_SIDE)
            .ok_or(ImageError::TooLarge { width, height })?;
        if data.len() != needed {
            return Err(ImageError::WrongLength {
                width,
                height,
                format,
                needed,
                len: data.len(),
            });
        }
        Ok(Self {
            data,
            width,
            height,
            format,
        })
    }

    pub fn gray(data: &'a [u8], width: usize, height: usize) -> Result<Self, ImageError> {
        Self::new(data, width, height, PixelFormat::Gray8)
    }

    pub fn rgb(data: &'a [u8], width: usize, height: usize) -> Result<Self, ImageError> {
        Self::new(data, width, height, PixelFormat::Rgb8)
    }

    /// A decoded frame or photo.
    pub fn of(image: &'a image::RgbImage) -> Result<Self, ImageError> {
        Self::rgb(
            image.as_raw(),
            image.width() as usize,
            image.height() as usize,
        )
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// dlib's `get_pixel_intensity`: the grey value, or `(r + g + b) / 3` truncated for RGB.
    /// Outside the image it is 0, which is also what dlib's shape predictor uses there.
    #[inline]
    pub fn intensity(&self, x: i64, y: i64) -> u8 {
        if x < 0 || y < 0 || x as u64 >= self.width as u64 || y as u64 >= self.height as u64 {
            return 0;
        }
        let i = y as usize * self.width + x as usize;
        match self.format {
            PixelFormat::Gray8 => self.data[i],
            PixelFormat::Rgb8 => {
                let p = &self.data[3 * i..3 * i + 3];
                ((u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3) as u8
            }
        }
    }
}
