//! What a lane reports for each face of a frame: its track, its quality, and where its passage's
//! decision stands (src/passage decides; this is the per-face view of it for logs, the demo and
//! tests).

use std::time::SystemTime;

use crate::passage::episode::Scores;
use crate::passage::{FaceOutcome, TrackDecision};
use crate::watchlist::LoadedWatchlist;

/// The best identity for a face and the scores the rule was applied to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Index of the entry in the watchlist that was active for this frame.
    pub entry: usize,
    pub distance: f32,
    pub similarity: f32,
    /// Distance gap to the second-best identity (infinite with a one-person list).
    pub margin: f32,
    /// The second-best entry and its distance.
    pub second: Option<(usize, f32)>,
}

impl From<&Scores> for Candidate {
    fn from(s: &Scores) -> Self {
        Candidate {
            entry: s.entry,
            distance: s.distance,
            similarity: s.similarity,
            margin: s.margin,
            second: s.second,
        }
    }
}

/// What became of a face (the state of its passage after this frame).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Smaller than the configured match size: counted, not matched.
    TooSmall,
    /// Its passage has not yet enough good faces to be decided (`good_faces` so far).
    Gathering { good_faces: u32 },
    /// No watchlist is active (none installed yet, or the active one expired).
    NoWatchlist,
    /// Compared, and nobody passed the rule; `best` is the closest entry (none on an empty list).
    NoMatch { best: Option<Candidate> },
    /// Its passage passed the rule: on this frame (`new`: an alert, unless the person is cooling
    /// down) or earlier.
    Match { candidate: Candidate, new: bool },
}

/// One face in one frame, decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// x1, y1, x2, y2 in frame pixels.
    pub bbox: [f32; 4],
    /// Shorter side of the box, in pixels.
    pub face_size_px: f32,
    pub frame_seq: u64,
    pub frame_time: SystemTime,
    /// Sequence of the watchlist the face was compared with (0 when none).
    pub watchlist_sequence: u64,
    /// The passage (track) the face belongs to; `None` for a face the tracker could not take (a
    /// box that is not finite).
    pub track: Option<u64>,
    /// Quality score in [0, 1]; `None` when the face was too small to align.
    pub quality: Option<f32>,
    /// Whether the face was embedded on this frame (tracked faces are embedded only when their
    /// view improves).
    pub embedded: bool,
    pub verdict: Verdict,
}

impl Decision {
    /// The per-face view of a passage outcome.
    pub fn of(
        face: &crate::vision::faces::FaceObservation,
        outcome: &FaceOutcome,
        list: Option<&LoadedWatchlist>,
        frame_seq: u64,
        frame_time: SystemTime,
    ) -> Decision {
        let verdict = match (&outcome.state, outcome.quality) {
            (_, None) => Verdict::TooSmall,
            (TrackDecision::Gathering { good_faces }, _) => Verdict::Gathering {
                good_faces: *good_faces,
            },
            (TrackDecision::NoWatchlist, _) => Verdict::NoWatchlist,
            (TrackDecision::NoMatch { best }, _) => Verdict::NoMatch {
                best: best.as_ref().map(Candidate::from),
            },
            (TrackDecision::Matched { scores, new }, _) => Verdict::Match {
                candidate: Candidate::from(scores),
                new: *new,
            },
        };
        Decision {
            bbox: face.bbox,
            face_size_px: face.size_px(),
            frame_seq,
            frame_time,
            watchlist_sequence: list.map_or(0, LoadedWatchlist::sequence),
            track: outcome.track,
            quality: outcome.quality,
            embedded: outcome.embedded,
            verdict,
        }
    }
}
