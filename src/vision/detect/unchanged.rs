//! An empty lane that has not changed need not be searched again: the detector's answer on a frame
//! that matches, cell by cell, the last frame searched whole and found empty would be the same
//! "nobody". A frame is summarised by the mean brightness of each 8x8-pixel cell; it counts as
//! unchanged when no cell moved by `level` grey levels or more since that empty frame. Sensor noise
//! moves an 8x8 mean by a fraction of a level; a person walking in moves the cells they cover by
//! tens, and a change of lighting moves them all (the frame is then searched whole, and becomes the
//! new reference if it is still empty). At most [`MAX_SKIPPED`] frames in a row are skipped, so an
//! unchanged lane is still searched whole now and then.

use image::RgbImage;

/// Side of a cell, in pixels.
const CELL: usize = 8;

/// Unchanged frames skipped in a row before one is searched whole anyway.
pub const MAX_SKIPPED: u32 = 15;

/// The reference summary of the last empty frame, and the current frame's.
#[derive(Clone, Debug, Default)]
pub struct EmptyScene {
    level: f32,
    reference: Vec<f32>,
    current: Vec<f32>,
    /// The size of the frames summarised (a frame of another size is never unchanged).
    size: (u32, u32),
    has_reference: bool,
    skipped: u32,
}

impl EmptyScene {
    /// `level`: the change in grey levels (0..=255) of any cell's mean that counts as a change;
    /// 0 (or anything not above 0) never skips a frame.
    pub fn new(level: f32) -> EmptyScene {
        EmptyScene {
            level: if level.is_finite() {
                level.max(0.0)
            } else {
                0.0
            },
            ..EmptyScene::default()
        }
    }

    /// Forgets the reference: the next frame is searched whole.
    pub fn forget(&mut self) {
        self.has_reference = false;
        self.skipped = 0;
    }

    /// Whether `frame` matches the last empty frame (and may be skipped); counts the skip.
    pub fn unchanged(&mut self, frame: &RgbImage) -> bool {
        if self.level <= 0.0 || !self.has_reference || self.skipped >= MAX_SKIPPED {
            return false;
        }
        if frame.dimensions() != self.size {
            return false;
        }
        summarise(frame, &mut self.current);
        let same = self.current.len() == self.reference.len()
            && self
                .current
                .iter()
                .zip(&self.reference)
                .all(|(a, b)| (a - b).abs() < self.level);
        if same {
            self.skipped += 1;
        }
        same
    }

    /// `frame` was searched whole: with `faces_found` none it becomes the reference, otherwise
    /// there is none.
    pub fn searched(&mut self, frame: &RgbImage, faces_found: usize) {
        self.skipped = 0;
        if self.level <= 0.0 || faces_found > 0 {
            self.has_reference = false;
            return;
        }
        summarise(frame, &mut self.reference);
        self.size = frame.dimensions();
        self.has_reference = true;
    }
}

/// Mean grey level ((R + G + B) / 3) of each whole 8x8 cell, row by row, into `out`.
fn summarise(frame: &RgbImage, out: &mut Vec<f32>) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cols, rows) = (w / CELL, h / CELL);
    out.clear();
    out.resize(cols * rows, 0.0);
    let raw = frame.as_raw();
    for y in 0..rows * CELL {
        let line = &raw[y * w * 3..(y * w + cols * CELL) * 3];
        let cells = &mut out[(y / CELL) * cols..(y / CELL + 1) * cols];
        for (cell, px) in cells.iter_mut().zip(line.chunks_exact(CELL * 3)) {
            *cell += px.iter().map(|v| *v as u32).sum::<u32>() as f32;
        }
    }
    let scale = 1.0 / (3 * CELL * CELL) as f32;
    for v in out.iter_mut() {
        *v *= scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn lane(seed: u32) -> RgbImage {
        // A gradient with a little per-pixel noise that changes with `seed`.
        RgbImage::from_fn(64, 48, |x, y| {
            let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ seed.wrapping_mul(31)) % 5;
            let v = (60 + x + y) as u8 + n as u8;
            Rgb([v, v, v])
        })
    }

    #[test]
    fn an_unchanged_empty_lane_is_skipped_a_bounded_number_of_times() {
        let mut s = EmptyScene::new(6.0);
        // No reference yet.
        assert!(!s.unchanged(&lane(0)));
        s.searched(&lane(0), 0);
        for i in 0..MAX_SKIPPED {
            assert!(s.unchanged(&lane(i + 1)), "frame {i}");
        }
        // Then one is searched whole anyway.
        assert!(!s.unchanged(&lane(99)));
        s.searched(&lane(99), 0);
        assert!(s.unchanged(&lane(100)));
    }

    #[test]
    fn a_change_in_one_cell_a_face_or_another_size_is_searched() {
        let mut s = EmptyScene::new(6.0);
        s.searched(&lane(0), 0);
        let mut walked_in = lane(1);
        // Something 8 levels brighter in one 8x8 cell.
        for y in 16..24 {
            for x in 40..48 {
                walked_in.get_pixel_mut(x, y).0 = walked_in.get_pixel(x, y).0.map(|v| v + 8);
            }
        }
        assert!(!s.unchanged(&walked_in));
        // The last whole search found a face: no reference.
        s.searched(&lane(0), 1);
        assert!(!s.unchanged(&lane(0)));
        s.searched(&lane(0), 0);
        assert!(!s.unchanged(&RgbImage::new(32, 48)));
        // Disabled.
        let mut off = EmptyScene::new(0.0);
        off.searched(&lane(0), 0);
        assert!(!off.unchanged(&lane(0)));
        let mut nan = EmptyScene::new(f32::NAN);
        nan.searched(&lane(0), 0);
        assert!(!nan.unchanged(&lane(0)));
        // Frames smaller than a cell summarise to nothing and never panic.
        let mut tiny = EmptyScene::new(6.0);
        tiny.searched(&RgbImage::new(5, 3), 0);
        assert!(tiny.unchanged(&RgbImage::new(5, 3)));
    }
}
