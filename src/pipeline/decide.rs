//! The decision for one face: who it most resembles on the active watchlist, how close, how clearly
//! ahead of the runner-up, and whether the issuer's rule (`Thresholds`) makes that an alert.

use std::time::SystemTime;

use crate::matcher::{Match, MatchError};
use crate::vision::faces::FaceObservation;
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

impl From<Match> for Candidate {
    fn from(m: Match) -> Self {
        Candidate {
            entry: m.identity,
            distance: m.distance,
            similarity: m.similarity,
            margin: m.margin,
            second: m.second,
        }
    }
}

/// What became of a face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Smaller than the configured match size: counted, not matched.
    TooSmall,
    /// No watchlist is active (none installed yet, or the active one expired).
    NoWatchlist,
    /// Compared, and nobody passed the rule; `best` is the closest entry (none on an empty list).
    NoMatch { best: Option<Candidate> },
    /// Passed the rule: an alert, unless the person is cooling down.
    Match(Candidate),
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
    pub verdict: Verdict,
}

/// Applies the active list's matcher and rule to one analysed face.
pub fn decide(
    face: &FaceObservation,
    list: Option<&LoadedWatchlist>,
    frame_seq: u64,
    frame_time: SystemTime,
) -> Result<Decision, MatchError> {
    let verdict = match (&face.embedding, list) {
        (None, _) => Verdict::TooSmall,
        (Some(_), None) => Verdict::NoWatchlist,
        (Some(embedding), Some(list)) => match list.index.search(embedding)? {
            None => Verdict::NoMatch { best: None },
            Some(m) if list.body().thresholds.accepts(&m) => Verdict::Match(m.into()),
            Some(m) => Verdict::NoMatch {
                best: Some(m.into()),
            },
        },
    };
    Ok(Decision {
        bbox: face.bbox,
        face_size_px: face.size_px(),
        frame_seq,
        frame_time,
        watchlist_sequence: list.map_or(0, LoadedWatchlist::sequence),
        verdict,
    })
}
