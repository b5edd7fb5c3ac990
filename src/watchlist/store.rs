//! The box's watchlist state directory: atomic install, operator rollback, loading.
//!
//! ```text
//! STATE/watchlist.lwl           the active file (always complete and verified when written)
//! STATE/watchlist.previous.lwl  the one it replaced, for `lanewatch watchlist rollback`
//! STATE/sync.etag               ETag of the active file as served, for If-None-Match
//! STATE/*.tmp                   files being written; never read, removed on open
//! ```
//! Every file is replaced by write-temp, fsync, rename, fsync(dir): after a crash at any point the
//! directory holds either the old or the new complete file, never a mix.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Rejection, WatchlistError};
use super::format::{Body, MAX_FILE_LEN, decode_unverified};
use super::verify::{Verified, Verifier};
use crate::matcher::Index;

pub const ACTIVE: &str = "watchlist.lwl";
pub const PREVIOUS: &str = "watchlist.previous.lwl";
pub const ETAG: &str = "sync.etag";
const TEMP_SUFFIX: &str = ".tmp";

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
    #[error("install interrupted before {0:?} (failpoint)")]
    Interrupted(InstallStep),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// The steps of an install, in order. A failpoint hook sees each one before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallStep {
    CopyPrevious,
    RenamePrevious,
    CreateTemp,
    /// Half of the file is in the temp file; the rest is about to be written.
    WriteRest,
    SyncTemp,
    RenameActive,
    SyncDir,
}

impl InstallStep {
    /// In the order an install over an existing file runs them.
    pub const ALL: [InstallStep; 7] = [
        InstallStep::CopyPrevious,
        InstallStep::RenamePrevious,
        InstallStep::CreateTemp,
        InstallStep::WriteRest,
        InstallStep::SyncTemp,
        InstallStep::RenameActive,
        InstallStep::SyncDir,
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
}

/// Reads a file of at most `MAX_FILE_LEN` bytes; `Ok(None)` if it does not exist.
pub fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, WatchlistError> {
    let origin = || path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WatchlistError::new(origin(), Rejection::Io(e))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| WatchlistError::new(origin(), Rejection::Io(e)))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(WatchlistError::new(
            origin(),
            Rejection::TooLarge {
                size: bytes.len() as u64,
                max: MAX_FILE_LEN,
            },
        ));
    }
    Ok(Some(bytes))
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

/// Writes `bytes` to `path` atomically (temp + fsync + rename + fsync dir), calling `hook`
/// before each step.
fn write_atomic(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    hook: &mut dyn FnMut(InstallStep) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let temp = temp_for(path);
    hook(InstallStep::CreateTemp)?;
    let mut file = std::fs::File::create(&temp).map_err(io_err("create", &temp))?;
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half])
        .map_err(io_err("write", &temp))?;
    hook(InstallStep::WriteRest)?;
    file.write_all(&bytes[half..])
        .map_err(io_err("write", &temp))?;
    hook(InstallStep::SyncTemp)?;
    file.sync_all().map_err(io_err("fsync", &temp))?;
    drop(file);
    hook(InstallStep::RenameActive)?;
    std::fs::rename(&temp, path).map_err(io_err("rename into place", path))?;
    hook(InstallStep::SyncDir)?;
    sync_dir(dir)
}

fn temp_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
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
}

impl Store {
    /// Opens (creating if needed) a state directory and removes temp files a crash left behind.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err("create state directory", dir))?;
        let store = Store {
            dir: dir.to_path_buf(),
            active: ACTIVE.into(),
        };
        for name in [ACTIVE, PREVIOUS, ETAG] {
            let temp = temp_for(&store.dir.join(name));
            match std::fs::remove_file(&temp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove leftover", &temp)(e)),
            }
        }
        Ok(store)
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
        let active = self.active_bytes()?;
        if active.as_deref() == Some(bytes) {
            return Ok(Installed::Unchanged { sequence: to });
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
        if let Some(active) = &active {
            self.keep_previous(active, hook)?;
        }
        write_atomic(&self.dir, &self.active_path(), bytes, hook)?;
        Ok(Installed::Replaced { from, to })
    }

    /// Copies the active file to `previous` atomically, so that a crash leaves a complete one.
    fn keep_previous(
        &self,
        active: &[u8],
        hook: &mut dyn FnMut(InstallStep) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let previous = self.previous_path();
        let temp = temp_for(&previous);
        hook(InstallStep::CopyPrevious)?;
        let mut file = std::fs::File::create(&temp).map_err(io_err("create", &temp))?;
        file.write_all(active)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &temp))?;
        drop(file);
        hook(InstallStep::RenamePrevious)?;
        std::fs::rename(&temp, &previous).map_err(io_err("rename into place", &previous))?;
        sync_dir(&self.dir)
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
        if to < from && !allow_lower {
            return Err(StoreError::LowerNotAllowed { from, to });
        }
        // Active first: a crash in between leaves the rolled-back list in both files (what the
        // operator asked for is active; the newer list is still on the issuer's server).
        write_atomic(&self.dir, &self.active_path(), &previous, &mut |_| Ok(()))?;
        write_atomic(&self.dir, &previous_path, &active, &mut |_| Ok(()))?;
        // The stored ETag described the file that is no longer active.
        self.clear_etag()?;
        Ok((from, to))
    }

    /// The ETag recorded for the active file, if it still describes it.
    pub fn etag(&self) -> Result<Option<String>, StoreError> {
        let path = self.dir.join(ETAG);
        let text = match std::fs::read(&path) {
            Ok(t) if t.len() <= 1024 => String::from_utf8_lossy(&t).into_owned(),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let Some((sha, etag)) = text.trim_end_matches('\n').split_once(' ') else {
            return Ok(None);
        };
        let Some(active) = self.active_bytes()? else {
            return Ok(None);
        };
        Ok((hex::encode(Sha256::digest(&active)) == sha).then(|| etag.to_string()))
    }

    /// Records the ETag under which the active file was served.
    pub fn set_etag(&self, etag: &str, file_sha256: &[u8; 32]) -> Result<(), StoreError> {
        let line = format!("{} {etag}\n", hex::encode(file_sha256));
        write_atomic(
            &self.dir,
            &self.dir.join(ETAG),
            line.as_bytes(),
            &mut |_| Ok(()),
        )
    }

    pub fn clear_etag(&self) -> Result<(), StoreError> {
        let path = self.dir.join(ETAG);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }
}

/// The sequence number of a structurally valid file, signature not checked.
pub fn sequence_of(bytes: &[u8]) -> Result<u64, Rejection> {
    Ok(decode_unverified(bytes)?.1.sequence)
}
