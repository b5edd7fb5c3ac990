//! One frame through the lane: detect → track → align and score quality → embed the faces whose
//! view improved → fuse per track → decide per passage → alert once per passage; closing records
//! of ended passages go to the journal.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::alerting::alert_for_passage;
use super::decide::{Decision, Verdict};
use super::latency::{Latencies, Stage};
use super::watch::WatchlistSlot;
use crate::alerts::Alert;
use crate::alerts::dispatch::{Dispatcher, Outcome};
use crate::camera::Frame;
use crate::passage::episode::Episode;
use crate::passage::{PassageConfig, PassageMatch, PassageStats, Passages};
use crate::vision::detect::DetectWork;
use crate::vision::detect::guided::{GuidanceStats, PassKind};
use crate::vision::faces::{FaceAnalyzer, FaceObservation};
use crate::watchlist::LoadedWatchlist;
use crate::watchlist::format::{DecisionMode, Views};

/// Counters of the inference side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LaneStats {
    pub frames: u64,
    pub faces: u64,
    /// Faces below the match size: counted, not matched.
    pub too_small: u64,
    /// Faces embedded while no watchlist was active.
    pub unmatched_no_watchlist: u64,
    /// Passages that passed the watchlist's rule.
    pub matches: u64,
    pub alerts_raised: u64,
    /// Matches inside a person's cool-down window.
    pub alerts_suppressed: u64,
    /// Alerts the journal could not write at once (kept in memory and retried).
    pub journal_failures: u64,
    /// Journal segments repaired after an interrupted write (each one reported when it happened).
    pub journal_recoveries: u64,
    /// Frames whose analysis failed (reported, skipped).
    pub frame_errors: u64,
    /// Tracks, episodes and embeddings saved (src/passage).
    pub passages: PassageStats,
    /// Frames searched whole and near the followed faces (track-guided detection).
    pub detection: GuidanceStats,
}

/// Settings of the per-frame work.
#[derive(Clone, Debug)]
pub struct LaneSettings {
    /// Camera name written into alerts.
    pub camera: String,
    /// Faces whose shorter box side is below this are counted, not matched.
    pub min_match_face_px: f32,
    pub include_crop: bool,
    /// Tracks, quality, fusion and decisions per passer.
    pub passage: PassageConfig,
}

/// What one frame produced, for the caller's log or display.
pub struct FrameReport<'a> {
    pub frame: &'a Frame,
    pub decisions: &'a [Decision],
    /// The list the faces were compared with (resolve `Candidate::entry` against it).
    pub watchlist: Option<&'a LoadedWatchlist>,
    /// Alerts raised for this frame (after the cool-down).
    pub alerts: &'a [Alert],
    /// Passages whose tracks ended with this frame.
    pub ended: &'a [Episode],
}

/// The inference side of a lane.
pub struct Lane {
    analyzer: FaceAnalyzer,
    passages: Passages,
    watchlist: Arc<WatchlistSlot>,
    dispatcher: Dispatcher,
    settings: LaneSettings,
    latencies: Latencies,
    stats: LaneStats,
    observations: Vec<FaceObservation>,
    decisions: Vec<Decision>,
    alerts: Vec<Alert>,
    ended: Vec<Episode>,
    /// The list the current frame is matched against (held so the report can borrow it).
    list: Option<Arc<LoadedWatchlist>>,
    last_error: Option<String>,
}

impl Lane {
    pub fn new(
        analyzer: FaceAnalyzer,
        watchlist: Arc<WatchlistSlot>,
        dispatcher: Dispatcher,
        settings: LaneSettings,
    ) -> Lane {
        let passages = Passages::new(
            settings.passage.clone(),
            settings.include_crop,
            analyzer.embedder().spec().metric,
        );
        Lane {
            analyzer,
            passages,
            watchlist,
            dispatcher,
            settings,
            latencies: Latencies::new(4096),
            stats: LaneStats::default(),
            observations: Vec::new(),
            decisions: Vec::new(),
            alerts: Vec::new(),
            ended: Vec::new(),
            list: None,
            last_error: None,
        }
    }

    pub fn stats(&self) -> LaneStats {
        LaneStats {
            journal_failures: self.dispatcher.stats().journal_failures,
            passages: self.passages.stats(),
            detection: self.analyzer.guidance_stats(),
            journal_recoveries: self
                .dispatcher
                .journal()
                .map_or(0, |j| j.stats().recoveries),
            ..self.stats
        }
    }

    /// How the last frame was searched and where the detector's time went.
    pub fn last_detect_work(&self) -> DetectWork {
        self.analyzer.last_times().detect_work
    }

    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    pub fn latencies_mut(&mut self) -> &mut Latencies {
        &mut self.latencies
    }

    pub fn watchlist(&self) -> &Arc<WatchlistSlot> {
        &self.watchlist
    }

    pub fn dispatcher_mut(&mut self) -> &mut Dispatcher {
        &mut self.dispatcher
    }

    /// Analyses one frame and raises its alerts. Never fails: a frame that cannot be analysed is
    /// reported (once per distinct error), counted and skipped.
    pub fn process<'a>(&'a mut self, frame: &'a Frame) -> FrameReport<'a> {
        self.stats.frames += 1;
        self.decisions.clear();
        self.alerts.clear();
        self.ended.clear();
        // Taken once: a reload during this frame does not change what the frame is matched against.
        self.list = self.watchlist.current();
        if let Err(e) = self.analyse(frame) {
            self.stats.frame_errors += 1;
            let msg = format!("frame {} skipped: {e:#}", frame.seq);
            if self.last_error.as_deref() != Some(msg.as_str()) {
                eprintln!("lanewatch: {msg}");
                self.last_error = Some(msg);
            }
        }
        let age = SystemTime::now()
            .duration_since(frame.timestamp)
            .unwrap_or_default();
        self.latencies.record(Stage::Frame, age);
        FrameReport {
            frame,
            decisions: &self.decisions,
            watchlist: self.list.as_deref(),
            alerts: &self.alerts,
            ended: &self.ended,
        }
    }

    /// Ends every live passage (end of the run): raises the alerts of their last looks and
    /// journals their closing records. Returns the alerts raised and the records.
    pub fn finish(&mut self) -> (Vec<Alert>, Vec<Episode>) {
        let list = self.watchlist.current();
        self.alerts.clear();
        let outcome = self.passages.finish(list.as_deref());
        self.raise(&outcome.matches, list.as_deref());
        for e in &outcome.ended {
            self.dispatcher.record_episode(e);
        }
        (std::mem::take(&mut self.alerts), outcome.ended)
    }

    fn analyse(&mut self, frame: &Frame) -> anyhow::Result<()> {
        // Live faces are described the way the list's entries were (a plain or a mirrored list),
        // and decided the way its threshold was calibrated (per passer or per face).
        let list = self.list.clone();
        let views = list.as_deref().map_or(Views::Chip, |l| l.body().views);
        let mode = list
            .as_deref()
            .map_or(DecisionMode::Passage, |l| l.body().decision);
        self.analyzer.set_augmentation(views.augmentation());
        let faces = self.analyzer.detect(&frame.rgb)?;
        // Tracks count the lane's own frames: a source's sequence restarts when a camera is
        // reopened, and a track must neither end nor stall on that.
        let tick = self.stats.frames;
        let planned = Instant::now();
        let plan = self.passages.plan(tick, &faces, mode);
        let plan_time = planned.elapsed();
        let passages = &self.passages;
        self.observations = self.analyzer.observe_faces(
            &frame.rgb,
            &faces,
            self.settings.min_match_face_px,
            |face| passages.wants_embedding(&plan, face, tick),
        )?;
        let times = self.analyzer.last_times();
        self.latencies.record(Stage::Detect, times.detect);
        let work = times.detect_work;
        match work.pass {
            PassKind::Near => self.latencies.record(Stage::DetectNear, times.detect),
            PassKind::Full | PassKind::NearThenFull => {
                self.latencies.record(Stage::DetectFull, times.detect)
            }
            PassKind::Unchanged => {}
        }
        self.latencies.record(Stage::Pnet, work.pnet);
        self.latencies.record(Stage::Rnet, work.rnet);
        self.latencies.record(Stage::Onet, work.onet);
        if times.aligned > 0 {
            let n = times.aligned as u32;
            for _ in 0..n {
                self.latencies.record(Stage::Align, times.align / n);
            }
        }
        if times.embedded > 0 {
            let n = times.embedded as u32;
            for _ in 0..n {
                self.latencies.record(Stage::Embed, times.embed / n);
            }
        }
        let started = Instant::now();
        let outcome = self.passages.update(
            tick,
            frame.timestamp,
            &frame.rgb,
            &self.observations,
            list.as_deref(),
            mode,
        )?;
        let passage_time = started.elapsed();
        if !faces.is_empty() {
            self.latencies
                .record(Stage::Track, plan_time + outcome.track_time);
            self.latencies.record(
                Stage::Passage,
                passage_time.saturating_sub(outcome.track_time + outcome.search_time),
            );
        }
        if outcome.search_time > Duration::ZERO {
            self.latencies.record(Stage::Match, outcome.search_time);
        }
        for (face, out) in self.observations.iter().zip(&outcome.faces) {
            self.stats.faces += 1;
            let decision = Decision::of(face, out, list.as_deref(), frame.seq, frame.timestamp);
            match decision.verdict {
                Verdict::TooSmall => self.stats.too_small += 1,
                Verdict::NoWatchlist if face.embedding.is_some() => {
                    self.stats.unmatched_no_watchlist += 1
                }
                _ => {}
            }
            self.decisions.push(decision);
        }
        self.raise(&outcome.matches, list.as_deref());
        for episode in outcome.ended {
            self.dispatcher.record_episode(&episode);
            self.ended.push(episode);
        }
        Ok(())
    }

    /// Turns passages that matched into alerts (held back by the per-identity cool-down).
    fn raise(&mut self, matches: &[PassageMatch], list: Option<&LoadedWatchlist>) {
        for m in matches {
            self.stats.matches += 1;
            let Some(list) = list else {
                continue;
            };
            let now = Instant::now();
            let Some(id) = list
                .body()
                .entries
                .get(m.scores.entry)
                .map(|e| e.id.as_str())
            else {
                continue;
            };
            // No crop for an alert the cool-down will suppress: JPEG encoding is the costliest
            // part of building an alert.
            let crop = self.settings.include_crop && !self.dispatcher.cooling_down(id, now);
            let Some(alert) = alert_for_passage(&self.settings.camera, list, m, crop) else {
                continue;
            };
            match self.dispatcher.raise(&alert, now) {
                Outcome::Raised { .. } => {
                    self.stats.alerts_raised += 1;
                    self.alerts.push(alert);
                }
                Outcome::Suppressed { .. } => self.stats.alerts_suppressed += 1,
            }
        }
    }
}
