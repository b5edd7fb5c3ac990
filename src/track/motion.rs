//! Face boxes as centre and size, their overlap, and a constant-velocity motion model.

/// No camera is wider than this; refusing larger boxes keeps every area and distance finite.
const MAX_SIDE: f32 = 1.0e6;
/// How much a new measurement of velocity counts against the running estimate (detector boxes
/// jitter by a few pixels; smoothing keeps one jittery frame from throwing the prediction off).
const VELOCITY_GAIN: f32 = 0.6;
/// A predicted side never shrinks or grows past these factors of the last observed one, however
/// long the gap: a face does not halve or double its size within a few frames.
const SIZE_PREDICTION_RANGE: (f32, f32) = (0.5, 2.0);

/// An axis-aligned box by centre and size (all finite, sizes positive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CentreBox {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
}

impl CentreBox {
    /// From `[x1, y1, x2, y2]`; `None` for a box that is not finite, empty, inverted or larger
    /// than any camera.
    pub fn from_corners([x1, y1, x2, y2]: [f32; 4]) -> Option<CentreBox> {
        let (w, h) = (x2 - x1, y2 - y1);
        let ok = [x1, y1, x2, y2]
            .iter()
            .all(|v| v.is_finite() && v.abs() <= MAX_SIDE)
            && w > 0.0
            && h > 0.0
            && w * h > 0.0; // no area that underflows to 0
        ok.then(|| CentreBox {
            cx: (x1 + x2) / 2.0,
            cy: (y1 + y2) / 2.0,
            w,
            h,
        })
    }

    pub fn area(&self) -> f32 {
        self.w * self.h
    }

    /// Geometric mean of the sides: the face's scale.
    pub fn scale(&self) -> f32 {
        self.area().sqrt()
    }

    /// Intersection over union, in [0, 1].
    pub fn iou(&self, other: &CentreBox) -> f32 {
        let overlap = |c1: f32, s1: f32, c2: f32, s2: f32| {
            ((c1 + s1 / 2.0).min(c2 + s2 / 2.0) - (c1 - s1 / 2.0).max(c2 - s2 / 2.0)).max(0.0)
        };
        let inter = overlap(self.cx, self.w, other.cx, other.w)
            * overlap(self.cy, self.h, other.cy, other.h);
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            (inter / union).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Distance between centres in units of the larger box's scale.
    pub fn centre_distance(&self, other: &CentreBox) -> f32 {
        let d = (self.cx - other.cx).hypot(self.cy - other.cy);
        d / self.scale().max(other.scale())
    }
}

/// A track's box and its velocity (per frame) in centre and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Motion {
    pub last: CentreBox,
    pub last_frame: u64,
    velocity: [f32; 4],
    /// Whether `velocity` was measured (a track seen once has none).
    moving: bool,
}

impl Motion {
    pub fn new(first: CentreBox, frame: u64) -> Motion {
        Motion {
            last: first,
            last_frame: frame,
            velocity: [0.0; 4],
            moving: false,
        }
    }

    /// Where the box should be at `frame`, by constant velocity from the last observation; the
    /// gap used is at most `max_frames` (a long-lost track is not flung across the frame).
    pub fn predict(&self, frame: u64, max_frames: u64) -> CentreBox {
        let dt = frame.saturating_sub(self.last_frame).min(max_frames) as f32;
        let [vx, vy, vw, vh] = self.velocity;
        let b = self.last;
        let (lo, hi) = SIZE_PREDICTION_RANGE;
        CentreBox {
            cx: b.cx + vx * dt,
            cy: b.cy + vy * dt,
            w: (b.w + vw * dt).clamp(b.w * lo, b.w * hi),
            h: (b.h + vh * dt).clamp(b.h * lo, b.h * hi),
        }
    }

    /// Takes in the box observed at `frame` (a later frame than the last; frames in between may
    /// have been dropped or missed).
    pub fn observe(&mut self, b: CentreBox, frame: u64) {
        let dt = frame.saturating_sub(self.last_frame).max(1) as f32;
        let p = self.last;
        let measured = [
            (b.cx - p.cx) / dt,
            (b.cy - p.cy) / dt,
            (b.w - p.w) / dt,
            (b.h - p.h) / dt,
        ];
        for (v, m) in self.velocity.iter_mut().zip(measured) {
            *v = if self.moving {
                *v + VELOCITY_GAIN * (m - *v)
            } else {
                m
            };
        }
        self.moving = true;
        self.last = b;
        self.last_frame = self.last_frame.max(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_checked() {
        assert!(CentreBox::from_corners([0.0, 0.0, 10.0, 10.0]).is_some());
        for bad in [
            [0.0, 0.0, 0.0, 10.0],
            [10.0, 0.0, 0.0, 10.0],
            [f32::NAN, 0.0, 10.0, 10.0],
            [0.0, 0.0, f32::INFINITY, 10.0],
            [-1e30, 0.0, 1e30, 10.0],
            [0.0, 0.0, 1e-30, 1e-30],
        ] {
            assert!(CentreBox::from_corners(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = CentreBox::from_corners([0.0, 0.0, 10.0, 10.0]).unwrap();
        let b = CentreBox::from_corners([5.0, 0.0, 15.0, 10.0]).unwrap();
        let far = CentreBox::from_corners([50.0, 50.0, 60.0, 60.0]).unwrap();
        assert_eq!(a.iou(&a), 1.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&far), 0.0);
    }

    #[test]
    fn prediction_follows_velocity_over_gaps() {
        let at = |x: f32, s: f32| CentreBox::from_corners([x, 0.0, x + s, s]).unwrap();
        let mut m = Motion::new(at(0.0, 50.0), 10);
        m.observe(at(10.0, 52.0), 11);
        m.observe(at(20.0, 54.0), 12);
        // Frames 13 and 14 were dropped.
        let p = m.predict(15, 100);
        // Centre 47 moving 11 px a frame.
        assert!((p.cx - (47.0 + 3.0 * 11.0)).abs() < 1e-3, "{p:?}");
        assert!((p.w - 60.0).abs() < 0.5, "{p:?}");
        // A gap counts in velocity too.
        m.observe(at(50.0, 60.0), 15);
        assert!((m.predict(16, 100).cx - (80.0 + 11.0)).abs() < 1e-3);
    }
}
