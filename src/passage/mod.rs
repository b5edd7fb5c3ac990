//! Decisions per passer, not per frame.
//!
//! A lane's users count people: how many listed people walked past unnoticed, how often a stranger
//! set off an alert. Deciding every face in every frame on its own searches a passer 10 to 60 times,
//! so a threshold chosen for 1% false alerts per search alerts on several percent of strangers, and
//! the evidence of the other frames is thrown away. Here faces are grouped into tracks
//! ([`crate::track`]), each face gets a quality score ([`crate::vision::quality`]), and a track's
//! descriptors are fused ([`fusion`]) and decided once the evidence suffices: one decision and at most
//! one alert per passage, and a closing [`episode::Episode`] record when the track ends.
//!
//! Two decision modes, named by the watchlist (its threshold was calibrated for one of them):
//! - [`DecisionMode::Passage`]: the quality-weighted mean of the track's good faces is searched,
//!   first when `min_faces` good faces were seen (or `max_wait_frames` passed with at least one),
//!   again each time the good faces behind it have grown by `relook_growth` (3, 6, 12, ... faces),
//!   and a last time when the track ends with faces not yet searched, until it matches;
//! - [`DecisionMode::Frame`]: every good face is searched on its own (the old behaviour), still
//!   with one alert per passage.
//!
//! Why the looks are spaced out: every search of a stranger is another chance of a false alert,
//! while a listed person's evidence grows with every face. Searching after each new face spends
//! the false-alert budget on near-identical looks (a 12-face track searched 10 times); doubling
//! the evidence between looks keeps them to a handful however long the track (4 looks at 24
//! faces, 5 at 48), and the look at the end, on everything the track saw, is the best-informed of
//! all. On full LFW (`trainer eval lane`, models/README.md) this missed fewer listed passers at
//! the same per-passer false-alert rate than searching after every face. An alert from the last
//! look comes when the track ends (`max_gap_frames` after the face was last seen) and says so.
//!
//! Compute: a tracked face is embedded only when its quality improved on the best embedded one by
//! `reembed_gain`, or every `embed_every` frames, up to `max_embeddings_per_track`; faces whose
//! track association is ambiguous (people crossing) are always embedded so their descriptors can
//! untangle them. The faces not embedded are counted as saved.

pub mod episode;
pub mod fusion;

use std::time::{Duration, Instant, SystemTime};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use self::episode::{BestShot, Episode, Scores};
use self::fusion::Fusion;
use crate::matcher::{Match, MatchError};
use crate::track::{Observation, Proposal, TrackId, Tracker, TrackerConfig};
use crate::vision::contract::Metric;
use crate::vision::detect::Face;
use crate::vision::faces::{FaceObservation, FaceView};
use crate::vision::quality::QualityModel;
use crate::watchlist::LoadedWatchlist;
use crate::watchlist::format::DecisionMode;

/// The `[passage]` settings of `lanewatch run` (docs/lanewatch.toml).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassageConfig {
    /// Most faces tracked at once; a new face past the cap ends the stalest track.
    pub max_tracks: usize,
    /// A track unseen for more than this many frames ends (its episode is closed).
    pub max_gap_frames: u32,
    /// Least overlap (IoU) between a face and a track's predicted box to continue it.
    pub min_iou: f32,
    /// Cosine distance between a face's descriptor and a track's beyond which they are never
    /// associated (keeps people who cross apart).
    pub max_appearance_distance: f32,
    /// Faces below this quality are never evidence: not fused, never decided on their own.
    pub min_quality: f32,
    /// Good faces a track needs before its first decision ...
    pub min_faces: u32,
    /// ... unless it has waited this many frames since it was born with at least one good face.
    pub max_wait_frames: u32,
    /// Search the fused description again when its good faces have grown by this factor since the
    /// last search (2: after 3, 6, 12, ... faces; 1: after every new face).
    pub relook_growth: f32,
    /// Search once more when a track ends, unmatched, with good faces not searched yet (the alert
    /// then comes after the passer left the camera's view).
    pub look_at_track_end: bool,
    /// Embed a tracked face when its quality beats the best embedded one of its track by this ...
    pub reembed_gain: f32,
    /// ... or when this many frames passed since the track's last embedding ...
    pub embed_every: u32,
    /// ... up to this many embeddings per track.
    pub max_embeddings_per_track: u32,
    /// Keep the best shot of passers who matched nobody in their episode record (off: unlisted
    /// passers leave counts only, no face data).
    pub record_unlisted_best_shot: bool,
    /// How the quality score is computed (src/vision/quality.rs).
    pub quality: QualityModel,
}

impl Default for PassageConfig {
    fn default() -> Self {
        PassageConfig {
            max_tracks: 16,
            max_gap_frames: 8,
            min_iou: 0.2,
            // dlib's cosine distances: same person mostly below 0.1, different people mostly
            // above 0.15 (models/README.md).
            max_appearance_distance: 0.15,
            min_quality: 0.3,
            min_faces: 3,
            max_wait_frames: 8,
            relook_growth: 2.0,
            look_at_track_end: true,
            reembed_gain: 0.05,
            embed_every: 2,
            max_embeddings_per_track: 12,
            record_unlisted_best_shot: false,
            quality: QualityModel::default(),
        }
    }
}

impl PassageConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1024).contains(&self.max_tracks),
            "passage.max_tracks must be in 1..=1024"
        );
        anyhow::ensure!(
            self.min_iou.is_finite() && (0.0..1.0).contains(&self.min_iou),
            "passage.min_iou must be in [0, 1)"
        );
        anyhow::ensure!(
            self.max_appearance_distance.is_finite() && self.max_appearance_distance > 0.0,
            "passage.max_appearance_distance must be positive"
        );
        anyhow::ensure!(
            self.min_quality.is_finite() && (0.0..=1.0).contains(&self.min_quality),
            "passage.min_quality must be in [0, 1]"
        );
        anyhow::ensure!(self.min_faces >= 1, "passage.min_faces must be at least 1");
        anyhow::ensure!(
            self.relook_growth.is_finite() && (1.0..=100.0).contains(&self.relook_growth),
            "passage.relook_growth must be in [1, 100]"
        );
        anyhow::ensure!(
            self.max_embeddings_per_track >= 1,
            "passage.max_embeddings_per_track must be at least 1"
        );
        anyhow::ensure!(
            self.reembed_gain.is_finite() && self.reembed_gain >= 0.0,
            "passage.reembed_gain must be a non-negative number"
        );
        self.quality.validate()
    }

    fn tracker(&self) -> TrackerConfig {
        TrackerConfig {
            max_tracks: self.max_tracks,
            max_gap_frames: self.max_gap_frames,
            min_iou: self.min_iou,
            max_appearance_distance: self.max_appearance_distance,
        }
    }
}

/// One search of a track against the list: a fused description or a single face.
#[derive(Clone, Debug)]
pub struct DecisionPoint {
    pub track: TrackId,
    pub frame_seq: u64,
    /// The descriptor searched.
    pub descriptor: Vec<f32>,
    /// Good faces behind it (1 for a single face).
    pub faces: u32,
}

/// What became of one face of a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceOutcome {
    pub track: Option<TrackId>,
    /// The face's quality score; `None` when it was not aligned (too small).
    pub quality: Option<f32>,
    pub embedded: bool,
    /// The track's state after this frame.
    pub state: TrackDecision,
}

/// Where a track's decision stands.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackDecision {
    /// Not enough good faces yet (or none at all: too small, too poor).
    Gathering { good_faces: u32 },
    /// No watchlist is active.
    NoWatchlist,
    /// Searched; nobody passed the list's rule. `best` is the closest entry at the last search.
    NoMatch { best: Option<Scores> },
    /// Matched: the passage's alert was raised on this frame (`new`) or earlier.
    Matched { scores: Scores, new: bool },
}

/// A passage that matched on this frame: the lane turns it into an alert.
#[derive(Clone, Debug)]
pub struct PassageMatch {
    pub track: TrackId,
    pub scores: Scores,
    /// The best single-face search of the track so far (for the record).
    pub best_single: Option<Scores>,
    /// Good faces behind the decision.
    pub faces_used: u32,
    pub best_shot: BestShot,
    pub mode: DecisionMode,
    /// Decided by the last look, when the track ended (the passer has left the view).
    pub at_track_end: bool,
}

/// Everything one frame produced.
#[derive(Debug, Default)]
pub struct FrameOutcome {
    /// One per observation, in order.
    pub faces: Vec<FaceOutcome>,
    pub matches: Vec<PassageMatch>,
    /// Tracks that ended with this frame.
    pub ended: Vec<Episode>,
    /// The searches made (only when [`Passages::record_decision_points`] is on).
    pub decision_points: Vec<DecisionPoint>,
    /// Time spent associating faces with tracks, and in 1:N searches (what `lanewatch bench`
    /// reports apart from the rest of the per-passer work: fusion, decisions, best shots).
    pub track_time: Duration,
    pub search_time: Duration,
}

/// Counters of the per-passer side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PassageStats {
    pub tracks_started: u64,
    pub episodes_closed: u64,
    pub live_tracks: u64,
    /// Aligned faces embedded, and those whose embedding was skipped because the track's view did
    /// not improve.
    pub embedded: u64,
    pub embeddings_saved: u64,
    /// Searches of fused descriptors and of single faces.
    pub searches: u64,
    pub passages_matched: u64,
    /// Last looks that could not search (a list whose dimension disagrees with the descriptors);
    /// their passages still closed.
    pub failed_last_looks: u64,
}

struct TrackState {
    id: TrackId,
    first_seq: u64,
    last_seq: u64,
    first_time: SystemTime,
    last_time: SystemTime,
    faces: u32,
    good_faces: u32,
    embedded: u32,
    saved: u32,
    best_embedded_quality: f32,
    last_embed_seq: Option<u64>,
    fusion: Fusion,
    /// The list the scores below refer to (entry indices are per list).
    list_sequence: u64,
    best_single: Option<Scores>,
    last_search: Option<Scores>,
    matched: Option<Scores>,
    /// Whether the first decision was made (evidence sufficed once).
    decided: bool,
    /// Good faces behind the last fused search (a new search needs a new face).
    searched_faces: u32,
    best_shot: Option<BestShot>,
}

impl TrackState {
    fn new(id: TrackId, seq: u64, time: SystemTime) -> TrackState {
        TrackState {
            id,
            first_seq: seq,
            last_seq: seq,
            first_time: time,
            last_time: time,
            faces: 0,
            good_faces: 0,
            embedded: 0,
            saved: 0,
            best_embedded_quality: f32::NEG_INFINITY,
            last_embed_seq: None,
            fusion: Fusion::default(),
            list_sequence: 0,
            best_single: None,
            last_search: None,
            matched: None,
            decided: false,
            searched_faces: 0,
            best_shot: None,
        }
    }

    fn state(&self, has_list: bool, new_match: bool) -> TrackDecision {
        if let Some(scores) = &self.matched {
            return TrackDecision::Matched {
                scores: scores.clone(),
                new: new_match,
            };
        }
        if !self.decided {
            return TrackDecision::Gathering {
                good_faces: self.good_faces,
            };
        }
        if !has_list {
            return TrackDecision::NoWatchlist;
        }
        TrackDecision::NoMatch {
            best: self.last_search.clone(),
        }
    }
}

/// The per-passer engine of one lane: tracker, quality, fusion and decisions.
pub struct Passages {
    config: PassageConfig,
    tracker: Tracker,
    tracks: Vec<TrackState>,
    stats: PassageStats,
    record_points: bool,
    /// Whether best-shot crops are cut from frames (alerts carry them).
    keep_crops: bool,
    /// The embedder's metric, for fused descriptors made while no list is active.
    metric: Metric,
    /// The decision mode of the last frame: how tracks that end are given their last look.
    mode: DecisionMode,
}

/// Which faces of a frame to embed, decided before embedding.
pub struct EmbedPlan {
    proposals: Vec<Proposal>,
    mode: DecisionMode,
}

impl Passages {
    pub fn new(config: PassageConfig, keep_crops: bool, metric: Metric) -> Passages {
        let tracker = Tracker::new(config.tracker());
        Passages {
            config,
            tracker,
            tracks: Vec::new(),
            stats: PassageStats::default(),
            record_points: false,
            keep_crops,
            metric,
            mode: DecisionMode::Passage,
        }
    }

    /// Also report every search's descriptor in [`FrameOutcome::decision_points`] (the
    /// evaluation searches them against many lists).
    pub fn record_decision_points(&mut self, on: bool) {
        self.record_points = on;
    }

    pub fn config(&self) -> &PassageConfig {
        &self.config
    }

    pub fn stats(&self) -> PassageStats {
        PassageStats {
            live_tracks: self.tracks.len() as u64,
            ..self.stats
        }
    }

    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Step 1, before embedding: which track each detected face would continue.
    pub fn plan(&self, frame_seq: u64, faces: &[Face], mode: DecisionMode) -> EmbedPlan {
        let boxes: Vec<[f32; 4]> = faces.iter().map(|f| f.bbox).collect();
        self.plan_boxes(frame_seq, &boxes, mode)
    }

    /// [`Passages::plan`] from the detector boxes alone.
    pub fn plan_boxes(&self, frame_seq: u64, boxes: &[[f32; 4]], mode: DecisionMode) -> EmbedPlan {
        EmbedPlan {
            proposals: self.tracker.propose(frame_seq, boxes),
            mode,
        }
    }

    /// Step 2, per aligned face: whether to embed it.
    pub fn wants_embedding(&self, plan: &EmbedPlan, face: &FaceView<'_>, frame_seq: u64) -> bool {
        let quality = self.config.quality.score(face.quality);
        let proposal = plan.proposals.get(face.index);
        if proposal.is_some_and(|p| p.ambiguous) {
            // Needed to tell crossing people apart, whatever its quality.
            return true;
        }
        if quality < self.config.min_quality {
            return false;
        }
        let Some(track) = proposal
            .and_then(|p| p.track)
            .and_then(|id| self.tracks.iter().find(|t| t.id == id))
        else {
            return true; // a new face
        };
        let due = track
            .last_embed_seq
            .is_none_or(|s| frame_seq.saturating_sub(s) >= self.config.embed_every as u64);
        if track.matched.is_some() || track.embedded >= self.config.max_embeddings_per_track {
            // Decided (or out of budget): still look every `embed_every` frames, so that someone
            // stepping into a matched person's place is told apart by the tracker's appearance
            // check and decided on their own.
            return due;
        }
        if plan.mode == DecisionMode::Frame {
            return true; // every good face is a search of its own
        }
        quality >= track.best_embedded_quality + self.config.reembed_gain || due
    }

    /// Step 3: associates the frame's faces with tracks, fuses, decides, and closes ended tracks.
    pub fn update(
        &mut self,
        frame_seq: u64,
        frame_time: SystemTime,
        frame: &RgbImage,
        observations: &[FaceObservation],
        list: Option<&LoadedWatchlist>,
        mode: DecisionMode,
    ) -> Result<FrameOutcome, MatchError> {
        let mut out = FrameOutcome::default();
        self.mode = mode;
        let tracker_obs: Vec<Observation<'_>> = observations
            .iter()
            .map(|o| Observation {
                bbox: o.bbox,
                embedding: o.embedding.as_deref(),
            })
            .collect();
        let started = Instant::now();
        let ids = self.tracker.update(frame_seq, &tracker_obs);
        out.track_time = started.elapsed();
        self.close_ended(&mut out, list);
        let list_sequence = list.map_or(0, LoadedWatchlist::sequence);
        for (obs, id) in observations.iter().zip(ids) {
            let quality = obs.quality.as_ref().map(|q| self.config.quality.score(q));
            let Some(id) = id else {
                out.faces.push(FaceOutcome {
                    track: None,
                    quality,
                    embedded: obs.embedding.is_some(),
                    state: TrackDecision::Gathering { good_faces: 0 },
                });
                continue;
            };
            let at = match self.tracks.iter().position(|t| t.id == id) {
                Some(at) => at,
                None => {
                    self.stats.tracks_started += 1;
                    self.tracks.push(TrackState::new(id, frame_seq, frame_time));
                    self.tracks.len() - 1
                }
            };
            let good = quality.is_some_and(|q| q >= self.config.min_quality);
            let track = &mut self.tracks[at];
            if track.list_sequence != list_sequence {
                // Entry indices and distances belong to the list they were computed on.
                track.list_sequence = list_sequence;
                track.best_single = None;
                track.last_search = None;
            }
            track.last_seq = frame_seq;
            track.last_time = frame_time;
            track.faces += 1;
            if let Some(q) = quality
                && track.best_shot.as_ref().is_none_or(|b| q > b.quality)
            {
                track.best_shot = Some(BestShot::of(
                    obs,
                    q,
                    frame_seq,
                    frame_time,
                    frame,
                    self.keep_crops,
                ));
            }
            let mut searched = false;
            let mut new_match = false;
            match (&obs.embedding, quality) {
                (Some(descriptor), Some(q)) => {
                    self.stats.embedded += 1;
                    track.embedded += 1;
                    track.last_embed_seq = Some(frame_seq);
                    track.best_embedded_quality = track.best_embedded_quality.max(q);
                    if good && track.matched.is_none() {
                        track.good_faces += 1;
                        track.fusion.add(descriptor, q);
                        let single =
                            self.search_single(at, descriptor, frame_seq, list, mode, &mut out)?;
                        searched |= single;
                    }
                }
                (None, Some(_)) => {
                    self.stats.embeddings_saved += 1;
                    self.tracks[at].saved += 1;
                }
                _ => {}
            }
            if mode == DecisionMode::Passage {
                searched |= self.search_fused(at, frame_seq, list, false, &mut out)?;
            }
            if searched {
                new_match = self.accept(at, list, mode, false, &mut out);
            }
            let track = &self.tracks[at];
            out.faces.push(FaceOutcome {
                track: Some(id),
                quality,
                embedded: obs.embedding.is_some(),
                state: track.state(list.is_some(), new_match),
            });
        }
        Ok(out)
    }

    /// Ends every live track (end of stream, shutdown): their last looks (`matches`, alerts to
    /// raise) and their episodes (`ended`).
    pub fn finish(&mut self, list: Option<&LoadedWatchlist>) -> FrameOutcome {
        self.tracker.finish();
        let mut out = FrameOutcome::default();
        self.close_ended(&mut out, list);
        out
    }

    /// Turns the track's last search into its passage's match when the list's rule accepts it.
    /// Returns whether it matched now.
    fn accept(
        &mut self,
        at: usize,
        list: Option<&LoadedWatchlist>,
        mode: DecisionMode,
        at_track_end: bool,
        out: &mut FrameOutcome,
    ) -> bool {
        let track = &mut self.tracks[at];
        let Some(scores) = track.last_search.clone() else {
            return false;
        };
        if track.matched.is_some()
            || !list.is_some_and(|l| l.body().thresholds.accepts_scores(&scores))
        {
            return false;
        }
        let Some(best_shot) = track.best_shot.clone() else {
            return false;
        };
        track.matched = Some(scores.clone());
        self.stats.passages_matched += 1;
        out.matches.push(PassageMatch {
            track: track.id,
            scores,
            best_single: track.best_single.clone(),
            faces_used: if mode == DecisionMode::Passage {
                track.fusion.faces()
            } else {
                1
            },
            best_shot,
            mode,
            at_track_end,
        });
        true
    }

    /// Searches one good face: a decision of its own in frame mode, the record's best single
    /// score in passage mode. Returns whether it was a decision.
    fn search_single(
        &mut self,
        at: usize,
        descriptor: &[f32],
        frame_seq: u64,
        list: Option<&LoadedWatchlist>,
        mode: DecisionMode,
        out: &mut FrameOutcome,
    ) -> Result<bool, MatchError> {
        let decision = mode == DecisionMode::Frame;
        let track = &mut self.tracks[at];
        if decision {
            track.decided = true;
            if self.record_points {
                out.decision_points.push(DecisionPoint {
                    track: track.id,
                    frame_seq,
                    descriptor: descriptor.to_vec(),
                    faces: 1,
                });
            }
        }
        let Some(list) = list else {
            return Ok(decision);
        };
        self.stats.searches += 1;
        let started = Instant::now();
        let found = list.index.search(descriptor)?.map(|m| Scores::of(&m, list));
        out.search_time += started.elapsed();
        if let Some(s) = &found
            && track
                .best_single
                .as_ref()
                .is_none_or(|b| s.distance < b.distance)
        {
            track.best_single = Some(s.clone());
        }
        if decision {
            track.last_search = found;
        }
        Ok(decision)
    }

    /// Searches the fused description when a look is due: the evidence first suffices, it has
    /// grown by `relook_growth` since the last look, or (`last_look`) the track ends with faces
    /// not searched yet.
    fn search_fused(
        &mut self,
        at: usize,
        frame_seq: u64,
        list: Option<&LoadedWatchlist>,
        last_look: bool,
        out: &mut FrameOutcome,
    ) -> Result<bool, MatchError> {
        let config = &self.config;
        let track = &mut self.tracks[at];
        if track.matched.is_some() || track.fusion.is_empty() {
            return Ok(false);
        }
        let faces = track.fusion.faces();
        let due = if last_look {
            faces > track.searched_faces
        } else if track.decided {
            faces >= next_look(track.searched_faces, config.relook_growth)
        } else {
            let waited = frame_seq.saturating_sub(track.first_seq) >= config.max_wait_frames as u64;
            track.good_faces >= config.min_faces || waited
        };
        if !due {
            return Ok(false);
        }
        let metric = list.map_or(self.metric, |l| l.index.metric());
        let Some(descriptor) = track.fusion.descriptor(metric) else {
            return Ok(false);
        };
        track.decided = true;
        track.searched_faces = track.fusion.faces();
        if self.record_points {
            out.decision_points.push(DecisionPoint {
                track: track.id,
                frame_seq,
                descriptor: descriptor.clone(),
                faces: track.fusion.faces(),
            });
        }
        let Some(list) = list else {
            return Ok(true);
        };
        self.stats.searches += 1;
        let started = Instant::now();
        track.last_search = list
            .index
            .search(&descriptor)?
            .map(|m| Scores::of(&m, list));
        out.search_time += started.elapsed();
        Ok(true)
    }

    /// Closes the tracks the tracker ended: their last look (passage mode), then their episode.
    /// Never fails: a last look that cannot search is counted, and every episode still closes.
    fn close_ended(&mut self, out: &mut FrameOutcome, list: Option<&LoadedWatchlist>) {
        for ended in self.tracker.take_ended() {
            let Some(at) = self.tracks.iter().position(|t| t.id == ended.id) else {
                continue;
            };
            if self.mode == DecisionMode::Passage && self.config.look_at_track_end {
                let seq = self.tracks[at].last_seq;
                match self.search_fused(at, seq, list, true, out) {
                    Ok(true) => {
                        self.accept(at, list, DecisionMode::Passage, true, out);
                    }
                    Ok(false) => {}
                    Err(_) => self.stats.failed_last_looks += 1,
                }
            }
            let track = self.tracks.swap_remove(at);
            self.stats.episodes_closed += 1;
            out.ended.push(Episode::close(
                track,
                ended.evicted,
                list,
                self.config.record_unlisted_best_shot,
            ));
        }
    }
}

/// The good faces the fused description needs for its next look after one on `looked` faces.
fn next_look(looked: u32, growth: f32) -> u32 {
    let grown = (looked as f32 * growth).ceil();
    // Saturating: a growth past u32 means no further look but the last one.
    (if grown >= u32::MAX as f32 {
        u32::MAX
    } else {
        grown as u32
    })
    .max(looked.saturating_add(1))
}

impl Scores {
    /// The scores of a search result on `list`.
    pub fn of(m: &Match, list: &LoadedWatchlist) -> Scores {
        Scores {
            entry: m.identity,
            entry_id: list
                .body()
                .entries
                .get(m.identity)
                .map(|e| e.id.clone())
                .unwrap_or_default(),
            distance: m.distance,
            similarity: m.similarity,
            margin: m.margin,
            second: m.second,
        }
    }
}

#[cfg(test)]
mod tests;
