//! The capture thread: takes frames off the source into the bounded queue, reusing frame buffers.
//!
//! A live camera never waits for inference: when the queue is full the oldest frame is dropped
//! (and counted), so alerts are about what is in front of the camera now. A replayed source (a
//! folder, a recording) waits for room instead, so that every recorded frame is analysed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::camera::{Frame, FrameSource, SourceError};
use crate::queue::DropOldest;

/// Largest configurable queue depth (`source.queue_capacity`).
pub const MAX_QUEUE: usize = 64;

/// How the capture thread treats a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Drop the oldest queued frame (cameras).
    Live,
    /// Wait for room (folders and recordings: nothing is skipped).
    Replay,
}

/// Counters of the capture thread.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    pub frames: AtomicU64,
    pub timeouts: AtomicU64,
    pub corrupt: AtomicU64,
    /// Errors that ended an unwrapped source (a camera is always wrapped and never ends).
    pub failures: AtomicU64,
    pub panics: AtomicU64,
}

/// A snapshot of [`CaptureCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureStats {
    pub frames: u64,
    pub timeouts: u64,
    pub corrupt: u64,
    pub failures: u64,
    pub panics: u64,
}

impl CaptureCounters {
    pub fn snapshot(&self) -> CaptureStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CaptureStats {
            frames: get(&self.frames),
            timeouts: get(&self.timeouts),
            corrupt: get(&self.corrupt),
            failures: get(&self.failures),
            panics: get(&self.panics),
        }
    }
}

/// Why the capture thread stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEnd {
    /// Asked to stop (the run loop finished).
    Stopped,
    /// A finite source delivered everything.
    EndOfStream,
    /// A source without reconnection failed; the message names it.
    Failed(String),
}

/// A frame taken off the source, with how long taking it took.
pub struct Captured {
    pub frame: Frame,
    pub decode: Duration,
}

/// Everything the capture thread needs.
pub struct Capture {
    pub source: Box<dyn FrameSource>,
    pub pacing: Pacing,
    pub frame_timeout: Duration,
    pub queue: Arc<DropOldest<Captured, MAX_QUEUE>>,
    /// Used frames handed back by the inference thread, so buffers are reused.
    pub recycled: Receiver<Frame>,
    pub counters: Arc<CaptureCounters>,
    pub stop: Arc<AtomicBool>,
    pub report: Box<dyn FnMut(&str) + Send>,
}

/// Where the inference thread returns frames for reuse.
pub type Recycler = SyncSender<Frame>;

/// Hands a used frame back to the capture thread; dropped if the pool is full.
pub fn recycle(recycler: &Recycler, frame: Frame) {
    // Full: enough spares already. Disconnected: capture has ended. Either way the frame is freed.
    let _ = recycler.try_send(frame);
}

impl Capture {
    pub fn spawn(self) -> std::io::Result<JoinHandle<CaptureEnd>> {
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || self.run())
    }

    fn say(&mut self, msg: &str) {
        (self.report)(msg);
    }

    fn run(mut self) -> CaptureEnd {
        let end = self.capture_loop();
        self.queue.close();
        end
    }

    fn capture_loop(&mut self) -> CaptureEnd {
        let mut spare: Option<Frame> = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return CaptureEnd::Stopped;
            }
            let mut frame = spare
                .take()
                .or_else(|| self.recycled.try_recv().ok())
                .unwrap_or_else(Frame::empty);
            let started = Instant::now();
            let timeout = self.frame_timeout;
            let source = &mut self.source;
            let result = catch_unwind(AssertUnwindSafe(|| source.next_frame(&mut frame, timeout)));
            let decode = started.elapsed();
            match result {
                Ok(Ok(())) => {
                    self.counters.frames.fetch_add(1, Ordering::Relaxed);
                    let item = Captured { frame, decode };
                    match self.pacing {
                        Pacing::Live => {
                            if let Some(old) = self.queue.push(item) {
                                spare = Some(old.frame);
                            }
                        }
                        Pacing::Replay => {
                            if self.queue.push_wait(item).is_err() {
                                return CaptureEnd::Stopped;
                            }
                        }
                    }
                }
                Ok(Err(e)) => {
                    spare = Some(frame);
                    match e {
                        SourceError::Timeout { .. } => {
                            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        SourceError::Corrupt { .. } => {
                            let n = self.counters.corrupt.fetch_add(1, Ordering::Relaxed) + 1;
                            // One line for the first few, then every hundredth: a flaky cable must
                            // not fill the log.
                            if n <= 5 || n.is_multiple_of(100) {
                                self.say(&format!("{e} ({n} so far)"));
                            }
                        }
                        SourceError::EndOfStream { .. } => return CaptureEnd::EndOfStream,
                        SourceError::Unplugged { .. } | SourceError::Open { .. } => {
                            self.counters.failures.fetch_add(1, Ordering::Relaxed);
                            return CaptureEnd::Failed(e.to_string());
                        }
                    }
                }
                Err(_) => {
                    // The source panicked (a decoder or driver bug): skip the frame, keep going.
                    self.counters.panics.fetch_add(1, Ordering::Relaxed);
                    let msg = format!(
                        "{}: the frame source panicked; frame skipped",
                        self.source.name()
                    );
                    self.say(&msg);
                }
            }
        }
    }
}
