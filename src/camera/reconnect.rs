//! Keeps a camera running for months: when the device is unplugged, fails with ENODEV/EIO, or goes
//! silent for several timeouts in a row, the source is closed and reopened with exponential
//! back-off until it returns. Nothing here exits the process, and at most one source is open at a
//! time (the old one is dropped before the factory is called again).
//!
//! Panics from the source (in `next_frame`, in its `Drop`, or in the factory) are contained and
//! treated as an unplug, because the v4l crate panics on some teardown errors. This relies on the
//! default `panic = "unwind"`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::{Frame, FrameSource, SourceError};

/// When to give up on an open source and how fast to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Wait before the first reopen after a failure.
    pub initial_backoff: Duration,
    /// Longest wait between reopen attempts.
    pub max_backoff: Duration,
    /// Consecutive timeouts after which a silent camera is treated as unplugged.
    pub timeouts_before_reopen: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            timeouts_before_reopen: 5,
        }
    }
}

/// Counters since the wrapper was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconnectStats {
    pub frames: u64,
    pub timeouts: u64,
    pub corrupt: u64,
    /// Times the source was closed because it failed (unplug, I/O error, silence, panic).
    pub unplugs: u64,
    /// Successful opens, the first one included.
    pub opens: u64,
    pub open_failures: u64,
    /// Panics contained (source, its drop, or the factory).
    pub panics: u64,
    /// True while a source is open.
    pub connected: bool,
}

/// Something worth a log line.
#[derive(Debug)]
pub enum ReconnectEvent<'a> {
    Opened {
        attempt: u64,
    },
    OpenFailed {
        error: &'a SourceError,
        retry_in: Duration,
    },
    Closed {
        reason: &'a str,
    },
    PanicContained {
        during: &'static str,
    },
}

type EventHook = Box<dyn FnMut(&str, &ReconnectEvent<'_>) + Send>;

/// A [`FrameSource`] over a factory that opens the real source, reopening it after failures.
///
/// Errors it returns: `Timeout` (also while the camera is away), `Corrupt` (one bad frame) and
/// `EndOfStream` (a finite source finished). It never returns `Unplugged` or `Open`: those are
/// handled inside and visible through [`Reconnecting::stats`] and the event hook.
pub struct Reconnecting<S, F> {
    name: String,
    factory: F,
    current: Option<S>,
    policy: ReconnectPolicy,
    backoff: Duration,
    next_attempt: Instant,
    consecutive_timeouts: u32,
    open_attempts: u64,
    seq: u64,
    stats: ReconnectStats,
    on_event: EventHook,
}

impl<S, F> Reconnecting<S, F>
where
    S: FrameSource,
    F: FnMut() -> Result<S, SourceError> + Send,
{
    /// Wraps `factory`; the first open happens on the first [`FrameSource::next_frame`] call.
    /// Events go to stderr until [`Reconnecting::on_event`] replaces the hook.
    pub fn new(name: impl Into<String>, factory: F, policy: ReconnectPolicy) -> Self {
        Reconnecting {
            name: name.into(),
            factory,
            current: None,
            policy,
            backoff: policy.initial_backoff,
            next_attempt: Instant::now(),
            consecutive_timeouts: 0,
            open_attempts: 0,
            seq: 0,
            stats: ReconnectStats::default(),
            on_event: Box::new(|name, event| eprintln!("lanewatch: camera {name}: {event:?}")),
        }
    }

    /// Replaces the event hook (for a logger or a metrics sink).
    pub fn on_event(
        mut self,
        hook: impl FnMut(&str, &ReconnectEvent<'_>) + Send + 'static,
    ) -> Self {
        self.on_event = Box::new(hook);
        self
    }

    pub fn stats(&self) -> ReconnectStats {
        ReconnectStats {
            connected: self.current.is_some(),
            ..self.stats
        }
    }

    fn emit(&mut self, event: ReconnectEvent<'_>) {
        (self.on_event)(&self.name, &event);
    }

    /// Drops the current source, containing a panic from its `Drop`, and schedules the reopen.
    fn close(&mut self, reason: &str) {
        if let Some(source) = self.current.take() {
            self.stats.unplugs += 1;
            if catch_unwind(AssertUnwindSafe(move || drop(source))).is_err() {
                self.stats.panics += 1;
                self.emit(ReconnectEvent::PanicContained { during: "drop" });
            }
            self.emit(ReconnectEvent::Closed { reason });
        }
        self.consecutive_timeouts = 0;
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
    }

    fn try_open(&mut self) {
        self.open_attempts += 1;
        let factory = &mut self.factory;
        let opened = catch_unwind(AssertUnwindSafe(factory));
        match opened {
            Ok(Ok(source)) => {
                self.current = Some(source);
                self.stats.opens += 1;
                let attempt = self.open_attempts;
                self.emit(ReconnectEvent::Opened { attempt });
            }
            Ok(Err(error)) => {
                self.stats.open_failures += 1;
                let retry_in = self.backoff;
                self.emit(ReconnectEvent::OpenFailed {
                    error: &error,
                    retry_in,
                });
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
            }
            Err(_) => {
                self.stats.open_failures += 1;
                self.stats.panics += 1;
                self.emit(ReconnectEvent::PanicContained { during: "open" });
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.policy.max_backoff);
            }
        }
    }

    fn timeout(&self, waited: Duration) -> SourceError {
        SourceError::Timeout {
            origin: self.name.clone(),
            waited,
        }
    }
}

impl<S, F> FrameSource for Reconnecting<S, F>
where
    S: FrameSource,
    F: FnMut() -> Result<S, SourceError> + Send,
{
    fn next_frame(&mut self, frame: &mut Frame, timeout: Duration) -> Result<(), SourceError> {
        let begin = Instant::now();
        let deadline = begin + timeout;
        loop {
            let now = Instant::now();
            if self.current.is_none() {
                if now < self.next_attempt {
                    if self.next_attempt >= deadline {
                        std::thread::sleep(deadline.saturating_duration_since(now));
                        return Err(self.timeout(timeout));
                    }
                    std::thread::sleep(self.next_attempt - now);
                }
                self.try_open();
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(source) = self.current.as_mut() else {
                continue;
            };
            let result = catch_unwind(AssertUnwindSafe(|| source.next_frame(frame, remaining)));
            match result {
                Ok(Ok(())) => {
                    self.consecutive_timeouts = 0;
                    self.backoff = self.policy.initial_backoff;
                    frame.seq = self.seq;
                    self.seq += 1;
                    self.stats.frames += 1;
                    return Ok(());
                }
                Ok(Err(SourceError::Timeout { .. })) => {
                    self.stats.timeouts += 1;
                    self.consecutive_timeouts += 1;
                    if self.consecutive_timeouts >= self.policy.timeouts_before_reopen.max(1) {
                        let n = self.consecutive_timeouts;
                        self.close(&format!("{n} timeouts in a row"));
                    }
                    return Err(self.timeout(timeout));
                }
                Ok(Err(e @ SourceError::Corrupt { .. })) => {
                    self.stats.corrupt += 1;
                    return Err(e);
                }
                Ok(Err(e @ SourceError::EndOfStream { .. })) => return Err(e),
                Ok(Err(e @ (SourceError::Unplugged { .. } | SourceError::Open { .. }))) => {
                    self.close(&e.to_string());
                }
                Err(_) => {
                    self.stats.panics += 1;
                    self.emit(ReconnectEvent::PanicContained {
                        during: "next_frame",
                    });
                    self.close("the source panicked");
                }
            }
            if Instant::now() >= deadline {
                return Err(self.timeout(timeout));
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A boxed source factory: what [`reconnecting`] wraps, nameable for a struct field.
pub type SourceFactory = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, SourceError> + Send>;

/// The usual way to open a camera for the run loop: `spec` opened with `config`, reopened after
/// failures under `policy`. Finite sources (`frames:`, `mjpeg:`) need no wrapper; wrapped, a read
/// error would restart them from the beginning.
pub fn reconnecting(
    spec: super::SourceSpec,
    config: super::CaptureConfig,
    policy: ReconnectPolicy,
) -> Reconnecting<Box<dyn FrameSource>, SourceFactory> {
    let name = spec.to_string();
    let factory: SourceFactory = Box::new(move || spec.open(&config));
    Reconnecting::new(name, factory, policy)
}
