//! The alert journal: JSON lines in size-rotated segment files `alerts-<12-digit seq>.jsonl`, each
//! line written and fsync'd before the alert goes anywhere else. It is the record of truth: the
//! webhook delivers from it, and an operator reads it after an incident.
//!
//! Power cuts: on open, bytes after the last newline of the newest segment (a torn line) and
//! trailing lines of zero bytes (zero-filled blocks) are truncated away and reported. A complete
//! line is never cut, alert or not.
//! Full disk: a failed write is cut back off the file and the line stays in a bounded in-memory
//! queue, retried on every later append and on [`Journal::retry_pending`].

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Alert;
use crate::passage::episode::Episode;

const PREFIX: &str = "alerts-";
const SUFFIX: &str = ".jsonl";
/// Largest segment repaired by reading it whole at open; bigger ones are refused with advice.
const MAX_REPAIR_BYTES: u64 = 256 << 20;

/// Segment size and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalConfig {
    /// A segment is closed and a new one started before it would exceed this size.
    pub max_file_bytes: u64,
    /// Segments kept, the active one included; older ones are deleted.
    pub keep_files: usize,
    /// Alerts held in memory while the disk refuses writes; beyond it the oldest are lost (counted).
    pub max_pending: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            max_file_bytes: 8 << 20,
            keep_files: 16,
            max_pending: 4096,
        }
    }
}

/// What went wrong, naming the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "cannot write the alert journal in {dir}: {source}; {pending} alert(s) kept in memory and retried (free disk space or fix permissions there)"
    )]
    Write {
        dir: PathBuf,
        pending: usize,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot open the alert journal {path}: {source}; check that the folder exists and is writable"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "alert journal segment {path} is {len} bytes, too large to check after a restart; move it aside"
    )]
    TooLarge { path: PathBuf, len: u64 },
    #[error("cannot encode alert {id}: {source}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What was cut off a segment at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub file: PathBuf,
    pub truncated_bytes: u64,
    /// Unfinished bytes after the last newline (a write cut by power loss).
    pub torn_tail: bool,
    /// Complete trailing lines of zero bytes (zero-filled blocks).
    pub bad_lines: usize,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alert journal {}: removed {} byte(s) left by an interrupted write ({}{} zero-filled trailing line(s)); they were never a complete alert",
            self.file.display(),
            self.truncated_bytes,
            if self.torn_tail {
                "a torn last line, "
            } else {
                ""
            },
            self.bad_lines
        )
    }
}

/// Counters since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub appended: u64,
    pub write_failures: u64,
    /// Alerts dropped from the in-memory queue because the disk stayed full too long.
    pub lost: u64,
    pub rotations: u64,
    /// Old segments that could not be deleted (retried at the next rotation).
    pub prune_failures: u64,
    /// Segments repaired (torn or unreadable tail cut off), at open or on reopen after a failed write.
    pub recoveries: u64,
}

/// The operations the journal needs from a segment file; a test can inject failures (ENOSPC).
pub trait SegmentFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file back to `len` bytes (used to remove a partly written line).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl SegmentFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// Opens a segment for appending (creating it).
pub type Opener = Box<dyn FnMut(&Path) -> io::Result<Box<dyn SegmentFile>> + Send>;

/// The production opener: `O_APPEND | O_CREAT`.
pub fn file_opener() -> Opener {
    Box::new(|path| {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(file) as Box<dyn SegmentFile>)
    })
}

/// Path of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{seq:012}{SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Sequence numbers of the segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Cuts a torn tail and unreadable trailing lines off `path`; `None` if it was clean.
fn repair(path: &Path) -> Result<Option<Recovery>, JournalError> {
    let open_err = |source| JournalError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(open_err)?;
    let len = file.metadata().map_err(open_err)?.len();
    if len > MAX_REPAIR_BYTES {
        return Err(JournalError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes).map_err(open_err)?;
    let mut keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let torn_tail = keep < bytes.len();
    let mut bad_lines = 0;
    // Only what a power cut leaves is cut: the torn tail and, before it, complete lines of zero
    // bytes (blocks the filesystem allocated but never wrote). A complete line with other
    // content was written whole by someone and is kept, even if it is not an alert.
    while keep > 0 {
        let body = &bytes[..keep - 1];
        let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let line = &body[start..];
        if line.is_empty() || !line.iter().all(|&b| b == 0) {
            break;
        }
        bad_lines += 1;
        keep = start;
    }
    if keep == bytes.len() {
        return Ok(None);
    }
    file.set_len(keep as u64).map_err(open_err)?;
    file.sync_all().map_err(open_err)?;
    Ok(Some(Recovery {
        file: path.to_path_buf(),
        truncated_bytes: (bytes.len() - keep) as u64,
        torn_tail,
        bad_lines,
    }))
}

struct Active {
    seq: u64,
    file: Box<dyn SegmentFile>,
    len: u64,
}

/// The append side of the journal. One per box; not shared between threads.
pub struct Journal {
    dir: PathBuf,
    config: JournalConfig,
    opener: Opener,
    active: Option<Active>,
    /// Encoded lines not yet on disk, oldest first.
    pending: VecDeque<Vec<u8>>,
    /// Set when a failed write could not be cut back: the newest segment is repaired on reopen.
    needs_repair: bool,
    stats: JournalStats,
    recoveries: Vec<Recovery>,
}

impl Journal {
    /// Opens (creating) the journal in `dir` with real files. Returns what had to be repaired.
    pub fn open(
        dir: &Path,
        config: JournalConfig,
    ) -> Result<(Self, Option<Recovery>), JournalError> {
        Self::open_with(dir, config, file_opener())
    }

    /// As [`Journal::open`], with segment files opened by `opener` (tests inject failures here).
    pub fn open_with(
        dir: &Path,
        config: JournalConfig,
        opener: Opener,
    ) -> Result<(Self, Option<Recovery>), JournalError> {
        fs::create_dir_all(dir).map_err(|source| JournalError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            config: JournalConfig {
                max_file_bytes: config.max_file_bytes.max(1),
                keep_files: config.keep_files.max(1),
                max_pending: config.max_pending.max(1),
            },
            opener,
            active: None,
            pending: VecDeque::new(),
            needs_repair: true,
            stats: JournalStats::default(),
            recoveries: Vec::new(),
        };
        journal
            .ensure_active(0)
            .map_err(|source| JournalError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        let recovery = journal.recoveries.pop();
        Ok((journal, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> JournalStats {
        self.stats
    }

    /// Alerts waiting for the disk.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Repairs done while reopening after a failed write (drained by this call; the one at open is
    /// returned by [`Journal::open`]). [`crate::alerts::dispatch::Dispatcher`] reports them.
    pub fn take_recoveries(&mut self) -> Vec<Recovery> {
        std::mem::take(&mut self.recoveries)
    }

    /// Appends `alert` (after any alerts still pending) and fsyncs. On error the alert is kept in
    /// memory and retried later; the error says how many are waiting.
    pub fn append(&mut self, alert: &Alert) -> Result<(), JournalError> {
        let line = alert
            .to_json_line()
            .map_err(|source| JournalError::Encode {
                id: alert.id.to_string(),
                source,
            })?;
        self.append_line(line)
    }

    /// Appends another record (a passage's closing [`crate::passage::episode::Episode`]) the same
    /// way: one JSON object with a `"record"` field, ending in a newline.
    pub fn append_record(&mut self, episode: &Episode) -> Result<(), JournalError> {
        let line = episode
            .to_json_line()
            .map_err(|source| JournalError::Encode {
                id: format!("episode of track {}", episode.track),
                source,
            })?;
        self.append_line(line)
    }

    fn append_line(&mut self, line: Vec<u8>) -> Result<(), JournalError> {
        if self.pending.len() >= self.config.max_pending {
            self.pending.pop_front();
            self.stats.lost += 1;
        }
        self.pending.push_back(line);
        self.retry_pending().map(|_| ())
    }

    /// Writes the pending alerts, oldest first, stopping at the first failure. Returns how many
    /// were written.
    pub fn retry_pending(&mut self) -> Result<usize, JournalError> {
        let mut written = 0;
        while let Some(line) = self.pending.front() {
            let line = line.clone();
            if let Err(source) = self.write_line(&line) {
                self.stats.write_failures += 1;
                return Err(JournalError::Write {
                    dir: self.dir.clone(),
                    pending: self.pending.len(),
                    source,
                });
            }
            self.pending.pop_front();
            self.stats.appended += 1;
            written += 1;
        }
        Ok(written)
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.ensure_active(line.len() as u64)?;
        let Some(active) = self.active.as_mut() else {
            return Err(io::Error::other("no active journal segment"));
        };
        let result = active
            .file
            .write_all(line)
            .and_then(|()| active.file.sync());
        match result {
            Ok(()) => {
                active.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut off whatever part of the line reached the file, so that the retry does not
                // leave a torn line in the middle of the journal.
                if active
                    .file
                    .truncate(active.len)
                    .and_then(|()| active.file.sync())
                    .is_err()
                {
                    self.active = None;
                    self.needs_repair = true;
                }
                Err(e)
            }
        }
    }

    /// Makes sure a segment with room for `incoming` bytes is open, rotating and pruning as needed.
    fn ensure_active(&mut self, incoming: u64) -> io::Result<()> {
        if let Some(active) = &self.active {
            if active.len == 0 || active.len + incoming <= self.config.max_file_bytes {
                return Ok(());
            }
            let next = active.seq + 1;
            self.active = None;
            self.open_segment(next)?;
            self.stats.rotations += 1;
            self.prune_best_effort();
            return Ok(());
        }
        let newest = list_segments(&self.dir)?.last().copied();
        match newest {
            Some(seq) => {
                if self.needs_repair {
                    let path = segment_path(&self.dir, seq);
                    match repair(&path) {
                        Ok(Some(r)) => {
                            self.stats.recoveries += 1;
                            self.recoveries.push(r);
                        }
                        Ok(None) => {}
                        Err(JournalError::Open { source, .. }) => return Err(source),
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    }
                }
                let len = fs::metadata(segment_path(&self.dir, seq))?.len();
                if len > 0 && len + incoming > self.config.max_file_bytes {
                    self.open_segment(seq + 1)?;
                    self.stats.rotations += 1;
                    self.prune_best_effort();
                } else {
                    self.open_existing(seq, len)?;
                }
            }
            None => self.open_segment(1)?,
        }
        self.needs_repair = false;
        Ok(())
    }

    fn open_existing(&mut self, seq: u64, len: u64) -> io::Result<()> {
        let file = (self.opener)(&segment_path(&self.dir, seq))?;
        self.active = Some(Active { seq, file, len });
        Ok(())
    }

    fn open_segment(&mut self, seq: u64) -> io::Result<()> {
        let path = segment_path(&self.dir, seq);
        let file = (self.opener)(&path)?;
        sync_dir(&self.dir)?;
        let len = fs::metadata(&path)?.len();
        self.active = Some(Active { seq, file, len });
        Ok(())
    }

    /// Retention must not block writing: a failed delete is counted and retried at the next rotation.
    fn prune_best_effort(&mut self) {
        if self.prune().is_err() {
            self.stats.prune_failures += 1;
        }
    }

    fn prune(&mut self) -> io::Result<()> {
        let segments = list_segments(&self.dir)?;
        let excess = segments.len().saturating_sub(self.config.keep_files);
        let active = self.active.as_ref().map(|a| a.seq);
        let mut removed = false;
        for &seq in segments.iter().take(excess) {
            if Some(seq) != active {
                fs::remove_file(segment_path(&self.dir, seq))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// A place in the journal: segment and byte offset of the next unread line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// The `record` field of a non-alert journal line (`"episode"`).
fn record_kind(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Tagged {
        record: String,
    }
    serde_json::from_slice::<Tagged>(line)
        .ok()
        .map(|t| t.record)
}

/// What [`read_next`] found at a position.
#[derive(Debug)]
pub enum Next {
    /// A complete line: the alert, or why it is not one. `next` is the position after it.
    Line {
        alert: Result<Box<Alert>, String>,
        next: Position,
    },
    /// A complete line that is another kind of record (a passage's closing episode, parsed with
    /// [`crate::passage::episode::Episode::from_json_line`]): not for alert sinks. `line` is the
    /// record without its newline; `next` is the position after it.
    Record {
        kind: String,
        line: Vec<u8>,
        next: Position,
    },
    /// Nothing at `from` any more: continue at `to`. `lost_segments` counts segments deleted by
    /// rotation before they were read.
    Moved { to: Position, lost_segments: u64 },
    /// No complete line after `from` yet.
    Idle,
}

/// Reads the line at `from`. Lines longer than `max_line` bytes are reported as bad and skipped.
pub fn read_next(dir: &Path, from: Position, max_line: usize) -> io::Result<Next> {
    let segments = list_segments(dir)?;
    let Some(&oldest) = segments.first() else {
        return Ok(Next::Idle);
    };
    if from.segment < oldest {
        return Ok(Next::Moved {
            to: Position {
                segment: oldest,
                offset: 0,
            },
            lost_segments: oldest - from.segment.max(1).min(oldest),
        });
    }
    let newer = segments.iter().copied().find(|&s| s > from.segment);
    if !segments.contains(&from.segment) {
        return Ok(match newer {
            Some(segment) => Next::Moved {
                to: Position { segment, offset: 0 },
                lost_segments: 0,
            },
            None => Next::Idle,
        });
    }
    let mut file = File::open(segment_path(dir, from.segment))?;
    file.seek(SeekFrom::Start(from.offset))?;
    let mut reader = BufReader::new(file).take(max_line as u64 + 1);
    let mut line = Vec::new();
    let n = reader.read_until(b'\n', &mut line)?;
    let next = Position {
        segment: from.segment,
        offset: from.offset + n as u64,
    };
    if line.last() == Some(&b'\n') {
        line.pop();
        let alert =
            serde_json::from_slice::<Box<Alert>>(&line).map_err(|e| format!("not an alert: {e}"));
        if alert.is_err()
            && let Some(kind) = record_kind(&line)
        {
            return Ok(Next::Record { kind, line, next });
        }
        return Ok(Next::Line { alert, next });
    }
    if n > max_line {
        return Ok(Next::Line {
            alert: Err(format!("line longer than {max_line} bytes")),
            next,
        });
    }
    // End of this segment (or an unfinished line). The writer only leaves a segment for a newer
    // one, so an unfinished line in an older segment was abandoned and is skipped.
    Ok(match newer {
        Some(segment) => Next::Moved {
            to: Position { segment, offset: 0 },
            lost_segments: 0,
        },
        None => Next::Idle,
    })
}
