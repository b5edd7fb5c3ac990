//! dlib's face chip: `get_face_chip_details` for 5-point shapes and `extract_image_chip` with
//! bilinear interpolation over dlib's image pyramid (dlib/image_transforms/interpolation.h).
//!
//! The embedder was trained on chips made exactly this way; reproducing dlib's geometry, its
//! pyramid level choice and its truncating bilinear interpolation is what keeps its LFW accuracy.

use super::pyramid::{Plane, pyramid_down, rect_down};
use crate::vision::geometry::{Affine, similarity};
use crate::vision::image::ImageView;
use crate::vision::landmarks::{NUM_PARTS, Point};

/// dlib's 5-point mean face (eye corners, nose base) in a unit square, before padding.
/// These constants come from dlib's `get_face_chip_details` (Boost Software License).
pub const FACE_TEMPLATE_5: [[f64; 2]; NUM_PARTS] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// Side of the chips the dlib ResNet embedder takes.
pub const CHIP_SIZE: usize = 150;
/// Padding around the template, as a fraction of the face (dlib's default for the embedder).
pub const CHIP_PADDING: f64 = 0.25;
/// Chips larger than this are not face chips; refusing them bounds the work per call.
pub const MAX_CHIP_SIDE: usize = 4096;
/// More pyramid levels than this would shrink any addressable image below dlib's 9-pixel minimum.
const MAX_PYRAMID_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignError {
    #[error(
        "the face chip geometry is not finite (are the landmarks NaN or infinite?): {details:?}"
    )]
    NotFinite { details: ChipDetails },
    #[error(
        "a face chip must be between 2x2 and {MAX_CHIP_SIDE}x{MAX_CHIP_SIDE} pixels, got {rows}x{cols}"
    )]
    BadSize { rows: usize, cols: usize },
}

/// dlib's `drectangle`: real corners, both inclusive (`width = right - left + 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DRect {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl DRect {
    fn from_array(r: [f64; 4]) -> Self {
        Self {
            left: r[0],
            top: r[1],
            right: r[2],
            bottom: r[3],
        }
    }

    fn to_array(self) -> [f64; 4] {
        [self.left, self.top, self.right, self.bottom]
    }

    pub fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    pub fn width(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.right - self.left + 1.0
        }
    }

    pub fn height(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.bottom - self.top + 1.0
        }
    }

    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    pub fn center(&self) -> [f64; 2] {
        [
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        ]
    }

    /// dlib's `centered_drect(p, width, height)`.
    pub fn centered(p: [f64; 2], width: f64, height: f64) -> Self {
        let (w, h) = (width - 1.0, height - 1.0);
        Self {
            left: p[0] - w / 2.0,
            top: p[1] - h / 2.0,
            right: p[0] + w / 2.0,
            bottom: p[1] + h / 2.0,
        }
    }

    fn is_finite(&self) -> bool {
        self.to_array().iter().all(|v| v.is_finite())
    }
}

/// Where a chip lies in the image: dlib's `chip_details` (a rectangle rotated by `angle` about its
/// centre, sampled onto `rows` x `cols` pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipDetails {
    pub rect: DRect,
    pub angle: f64,
    pub rows: usize,
    pub cols: usize,
}

impl ChipDetails {
    /// dlib's `chip_details(chip_points, img_points, dims)`: the similarity transform that best
    /// maps chip coordinates onto image coordinates, expressed as a rotated rectangle.
    pub fn from_points(chip_points: &[[f64; 2]], img_points: &[[f64; 2]], size: usize) -> Self {
        let tform = similarity(chip_points, img_points);
        let p = [tform.m[0][0], tform.m[1][0]];
        let angle = p[1].atan2(p[0]);
        let scale = (p[0] * p[0] + p[1] * p[1]).sqrt();
        let dims = size as f64;
        let centre = tform.apply([dims / 2.0, dims / 2.0]);
        Self {
            rect: DRect::centered(centre, dims * scale, dims * scale),
            angle,
            rows: size,
            cols: size,
        }
    }

    fn is_finite(&self) -> bool {
        self.rect.is_finite() && self.angle.is_finite()
    }
}

/// dlib's `get_face_chip_details` for a 5-point shape (dlib's landmark order).
pub fn face_chip_details(points: &[Point; NUM_PARTS], size: usize, padding: f64) -> ChipDetails {
    let chip_points: [[f64; 2]; NUM_PARTS] = std::array::from_fn(|i| {
        let t = FACE_TEMPLATE_5[i];
        let s = size as f64;
        [
            (padding + t[0]) / (2.0 * padding + 1.0) * s,
            (padding + t[1]) / (2.0 * padding + 1.0) * s,
        ]
    });
    let img_points: [[f64; 2]; NUM_PARTS] =
        std::array::from_fn(|i| [f64::from(points[i].x), f64::from(points[i].y)]);
    ChipDetails::from_points(&chip_points, &img_points, size)
}

/// An owned, packed RGB chip (`width * height * 3` bytes, rows top to bottom).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RgbChip {
    pub data: Vec<u8>,
    pub width: usize,
    pub height: usize,
}

impl RgbChip {
    fn reset(&mut self, width: usize, height: usize) {
        self.data.clear();
        self.data.resize(width * height * 3, 0);
        self.width = width;
        self.height = height;
    }

    pub fn pixel(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y * self.width + x);
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }
}

/// Pyramid levels and filter buffers reused between calls.
#[derive(Default)]
pub struct ChipScratch {
    levels: Vec<Plane>,
    tmp: Vec<u16>,
}

/// An image region to sample from: a window of the input image or a pyramid level.
struct Source<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    channels: usize,
}

fn rotate_point(center: [f64; 2], p: [f64; 2], angle: f64) -> [f64; 2] {
    let (sin, cos) = (angle.sin(), angle.cos());
    let d = [p[0] - center[0], p[1] - center[1]];
    [
        cos * d[0] - sin * d[1] + center[0],
        sin * d[0] + cos * d[1] + center[1],
    ]
}

/// dlib's `extract_image_chip(img, details, chip)` with bilinear interpolation, written as RGB
/// (a grayscale input gives a chip with three equal channels). Pixels that fall outside the image
/// are black, as in dlib.
pub fn extract_image_chip(
    img: &ImageView<'_>,
    details: &ChipDetails,
    scratch: &mut ChipScratch,
    out: &mut RgbChip,
) -> Result<(), AlignError> {
    let (rows, cols) = (details.rows, details.cols);
    if !(2..=MAX_CHIP_SIDE).contains(&rows) || !(2..=MAX_CHIP_SIDE).contains(&cols) {
        return Err(AlignError::BadSize { rows, cols });
    }
    if !details.is_finite() {
        return Err(AlignError::NotFinite { details: *details });
    }
    out.reset(cols, rows);
    let channels = img.format().channels();
    let rect = details.rect;
    if details.angle == 0.0 && rows as f64 == rect.height() && cols as f64 == rect.width() {
        copy_unscaled(img, rect, out);
        return Ok(());
    }
    let size = (rows * cols) as f64;

    // How deep the pyramid must go so that bilinear sampling never skips source pixels, and the
    // margin the pyramid filters need around the chip (dlib's `grow`).
    let mut depth = 0usize;
    let mut grow = 2.0f64;
    let mut r = rect_down(rect.to_array());
    while DRect::from_array(r).area() > size && depth < MAX_PYRAMID_DEPTH {
        r = rect_down(r);
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    let centre = rect.center();
    let corners = [
        [rect.left, rect.top],
        [rect.right, rect.top],
        [rect.left, rect.bottom],
        [rect.right, rect.bottom],
    ]
    .map(|p| rotate_point(centre, p, details.angle));
    let mut rot = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for p in corners {
        rot = [
            rot[0].min(p[0]),
            rot[1].min(p[1]),
            rot[2].max(p[0]),
            rot[3].max(p[1]),
        ];
    }
    // grow_rect(rot_rect, grow).intersect(get_rect(img)), then dlib's lround to a rectangle.
    let (iw, ih) = (img.width() as f64, img.height() as f64);
    let bb = [
        (rot[0] - grow).max(0.0).round(),
        (rot[1] - grow).max(0.0).round(),
        (rot[2] + grow).min(iw - 1.0).round(),
        (rot[3] + grow).min(ih - 1.0).round(),
    ];
    if !(bb[0] <= bb[2] && bb[1] <= bb[3]) {
        // No part of the chip's neighbourhood is in the image: dlib's chip is all black.
        return Ok(());
    }
    let (bx, by) = (bb[0] as usize, bb[1] as usize);
    let (bw, bh) = ((bb[2] - bb[0]) as usize + 1, (bb[3] - bb[1]) as usize + 1);
    let stride = img.width() * channels;
    let window = Source {
        data: &img.data()[by * stride + bx * channels..],
        width: bw,
        height: bh,
        stride,
        channels,
    };

    // The image pyramid over the window.
    if scratch.levels.len() < depth {
        scratch.levels.resize_with(depth, Plane::default);
    }
    for level in 0..depth {
        let (done, rest) = scratch.levels.split_at_mut(level);
        let src = match done.last() {
            None => (window.data, window.width, window.height, window.stride),
            Some(p) => (&p.data[..], p.width, p.height, p.width * channels),
        };
        pyramid_down(
            src.0,
            src.1,
            src.2,
            src.3,
            channels,
            &mut rest[0],
            &mut scratch.tmp,
        );
    }

    // The level to sample from: the last one on which the chip still covers more pixels than it has.
    let mut level: Option<usize> = None;
    let mut r = [
        rect.left - bb[0],
        rect.top - bb[1],
        rect.right - bb[0],
        rect.bottom - bb[1],
    ];
    while DRect::from_array(rect_down(r)).area() > size && level.map_or(0, |l| l + 1) < depth {
        level = Some(level.map_or(0, |l| l + 1));
        r = rect_down(r);
    }
    let r = DRect::from_array(r);
    let c = r.center();
    let to = [
        rotate_point(c, [r.left, r.top], details.angle),
        rotate_point(c, [r.right, r.top], details.angle),
        rotate_point(c, [r.left, r.bottom], details.angle),
    ];
    let from = [
        [0.0, 0.0],
        [(cols - 1) as f64, 0.0],
        [0.0, (rows - 1) as f64],
    ];
    let Some(trns) = Affine::from_three_points(from, to) else {
        return Ok(());
    };
    let src = match level {
        None => window,
        Some(l) => {
            let p = &scratch.levels[l];
            Source {
                data: &p.data,
                width: p.width,
                height: p.height,
                stride: p.width * channels,
                channels,
            }
        }
    };
    sample_bilinear(&src, &trns, out);
    Ok(())
}

/// dlib's `interpolate_bilinear` over every chip pixel; the result is truncated, as dlib's
/// `static_cast<unsigned char>` does.
fn sample_bilinear(src: &Source<'_>, trns: &Affine, out: &mut RgbChip) {
    let (w, h) = (src.width as i64, src.height as i64);
    let ch = src.channels;
    for r in 0..out.height {
        for c in 0..out.width {
            let p = trns.apply([c as f64, r as f64]);
            let (left, top) = (p[0].floor() as i64, p[1].floor() as i64);
            let o = 3 * (r * out.width + c);
            if !(left >= 0 && top >= 0 && left + 1 < w && top + 1 < h) {
                continue; // already black
            }
            let lr = p[0] - left as f64;
            let tb = p[1] - top as f64;
            let at = |y: i64, x: i64, k: usize| {
                f64::from(src.data[y as usize * src.stride + x as usize * ch + k])
            };
            for k in 0..ch {
                let (tl, tr) = (at(top, left, k), at(top, left + 1, k));
                let (bl, br) = (at(top + 1, left, k), at(top + 1, left + 1, k));
                let v = (1.0 - tb) * ((1.0 - lr) * tl + lr * tr) + tb * ((1.0 - lr) * bl + lr * br);
                out.data[o + k] = v as u8;
            }
            if ch == 1 {
                out.data[o + 1] = out.data[o];
                out.data[o + 2] = out.data[o];
            }
        }
    }
}

/// dlib's `basic_extract_image_chip`: a plain copy when the chip needs no scaling or rotation.
fn copy_unscaled(img: &ImageView<'_>, rect: DRect, out: &mut RgbChip) {
    let (left, top) = (rect.left.round() as i64, rect.top.round() as i64);
    let ch = img.format().channels();
    let data = img.data();
    for r in 0..out.height {
        for c in 0..out.width {
            let (x, y) = (left + c as i64, top + r as i64);
            if x < 0 || y < 0 || x >= img.width() as i64 || y >= img.height() as i64 {
                continue;
            }
            let i = (y as usize * img.width() + x as usize) * ch;
            let o = 3 * (r * out.width + c);
            for k in 0..3 {
                out.data[o + k] = data[i + k.min(ch - 1)];
            }
        }
    }
}
