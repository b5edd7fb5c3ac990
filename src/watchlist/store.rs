//! The box's watchlist state directory: atomic install, operator rollback, loading.
//!
//! ```text
//! STATE/watchlist.lwl           the active file (always complete and verified when written)
//! STATE/watchlist.previous.lwl  the one it replaced, for `lanewatch watchlist rollback`
//! STATE/sync.etag               ETag of the active file as served, for If-None-Match
//! STATE/sync.hold               set by a rollback: sync installs nothing at or below this sequence
//! STATE/watchlist.lock          held (flock) by the one process changing the directory
//! STATE/*.<pid>-<random>.tmp    files being written; never read, removed by the next writer
//! ```
//! Every file is replaced by write-temp, fsync, rename, fsync(dir): after a crash at any point the
//! directory holds either the old or the new complete file, never a mix. Writers (install, sync,
//! rollback) hold an exclusive lock on `watchlist.lock` from their first read to their last write,
//! so two of them never interleave; each temp file has a name of its own, and leftovers are only
//! removed by a writer holding the lock (a live writer's temp file is never touched).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Rejection, WatchlistError};
use super::format::{Body, MAX_FILE_LEN, decode_unverified};
use super::verify::{Verified, Verifier};
use crate::matcher::Index;

pub const ACTIVE: &str = "watchlist.lwl";
pub const PREVIOUS: &str = "watchlist.previous.lwl";
pub const ETAG: &str = "sync.etag";
pub const HOLD: &str = "sync.hold";
pub const LOCK: &str = "watchlist.lock";
const TEMP_SUFFIX: &str = ".tmp";
/// Largest small state file (ETag, hold) read.
const MAX_SMALL_FILE: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Rejected(#[from] WatchlistError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no watchlist is installed in {dir}; install one with `lanewatch watchlist install FILE --pubkey PUB --dir {dir}`"
    )]
    NoActive { dir: PathBuf },
    #[error("there is no previous watchlist in {dir} to roll back to")]
    NoPrevious { dir: PathBuf },
    #[error(
        "rolling back lowers the sequence from {from} to {to}; pass --allow-lower-sequence if that is intended"
    )]
    LowerNotAllowed { from: u64, to: u64 },
    #[error(
        "the installed watchlist {path} cannot be read ({kind}); it was changed outside lanewatch. Move it away and install a fresh one"
    )]
    ActiveUnreadable { path: PathBuf, kind: Rejection },
    #[error(
        "the previous watchlist in {dir} has the same sequence {sequence} as the active one; there is nothing to roll back to"
    )]
    SameSequence { dir: PathBuf, sequence: u64 },
    #[error("install interrupted before {0:?} (failpoint)")]
    Interrupted(InstallStep),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// The steps of an install, in order. A failpoint hook sees each one before it runs.
///
/// The new list is written and synced first; the copy of the active list meant for `previous`
/// is written to a temp file next; the new list is renamed into place (the commit) and the
/// directory synced; only then does the copy replace `previous`. An install interrupted anywhere
/// leaves `previous` as it was unless the new list is already active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallStep {
    CreateTemp,
    /// Half of the file is in the temp file; the rest is about to be written.
    WriteRest,
    SyncTemp,
    CopyPrevious,
    RenameActive,
    SyncDir,
    RenamePrevious,
}

impl InstallStep {
    /// In the order an install over an existing file runs them.
    pub const ALL: [InstallStep; 7] = [
        InstallStep::CreateTemp,
        InstallStep::WriteRest,
        InstallStep::SyncTemp,
        InstallStep::CopyPrevious,
        InstallStep::RenameActive,
        InstallStep::SyncDir,
        InstallStep::RenamePrevious,
    ];
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The same bytes were already active; nothing was written.
    Unchanged {
        sequence: u64,
    },
    Replaced {
        from: Option<u64>,
        to: u64,
    },
    /// A rollback holds sequences up to `hold` back (sync only); nothing was written.
    Held {
        sequence: u64,
        hold: u64,
    },
}

/// Reads a regular file of at most `MAX_FILE_LEN` bytes; `Ok(None)` if it does not exist. A FIFO,
/// a device or a directory is refused without reading from it.
pub fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, WatchlistError> {
    let origin = || path.display().to_string();
    match crate::fsio::read_regular(path, MAX_FILE_LEN) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let size = std::fs::metadata(path).map_or(MAX_FILE_LEN + 1, |m| m.len());
            Err(WatchlistError::new(
                origin(),
                Rejection::TooLarge {
                    size,
                    max: MAX_FILE_LEN,
                },
            ))
        }
        Err(e) => Err(WatchlistError::new(origin(), Rejection::Io(e))),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", dir))?;
    }
    Ok(())
}

/// Writes `bytes` to a new temp file beside `path` and syncs it, calling `hook` before each step;
/// returns the temp file's path. The caller renames it into place.
fn write_temp(
    path: &Path,
    bytes: &[u8],
    hook: &mut dyn FnMut(InstallStep) -> Result<(), StoreError>,
) -> Result<PathBuf, StoreError> {
    let temp = temp_for(path);
    hook(InstallStep::CreateTemp)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(io_err("create", &temp))?;
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half])
        .map_err(io_err("write", &temp))?;
    hook(InstallStep::WriteRest)?;
    file.write_all(&bytes[half..])
        .map_err(io_err("write", &temp))?;
    hook(InstallStep::SyncTemp)?;
    file.sync_all().map_err(io_err("fsync", &temp))?;
    Ok(temp)
}

/// Writes `bytes` to `path` atomically (temp + fsync + rename + fsync dir).
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temp = write_temp(path, bytes, &mut |_| Ok(()))?;
    std::fs::rename(&temp, path).map_err(io_err("rename into place", path))?;
    sync_dir(dir)
}

/// `NAME.<pid>-<random hex>.tmp` beside `path`: every writer has its own.
fn temp_for(path: &Path) -> PathBuf {
    let mut rnd = [0u8; 6];
    if getrandom::getrandom(&mut rnd).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        rnd[..4].copy_from_slice(&nanos.to_le_bytes());
    }
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(
        ".{}-{}{TEMP_SUFFIX}",
        std::process::id(),
        hex::encode(rnd)
    ));
    PathBuf::from(name)
}

/// The exclusive writer lock of a state directory, released when dropped (or when the process
/// dies: the kernel drops an flock with its last file descriptor).
pub struct WriteLock {
    _file: std::fs::File,
}

/// A verified watchlist ready for matching.
pub struct LoadedWatchlist {
    pub path: PathBuf,
    pub verified: Verified,
    pub index: Index,
}

impl LoadedWatchlist {
    pub fn from_verified(
        path: PathBuf,
        verified: Verified,
    ) -> Result<LoadedWatchlist, WatchlistError> {
        let body = &verified.body;
        let mut index = Index::new(body.dim as usize, body.metric);
        for e in &body.entries {
            // Already validated; an error here would be a disagreement between the two checks.
            index
                .push_identity(e.embeddings.iter().map(Vec::as_slice))
                .map_err(|m| {
                    WatchlistError::new(
                        path.display().to_string(),
                        Rejection::Malformed(format!("entry {:?}: {m}", e.id)),
                    )
                })?;
        }
        Ok(LoadedWatchlist {
            path,
            verified,
            index,
        })
    }

    pub fn body(&self) -> &Body {
        &self.verified.body
    }

    pub fn sequence(&self) -> u64 {
        self.verified.body.sequence
    }
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    /// File name of the active watchlist inside `dir` ([`ACTIVE`] for a state directory).
    active: std::ffi::OsString,
    /// Installs refuse sequences held back by a rollback ([`HOLD`]).
    respect_hold: bool,
}

impl Store {
    /// Opens (creating if needed) a state directory. Temp files a crash left behind are removed
    /// if no other writer holds the directory's lock right now (otherwise the next writer does it).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err("create state directory", dir))?;
        let store = Store {
            dir: dir.to_path_buf(),
            active: ACTIVE.into(),
            respect_hold: false,
        };
        if let Ok(file) = store.lock_file()
            && file.try_lock().is_ok()
        {
            store.remove_leftovers()?;
        }
        Ok(store)
    }

    /// Makes installs refuse lists held back by a rollback (what `lanewatch sync` does); an
    /// operator's `watchlist install` is not held and clears the hold.
    pub fn respecting_hold(mut self) -> Store {
        self.respect_hold = true;
        self
    }

    fn lock_file(&self) -> Result<std::fs::File, StoreError> {
        let path = self.dir.join(LOCK);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open lock file", &path))
    }

    /// Waits for, then holds, the directory's writer lock, and removes temp files that a dead
    /// writer left (no live writer can own one while we hold the lock).
    pub fn lock(&self) -> Result<WriteLock, StoreError> {
        let file = self.lock_file()?;
        let path = self.dir.join(LOCK);
        file.lock().map_err(io_err("lock", &path))?;
        self.remove_leftovers()?;
        Ok(WriteLock { _file: file })
    }

    fn remove_leftovers(&self) -> Result<(), StoreError> {
        let entries = std::fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = [ACTIVE, PREVIOUS, ETAG, HOLD]
                .iter()
                .any(|base| name.starts_with(base));
            if ours && name.ends_with(TEMP_SUFFIX) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove leftover", &path)(e)),
                }
            }
        }
        Ok(())
    }

    /// A store whose active watchlist is one given file (`lanewatch run --watchlist FILE`): read and
    /// watched for replacement, never written. Installs and rollbacks belong to a state directory.
    pub fn for_file(path: &Path) -> Result<Store, StoreError> {
        let name = path.file_name().ok_or_else(|| StoreError::Io {
            op: "open watchlist file",
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Store {
            dir,
            active: name.to_os_string(),
            respect_hold: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn active_path(&self) -> PathBuf {
        self.dir.join(&self.active)
    }

    pub fn previous_path(&self) -> PathBuf {
        self.dir.join(PREVIOUS)
    }

    pub fn active_bytes(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(read_capped(&self.active_path())?)
    }

    /// The active file's sequence. Its signature is not re-checked: it was verified when
    /// installed, and the key may since have been rotated.
    pub fn installed_sequence(&self) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.active_bytes()? else {
            return Ok(None);
        };
        sequence_of(&bytes)
            .map(Some)
            .map_err(|kind| StoreError::ActiveUnreadable {
                path: self.active_path(),
                kind,
            })
    }

    /// Loads and fully verifies the active file at time `now`.
    pub fn load_active(
        &self,
        verifier: &Verifier,
        now: u64,
    ) -> Result<LoadedWatchlist, StoreError> {
        let path = self.active_path();
        let bytes = self.active_bytes()?.ok_or_else(|| StoreError::NoActive {
            dir: self.dir.clone(),
        })?;
        let verified = verifier
            .verify_at(&bytes, now)
            .map_err(|kind| WatchlistError::new(path.display().to_string(), kind))?;
        Ok(LoadedWatchlist::from_verified(path, verified)?)
    }

    /// Verifies `bytes` and installs them as the active watchlist. A file that fails any check
    /// leaves the directory untouched.
    pub fn install(
        &self,
        bytes: &[u8],
        origin: &str,
        verifier: &Verifier,
        now: u64,
    ) -> Result<Installed, StoreError> {
        self.install_with_hook(bytes, origin, verifier, now, &mut |_| Ok(()))
    }

    /// [`Store::install`] with a hook called before each step; a hook error stops the install
    /// right there, as a crash would (nothing is cleaned up). For crash-safety tests.
    pub fn install_with_hook(
        &self,
        bytes: &[u8],
        origin: &str,
        verifier: &Verifier,
        now: u64,
        hook: &mut dyn FnMut(InstallStep) -> Result<(), StoreError>,
    ) -> Result<Installed, StoreError> {
        let verified = verifier
            .verify_at(bytes, now)
            .map_err(|kind| WatchlistError::new(origin, kind))?;
        let to = verified.body.sequence;
        let _lock = self.lock()?;
        let active = self.active_bytes()?;
        if active.as_deref() == Some(bytes) {
            return Ok(Installed::Unchanged { sequence: to });
        }
        let hold = self.hold()?;
        if self.respect_hold
            && let Some(hold) = hold
            && to <= hold
        {
            return Ok(Installed::Held { sequence: to, hold });
        }
        let from = self.installed_sequence()?;
        if let Some(installed) = from
            && to <= installed
        {
            return Err(WatchlistError::new(
                origin,
                Rejection::Rollback {
                    sequence: to,
                    installed,
                },
            )
            .into());
        }
        let active_path = self.active_path();
        // A failed or interrupted install leaves its temp files to the next writer (under the lock).
        let new_temp = write_temp(&active_path, bytes, hook)?;
        hook(InstallStep::CopyPrevious)?;
        let previous_temp = match &active {
            Some(active) => Some(write_temp(&self.previous_path(), active, &mut |_| Ok(()))?),
            None => None,
        };
        hook(InstallStep::RenameActive)?;
        std::fs::rename(&new_temp, &active_path)
            .map_err(io_err("rename into place", &active_path))?;
        hook(InstallStep::SyncDir)?;
        sync_dir(&self.dir)?;
        // Committed: only now does the replaced list become the rollback target.
        hook(InstallStep::RenamePrevious)?;
        if let Some(temp) = previous_temp {
            let previous = self.previous_path();
            std::fs::rename(&temp, &previous).map_err(io_err("rename into place", &previous))?;
            sync_dir(&self.dir)?;
        }
        if hold.is_some() {
            self.clear_hold()?;
        }
        Ok(Installed::Replaced { from, to })
    }

    /// Swaps the previous file back in (the current one becomes `previous`, so a rollback can
    /// itself be undone). The previous file must pass every check but the sequence, and lowering
    /// the sequence needs `allow_lower`.
    pub fn rollback(
        &self,
        verifier: &Verifier,
        now: u64,
        allow_lower: bool,
    ) -> Result<(u64, u64), StoreError> {
        let _lock = self.lock()?;
        let previous_path = self.previous_path();
        let previous = read_capped(&previous_path)?.ok_or_else(|| StoreError::NoPrevious {
            dir: self.dir.clone(),
        })?;
        let active = self.active_bytes()?.ok_or_else(|| StoreError::NoActive {
            dir: self.dir.clone(),
        })?;
        let verified = verifier
            .verify_at(&previous, now)
            .map_err(|kind| WatchlistError::new(previous_path.display().to_string(), kind))?;
        let from = self.installed_sequence()?.unwrap_or(0);
        let to = verified.body.sequence;
        if to == from {
            return Err(StoreError::SameSequence {
                dir: self.dir.clone(),
                sequence: to,
            });
        }
        if to < from && !allow_lower {
            return Err(StoreError::LowerNotAllowed { from, to });
        }
        // Hold first, so a sync cannot re-install the list being rolled away from, even after a
        // crash half-way through.
        let hold = self.hold()?;
        if to < from {
            self.set_hold(from.max(hold.unwrap_or(0)))?;
        } else if hold.is_some_and(|h| to >= h) {
            self.clear_hold()?;
        }
        // Active first: a crash in between leaves the rolled-back list in both files (what the
        // operator asked for is active; the newer list is still on the issuer's server).
        write_atomic(&self.dir, &self.active_path(), &previous)?;
        write_atomic(&self.dir, &previous_path, &active)?;
        // The stored ETag described the file that is no longer active.
        self.clear_etag()?;
        Ok((from, to))
    }

    /// The ETag recorded for the active file, if it still describes it.
    pub fn etag(&self) -> Result<Option<String>, StoreError> {
        let Some(text) = self.read_small(ETAG)? else {
            return Ok(None);
        };
        let Some((sha, etag)) = text.trim_end_matches('\n').split_once(' ') else {
            return Ok(None);
        };
        let Some(active) = self.active_bytes()? else {
            return Ok(None);
        };
        Ok((hex::encode(Sha256::digest(&active)) == sha).then(|| etag.to_string()))
    }

    /// A small state file as text; `None` if missing, too long, or not a regular file.
    fn read_small(&self, name: &str) -> Result<Option<String>, StoreError> {
        let path = self.dir.join(name);
        match crate::fsio::read_regular(&path, MAX_SMALL_FILE) {
            Ok(t) => Ok(Some(String::from_utf8_lossy(&t).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Records the ETag under which the active file was served, if `file_sha256` is still the
    /// active file's (another writer may have replaced it meanwhile).
    pub fn set_etag(&self, etag: &str, file_sha256: &[u8; 32]) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let active = self.active_bytes()?;
        if active.is_none_or(|a| <[u8; 32]>::from(Sha256::digest(&a)) != *file_sha256) {
            return Ok(());
        }
        let line = format!("{} {etag}\n", hex::encode(file_sha256));
        write_atomic(&self.dir, &self.dir.join(ETAG), line.as_bytes())
    }

    pub fn clear_etag(&self) -> Result<(), StoreError> {
        self.remove(ETAG)
    }

    fn remove(&self, name: &str) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// The sequence a rollback holds sync back to: lists at or below it are not installed by
    /// sync until a higher one appears (or an operator installs one).
    pub fn hold(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .read_small(HOLD)?
            .and_then(|t| t.trim().parse::<u64>().ok()))
    }

    fn set_hold(&self, sequence: u64) -> Result<(), StoreError> {
        write_atomic(
            &self.dir,
            &self.dir.join(HOLD),
            format!("{sequence}\n").as_bytes(),
        )
    }

    fn clear_hold(&self) -> Result<(), StoreError> {
        self.remove(HOLD)
    }
}

/// The sequence number of a structurally valid file, signature not checked.
pub fn sequence_of(bytes: &[u8]) -> Result<u64, Rejection> {
    Ok(decode_unverified(bytes)?.1.sequence)
}
