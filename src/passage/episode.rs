//! What a passage leaves behind: its scores, its best shot, and the closing record written to the
//! journal when its track ends. A passer who matched nobody leaves counts only, no face data,
//! unless `passage.record_unlisted_best_shot` says otherwise.

use std::time::SystemTime;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::TrackState;
use crate::alerts::{FaceBox, time};
use crate::pipeline::alerting::face_crop;
use crate::vision::faces::FaceObservation;
use crate::watchlist::LoadedWatchlist;

/// A search result of a track, kept with the list entry it names.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// Index of the entry in the list searched (valid for that list only).
    pub entry: usize,
    pub entry_id: String,
    pub distance: f32,
    pub similarity: f32,
    /// Distance gap to the second-best identity (infinite with a one-person list).
    pub margin: f32,
    pub second: Option<(usize, f32)>,
}

/// The best view of a passer: the face with the highest quality score.
#[derive(Clone, Debug)]
pub struct BestShot {
    pub quality: f32,
    pub frame_seq: u64,
    pub frame_time: SystemTime,
    pub frame_size: (u32, u32),
    /// x1, y1, x2, y2 in frame pixels.
    pub bbox: [f32; 4],
    /// The face with some context, cut when the frame was at hand (only when crops are kept).
    pub crop: Option<RgbImage>,
}

impl BestShot {
    pub fn of(
        face: &FaceObservation,
        quality: f32,
        frame_seq: u64,
        frame_time: SystemTime,
        frame: &RgbImage,
        keep_crop: bool,
    ) -> BestShot {
        BestShot {
            quality,
            frame_seq,
            frame_time,
            frame_size: frame.dimensions(),
            bbox: face.bbox,
            crop: if keep_crop {
                face_crop(frame, face.bbox)
            } else {
                None
            },
        }
    }

    pub fn face_box(&self) -> FaceBox {
        let [x1, y1, x2, y2] = self.bbox;
        FaceBox {
            x: x1,
            y: y1,
            width: x2 - x1,
            height: y2 - y1,
        }
    }
}

/// How a passage ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Matched a listed person (an alert was raised, or held back by the per-identity cool-down).
    Matched,
    /// Searched, matched nobody.
    NotMatched,
    /// Never had enough good faces to be decided (too small, too blurred, too short).
    Undecided,
    /// No watchlist was active.
    NoWatchlist,
}

/// The listed person a passage matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchedEntry {
    pub id: String,
    /// Distance of the decision (the fused description in passage mode).
    pub distance: f32,
    /// The best single face's distance to the same list, for the record.
    pub best_single_distance: Option<f32>,
}

/// The closing record of one passage (one JSON line in the journal, `"record": "episode"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Always "episode": tells the record from an alert line in the journal.
    pub record: String,
    pub track: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    /// Faces seen, faces good enough to be evidence, faces embedded, embeddings skipped.
    pub faces: u32,
    pub good_faces: u32,
    pub embedded: u32,
    pub embeddings_saved: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<MatchedEntry>,
    /// The track was ended early to make room for a new face (too many at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evicted: bool,
    /// Watchlist sequence the passage was decided against (0: none).
    pub watchlist_sequence: u64,
    /// The best shot's box and quality; only for matched passages, or when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_shot: Option<EpisodeShot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeShot {
    pub frame: u64,
    pub quality: f32,
    pub face: FaceBox,
}

impl Episode {
    pub(super) fn close(
        track: TrackState,
        evicted: bool,
        list: Option<&LoadedWatchlist>,
        record_unlisted_shot: bool,
    ) -> Episode {
        let outcome = if track.matched.is_some() {
            Outcome::Matched
        } else if !track.decided {
            Outcome::Undecided
        } else if list.is_none() {
            Outcome::NoWatchlist
        } else {
            Outcome::NotMatched
        };
        let keep_shot = track.matched.is_some() || record_unlisted_shot;
        Episode {
            record: "episode".into(),
            track: track.id,
            first_frame: track.first_seq,
            last_frame: track.last_seq,
            started_unix_ms: time::unix_millis(track.first_time),
            ended_unix_ms: time::unix_millis(track.last_time),
            faces: track.faces,
            good_faces: track.good_faces,
            embedded: track.embedded,
            embeddings_saved: track.saved,
            outcome,
            matched: track.matched.as_ref().map(|m| MatchedEntry {
                id: m.entry_id.clone(),
                distance: m.distance,
                best_single_distance: track.best_single.as_ref().map(|b| b.distance),
            }),
            evicted,
            watchlist_sequence: track.list_sequence,
            best_shot: track
                .best_shot
                .as_ref()
                .filter(|_| keep_shot)
                .map(|b| EpisodeShot {
                    frame: b.frame_seq,
                    quality: b.quality,
                    face: b.face_box(),
                }),
        }
    }

    /// Reads a record back from a journal line (see [`crate::alerts::journal::Next::Record`]).
    pub fn from_json_line(line: &[u8]) -> Result<Episode, String> {
        let episode: Episode =
            serde_json::from_slice(line).map_err(|e| format!("not an episode record: {e}"))?;
        if episode.record != "episode" {
            return Err(format!(
                "not an episode record: \"record\" is {:?}",
                episode.record
            ));
        }
        Ok(episode)
    }

    /// The record as one JSON line (with the trailing newline).
    pub fn to_json_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        Ok(line)
    }
}
