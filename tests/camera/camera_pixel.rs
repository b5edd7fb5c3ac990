//! Pixel conversion against a straightforward float BT.601 reference, and JPEG decoding against
//! the `image` crate, on synthetic frames and on LFW photos.

use image::RgbImage;
use lanewatch::camera::pixel::{
    self, JpegDecoder, PixelError, YuvRange, luma_to_rgb, nv12_to_rgb, reference, yuyv_to_rgb,
};
use proptest::prelude::*;

use crate::common::{LFW_IMAGES as LFW, encode_jpeg};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Index of the first byte that differs by more than `tol`.
fn first_bad(a: &[u8], b: &[u8], tol: u8) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x.abs_diff(*y) > tol)
}

fn max_abs_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

/// BT.601 forward transform of one RGB colour to Y'CbCr codes.
fn ycbcr(rgb: [u8; 3], range: YuvRange) -> [u8; 3] {
    let [r, g, b] = rgb.map(f64::from);
    let (y, cb, cr) = (
        0.299 * r + 0.587 * g + 0.114 * b,
        (b - (0.299 * r + 0.587 * g + 0.114 * b)) / 1.772,
        (r - (0.299 * r + 0.587 * g + 0.114 * b)) / 1.402,
    );
    let (y, cb, cr) = match range {
        YuvRange::Full => (y, cb, cr),
        YuvRange::Limited => (
            16.0 + y * 219.0 / 255.0,
            cb * 224.0 / 255.0,
            cr * 224.0 / 255.0,
        ),
    };
    [y, 128.0 + cb, 128.0 + cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// YUYV for a picture of random colours in which each pair of pixels shares one colour (as 4:2:2
/// chroma does), so that every code is one a camera produces from a real scene.
fn natural_yuyv(w: usize, h: usize, stride: usize, range: YuvRange, seed: u64) -> Vec<u8> {
    let colours = noise(w * h * 3 / 2 + 3, seed);
    let mut out = noise(stride * h, seed + 1); // padding bytes stay random
    for row in 0..h {
        for pair in 0..w / 2 {
            let c = (row * w / 2 + pair) * 3;
            let [y, cb, cr] = ycbcr([colours[c], colours[c + 1], colours[c + 2]], range);
            let at = row * stride + pair * 4;
            out[at..at + 4].copy_from_slice(&[y, cb, y, cr]);
        }
    }
    out
}

/// NV12 for a picture of random colours constant over each 2x2 block (4:2:0 chroma).
fn natural_nv12(w: usize, h: usize, stride: usize, range: YuvRange, seed: u64) -> Vec<u8> {
    let colours = noise(w * h * 3 / 4 + 3, seed);
    let mut out = noise(stride * h * 3 / 2, seed + 1);
    for by in 0..h / 2 {
        for bx in 0..w / 2 {
            let c = (by * w / 2 + bx) * 3;
            let [y, cb, cr] = ycbcr([colours[c], colours[c + 1], colours[c + 2]], range);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                out[(by * 2 + dy) * stride + bx * 2 + dx] = y;
            }
            let at = stride * h + by * stride + bx * 2;
            out[at..at + 2].copy_from_slice(&[cb, cr]);
        }
    }
    out
}

const SIZES: [(u32, u32, usize); 5] = [
    (2, 2, 0),
    (64, 48, 0),
    (640, 360, 0),
    (320, 240, 64),
    (1280, 720, 0),
];

#[test]
fn yuyv_matches_reference_for_both_ranges_and_padded_rows() {
    for (w, h, pad) in SIZES {
        let stride = w as usize * 2 + pad;
        for range in [YuvRange::Limited, YuvRange::Full] {
            let src = natural_yuyv(w as usize, h as usize, stride, range, u64::from(w * 31 + h));
            let mut out = RgbImage::new(1, 1);
            yuyv_to_rgb(&src, w, h, stride, range, &mut out).unwrap();
            assert_eq!(out.dimensions(), (w, h));
            let want = reference::yuyv_to_rgb(&src, w as usize, h as usize, stride, range);
            let worst = max_abs_diff(out.as_raw(), &want);
            let first = first_bad(out.as_raw(), &want, 2);
            assert!(
                worst <= 2,
                "{w}x{h} stride {stride} {range:?}: max error {worst} first at byte {first:?}"
            );
        }
    }
}

#[test]
fn nv12_matches_reference_for_both_ranges_and_padded_rows() {
    for (w, h, pad) in SIZES {
        let stride = w as usize + pad / 2;
        for range in [YuvRange::Limited, YuvRange::Full] {
            let src = natural_nv12(w as usize, h as usize, stride, range, u64::from(w * 7 + h));
            let mut out = RgbImage::default();
            nv12_to_rgb(&src, w, h, stride, range, &mut out).unwrap();
            let want = reference::nv12_to_rgb(&src, w as usize, h as usize, stride, range);
            let worst = max_abs_diff(out.as_raw(), &want);
            let first = first_bad(out.as_raw(), &want, 2);
            assert!(
                worst <= 2,
                "{w}x{h} stride {stride} {range:?}: max error {worst} first at byte {first:?}"
            );
        }
    }
}

#[test]
fn arbitrary_codes_stay_close_to_the_reference_on_average() {
    // Random codes include colours outside the RGB cube, where the fast path's fixed-point
    // intermediate saturation differs from clamping at the end; on average it must still agree.
    let (w, h) = (320u32, 240u32);
    for range in [YuvRange::Limited, YuvRange::Full] {
        let src = noise((w * h * 2) as usize, 99);
        let mut out = RgbImage::default();
        yuyv_to_rgb(&src, w, h, 0, range, &mut out).unwrap();
        let want = reference::yuyv_to_rgb(&src, w as usize, h as usize, (w * 2) as usize, range);
        let mean = mean_abs_diff(out.as_raw(), &want);
        assert!(mean < 1.0, "{range:?}: mean error {mean:.3}");
    }
}

#[test]
fn reference_hits_known_bt601_points() {
    // Limited-range black, white and the primaries' Y'CbCr codes from BT.601.
    assert_eq!(
        reference::ycbcr_to_rgb(16, 128, 128, YuvRange::Limited),
        [0, 0, 0]
    );
    assert_eq!(
        reference::ycbcr_to_rgb(235, 128, 128, YuvRange::Limited),
        [255, 255, 255]
    );
    let red = reference::ycbcr_to_rgb(81, 90, 240, YuvRange::Limited);
    assert!(red[0] >= 254 && red[1] <= 1 && red[2] <= 1, "{red:?}");
    assert_eq!(
        reference::ycbcr_to_rgb(0, 128, 128, YuvRange::Full),
        [0, 0, 0]
    );
    assert_eq!(
        reference::ycbcr_to_rgb(255, 128, 128, YuvRange::Full),
        [255, 255, 255]
    );
}

#[test]
fn conversions_reuse_the_destination_buffer() {
    let src = noise(640 * 480 * 2, 5);
    let mut out = RgbImage::default();
    yuyv_to_rgb(&src, 640, 480, 0, YuvRange::Limited, &mut out).unwrap();
    let ptr = out.as_raw().as_ptr();
    for _ in 0..3 {
        yuyv_to_rgb(&src, 640, 480, 0, YuvRange::Limited, &mut out).unwrap();
        assert_eq!(
            out.as_raw().as_ptr(),
            ptr,
            "same-size frames must not reallocate"
        );
    }
    // A smaller frame fits in the same allocation too.
    yuyv_to_rgb(&src, 320, 240, 0, YuvRange::Limited, &mut out).unwrap();
    assert_eq!(out.as_raw().as_ptr(), ptr);
}

#[test]
fn bad_buffers_and_sizes_are_errors_not_panics() {
    let mut out = RgbImage::default();
    let short = vec![0u8; 100];
    assert!(matches!(
        yuyv_to_rgb(&short, 64, 48, 0, YuvRange::Limited, &mut out),
        Err(PixelError::Short {
            need: 6144,
            got: 100,
            ..
        })
    ));
    assert!(matches!(
        nv12_to_rgb(&short, 64, 48, 0, YuvRange::Limited, &mut out),
        Err(PixelError::Short { .. })
    ));
    let big = vec![0u8; 64 * 48 * 2];
    assert!(matches!(
        yuyv_to_rgb(&big, 63, 48, 0, YuvRange::Limited, &mut out),
        Err(PixelError::BadSize { .. })
    ));
    assert!(matches!(
        yuyv_to_rgb(&big, 0, 48, 0, YuvRange::Limited, &mut out),
        Err(PixelError::BadSize { .. })
    ));
    assert!(matches!(
        yuyv_to_rgb(&big, 100_000, 2, 0, YuvRange::Limited, &mut out),
        Err(PixelError::BadSize { .. })
    ));
    // A stride shorter than a row is refused rather than read out of bounds.
    assert!(yuyv_to_rgb(&big, 64, 48, 10, YuvRange::Limited, &mut out).is_err());
    assert!(luma_to_rgb(&short, 64, 48, &mut out).is_err());
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

#[test]
fn jpeg_decode_agrees_with_the_image_crate() {
    let jpeg = encode_jpeg(&gradient(320, 240), 90);
    let mut ours = RgbImage::default();
    JpegDecoder::default()
        .decode_into(&jpeg, &mut ours)
        .unwrap();
    let theirs = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .unwrap()
        .to_rgb8();
    assert_eq!(ours.dimensions(), theirs.dimensions());
    let mean = mean_abs_diff(ours.as_raw(), theirs.as_raw());
    let worst = max_abs_diff(ours.as_raw(), theirs.as_raw());
    assert!(mean < 1.0 && worst <= 16, "mean {mean:.3}, max {worst}");
    // And both are close to the original picture.
    assert!(mean_abs_diff(ours.as_raw(), gradient(320, 240).as_raw()) < 3.0);
}

#[test]
fn grayscale_lfw_jpegs_become_rgb_with_equal_channels() {
    let dir = std::fs::read_dir(LFW).expect("LFW test data in ../shared/data/lfw (see its README)");
    let mut checked = 0;
    let decoder = JpegDecoder::default();
    let mut ours = RgbImage::default();
    for person in dir.take(20) {
        let person = person.unwrap().path();
        for file in std::fs::read_dir(&person).unwrap().take(1) {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            decoder.decode_into(&bytes, &mut ours).unwrap();
            assert_eq!(ours.dimensions(), (250, 250));
            assert!(
                ours.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
                "channels differ"
            );
            let theirs = image::load_from_memory(&bytes).unwrap().to_luma8();
            let ours_luma: Vec<u8> = ours.pixels().map(|p| p[0]).collect();
            let mean = mean_abs_diff(&ours_luma, theirs.as_raw());
            assert!(mean < 1.0, "{}: mean difference {mean}", person.display());
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}

#[test]
fn jpeg_header_limits_are_enforced_before_allocation() {
    let jpeg = encode_jpeg(&gradient(200, 100), 80);
    let mut out = RgbImage::default();
    let small = JpegDecoder::with_max_dimension(150);
    assert!(small.decode_into(&jpeg, &mut out).is_err());
    assert_eq!(
        JpegDecoder::default().dimensions(&jpeg).unwrap(),
        (200, 100)
    );
}

#[test]
fn damaged_jpegs_are_errors() {
    let jpeg = encode_jpeg(&gradient(64, 64), 80);
    let mut out = RgbImage::default();
    let decoder = JpegDecoder::default();
    assert!(decoder.decode_into(&[], &mut out).is_err());
    assert!(decoder.decode_into(b"not a jpeg at all", &mut out).is_err());
    // Headers cut off.
    assert!(decoder.decode_into(&jpeg[..20], &mut out).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn jpeg_decoder_never_panics_on_mangled_input(cut in 0usize..2000, flips in proptest::collection::vec((0usize..2000, any::<u8>()), 0..8)) {
        let mut jpeg = encode_jpeg(&gradient(48, 32), 75);
        for (at, v) in flips {
            let n = jpeg.len();
            jpeg[at % n] = v;
        }
        jpeg.truncate(cut.min(jpeg.len()));
        let mut out = RgbImage::default();
        let _ = JpegDecoder::default().decode_into(&jpeg, &mut out);
    }

    #[test]
    fn yuyv_never_panics(len in 0usize..5000, w in 0u32..80, h in 0u32..40, stride in 0usize..200) {
        let src = noise(len, len as u64);
        let mut out = RgbImage::default();
        let _ = yuyv_to_rgb(&src, w, h, stride, YuvRange::Limited, &mut out);
        let _ = nv12_to_rgb(&src, w, h, stride, YuvRange::Full, &mut out);
        let _ = pixel::luma_to_rgb(&src, w, h, &mut out);
    }
}
