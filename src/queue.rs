//! A bounded hand-off between capture and inference that never blocks a live producer: when the
//! consumer falls behind, the oldest item is evicted (and handed back so its buffer can be reused)
//! and counted. Storage is a fixed `heapless::Deque`, allocated once; a runtime limit at or below
//! its size sets the configured depth. Replayed sources (a folder, a recording) use
//! [`DropOldest::push_wait`] instead, which waits for room so that no recorded frame is skipped.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use heapless::Deque;

/// Counters of a [`DropOldest`] queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub len: usize,
    pub capacity: usize,
    pub pushed: u64,
    pub popped: u64,
    /// Items evicted unseen because the consumer was behind.
    pub dropped: u64,
}

/// What [`DropOldest::pop_timeout`] returns.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<T> {
    Item(T),
    TimedOut,
    /// The queue was closed and is empty.
    Closed,
}

struct State<T, const N: usize> {
    items: Deque<T, N>,
    pushed: u64,
    popped: u64,
    dropped: u64,
    closed: bool,
    limit: usize,
}

/// A multi-producer, multi-consumer queue of at most `N` items that drops the oldest when full.
pub struct DropOldest<T, const N: usize> {
    state: Mutex<State<T, N>>,
    ready: Condvar,
    space: Condvar,
}

impl<T, const N: usize> Default for DropOldest<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> DropOldest<T, N> {
    pub fn new() -> Self {
        Self::with_limit(N)
    }

    /// A queue that holds at most `limit` items (clamped to `1..=N`).
    pub fn with_limit(limit: usize) -> Self {
        DropOldest {
            state: Mutex::new(State {
                items: Deque::new(),
                pushed: 0,
                popped: 0,
                dropped: 0,
                closed: false,
                limit: limit.clamp(1.min(N), N),
            }),
            ready: Condvar::new(),
            space: Condvar::new(),
        }
    }

    // A panic elsewhere while holding the lock leaves the counters consistent enough to go on.
    fn lock(&self) -> MutexGuard<'_, State<T, N>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `item`. Returns the item that had to make room (the oldest queued one), or `item`
    /// itself if the queue is closed or has no capacity, so that the caller can reuse its buffer.
    pub fn push(&self, item: T) -> Option<T> {
        let mut state = self.lock();
        if state.closed {
            return Some(item);
        }
        let evicted = if state.items.len() >= state.limit {
            let old = state.items.pop_front();
            if old.is_some() {
                state.dropped += 1;
            }
            old
        } else {
            None
        };
        match state.items.push_back(item) {
            Ok(()) => {
                state.pushed += 1;
                drop(state);
                self.ready.notify_one();
                evicted
            }
            // Only possible with N == 0: the item itself is dropped.
            Err(item) => {
                state.dropped += 1;
                Some(item)
            }
        }
    }

    /// Appends `item` once there is room, waiting as long as it takes (for replayed sources, where
    /// every frame must be seen). Returns `Err(item)` if the queue is or gets closed.
    pub fn push_wait(&self, item: T) -> Result<(), T> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(item);
            }
            if state.items.len() < state.limit {
                break;
            }
            state = self.space.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        match state.items.push_back(item) {
            Ok(()) => {
                state.pushed += 1;
                drop(state);
                self.ready.notify_one();
                Ok(())
            }
            Err(item) => Err(item),
        }
    }

    /// Takes the oldest item, waiting at most `timeout`.
    pub fn pop_timeout(&self, timeout: Duration) -> Pop<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                state.popped += 1;
                drop(state);
                self.space.notify_one();
                return Pop::Item(item);
            }
            if state.closed {
                return Pop::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Pop::TimedOut;
            }
            state = match self.ready.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Takes the oldest item if there is one.
    pub fn try_pop(&self) -> Option<T> {
        let mut state = self.lock();
        let item = state.items.pop_front();
        if item.is_some() {
            state.popped += 1;
            drop(state);
            self.space.notify_one();
        }
        item
    }

    /// Refuses further pushes; consumers drain what is left, then see [`Pop::Closed`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.space.notify_all();
    }

    pub fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            len: state.items.len(),
            capacity: state.limit,
            pushed: state.pushed,
            popped: state.popped,
            dropped: state.dropped,
        }
    }
}
