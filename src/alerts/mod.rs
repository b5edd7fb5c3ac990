//! Alerts: what the box says when a watchlisted person passes.
//!
//! An [`Alert`] is appended to the fsync'd JSONL [`journal`] first (the record of truth), then
//! handed to the sinks: stdout, the lane controller's [`webhook`] (delivered from the journal with
//! a persistent cursor), and GPIO (feature `gpio`). A per-identity [`cooldown`] keeps one person
//! from raising a burst of alerts. A failing journal (full disk) never stops the alert from
//! reaching the sinks; [`dispatch::Dispatcher`] reports and retries it.

pub mod cooldown;
pub mod dispatch;
#[cfg(feature = "gpio")]
pub mod gpio;
pub mod journal;
pub mod time;
pub mod webhook;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A unique, time-ordered alert id: 12 hex digits of Unix milliseconds then 20 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub String);

impl AlertId {
    /// A new id for an alert raised at `at`.
    pub fn new(at: SystemTime) -> Self {
        let ms = time::unix_millis(at) & 0xFFFF_FFFF_FFFF;
        let mut rnd = [0u8; 10];
        if getrandom::getrandom(&mut rnd).is_err() {
            // No OS randomness (should not happen on Linux): a process-wide counter mixed with the
            // sub-millisecond clock still keeps ids unique within this run.
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            rnd[..8].copy_from_slice(&n.to_be_bytes());
            rnd[8..].copy_from_slice(&(nanos as u16).to_be_bytes());
        }
        AlertId(format!("{ms:012x}{}", hex::encode(rnd)))
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The watchlist entry that matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub list: String,
    pub severity: String,
}

/// How close the match was. `margin` is the distance gap to the second-best identity; `None` (JSON
/// `null`) when the watchlist holds one identity. Every value is finite, so every journal line reads
/// back (JSON has no infinity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatchScores {
    pub distance: f32,
    pub similarity: f32,
    pub margin: Option<f32>,
}

/// Face rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// The frame the face was found in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameInfo {
    pub seq: u64,
    pub time_unix_ms: u64,
    pub width: u32,
    pub height: u32,
}

/// An image of the face kept with the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Crop {
    /// JPEG bytes, base64 (standard alphabet), inside the alert itself.
    InlineJpeg { base64: String },
    /// A JPEG written beside the journal.
    File { path: String, sha256: String },
}

impl Crop {
    /// Embeds JPEG bytes in the alert.
    pub fn inline_jpeg(jpeg: &[u8]) -> Self {
        Crop::InlineJpeg {
            base64: base64::engine::general_purpose::STANDARD.encode(jpeg),
        }
    }

    /// Writes `jpeg` to `dir/<id>.jpg` (temp file, fsync, rename, fsync of the folder) and refers to it.
    pub fn side_file(dir: &Path, id: &AlertId, jpeg: &[u8]) -> std::io::Result<Self> {
        use sha2::Digest as _;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{id}.jpg"));
        let tmp = dir.join(format!(".{id}.jpg.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(jpeg)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(Crop::File {
            path: path.display().to_string(),
            sha256: hex::encode(sha2::Sha256::digest(jpeg)),
        })
    }
}

/// Encodes an RGB face crop as JPEG (`quality` 1..=100) for [`Crop`].
pub fn encode_jpeg(rgb: &image::RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    let encoder =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    rgb.write_with_encoder(encoder)?;
    Ok(out)
}

/// One alert, as journaled (one JSON object per line) and as sent to every sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    /// When the alert was raised, RFC 3339 UTC with milliseconds.
    pub time: String,
    pub time_unix_ms: u64,
    /// Which lane camera saw the face (its source spec or a configured lane name).
    pub camera: String,
    pub identity: Identity,
    pub scores: MatchScores,
    pub face: FaceBox,
    /// Face size in pixels (the larger side of the box), for judging how reliable the match is.
    pub face_size_px: u32,
    pub frame: FrameInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<Crop>,
    /// The passage behind the alert (lanes that decide per passer): `face`, `frame` and `crop`
    /// are then the passage's best shot so far, and `scores` the decision's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage: Option<PassageInfo>,
}

/// Which passage an alert is about and what it rested on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassageInfo {
    /// The lane's track id (unique within one run of the lane).
    pub track: u64,
    /// `passage` (fused description) or `frame` (one face), as the watchlist says.
    pub decision: String,
    /// Good faces behind the decision.
    pub faces_used: u32,
    /// Distance of the decision (the fused description in passage mode).
    pub combined_distance: f32,
    /// The best single face's distance, for the record.
    pub best_single_distance: Option<f32>,
    /// Quality score of the best shot, in [0, 1].
    pub best_shot_quality: f32,
    /// Decided by the passage's last look, when its track ended: the passer has already left the
    /// camera's view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_track_end: bool,
}

impl Alert {
    /// A new alert raised now, with a fresh id.
    pub fn new(
        camera: impl Into<String>,
        identity: Identity,
        scores: MatchScores,
        face: FaceBox,
        frame: FrameInfo,
    ) -> Self {
        let now = SystemTime::now();
        Alert {
            id: AlertId::new(now),
            time: time::rfc3339_millis(now),
            time_unix_ms: time::unix_millis(now),
            camera: camera.into(),
            identity,
            scores,
            face,
            face_size_px: face.width.max(face.height).max(0.0).round() as u32,
            frame,
            crop: None,
            passage: None,
        }
    }

    /// The alert as one JSON line (with the trailing newline).
    pub fn to_json_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        Ok(line)
    }
}

/// A destination for alerts besides the journal.
pub trait AlertSink: Send {
    /// Short name for messages ("stdout", "webhook", "gpio").
    fn name(&self) -> &str;

    /// Takes one alert. `journaled` is false when the journal could not record it (disk full), so
    /// a sink that normally reads from the journal must take this alert directly. Must not block
    /// for long: slow work belongs on the sink's own thread.
    fn deliver(&mut self, alert: &Alert, journaled: bool) -> Result<(), String>;
}

/// Writes each alert as a JSON line to a writer (stdout on the box).
pub struct JsonLinesSink<W: Write + Send> {
    name: String,
    out: W,
}

impl JsonLinesSink<std::io::Stdout> {
    pub fn stdout() -> Self {
        JsonLinesSink {
            name: "stdout".into(),
            out: std::io::stdout(),
        }
    }
}

impl<W: Write + Send> JsonLinesSink<W> {
    pub fn new(name: impl Into<String>, out: W) -> Self {
        JsonLinesSink {
            name: name.into(),
            out,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> AlertSink for JsonLinesSink<W> {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, alert: &Alert, _journaled: bool) -> Result<(), String> {
        let line = alert.to_json_line().map_err(|e| e.to_string())?;
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|e| format!("cannot write alert: {e}"))
    }
}

/// Where alert-related files live by default: the journal folder's `crops/` subfolder.
pub fn crops_dir(journal_dir: &Path) -> PathBuf {
    journal_dir.join("crops")
}
