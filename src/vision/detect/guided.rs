//! Track-guided detection for live video: a full pass over the frame now and then, and between
//! full passes a search only near where the last frame's faces were heading
//! ([`super::Detector::detect_near`]). A walking passer moves a fraction of a face side between
//! frames, so the near search finds them at a fraction of the pyramid's cost.
//!
//! What keeps it from losing faces:
//! - a full pass every `full_every` frames, so a person who walks in is found within that many
//!   frames even while others are being followed;
//! - a full pass whenever nobody is expected (an empty lane is searched every frame), and when
//!   more than [`MAX_FOLLOWED`] faces are;
//! - a full pass on the same frame when a near search finds fewer faces than it looked for (a face
//!   turned away, left, or moved faster than its window allows), so a face that was being
//!   followed is never missed only because it was looked for in the wrong place.

use image::RgbImage;

use super::Face;
use super::unchanged::EmptyScene;

/// Past this many faces a frame is searched whole: following each one (two O-Net runs, more
/// where it is not found at once) would cost about as much as the whole pass, and the list of
/// expected boxes stays bounded whatever a frame holds.
pub const MAX_FOLLOWED: usize = 16;

/// Which search a frame gets.
#[derive(Clone, Debug, PartialEq)]
pub enum Pass {
    /// The whole pyramid over the detector's region.
    Full,
    /// Only around these expected boxes (x1, y1, x2, y2).
    Near(Vec<[f32; 4]>),
}

/// How one frame was searched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassKind {
    #[default]
    Full,
    Near,
    /// A near search that found fewer faces than expected, then a full pass.
    NearThenFull,
    /// Nobody followed and the frame matched the last one searched whole and found empty: not
    /// searched ([`super::unchanged`]).
    Unchanged,
}

/// Frames searched each way, for benchmarks and the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GuidanceStats {
    pub full: u64,
    pub near: u64,
    /// Near searches that found fewer faces than expected and were followed by a full pass on
    /// the same frame.
    pub near_then_full: u64,
    /// Frames of an empty lane that had not changed since it was searched whole: not searched.
    pub skipped_unchanged: u64,
}

/// The schedule of full and near passes over one camera's frames.
#[derive(Clone, Debug)]
pub struct Guidance {
    full_every: u32,
    /// The faces of the last frame searched, and each one's move since the frame before (box
    /// corner deltas; zero for a face seen for the first time).
    last: Vec<([f32; 4], [f32; 4])>,
    since_full: u32,
    stats: GuidanceStats,
    scene: EmptyScene,
}

impl Guidance {
    /// `full_every`: a full pass at least every this many frames; 0 or 1: every frame (no
    /// guidance). `unchanged_level`: an empty lane whose 8x8-cell means all moved by less than
    /// this many grey levels since it was searched whole and found empty is not searched again
    /// ([`super::unchanged`]); 0: every such frame is searched.
    pub fn new(full_every: u32, unchanged_level: f32) -> Guidance {
        Guidance {
            full_every: full_every.max(1),
            last: Vec::new(),
            since_full: 0,
            stats: GuidanceStats::default(),
            scene: EmptyScene::new(unchanged_level),
        }
    }

    /// Whether `frame` may go unsearched: nobody is followed and the lane has not changed since
    /// it was searched whole and found empty. Counts the skip.
    pub fn skip_unchanged(&mut self, frame: &RgbImage) -> bool {
        let skip = self.last.is_empty() && self.scene.unchanged(frame);
        if skip {
            self.stats.skipped_unchanged += 1;
        }
        skip
    }

    /// `frame` was searched whole and `faces_found` faces were found in it (an empty frame
    /// becomes the reference of [`Self::skip_unchanged`]).
    pub fn searched_whole(&mut self, frame: &RgbImage, faces_found: usize) {
        self.scene.searched(frame, faces_found);
    }

    pub fn full_every(&self) -> u32 {
        self.full_every
    }

    pub fn stats(&self) -> GuidanceStats {
        self.stats
    }

    /// Forgets the faces followed (a new stream, another clip, a new frame size): the next frame
    /// gets a full pass.
    pub fn reset(&mut self) {
        self.last.clear();
        self.since_full = 0;
        self.scene.forget();
    }

    /// The search the next frame should get.
    pub fn next_pass(&self) -> Pass {
        if self.full_every <= 1
            || self.last.is_empty()
            || self.last.len() > MAX_FOLLOWED
            || self.since_full + 1 >= self.full_every
        {
            return Pass::Full;
        }
        Pass::Near(
            self.last
                .iter()
                .map(|(b, d)| std::array::from_fn(|i| b[i] + d[i]))
                .collect(),
        )
    }

    /// Whether a near search that found `found` faces should be followed by a full pass on the
    /// same frame.
    pub fn near_missed(&self, pass: &Pass, found: usize) -> bool {
        matches!(pass, Pass::Near(expected) if found < expected.len())
    }

    /// Records the faces the frame's search (`pass`) found; `fell_back`: a near search was
    /// followed by a full pass on the same frame (whose faces these are).
    pub fn record(&mut self, pass: &Pass, fell_back: bool, faces: &[Face]) {
        match pass {
            Pass::Full => self.stats.full += 1,
            Pass::Near(_) => self.stats.near += 1,
        }
        if fell_back {
            self.stats.near_then_full += 1;
        }
        if matches!(pass, Pass::Full) || fell_back {
            self.since_full = 0;
        } else {
            self.since_full += 1;
        }
        let moved: Vec<([f32; 4], [f32; 4])> = faces
            .iter()
            .map(|f| (f.bbox, self.motion_of(&f.bbox)))
            .collect();
        self.last = moved;
    }

    /// The move since the last frame of the face at `b`: from the last frame's face whose centre
    /// is nearest, if that is within half a face side; otherwise none.
    fn motion_of(&self, b: &[f32; 4]) -> [f32; 4] {
        let centre = |b: &[f32; 4]| ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
        let (cx, cy) = centre(b);
        let side = (b[2] - b[0]).max(b[3] - b[1]);
        let nearest = self
            .last
            .iter()
            .map(|(p, _)| {
                let (px, py) = centre(p);
                ((px - cx).hypot(py - cy), p)
            })
            .filter(|(d, _)| d.is_finite() && *d <= side / 2.0)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match nearest {
            Some((_, p)) => std::array::from_fn(|i| b[i] - p[i]),
            None => [0.0; 4],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(bbox: [f32; 4]) -> Face {
        Face {
            bbox,
            score: 0.99,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn full_pass_when_nobody_is_expected_and_every_n_frames() {
        let mut g = Guidance::new(3, 0.0);
        assert_eq!(g.next_pass(), Pass::Full);
        g.record(&Pass::Full, false, &[]);
        // Still nobody: full again.
        assert_eq!(g.next_pass(), Pass::Full);
        g.record(&Pass::Full, false, &[face([100.0, 100.0, 150.0, 150.0])]);
        let near = g.next_pass();
        assert_eq!(near, Pass::Near(vec![[100.0, 100.0, 150.0, 150.0]]));
        g.record(&near, false, &[face([104.0, 100.0, 154.0, 150.0])]);
        // The face moved 4 px right: expected 4 px further.
        let near = g.next_pass();
        assert_eq!(near, Pass::Near(vec![[108.0, 100.0, 158.0, 150.0]]));
        g.record(&near, false, &[face([108.0, 100.0, 158.0, 150.0])]);
        // Two frames since the full pass with full_every 3: the third is full.
        assert_eq!(g.next_pass(), Pass::Full);
        assert_eq!(
            g.stats(),
            GuidanceStats {
                full: 2,
                near: 2,
                near_then_full: 0,
                skipped_unchanged: 0
            }
        );
    }

    #[test]
    fn a_miss_falls_back_and_restarts_the_count() {
        let mut g = Guidance::new(4, 0.0);
        g.record(
            &Pass::Full,
            false,
            &[
                face([0.0, 0.0, 50.0, 50.0]),
                face([200.0, 0.0, 250.0, 50.0]),
            ],
        );
        let pass = g.next_pass();
        assert!(g.near_missed(&pass, 1));
        assert!(!g.near_missed(&pass, 2));
        assert!(!g.near_missed(&Pass::Full, 0));
        g.record(&pass, true, &[face([0.0, 0.0, 50.0, 50.0])]);
        assert_eq!(g.stats().near_then_full, 1);
        // The fallback was a full pass: three near frames may follow.
        for _ in 0..3 {
            let pass = g.next_pass();
            assert!(
                matches!(pass, Pass::Near(ref e) if e.len() == 1),
                "{pass:?}"
            );
            g.record(&pass, false, &[face([0.0, 0.0, 50.0, 50.0])]);
        }
        assert_eq!(g.next_pass(), Pass::Full);
    }

    #[test]
    fn no_guidance_and_reset() {
        let mut g = Guidance::new(1, 0.0);
        g.record(&Pass::Full, false, &[face([0.0, 0.0, 50.0, 50.0])]);
        assert_eq!(g.next_pass(), Pass::Full);
        let mut g = Guidance::new(0, 0.0);
        assert_eq!(g.full_every(), 1);
        g = Guidance::new(5, 0.0);
        g.record(&Pass::Full, false, &[face([0.0, 0.0, 50.0, 50.0])]);
        assert!(matches!(g.next_pass(), Pass::Near(_)));
        g.reset();
        assert_eq!(g.next_pass(), Pass::Full);
        // A crowd is searched whole.
        let crowd: Vec<Face> = (0..=MAX_FOLLOWED)
            .map(|i| face([60.0 * i as f32, 0.0, 60.0 * i as f32 + 50.0, 50.0]))
            .collect();
        g.record(&Pass::Full, false, &crowd);
        assert_eq!(g.next_pass(), Pass::Full);
        g.record(&Pass::Full, false, &crowd[..MAX_FOLLOWED]);
        assert!(matches!(g.next_pass(), Pass::Near(e) if e.len() == MAX_FOLLOWED));
    }

    #[test]
    fn a_far_face_is_not_taken_for_the_same_one() {
        let mut g = Guidance::new(5, 0.0);
        g.record(&Pass::Full, false, &[face([0.0, 0.0, 40.0, 40.0])]);
        // A face 300 px away: a new one, no motion carried over.
        g.record(&Pass::Full, false, &[face([300.0, 0.0, 340.0, 40.0])]);
        assert_eq!(g.next_pass(), Pass::Near(vec![[300.0, 0.0, 340.0, 40.0]]));
        // Boxes that are not finite never make a motion.
        g.record(&Pass::Full, false, &[face([f32::NAN, 0.0, 40.0, 40.0])]);
        assert!(matches!(g.next_pass(), Pass::Near(_)));
    }
}
