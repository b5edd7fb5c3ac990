//! Hot reload for the run loop: the active watchlist behind an `ArcSwap`, replaced only by a file
//! that passes every check. Frames in flight keep the `Arc` they started with.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::error::{Rejection, WatchlistError};
use super::store::{LoadedWatchlist, Store, StoreError, read_capped};
use super::verify::{Verifier, unix_now};

/// What identifies a version of the active file on disk without reading it. An install renames a
/// new file into place, which changes the inode even when size and mtime happen to match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Swapped { from: u64, to: u64 },
}

pub struct ActiveWatchlist {
    store: Store,
    verifier: Verifier,
    current: ArcSwap<LoadedWatchlist>,
    seen: Mutex<Option<Stamp>>,
}

impl ActiveWatchlist {
    /// Loads the store's active file; fails if there is none or it does not verify.
    pub fn load(store: Store, verifier: Verifier) -> Result<ActiveWatchlist, StoreError> {
        Self::load_at(store, verifier, unix_now())
    }

    /// [`ActiveWatchlist::load`] with the clock given (unix seconds).
    pub fn load_at(
        store: Store,
        verifier: Verifier,
        now: u64,
    ) -> Result<ActiveWatchlist, StoreError> {
        let seen = stamp(&store.active_path());
        let loaded = store.load_active(&verifier, now)?;
        Ok(ActiveWatchlist {
            store,
            verifier,
            current: ArcSwap::from_pointee(loaded),
            seen: Mutex::new(seen),
        })
    }

    /// The watchlist to match the next frame against.
    pub fn current(&self) -> Arc<LoadedWatchlist> {
        self.current.load_full()
    }

    /// Loads and verifies a changed active file in the caller's thread, then swaps it in. A file
    /// that fails any check (including a sequence below the one running) is reported and the
    /// running list stays; it is checked and reported again on each call until replaced. After
    /// `watchlist rollback`, restart the service to load the older list.
    pub fn reload_if_changed_at(&self, now: u64) -> Result<Reload, StoreError> {
        let path = self.store.active_path();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now_stamp = stamp(&path);
        if now_stamp == *seen {
            return Ok(Reload::Unchanged);
        }
        let origin = path.display().to_string();
        let bytes = read_capped(&path)?.ok_or_else(|| StoreError::NoActive {
            dir: self.store.dir().to_path_buf(),
        })?;
        let running = self.current.load();
        let verified = self
            .verifier
            .verify_at(&bytes, now)
            .map_err(|kind| WatchlistError::new(origin.clone(), kind))?;
        if verified.file_sha256 == running.verified.file_sha256 {
            *seen = now_stamp;
            return Ok(Reload::Unchanged);
        }
        let (from, to) = (running.sequence(), verified.body.sequence);
        if to <= from {
            return Err(WatchlistError::new(
                origin,
                Rejection::Rollback {
                    sequence: to,
                    installed: from,
                },
            )
            .into());
        }
        let loaded = LoadedWatchlist::from_verified(path, verified)?;
        self.current.store(Arc::new(loaded));
        *seen = now_stamp;
        Ok(Reload::Swapped { from, to })
    }
}
