//! The run loop's view of the watchlist: a slot the inference thread reads once per frame, kept up
//! to date by a background thread that loads, verifies and swaps in a newly installed file.
//!
//! A box may start before any list is installed (faces are counted, not matched) and picks one up as
//! soon as it appears. A file that fails any check is reported once and ignored; the running list
//! stays. A list that expires while running stops being used: the issuer said it is no longer valid.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::watchlist::active::{ActiveWatchlist, Reload};
use crate::watchlist::format::Views;
use crate::watchlist::store::StoreError;
use crate::watchlist::verify::unix_now;
use crate::watchlist::{LoadedWatchlist, Store, Verifier};

/// Counters of the watchlist slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WatchStats {
    /// Lists made active (the first load included).
    pub loads: u64,
    /// Checks that found a changed or new file that failed verification.
    pub rejections: u64,
    /// Sequence of the list in use, 0 when none.
    pub sequence: u64,
    /// True when the list in use expired and matching is paused until a new one is installed.
    pub expired: bool,
}

/// What the inference thread reads: the list to match the next frame against.
#[derive(Default)]
pub struct WatchlistSlot {
    current: ArcSwapOption<LoadedWatchlist>,
    stats: std::sync::Mutex<WatchStats>,
}

impl WatchlistSlot {
    /// A slot holding `list` from the start (tests, `lanewatch bench`).
    pub fn with(list: LoadedWatchlist) -> WatchlistSlot {
        let slot = WatchlistSlot::default();
        slot.set(Some(Arc::new(list)));
        slot
    }

    /// The list for the next frame. Frames in flight keep the `Arc` they took.
    pub fn current(&self) -> Option<Arc<LoadedWatchlist>> {
        self.current.load_full()
    }

    pub fn stats(&self) -> WatchStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, list: Option<Arc<LoadedWatchlist>>) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.sequence = list.as_ref().map_or(0, |l| l.sequence());
        if list.is_some() {
            stats.loads += 1;
            stats.expired = false;
        }
        self.current.store(list);
    }

    fn update(&self, f: impl FnOnce(&mut WatchStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Watches the state directory and keeps a [`WatchlistSlot`] current.
pub struct Watcher {
    store: Store,
    verifier: Verifier,
    active: Option<ActiveWatchlist>,
    /// The last problem reported, so that a bad file is logged once, not on every check.
    last_problem: Option<String>,
    report: Box<dyn FnMut(&str) + Send>,
}

impl Watcher {
    pub fn new(store: Store, verifier: Verifier) -> Watcher {
        Watcher {
            store,
            verifier,
            active: None,
            last_problem: None,
            report: Box::new(|msg| eprintln!("lanewatch: {msg}")),
        }
    }

    /// Replaces where messages go (stderr by default).
    pub fn on_report(mut self, report: impl FnMut(&str) + Send + 'static) -> Self {
        self.report = Box::new(report);
        self
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    fn problem(&mut self, msg: String) {
        if self.last_problem.as_deref() != Some(msg.as_str()) {
            (self.report)(&msg);
            self.last_problem = Some(msg);
        }
    }

    /// One look at the state directory: load the first list, swap in a changed one, or report why not.
    pub fn check(&mut self, slot: &WatchlistSlot) {
        self.check_at(slot, unix_now());
    }

    /// [`Watcher::check`] with the clock given (unix seconds).
    pub fn check_at(&mut self, slot: &WatchlistSlot, now: u64) {
        match &self.active {
            None => match ActiveWatchlist::load_at(self.store.clone(), self.verifier.clone(), now) {
                Ok(active) => {
                    let list = active.current();
                    let msg = format!(
                        "watchlist {} active: sequence {}, {} people{}",
                        list.path.display(),
                        list.sequence(),
                        list.body().entries.len(),
                        views_note(list.body().views)
                    );
                    (self.report)(&msg);
                    self.last_problem = None;
                    slot.set(Some(list));
                    self.active = Some(active);
                }
                Err(StoreError::NoActive { dir }) => self.problem(format!(
                    "no watchlist installed in {}: faces are counted, not matched, until one is installed",
                    dir.display()
                )),
                Err(e) => {
                    slot.update(|s| s.rejections += 1);
                    self.problem(format!(
                        "watchlist not loaded: {e}; faces are counted, not matched, until a valid one is installed"
                    ));
                }
            },
            Some(active) => match active.reload_if_changed_at(now) {
                Ok(Reload::Swapped { from, to }) => {
                    let list = active.current();
                    let msg = format!(
                        "watchlist reloaded: sequence {from} -> {to}, {} people{}",
                        list.body().entries.len(),
                        views_note(list.body().views)
                    );
                    (self.report)(&msg);
                    self.last_problem = None;
                    slot.set(Some(list));
                }
                Ok(Reload::Unchanged) => {}
                Err(e) => {
                    let msg = format!(
                        "new watchlist file ignored, still matching against sequence {}: {e}",
                        active.current().sequence()
                    );
                    if self.last_problem.as_deref() != Some(msg.as_str()) {
                        slot.update(|s| s.rejections += 1);
                    }
                    self.problem(msg);
                }
            },
        }
        self.check_expiry(slot, now);
    }

    fn check_expiry(&mut self, slot: &WatchlistSlot, now: u64) {
        let Some(list) = slot.current() else {
            return;
        };
        if now > list.body().expires_at {
            slot.current.store(None);
            slot.update(|s| {
                s.expired = true;
                s.sequence = 0;
            });
            self.problem(format!(
                "watchlist sequence {} expired (expires_at {}): matching paused until a newer list is installed",
                list.sequence(),
                list.body().expires_at
            ));
        }
    }

    /// Checks every `every` on a background thread until the returned handle is dropped.
    pub fn spawn(
        mut self,
        slot: Arc<WatchlistSlot>,
        every: Duration,
    ) -> std::io::Result<WatcherThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("watchlist-reload".into())
            .spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    self.check(&slot);
                    std::thread::park_timeout(every);
                }
            })?;
        Ok(WatcherThread {
            stop,
            handle: Some(handle),
        })
    }
}

/// The background reload thread; stops and joins when dropped.
pub struct WatcherThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for WatcherThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// What an operator should know about how a list's faces are described (nothing for the default).
fn views_note(views: Views) -> String {
    match views {
        Views::Chip => String::new(),
        Views::ChipAndMirror => format!(", {}", views.meaning()),
    }
}
