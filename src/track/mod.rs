//! Groups a lane camera's faces into tracks, one per passer.
//!
//! Each frame, [`Tracker::update`] associates the detected faces with the live tracks:
//! - every track predicts its box by constant velocity of centre and size ([`motion`]), over the
//!   frames since it was last seen (dropped frames count);
//! - a face and a track may pair when the face's box overlaps the prediction by at least
//!   [`TrackerConfig::min_iou`]; the pair's cost is `(1 - IoU)` plus the centre distance in face
//!   sizes, plus the cosine distance between the face's descriptor and the track's appearance where
//!   both exist; a descriptor further than [`TrackerConfig::max_appearance_distance`] vetoes the
//!   pair (two people crossing are told apart by who they look like, not only where they are);
//! - the pairs are chosen globally ([`assign`]: least total cost among the most pairs), each track
//!   taking at most one face and each face at most one track;
//! - faces left over start tracks; tracks missed in more than [`TrackerConfig::max_gap_frames`]
//!   consecutive frames end.
//!
//! Before embedding, [`Tracker::propose`] runs the same association on boxes alone and flags the
//! faces whose association is contested, so the caller embeds those to untangle them.
//!
//! Memory is bounded: at most [`TrackerConfig::max_tracks`] tracks of fixed size (a descriptor of
//! at most [`appearance::MAX_DIM`] values each), at most `4 * max_tracks` ended tracks waiting for
//! [`Tracker::take_ended`] (the oldest are dropped and counted beyond that), and scratch buffers
//! that are given back after an unusually crowded frame.

pub mod appearance;
pub mod assign;
pub mod motion;

use std::collections::VecDeque;

use self::appearance::{Appearance, usable_norm};
use self::assign::{AssignScratch, assign};
use self::motion::{CentreBox, Motion};

/// A track's identity: increasing from 1, never reused within a [`Tracker`].
pub type TrackId = u64;

/// Weight of the cosine distance in a pair's cost, against `1 - IoU` and the centre distance.
const APPEARANCE_WEIGHT: f32 = 1.0;
/// Ended tracks kept for [`Tracker::take_ended`] per allowed live track.
const ENDED_PER_TRACK: usize = 4;
/// Scratch buffers larger than this many elements after a frame are shrunk back to it.
const SCRATCH_KEEP: usize = 4096;
/// [`TrackerConfig::max_tracks`] is clamped to this (and to at least 1).
pub const MAX_TRACKS: usize = 1024;

#[derive(Clone, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Cap on live tracks (memory bound), clamped to `1..=MAX_TRACKS`; default 16.
    pub max_tracks: usize,
    /// A track missed in more than this many consecutive frames ends; default 8.
    pub max_gap_frames: u32,
    /// Least IoU between a box and a track's predicted box for them to pair; default 0.2. Boxes
    /// that do not overlap never pair, whatever this is.
    pub min_iou: f32,
    /// Cosine distance (1 - cos) over which a face's descriptor vetoes its pairing with a track's
    /// appearance; default 0.6.
    pub max_appearance_distance: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_tracks: 16,
            max_gap_frames: 8,
            min_iou: 0.2,
            max_appearance_distance: 0.6,
        }
    }
}

/// One detected face of a frame.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// Detector box `x1, y1, x2, y2` in frame pixels.
    pub bbox: [f32; 4],
    /// The face's descriptor, when the caller embedded it.
    pub embedding: Option<&'a [f32]>,
}

/// What [`Tracker::propose`] expects of one box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The live track the box would continue; `None` for a new face or an unusable box.
    pub track: Option<TrackId>,
    /// Another track or another box is also a candidate for this pairing (overlaps enough to pass
    /// the `min_iou` gate: people crossing, one face hiding another), or a new face could have
    /// continued a track that another face took: embed the face so that appearance decides.
    pub ambiguous: bool,
}

/// A track that ended, as [`Tracker::take_ended`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub id: TrackId,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Faces associated with the track.
    pub observations: u32,
    /// Ended early to make room for a new face (the tracker was at its cap).
    pub evicted: bool,
}

/// One live track: fixed-size state plus one bounded descriptor.
#[derive(Clone, Debug)]
struct Track {
    id: TrackId,
    first_frame: u64,
    observations: u32,
    motion: Motion,
    appearance: Appearance,
}

impl Track {
    fn ended(&self, evicted: bool) -> Ended {
        Ended {
            id: self.id,
            first_frame: self.first_frame,
            last_frame: self.motion.last_frame,
            observations: self.observations,
            evicted,
        }
    }
}

/// Buffers of [`Tracker::update`] reused between frames.
#[derive(Debug, Default)]
struct Scratch {
    /// Usable boxes: observation index and box.
    boxes: Vec<(usize, CentreBox)>,
    /// Each usable box's descriptor length (0: none or unusable).
    norms: Vec<f32>,
    costs: Vec<f32>,
    pairs: Vec<(usize, usize)>,
    assign: AssignScratch,
}

impl Scratch {
    fn capacity(&self) -> usize {
        self.boxes.capacity()
            + self.norms.capacity()
            + self.costs.capacity()
            + self.pairs.capacity()
            + self.assign.capacity()
    }

    fn shrink(&mut self) {
        self.boxes.shrink_to(SCRATCH_KEEP);
        self.norms.shrink_to(SCRATCH_KEEP);
        self.costs.shrink_to(SCRATCH_KEEP);
        self.pairs.shrink_to(SCRATCH_KEEP);
        self.assign.shrink_to(SCRATCH_KEEP);
    }
}

/// The multi-face tracker of one camera. See the module documentation.
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    ended: VecDeque<Ended>,
    ended_dropped: u64,
    next_id: TrackId,
    /// The latest frame given to [`Self::update`].
    last_frame: Option<u64>,
    scratch: Scratch,
}

impl Tracker {
    /// A tracker with `config`; values out of range are brought in (`max_tracks` to
    /// `1..=MAX_TRACKS`, a `min_iou` or `max_appearance_distance` that is not finite to its
    /// default).
    pub fn new(mut config: TrackerConfig) -> Tracker {
        let defaults = TrackerConfig::default();
        config.max_tracks = config.max_tracks.clamp(1, MAX_TRACKS);
        if !config.min_iou.is_finite() {
            config.min_iou = defaults.min_iou;
        }
        if !config.max_appearance_distance.is_finite() {
            config.max_appearance_distance = defaults.max_appearance_distance;
        }
        let cap = config.max_tracks;
        Tracker {
            config,
            tracks: Vec::with_capacity(cap),
            ended: VecDeque::with_capacity(ENDED_PER_TRACK * cap),
            ended_dropped: 0,
            next_id: 1,
            last_frame: None,
            scratch: Scratch::default(),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Live tracks.
    pub fn live(&self) -> usize {
        self.tracks.len()
    }

    /// The ids of the live tracks, oldest first.
    pub fn live_ids(&self) -> impl Iterator<Item = TrackId> + '_ {
        self.tracks.iter().map(|t| t.id)
    }

    /// Ended tracks dropped because [`Self::take_ended`] was not called often enough.
    pub fn ended_dropped(&self) -> u64 {
        self.ended_dropped
    }

    /// Elements held by every buffer of the tracker (tracks, descriptors, ended list, scratch):
    /// flat over a long run, for memory checks.
    pub fn capacity_used(&self) -> usize {
        self.tracks.capacity()
            + self
                .tracks
                .iter()
                .map(|t| t.appearance.capacity())
                .sum::<usize>()
            + self.ended.capacity()
            + self.scratch.capacity()
    }

    /// Before embeddings exist: the live track each box would continue (the association
    /// [`Self::update`] makes without descriptors) and whether that is contested. One proposal per
    /// box, in order; an unusable box (not finite, empty) gets `track: None, ambiguous: false`.
    /// Changes nothing.
    pub fn propose(&self, frame_seq: u64, boxes: &[[f32; 4]]) -> Vec<Proposal> {
        let mut out = vec![
            Proposal {
                track: None,
                ambiguous: false,
            };
            boxes.len()
        ];
        // A frame before the last is a new stream: every track would have ended.
        if self.last_frame.is_some_and(|l| frame_seq < l) {
            return out;
        }
        let mut s = Scratch::default();
        s.boxes.extend(
            boxes
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((i, CentreBox::from_corners(*b)?))),
        );
        s.norms.resize(s.boxes.len(), 0.0);
        let live: Vec<usize> = (0..self.tracks.len())
            .filter(|&t| !self.gap_exceeded(&self.tracks[t], frame_seq))
            .collect();
        self.fill_costs(frame_seq, &live, &[], &s.boxes, &s.norms, &mut s.costs);
        assign(
            &s.costs,
            s.boxes.len(),
            live.len(),
            &mut s.assign,
            &mut s.pairs,
        );

        let (rows, cols) = (s.boxes.len(), live.len());
        let mut chosen_col = vec![None; rows];
        let mut chosen_row = vec![None; cols];
        for &(r, c) in &s.pairs {
            chosen_col[r] = Some(c);
            chosen_row[c] = Some(r);
        }
        let cost = |r: usize, c: usize| s.costs[r * cols + c];
        for r in 0..rows {
            let proposal = &mut out[s.boxes[r].0];
            let Some(c) = chosen_col[r] else {
                // A new face that some track could have taken is contested too.
                proposal.ambiguous = (0..cols).any(|c| cost(r, c).is_finite());
                continue;
            };
            proposal.track = Some(self.tracks[live[c]].id);
            let rival_track = (0..cols).any(|c2| c2 != c && cost(r, c2).is_finite());
            let rival_box = (0..rows).any(|r2| r2 != r && cost(r2, c).is_finite());
            proposal.ambiguous = rival_track || rival_box;
        }
        out
    }

    /// Associates this frame's faces with the live tracks, updates the matched tracks, starts
    /// tracks for the other faces, and ends tracks missed for more than `max_gap_frames` frames.
    ///
    /// Returns the track of every observation, in order; `None` for a box that is unusable (not
    /// finite, empty, inverted: such boxes never start or continue a track) and for a new face
    /// that found no room: at the cap, a new face evicts the track seen least recently (reported
    /// by [`Self::take_ended`] with `evicted`), but never one seen in this frame, so faces beyond
    /// `max_tracks` in one frame stay untracked (the largest faces are placed first).
    ///
    /// A descriptor given with a face updates its track's appearance (a running blend, unless
    /// [`Self::set_appearance`] sets it); a new track starts with its face's descriptor.
    ///
    /// `frame_seq` should increase; gaps are dropped frames. A `frame_seq` below the last one is
    /// taken for a new stream: every track ends first (as in [`Self::finish`]).
    pub fn update(
        &mut self,
        frame_seq: u64,
        observations: &[Observation<'_>],
    ) -> Vec<Option<TrackId>> {
        if self.last_frame.is_some_and(|l| frame_seq < l) {
            self.finish();
        }
        self.last_frame = Some(frame_seq);
        self.end_stale(frame_seq);

        let mut s = std::mem::take(&mut self.scratch);
        s.boxes.clear();
        s.boxes.extend(
            observations
                .iter()
                .enumerate()
                .filter_map(|(i, o)| Some((i, CentreBox::from_corners(o.bbox)?))),
        );
        s.norms.clear();
        s.norms.extend(s.boxes.iter().map(|(i, _)| {
            observations[*i]
                .embedding
                .and_then(usable_norm)
                .unwrap_or(0.0)
        }));
        let live: Vec<usize> = (0..self.tracks.len()).collect();
        self.fill_costs(
            frame_seq,
            &live,
            observations,
            &s.boxes,
            &s.norms,
            &mut s.costs,
        );
        assign(
            &s.costs,
            s.boxes.len(),
            live.len(),
            &mut s.assign,
            &mut s.pairs,
        );

        let mut out = vec![None; observations.len()];
        // Rows of boxes taken by a track; the others are new faces.
        let mut taken = vec![false; s.boxes.len()];
        for &(r, c) in &s.pairs {
            let (i, b) = s.boxes[r];
            let track = &mut self.tracks[c];
            track.motion.observe(b, frame_seq);
            track.observations = track.observations.saturating_add(1);
            if let Some(e) = observations[i].embedding {
                track.appearance.blend(e);
            }
            out[i] = Some(track.id);
            taken[r] = true;
        }
        // Largest (nearest) new faces first: they are the ones worth a track when room is short.
        let mut new: Vec<(usize, CentreBox)> = s
            .boxes
            .iter()
            .zip(&taken)
            .filter(|(_, t)| !**t)
            .map(|(b, _)| *b)
            .collect();
        new.sort_by(|a, b| b.1.area().total_cmp(&a.1.area()).then(a.0.cmp(&b.0)));
        for (i, b) in new {
            out[i] = self.start(frame_seq, b, observations[i].embedding);
        }

        s.shrink();
        self.scratch = s;
        out
    }

    /// Sets a track's appearance, e.g. to its fused descriptor (stored L2-normalised, in the
    /// track's own buffer). Returns false when the track is not live or the descriptor is not
    /// usable (empty, zero, not finite, longer than [`appearance::MAX_DIM`]).
    pub fn set_appearance(&mut self, id: TrackId, embedding: &[f32]) -> bool {
        self.tracks
            .iter_mut()
            .find(|t| t.id == id)
            .is_some_and(|t| t.appearance.set(embedding))
    }

    /// Tracks that ended since the last call, in the order they ended.
    pub fn take_ended(&mut self) -> Vec<Ended> {
        self.ended.drain(..).collect()
    }

    /// Ends every live track (end of stream), reporting them through [`Self::take_ended`].
    pub fn finish(&mut self) {
        let mut tracks = std::mem::take(&mut self.tracks);
        tracks.sort_by_key(|t| (t.motion.last_frame, t.id));
        for t in tracks.drain(..) {
            self.push_ended(t.ended(false));
        }
        self.tracks = tracks; // keeps the buffer
        self.last_frame = None;
    }

    /// Whether `track` was missed in more than `max_gap_frames` frames before `frame`.
    fn gap_exceeded(&self, track: &Track, frame: u64) -> bool {
        let missed = frame
            .saturating_sub(track.motion.last_frame)
            .saturating_sub(1);
        missed > u64::from(self.config.max_gap_frames)
    }

    fn end_stale(&mut self, frame: u64) {
        let mut stale: Vec<Ended> = Vec::new();
        let mut k = 0;
        while k < self.tracks.len() {
            if self.gap_exceeded(&self.tracks[k], frame) {
                stale.push(self.tracks.remove(k).ended(false));
            } else {
                k += 1;
            }
        }
        stale.sort_by_key(|e| (e.last_frame, e.id));
        for e in stale {
            self.push_ended(e);
        }
    }

    fn push_ended(&mut self, e: Ended) {
        let cap = ENDED_PER_TRACK * self.config.max_tracks;
        while self.ended.len() >= cap {
            self.ended.pop_front();
            self.ended_dropped += 1;
        }
        self.ended.push_back(e);
    }

    /// Starts a track for a new face, evicting the track seen least recently (before this frame)
    /// at the cap; `None` when every track was seen in this frame.
    fn start(&mut self, frame: u64, b: CentreBox, embedding: Option<&[f32]>) -> Option<TrackId> {
        if self.tracks.len() >= self.config.max_tracks {
            let stalest = self
                .tracks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.motion.last_frame < frame)
                .min_by_key(|(_, t)| (t.motion.last_frame, t.id))
                .map(|(k, _)| k)?;
            let evicted = self.tracks.remove(stalest);
            self.push_ended(evicted.ended(true));
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut appearance = Appearance::default();
        if let Some(e) = embedding {
            appearance.set(e);
        }
        self.tracks.push(Track {
            id,
            first_frame: frame,
            observations: 1,
            motion: Motion::new(b, frame),
            appearance,
        });
        Some(id)
    }

    /// The `boxes x live` cost matrix (row-major; infinite where the pair is not allowed).
    /// `observations` gives the boxes' descriptors (empty: none), `norms` their lengths.
    fn fill_costs(
        &self,
        frame: u64,
        live: &[usize],
        observations: &[Observation<'_>],
        boxes: &[(usize, CentreBox)],
        norms: &[f32],
        costs: &mut Vec<f32>,
    ) {
        costs.clear();
        let horizon = u64::from(self.config.max_gap_frames) + 1;
        for (r, (i, b)) in boxes.iter().enumerate() {
            let embedding = observations
                .get(*i)
                .and_then(|o| o.embedding)
                .filter(|_| norms[r] > 0.0);
            for &t in live {
                let track = &self.tracks[t];
                let predicted = track.motion.predict(frame, horizon);
                costs.push(self.pair_cost(&predicted, b, track, embedding, norms[r]));
            }
        }
    }

    fn pair_cost(
        &self,
        predicted: &CentreBox,
        b: &CentreBox,
        track: &Track,
        embedding: Option<&[f32]>,
        norm: f32,
    ) -> f32 {
        let iou = predicted.iou(b);
        if !(iou > 0.0 && iou >= self.config.min_iou) {
            return f32::INFINITY;
        }
        let mut cost = (1.0 - iou) + predicted.centre_distance(b);
        if let Some(d) = embedding.and_then(|e| track.appearance.distance(e, norm)) {
            if d > self.config.max_appearance_distance {
                return f32::INFINITY;
            }
            cost += APPEARANCE_WEIGHT * d;
        }
        if cost.is_finite() {
            cost
        } else {
            f32::INFINITY
        }
    }
}

#[cfg(test)]
mod tests;
