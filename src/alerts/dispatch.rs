//! The one call the run loop makes per match: cool-down, journal first, then every sink.

use std::time::{Duration, Instant};

use super::cooldown::Cooldown;
use super::journal::Journal;
use super::{Alert, AlertSink};
use crate::passage::episode::Episode;

/// What [`Dispatcher::raise`] did with an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent to the sinks. `journaled` is false if the journal failed (the alert waits in memory).
    Raised {
        journaled: bool,
        sink_failures: Vec<String>,
    },
    /// The identity alerted less than the cool-down window ago; nothing was recorded.
    Suppressed { remaining: Duration },
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchStats {
    pub raised: u64,
    pub suppressed: u64,
    pub journal_failures: u64,
    pub sink_failures: u64,
}

type Reporter = Box<dyn FnMut(&str) + Send>;

/// Owns the journal, the cool-down and the sinks.
pub struct Dispatcher {
    journal: Option<Journal>,
    cooldown: Cooldown,
    sinks: Vec<Box<dyn AlertSink>>,
    stats: DispatchStats,
    report: Reporter,
}

impl Dispatcher {
    /// `journal` is optional only for tools and tests; the box always has one.
    pub fn new(journal: Option<Journal>, cooldown: Cooldown) -> Self {
        Dispatcher {
            journal,
            cooldown,
            sinks: Vec::new(),
            stats: DispatchStats::default(),
            report: Box::new(|msg| eprintln!("lanewatch: {msg}")),
        }
    }

    pub fn with_sink(mut self, sink: Box<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Replaces where problems are reported (stderr by default).
    pub fn on_report(mut self, report: impl FnMut(&str) + Send + 'static) -> Self {
        self.report = Box::new(report);
        self
    }

    pub fn stats(&self) -> DispatchStats {
        self.stats
    }

    /// Whether an alert for `identity` raised at `now` would be suppressed by the cool-down (so
    /// the caller can skip preparing its crop).
    pub fn cooling_down(&self, identity: &str, now: Instant) -> bool {
        !self.cooldown.remaining(identity, now).is_zero()
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Raises `alert` unless its identity is cooling down: journal (fsync'd) first, then every
    /// sink in order. A journal or sink failure is reported and counted, never returned as an
    /// error: the other destinations still get the alert.
    pub fn raise(&mut self, alert: &Alert, now: Instant) -> Outcome {
        if !self.cooldown.admit(&alert.identity.id, now) {
            self.stats.suppressed += 1;
            return Outcome::Suppressed {
                remaining: self.cooldown.remaining(&alert.identity.id, now),
            };
        }
        self.stats.raised += 1;
        let journaled = match self.journal.as_mut().map(|j| j.append(alert)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                self.stats.journal_failures += 1;
                (self.report)(&e.to_string());
                false
            }
            None => false,
        };
        self.report_recoveries();
        let mut sink_failures = Vec::new();
        for sink in &mut self.sinks {
            if let Err(e) = sink.deliver(alert, journaled) {
                self.stats.sink_failures += 1;
                let msg = format!("alert {} not delivered to {}: {e}", alert.id, sink.name());
                (self.report)(&msg);
                sink_failures.push(msg);
            }
        }
        Outcome::Raised {
            journaled,
            sink_failures,
        }
    }

    /// Writes a passage's closing record to the journal (not to the alert sinks). A failure is
    /// reported and counted; the record is kept and retried like an alert.
    pub fn record_episode(&mut self, episode: &Episode) {
        if let Some(Err(e)) = self.journal.as_mut().map(|j| j.append_record(episode)) {
            self.stats.journal_failures += 1;
            (self.report)(&e.to_string());
        }
    }

    /// Retries alerts the journal could not write; call it now and then (e.g. once a second) so
    /// they land once the disk has room even if no new alert comes. Returns how many were written.
    pub fn retry_journal(&mut self) -> usize {
        let Some(journal) = self.journal.as_mut() else {
            return 0;
        };
        if journal.pending() == 0 {
            return 0;
        }
        let written = match journal.retry_pending() {
            Ok(n) => n,
            Err(e) => {
                (self.report)(&e.to_string());
                0
            }
        };
        self.report_recoveries();
        written
    }

    /// Reports the journal's repairs of a segment on reopen after a failed write (counted in its
    /// [`crate::alerts::journal::JournalStats::recoveries`]).
    fn report_recoveries(&mut self) {
        if let Some(journal) = self.journal.as_mut() {
            for r in journal.take_recoveries() {
                (self.report)(&r.to_string());
            }
        }
    }
}
