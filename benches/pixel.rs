//! Frame conversion at 720p: our fast paths against the straightforward reference (YUV) and the
//! `image` crate's decoder (JPEG), both run in the same process as the peer to compare with.
//! `cargo bench -p lanewatch --bench pixel`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{ImageEncoder, RgbImage};
use lanewatch::camera::pixel::{JpegDecoder, YuvRange, nv12_to_rgb, reference, yuyv_to_rgb};

const W: u32 = 1280;
const H: u32 = 720;

fn noise(len: usize) -> Vec<u8> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// A photo-like 720p frame (smooth gradients plus texture), JPEG quality 85 as cameras send.
fn jpeg_frame() -> Vec<u8> {
    let tex = noise((W * H) as usize);
    let img = RgbImage::from_fn(W, H, |x, y| {
        let t = tex[(y * W + x) as usize] / 8;
        image::Rgb([
            (x / 5) as u8 ^ t,
            ((y / 3) as u8).wrapping_add(t),
            ((x + y) / 8) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(img.as_raw(), W, H, image::ExtendedColorType::Rgb8)
        .expect("encode");
    out
}

fn yuv(c: &mut Criterion) {
    let yuyv = noise((W * H * 2) as usize);
    let nv12 = noise((W * H * 3 / 2) as usize);
    let mut out = RgbImage::default();
    let mut group = c.benchmark_group("yuv_720p");
    group.bench_function("yuyv_to_rgb", |b| {
        b.iter(|| {
            yuyv_to_rgb(black_box(&yuyv), W, H, 0, YuvRange::Limited, &mut out).expect("convert")
        })
    });
    group.bench_function("yuyv_reference", |b| {
        b.iter(|| {
            reference::yuyv_to_rgb(
                black_box(&yuyv),
                W as usize,
                H as usize,
                (W * 2) as usize,
                YuvRange::Limited,
            )
        })
    });
    group.bench_function("nv12_to_rgb", |b| {
        b.iter(|| {
            nv12_to_rgb(black_box(&nv12), W, H, 0, YuvRange::Limited, &mut out).expect("convert")
        })
    });
    group.bench_function("nv12_reference", |b| {
        b.iter(|| {
            reference::nv12_to_rgb(
                black_box(&nv12),
                W as usize,
                H as usize,
                W as usize,
                YuvRange::Limited,
            )
        })
    });
    group.finish();
}

fn jpeg(c: &mut Criterion) {
    let data = jpeg_frame();
    let decoder = JpegDecoder::default();
    let mut out = RgbImage::default();
    let mut group = c.benchmark_group("jpeg_720p");
    group.bench_function("zune_into_reused_buffer", |b| {
        b.iter(|| {
            decoder
                .decode_into(black_box(&data), &mut out)
                .expect("decode")
        })
    });
    group.bench_function("image_crate", |b| {
        b.iter(|| {
            image::load_from_memory_with_format(black_box(&data), image::ImageFormat::Jpeg)
                .expect("decode")
                .to_rgb8()
        })
    });
    group.finish();
}

criterion_group!(benches, yuv, jpeg);
criterion_main!(benches);
