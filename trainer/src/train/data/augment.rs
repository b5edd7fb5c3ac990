//! Per-draw augmentation of a cached chip, written straight into the network's input layout:
//! horizontal flip, a small scale/shift jitter (the alignment is never perfect on the box either) and
//! brightness/contrast. Output is NCHW planes of `(p - 127.5) / 128`, the normalisation the exported
//! contract declares, so what the network sees in training is what the box feeds it.

use crate::train::rng::Rng;

/// The normalisation of every lanewatch-trained network (stored in the contract as mean/std).
pub const PIXEL_MEAN: f32 = 127.5;
pub const PIXEL_STD: f32 = 128.0;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Probability of a horizontal flip.
    pub flip: f32,
    /// Largest relative scale change and largest shift as a fraction of the chip side.
    pub scale: f32,
    pub shift: f32,
    /// Largest relative brightness and contrast change.
    pub brightness: f32,
    pub contrast: f32,
}

impl Augment {
    pub const NONE: Augment = Augment {
        flip: 0.0,
        scale: 0.0,
        shift: 0.0,
        brightness: 0.0,
        contrast: 0.0,
    };
    pub const DEFAULT: Augment = Augment {
        flip: 0.5,
        scale: 0.06,
        shift: 0.04,
        brightness: 0.2,
        contrast: 0.2,
    };
}

/// Writes the normalised planes of `chip` (packed RGB, `size`x`size`) into `out` (`3*size*size`),
/// plain when `aug` is [`Augment::NONE`].
pub fn render(chip: &[u8], size: usize, aug: &Augment, rng: &mut Rng, out: &mut [f32]) {
    debug_assert_eq!(chip.len(), size * size * 3);
    debug_assert_eq!(out.len(), size * size * 3);
    let plane = size * size;
    if *aug == Augment::NONE {
        for (i, px) in chip.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (px[c] as f32 - PIXEL_MEAN) / PIXEL_STD;
            }
        }
        return;
    }
    let flip = rng.unit() < aug.flip;
    let scale = 1.0 + rng.range(-aug.scale, aug.scale);
    let dx = rng.range(-aug.shift, aug.shift) * size as f32;
    let dy = rng.range(-aug.shift, aug.shift) * size as f32;
    let gain = 1.0 + rng.range(-aug.contrast, aug.contrast);
    let offset = rng.range(-aug.brightness, aug.brightness) * 128.0;
    let centre = (size as f32 - 1.0) / 2.0;
    let last = (size - 1) as f32;
    let at = |x: usize, y: usize, c: usize| chip[3 * (y * size + x) + c] as f32;
    for y in 0..size {
        for x in 0..size {
            // Inverse map: output pixel → source position (zoom about the centre, then shift).
            let ox = if flip { last - x as f32 } else { x as f32 };
            let sx = ((ox - centre) / scale + centre + dx).clamp(0.0, last);
            let sy = ((y as f32 - centre) / scale + centre + dy).clamp(0.0, last);
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(size - 1), (y0 + 1).min(size - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            for c in 0..3 {
                let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
                let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                let v = ((v - 127.5) * gain + 127.5 + offset).clamp(0.0, 255.0);
                out[c * plane + y * size + x] = (v - PIXEL_MEAN) / PIXEL_STD;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_render_normalises_and_flip_mirrors() {
        let size = 4;
        let chip: Vec<u8> = (0..size * size * 3).map(|i| (i * 5) as u8).collect();
        let mut plain = vec![0.0; chip.len()];
        render(&chip, size, &Augment::NONE, &mut Rng::new(0), &mut plain);
        assert_eq!(plain[0], (chip[0] as f32 - 127.5) / 128.0);
        assert_eq!(plain[16], (chip[1] as f32 - 127.5) / 128.0);
        let flip_only = Augment {
            flip: 1.0,
            ..Augment::NONE
        };
        // Not NONE, so the general path runs; with no jitter it is an exact mirror.
        let mut flipped = vec![0.0; chip.len()];
        render(&chip, size, &flip_only, &mut Rng::new(0), &mut flipped);
        for y in 0..size {
            for x in 0..size {
                assert!((flipped[y * size + x] - plain[y * size + size - 1 - x]).abs() < 1e-6);
            }
        }
        let mut a = vec![0.0; chip.len()];
        let mut b = vec![0.0; chip.len()];
        render(&chip, size, &Augment::DEFAULT, &mut Rng::new(9), &mut a);
        render(&chip, size, &Augment::DEFAULT, &mut Rng::new(9), &mut b);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.abs() <= 1.0));
    }
}
