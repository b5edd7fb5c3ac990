//! `mjpeg:FILE`: a stream of concatenated JPEG frames, as cameras and `ffmpeg -c:v mjpeg -f mjpeg`
//! record them. Frames are found by walking the JPEG marker structure (not by searching for the
//! next `FF D9`, which an embedded EXIF thumbnail would fool); a damaged or truncated frame is
//! skipped, counted and reported as [`SourceError::Corrupt`], and reading resumes at the next frame.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::pixel::{JpegDecoder, MAX_FILE_DIMENSION};
use super::{Frame, FrameSource, SourceError};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const READ_CHUNK: usize = 256 << 10;

/// What [`scan`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A complete frame at `start..end`.
    Frame { start: usize, end: usize },
    /// A damaged frame began at `start`; scanning resumes at `resume` (> `start`).
    Corrupt {
        start: usize,
        resume: usize,
        reason: &'static str,
    },
    /// No complete frame yet. The first `discard` bytes can never start a frame and may be dropped.
    NeedMore { discard: usize },
}

fn is_soi_at(buf: &[u8], i: usize) -> bool {
    buf.len() >= i + 3 && buf[i] == 0xFF && buf[i + 1] == SOI && buf[i + 2] == 0xFF
}

fn find_soi(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        let rel = memchr_ff(&buf[i..])?;
        let p = i + rel;
        if p + 2 < buf.len() && buf[p + 1] == SOI && buf[p + 2] == 0xFF {
            return Some(p);
        }
        if p + 2 >= buf.len() {
            return None;
        }
        i = p + 1;
    }
    None
}

fn memchr_ff(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == 0xFF)
}

/// Finds the first frame in `buf`. `at_eof` says no more bytes will come, so an unfinished frame is
/// corrupt rather than incomplete; a frame longer than `max_frame` bytes is corrupt.
pub fn scan(buf: &[u8], at_eof: bool, max_frame: usize) -> Scan {
    let Some(start) = find_soi(buf, 0) else {
        // Keep the last two bytes: they may be the start of a marker split across reads.
        let keep = if at_eof { 0 } else { 2 };
        return Scan::NeedMore {
            discard: buf.len().saturating_sub(keep),
        };
    };
    let corrupt = |resume: usize, reason| Scan::Corrupt {
        start,
        resume: resume.max(start + 1),
        reason,
    };
    // Where to resume after damage: the next frame start, or past what we have.
    let resync = |buf: &[u8]| find_soi(buf, start + 2).unwrap_or(buf.len());
    let incomplete = |buf: &[u8]| {
        if at_eof {
            Scan::Corrupt {
                start,
                resume: buf.len().max(start + 1),
                reason: "stream ends inside a frame",
            }
        } else if buf.len() - start > max_frame {
            Scan::Corrupt {
                start,
                resume: resync(buf).max(start + 1),
                reason: "frame larger than the configured maximum",
            }
        } else {
            Scan::NeedMore { discard: start }
        }
    };

    let mut i = start + 2;
    loop {
        if i - start > max_frame {
            return corrupt(resync(buf), "frame larger than the configured maximum");
        }
        if i >= buf.len() {
            return incomplete(buf);
        }
        if buf[i] != 0xFF {
            return corrupt(resync(buf), "marker expected");
        }
        // Any number of 0xFF fill bytes may precede a marker code.
        while i + 1 < buf.len() && buf[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= buf.len() {
            return incomplete(buf);
        }
        let marker = buf[i + 1];
        match marker {
            SOI => return corrupt(i, "frame restarted before its end"),
            EOI => return corrupt(i + 2, "frame ended before any image data"),
            0x00 => return corrupt(resync(buf), "invalid marker 00"),
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        if i + 4 > buf.len() {
            return incomplete(buf);
        }
        let len = usize::from(u16::from_be_bytes([buf[i + 2], buf[i + 3]]));
        if len < 2 {
            return corrupt(resync(buf), "segment length below 2");
        }
        i += 2 + len;
        if marker != SOS {
            continue;
        }
        // Entropy-coded data: runs until a marker that is not a stuffed 00 or a restart marker.
        loop {
            if i - start > max_frame {
                return corrupt(resync(buf), "frame larger than the configured maximum");
            }
            let Some(rel) = buf.get(i..).and_then(memchr_ff) else {
                return incomplete(buf);
            };
            let p = i + rel;
            let Some(&next) = buf.get(p + 1) else {
                return incomplete(buf);
            };
            match next {
                0x00 | 0xD0..=0xD7 | 0xFF => i = p + 1,
                EOI => return Scan::Frame { start, end: p + 2 },
                SOI if is_soi_at(buf, p) => {
                    return corrupt(p, "frame truncated: next frame starts inside it");
                }
                _ => {
                    // Another segment (progressive JPEG: DHT, SOS, ...).
                    i = p;
                    break;
                }
            }
        }
    }
}

/// Counters of an MJPEG recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MjpegStats {
    pub delivered: u64,
    pub corrupt: u64,
    /// Bytes between frames that were not part of any frame.
    pub skipped_bytes: u64,
}

/// Reads a concatenated-JPEG file with a bounded buffer (at most `max_frame + 256 KiB`).
pub struct MjpegFileSource {
    name: String,
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    max_frame: usize,
    jpeg: JpegDecoder,
    seq: u64,
    stats: MjpegStats,
}

impl MjpegFileSource {
    /// Opens a recording; frames longer than `max_frame` bytes are skipped as corrupt.
    pub fn open(path: &Path, name: String, max_frame: usize) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::Open {
            origin: name.clone(),
            reason: format!("cannot open {}: {e}", path.display()),
        })?;
        Ok(Self::from_reader(Box::new(file), name, max_frame))
    }

    /// Reads frames from any byte stream (a pipe, a socket, a test buffer).
    pub fn from_reader(reader: Box<dyn Read + Send>, name: String, max_frame: usize) -> Self {
        MjpegFileSource {
            name,
            reader,
            buf: Vec::new(),
            start: 0,
            eof: false,
            max_frame: max_frame.max(64),
            jpeg: JpegDecoder::with_max_dimension(MAX_FILE_DIMENSION),
            seq: 0,
            stats: MjpegStats::default(),
        }
    }

    pub fn stats(&self) -> MjpegStats {
        self.stats
    }

    fn fill(&mut self) -> Result<(), SourceError> {
        // Compact so that the buffer never grows past max_frame + one chunk.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let got = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(SourceError::Unplugged {
                        origin: self.name.clone(),
                        detail: format!("read failed: {e}"),
                    });
                }
            }
        };
        self.buf.truncate(old + got);
        if got == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

impl FrameSource for MjpegFileSource {
    fn next_frame(&mut self, frame: &mut Frame, _timeout: Duration) -> Result<(), SourceError> {
        loop {
            match scan(&self.buf[self.start..], self.eof, self.max_frame) {
                Scan::Frame { start, end } => {
                    self.stats.skipped_bytes += start as u64;
                    let data = &self.buf[self.start + start..self.start + end];
                    let decoded = self.jpeg.decode_into(data, &mut frame.rgb);
                    self.start += end;
                    return match decoded {
                        Ok(()) => {
                            frame.timestamp = SystemTime::now();
                            frame.seq = self.seq;
                            self.seq += 1;
                            self.stats.delivered += 1;
                            Ok(())
                        }
                        Err(e) => {
                            self.stats.corrupt += 1;
                            Err(SourceError::Corrupt {
                                origin: self.name.clone(),
                                reason: format!(
                                    "frame {}: {e}",
                                    self.stats.delivered + self.stats.corrupt
                                ),
                            })
                        }
                    };
                }
                Scan::Corrupt {
                    start,
                    resume,
                    reason,
                } => {
                    self.stats.skipped_bytes += start as u64;
                    self.stats.corrupt += 1;
                    self.start += resume;
                    return Err(SourceError::Corrupt {
                        origin: self.name.clone(),
                        reason: reason.to_string(),
                    });
                }
                Scan::NeedMore { discard } => {
                    self.stats.skipped_bytes += discard as u64;
                    self.start += discard;
                    if self.eof {
                        return Err(SourceError::EndOfStream {
                            origin: self.name.clone(),
                        });
                    }
                    self.fill()?;
                }
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}
