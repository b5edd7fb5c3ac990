//! Walk-through clips made from still photos: a passer approaching a lane camera.
//!
//! Each clip is `frames` lane-sized frames (640x480). The passer's face grows from about 70 to about
//! 150 pixels as they approach, drifts across the frame, and each frame adds what a real lane adds:
//! defocus blur, sensor noise and a change of lighting. The frames are drawn from several photos of
//! the person in blocks (a few frames from each), so a track must fuse genuinely different views.
//! Where the passer's face is in each frame is known, so an evaluation counts only the passer's own
//! face (LFW photos often show other people too).

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use lanewatch::rng::SplitMix64;

pub const FRAME_W: u32 = 640;
pub const FRAME_H: u32 = 480;
/// Face size (shorter side of the detector box) at the first and the last frame.
pub const FACE_FROM_PX: f32 = 70.0;
pub const FACE_TO_PX: f32 = 150.0;

/// A source photo and where its face is.
pub struct SourcePhoto {
    pub image: RgbImage,
    /// Detector box x1, y1, x2, y2 of the photo's main face.
    pub face: [f32; 4],
}

/// One synthesised frame and where the passer's face was put.
pub struct ClipFrame {
    pub image: RgbImage,
    /// Centre of the passer's face in the frame, and its size in pixels (box side).
    pub face_centre: (f32, f32),
    pub face_px: f32,
}

/// Makes the clip of one passer. `photos` must not be empty; `seed` makes it reproducible.
pub fn walk_through(photos: &[SourcePhoto], frames: usize, seed: u64) -> Vec<ClipFrame> {
    let mut rng = SplitMix64::new(seed);
    let mut uniform = |lo: f32, hi: f32| lo + (hi - lo) * rng.open_unit_f32();
    // Per passer: where they walk, the lane's lighting, the background.
    let start = (uniform(200.0, 440.0), uniform(180.0, 280.0));
    let drift = (uniform(-60.0, 60.0), uniform(-30.0, 30.0));
    let gain0 = uniform(0.75, 1.2);
    let offset0 = uniform(-20.0, 20.0);
    let background = uniform(50.0, 190.0);
    let frames = frames.max(1);
    let mut out = Vec::with_capacity(frames);
    let mut noise = SplitMix64::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    for i in 0..frames {
        let t = if frames > 1 {
            i as f32 / (frames - 1) as f32
        } else {
            1.0
        };
        // Blocks of consecutive frames from each photo: a track sees a view, then the next.
        let photo = &photos[(i * photos.len() / frames).min(photos.len() - 1)];
        let face_px = (FACE_FROM_PX + (FACE_TO_PX - FACE_FROM_PX) * t) * uniform(0.95, 1.05);
        let centre = (
            start.0 + drift.0 * t + uniform(-3.0, 3.0),
            start.1 + drift.1 * t + uniform(-3.0, 3.0),
        );
        let blur = uniform(0.0, 1.3);
        let gain = gain0 * uniform(0.92, 1.08);
        let offset = offset0 + uniform(-8.0, 8.0);
        let sigma = uniform(2.0, 6.0);
        let image = compose(
            photo,
            face_px,
            centre,
            background,
            blur,
            (gain, offset, sigma),
            &mut noise,
        );
        out.push(ClipFrame {
            image,
            face_centre: centre,
            face_px,
        });
    }
    out
}

/// Pastes the scaled photo so that its face lands at `centre` with side `face_px`, then applies
/// blur, lighting and noise to the whole frame.
fn compose(
    photo: &SourcePhoto,
    face_px: f32,
    centre: (f32, f32),
    background: f32,
    blur: f32,
    (gain, offset, sigma): (f32, f32, f32),
    noise: &mut SplitMix64,
) -> RgbImage {
    let [x1, y1, x2, y2] = photo.face;
    let side = (x2 - x1).min(y2 - y1).max(1.0);
    let scale = face_px / side;
    let (pw, ph) = photo.image.dimensions();
    let w = ((pw as f32 * scale).round() as u32).max(1);
    let h = ((ph as f32 * scale).round() as u32).max(1);
    let mut scaled = imageops::resize(&photo.image, w, h, FilterType::Triangle);
    if blur > 0.3 {
        scaled = imageops::blur(&scaled, blur);
    }
    let face_centre = ((x1 + x2) / 2.0 * scale, (y1 + y2) / 2.0 * scale);
    let mut frame = RgbImage::from_fn(FRAME_W, FRAME_H, |x, y| {
        // A soft vertical gradient: a wall or a corridor behind the lane.
        let v =
            background + 30.0 * (y as f32 / FRAME_H as f32 - 0.5) + 10.0 * (x as f32 / 97.0).sin();
        let v = v.clamp(0.0, 255.0) as u8;
        Rgb([v, v, v])
    });
    let left = (centre.0 - face_centre.0).round() as i64;
    let top = (centre.1 - face_centre.1).round() as i64;
    imageops::overlay(&mut frame, &scaled, left, top);
    for p in frame.pixels_mut() {
        for c in p.0.iter_mut() {
            let v = *c as f32 * gain + offset + sigma * noise.gaussian_f32();
            *c = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> SourcePhoto {
        let image = RgbImage::from_fn(250, 250, |x, y| {
            let v = ((x / 10 + y / 10) % 2 * 200 + 20) as u8;
            Rgb([v, v, v])
        });
        SourcePhoto {
            image,
            face: [75.0, 75.0, 175.0, 175.0],
        }
    }

    #[test]
    fn the_face_grows_and_lands_where_it_is_said_to() {
        let clip = walk_through(&[photo()], 12, 7);
        assert_eq!(clip.len(), 12);
        assert!(clip[0].face_px < 80.0 && clip[11].face_px > 140.0);
        for f in &clip {
            assert_eq!(f.image.dimensions(), (FRAME_W, FRAME_H));
            // The checkerboard's contrast is at the face centre, the flat background far away.
            let (cx, cy) = (f.face_centre.0 as u32, f.face_centre.1 as u32);
            let patch: Vec<u8> = (0..20)
                .flat_map(|d| [f.image.get_pixel(cx - 10 + d, cy)[0]])
                .collect();
            let spread = patch.iter().max().unwrap() - patch.iter().min().unwrap();
            assert!(
                spread > 60,
                "no photo content at the face centre: {patch:?}"
            );
        }
        // Reproducible from the seed, different for another seed.
        assert_eq!(walk_through(&[photo()], 3, 7)[1].image, clip_frame(7));
        assert_ne!(walk_through(&[photo()], 3, 8)[1].image, clip_frame(7));
    }

    fn clip_frame(seed: u64) -> RgbImage {
        walk_through(&[photo()], 3, seed).swap_remove(1).image
    }
}
