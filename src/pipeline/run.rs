//! The run loop: a capture thread fills the bounded queue, this thread analyses frames and raises
//! alerts, a background thread keeps the watchlist current. Nothing here exits on a bad frame, a
//! lost camera or a bad watchlist file; it stops at the end of a finite source or after
//! `max_frames`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use super::capture::{Capture, CaptureEnd, CaptureStats, Captured, MAX_QUEUE, Pacing, recycle};
use super::lane::{FrameReport, Lane, LaneStats};
use super::latency::{Stage, Summary};
use super::memory::{Resident, resident};
use super::watch::{WatchStats, Watcher};
use crate::alerts::Alert;
use crate::camera::FrameSource;
use crate::passage::episode::Episode;
use crate::queue::{DropOldest, Pop, QueueStats};

/// A lane ready to run: the source, its pacing, the inference side, and the watchlist watcher.
pub struct LaneRig {
    pub source: Box<dyn FrameSource>,
    pub pacing: Pacing,
    pub frame_timeout: Duration,
    pub queue_capacity: usize,
    pub lane: Lane,
    /// Keeps the watchlist slot current; `None` when the slot was filled by the caller.
    pub watcher: Option<Watcher>,
    pub reload_every: Duration,
    /// Camera reopenings after an unplug or a silence (counted by the reconnect wrapper's hook).
    pub reconnects: Arc<AtomicU64>,
}

/// When to stop and what to print while running.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Stop after this many frames have been analysed.
    pub max_frames: Option<u64>,
    /// Print a status line to stderr this often.
    pub status_every: Option<Duration>,
}

/// Everything counted during a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    pub lane: LaneStats,
    pub capture: CaptureStats,
    pub dropped_frames: u64,
    pub reconnects: u64,
    pub watchlist: WatchStats,
    pub seconds: f64,
    pub frames_per_second: f64,
    /// How the capture side ended (`stopped`, `end of stream`, or the failure).
    pub ended: String,
    pub latency_ms: Vec<(String, Summary)>,
    pub resident: Option<Resident>,
    /// Passages still open when the run stopped, closed then (earlier ones reached `on_frame`),
    /// and the alerts their last looks raised.
    pub closed_at_stop: Vec<Episode>,
    pub alerts_at_stop: Vec<Alert>,
}

impl RunSummary {
    /// One human line (the status line and the end-of-run line).
    pub fn line(&self) -> String {
        let l = &self.lane;
        let mb = |r: &Option<Resident>| {
            r.map_or("?".into(), |r| {
                format!("{:.1}", r.current_bytes as f64 / 1048576.0)
            })
        };
        format!(
            "frames {} ({:.1}/s), faces {} ({} too small), tracks {} live / {} passages, matches {}, alerts {} ({} in cool-down), dropped {}, timeouts {}, corrupt {}, reconnects {}, journal repairs {}, watchlist seq {}{}, rss {} MB",
            l.frames,
            self.frames_per_second,
            l.faces,
            l.too_small,
            l.passages.live_tracks,
            l.passages.tracks_started,
            l.matches,
            l.alerts_raised,
            l.alerts_suppressed,
            self.dropped_frames,
            self.capture.timeouts,
            self.capture.corrupt,
            self.reconnects,
            l.journal_recoveries,
            self.watchlist.sequence,
            if self.watchlist.expired {
                " (expired)"
            } else {
                ""
            },
            mb(&self.resident)
        )
    }
}

fn summarise(
    lane: &Lane,
    capture: &CaptureStats,
    queue: QueueStats,
    reconnects: u64,
    started: Instant,
    ended: &str,
) -> RunSummary {
    let seconds = started.elapsed().as_secs_f64();
    let stats = lane.stats();
    RunSummary {
        lane: stats,
        capture: *capture,
        dropped_frames: queue.dropped,
        reconnects,
        watchlist: lane.watchlist().stats(),
        seconds,
        frames_per_second: if seconds > 0.0 {
            stats.frames as f64 / seconds
        } else {
            0.0
        },
        ended: ended.to_string(),
        latency_ms: Stage::ALL
            .iter()
            .map(|s| (s.name().to_string(), lane.latencies().summary(*s)))
            .collect(),
        resident: resident(),
        closed_at_stop: Vec::new(),
        alerts_at_stop: Vec::new(),
    }
}

/// Runs the lane until the source ends or `max_frames` frames are analysed. `on_frame` sees every
/// analysed frame (the demo prints decisions; tests inspect them).
pub fn run(
    rig: LaneRig,
    options: RunOptions,
    mut on_frame: impl FnMut(&FrameReport<'_>),
) -> anyhow::Result<RunSummary> {
    let LaneRig {
        source,
        pacing,
        frame_timeout,
        queue_capacity,
        mut lane,
        watcher,
        reload_every,
        reconnects,
    } = rig;
    let started = Instant::now();
    let slot = lane.watchlist().clone();
    let _watcher_thread = match watcher {
        Some(mut w) => {
            // Load before the first frame, so that it is already matched.
            w.check(&slot);
            Some(w.spawn(slot.clone(), reload_every)?)
        }
        None => None,
    };

    let queue: Arc<DropOldest<Captured, MAX_QUEUE>> =
        Arc::new(DropOldest::with_limit(queue_capacity));
    // Frames in the queue, one being analysed, one being filled: the rest wait here for reuse.
    let (recycler, recycled) = sync_channel(MAX_QUEUE + 2);
    let counters = Arc::new(super::capture::CaptureCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let capture = Capture {
        source,
        pacing,
        frame_timeout,
        queue: queue.clone(),
        recycled,
        counters: counters.clone(),
        stop: stop.clone(),
        report: Box::new(|msg: &str| eprintln!("lanewatch: {msg}")),
    }
    .spawn()?;

    let mut last_status = Instant::now();
    let mut last_retry = Instant::now();
    let mut analysed = 0u64;
    loop {
        if options.max_frames.is_some_and(|max| analysed >= max) {
            break;
        }
        match queue.pop_timeout(Duration::from_millis(200)) {
            Pop::Item(Captured { frame, decode }) => {
                lane.latencies_mut().record(Stage::Decode, decode);
                let report = lane.process(&frame);
                on_frame(&report);
                analysed += 1;
                recycle(&recycler, frame);
            }
            Pop::TimedOut => {}
            Pop::Closed => break,
        }
        // Alerts the disk refused are retried even when no new alert comes.
        if last_retry.elapsed() >= Duration::from_secs(1) {
            lane.dispatcher_mut().retry_journal();
            last_retry = Instant::now();
        }
        if let Some(every) = options.status_every
            && last_status.elapsed() >= every
        {
            let s = summarise(
                &lane,
                &counters.snapshot(),
                queue.stats(),
                reconnects.load(Ordering::Relaxed),
                started,
                "running",
            );
            eprintln!("lanewatch: {}", s.line());
            last_status = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    queue.close();
    // Drain what the capture thread may still push before it sees the stop flag.
    while queue.try_pop().is_some() {}
    let ended = match capture.join() {
        Ok(CaptureEnd::Stopped) => "stopped".to_string(),
        Ok(CaptureEnd::EndOfStream) => "end of stream".to_string(),
        Ok(CaptureEnd::Failed(why)) => format!("source failed: {why}"),
        Err(_) => "capture thread panicked".to_string(),
    };
    let (alerts_at_stop, closed_at_stop) = lane.finish();
    lane.dispatcher_mut().retry_journal();
    Ok(RunSummary {
        closed_at_stop,
        alerts_at_stop,
        ..summarise(
            &lane,
            &counters.snapshot(),
            queue.stats(),
            reconnects.load(Ordering::Relaxed),
            started,
            &ended,
        )
    })
}
