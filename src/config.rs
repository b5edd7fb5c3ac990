//! `lanewatch run` configuration: one TOML file with documented defaults; command-line flags override it.
//!
//! Every field has a default so that an empty file (or none) is a valid configuration for the bundled
//! models; `lanewatch run --print-config` shows the effective values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::vision::detect::{DetectorConfig, WHOLE_FRAME};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub models: ModelsConfig,
    pub detect: DetectConfig,
    pub watchlist: WatchlistConfig,
    pub alerts: AlertsConfig,
    /// Tracks, face quality, fusion and per-passer decisions (src/passage).
    pub passage: crate::passage::PassageConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `v4l2:/dev/videoN`, `frames:DIR` or `mjpeg:FILE`.
    pub uri: String,
    /// Name of this lane camera in alerts (default: the source string).
    pub lane: Option<String>,
    /// Capture size negotiated with a V4L2 camera; frames of other sources are used at their own size.
    pub width: u32,
    pub height: u32,
    /// How long to wait for one frame before counting a timeout.
    pub frame_timeout_ms: u64,
    /// Frames held between capture and inference; the oldest is dropped when inference falls behind.
    pub queue_capacity: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    pub embedder: PathBuf,
    pub landmarks: PathBuf,
    pub pnet: PathBuf,
    pub rnet: PathBuf,
    pub onet: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Smallest face the detector looks for, in pixels (sets the pyramid's first scale).
    pub min_face_px: u32,
    /// Faces whose box side is below this are counted, not matched: too few pixels to identify reliably.
    pub min_match_face_px: u32,
    /// The part of the frame searched for new faces, as fractions of its width and height:
    /// [x0, y0, x1, y1]. With `min_face_px` it sets the detector's pyramid: a smaller region is
    /// searched faster. Faces already followed are followed outside it too.
    pub region: [f32; 4],
    /// Track-guided detection: the whole region is searched at least every this many frames (and
    /// whenever nobody is being followed, or a followed face is not found near where it was
    /// heading); in between, only the neighbourhood of the faces being followed. 1: every frame
    /// is searched whole. A person who walks in while others are followed is found within this
    /// many frames.
    pub full_frame_every: u32,
    /// An empty lane is not searched again while it stays unchanged since it was last searched
    /// whole and found empty: no 8x8-pixel cell's mean brightness moved by this many grey levels
    /// (0..=255) or more. At most 15 frames in a row are skipped. 0: every frame is searched.
    pub skip_unchanged_level: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchlistConfig {
    /// State directory holding the installed watchlist (`lanewatch watchlist install --dir`).
    pub dir: PathBuf,
    /// Public key that installed watchlists must be signed with.
    pub pubkey: PathBuf,
    /// How often the installed file is checked for a change (hot reload).
    pub reload_every_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Directory of the JSONL alert journal (the record of truth).
    pub journal_dir: PathBuf,
    /// Rotate the journal when it reaches this size; keep this many rotated files.
    pub rotate_bytes: u64,
    pub keep_files: usize,
    /// One alert per person per window.
    pub cooldown_s: u64,
    /// Attach the face crop (JPEG, base64) to each alert.
    pub include_crop: bool,
    /// Optional lane-controller webhook (HTTP POST of each alert, retried from the journal).
    pub webhook_url: Option<String>,
    /// PEM file of the private CA that signed the webhook server's certificate (https:// only),
    /// trusted instead of the bundled public roots.
    pub webhook_ca_cert: Option<PathBuf>,
    /// Print each alert as a JSON line on stdout.
    pub stdout: bool,
    /// Optional GPIO line pulsed on each alert (lane light, relay); needs a build with `--features gpio`.
    pub gpio: Option<GpioLineConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLineConfig {
    /// GPIO character device, e.g. `/dev/gpiochip0`.
    pub chip: PathBuf,
    pub line: u32,
    #[serde(default)]
    pub active_low: bool,
    /// How long the line stays active per alert.
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u64,
}

fn default_pulse_ms() -> u64 {
    500
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            uri: "v4l2:/dev/video0".into(),
            lane: None,
            width: 1280,
            height: 720,
            frame_timeout_ms: 2000,
            queue_capacity: 4,
        }
    }
}

impl ModelsConfig {
    /// The bundled model files inside `dir` (`--models-dir`).
    pub fn in_dir(dir: &Path) -> Self {
        let m = crate::vision::faces::FaceModels::in_dir(dir);
        ModelsConfig {
            embedder: m.embedder,
            landmarks: m.landmarks,
            pnet: m.pnet,
            rnet: m.rnet,
            onet: m.onet,
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self::in_dir(Path::new("models"))
    }
}

impl DetectConfig {
    /// A text naming these settings, for keys of caches of what a lane saw: the form older caches
    /// were keyed with while the region is the whole frame and every frame is searched whole.
    pub fn cache_key(&self) -> String {
        let DetectConfig {
            min_face_px,
            min_match_face_px,
            region,
            full_frame_every,
            skip_unchanged_level,
        } = self;
        let mut key = format!(
            "DetectConfig {{ min_face_px: {min_face_px}, min_match_face_px: {min_match_face_px} }}"
        );
        if *region != WHOLE_FRAME {
            key.push_str(&format!(" region={region:?}"));
        }
        if *full_frame_every != 1 {
            key.push_str(&format!(" full_frame_every={full_frame_every}"));
        }
        if *skip_unchanged_level != 0.0 {
            key.push_str(&format!(" skip_unchanged_level={skip_unchanged_level}"));
        }
        key
    }

    /// The detector's settings for these: the minimum face and region set here, facenet-pytorch's
    /// thresholds and pyramid step.
    pub fn detector(&self) -> DetectorConfig {
        DetectorConfig {
            min_face: self.min_face_px as f32,
            region: self.region,
            ..DetectorConfig::default()
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            min_face_px: 40,
            min_match_face_px: 60,
            region: WHOLE_FRAME,
            full_frame_every: 4,
            skip_unchanged_level: 6.0,
        }
    }
}

impl Default for WatchlistConfig {
    fn default() -> Self {
        WatchlistConfig {
            dir: "/var/lib/lanewatch/watchlist".into(),
            pubkey: "/etc/lanewatch/watchlist.pub".into(),
            reload_every_ms: 2000,
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            journal_dir: "/var/lib/lanewatch/alerts".into(),
            rotate_bytes: 16 << 20,
            keep_files: 8,
            cooldown_s: 30,
            include_crop: true,
            webhook_url: None,
            webhook_ca_cert: None,
            stdout: true,
            gpio: None,
        }
    }
}

#[allow(clippy::derivable_impls)]
impl Default for Config {
    fn default() -> Self {
        Config {
            source: SourceConfig::default(),
            models: ModelsConfig::default(),
            detect: DetectConfig::default(),
            watchlist: WatchlistConfig::default(),
            alerts: AlertsConfig::default(),
            passage: crate::passage::PassageConfig::default(),
        }
    }
}

impl Config {
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)
            .with_context(|| format!("configuration file {} is not valid", path.display()))?;
        config
            .validate()
            .with_context(|| format!("configuration file {}", path.display()))?;
        Ok(config)
    }

    /// Largest configuration file read.
    pub const MAX_FILE_BYTES: u64 = 1 << 20;

    pub fn read(path: &Path) -> anyhow::Result<Config> {
        let text = crate::fsio::read_regular_text(path, Self::MAX_FILE_BYTES)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.passage.validate()?;
        anyhow::ensure!(
            self.source.queue_capacity >= 1,
            "source.queue_capacity must be at least 1"
        );
        anyhow::ensure!(
            self.source.queue_capacity <= 64,
            "source.queue_capacity must be at most 64"
        );
        anyhow::ensure!(
            (16..=8192).contains(&self.source.width) && (16..=8192).contains(&self.source.height),
            "source.width and source.height must be within 16..=8192"
        );
        anyhow::ensure!(
            self.source.frame_timeout_ms >= 10,
            "source.frame_timeout_ms must be at least 10"
        );
        anyhow::ensure!(
            self.detect.min_face_px >= 12,
            "detect.min_face_px must be at least 12 (MTCNN's cell)"
        );
        anyhow::ensure!(
            (1..=1000).contains(&self.detect.full_frame_every),
            "detect.full_frame_every must be within 1..=1000 (1: search every frame whole)"
        );
        anyhow::ensure!(
            self.detect.skip_unchanged_level.is_finite()
                && (0.0..=255.0).contains(&self.detect.skip_unchanged_level),
            "detect.skip_unchanged_level must be within 0..=255 grey levels (0: search every frame)"
        );
        // The detector's own rules (region fractions among them), so the two cannot drift apart.
        self.detect.detector().check().map_err(|e| {
            anyhow::anyhow!("[detect]: {e}; the whole frame is region = [0.0, 0.0, 1.0, 1.0]")
        })?;
        anyhow::ensure!(
            self.alerts.rotate_bytes >= 4096,
            "alerts.rotate_bytes must be at least 4096"
        );
        anyhow::ensure!(
            self.alerts.keep_files >= 1,
            "alerts.keep_files must be at least 1"
        );
        anyhow::ensure!(
            self.watchlist.reload_every_ms >= 100,
            "watchlist.reload_every_ms must be at least 100"
        );
        match (&self.alerts.webhook_url, &self.alerts.webhook_ca_cert) {
            (Some(url), ca) => {
                let transport = crate::http::transport_of(url)
                    .with_context(|| "alerts.webhook_url".to_string())?;
                anyhow::ensure!(
                    ca.is_none() || transport == crate::http::Transport::Tls,
                    "alerts.webhook_ca_cert is only used with an https:// alerts.webhook_url"
                );
            }
            (None, Some(_)) => {
                anyhow::bail!("alerts.webhook_ca_cert is set but alerts.webhook_url is not")
            }
            (None, None) => {}
        }
        Ok(())
    }

    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.source.frame_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        assert_eq!(
            Config::parse("", Path::new("c.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn documented_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/lanewatch.toml");
        assert_eq!(Config::read(&path).unwrap(), Config::default());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(
            Config::parse(&text, Path::new("c.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn detect_cache_keys_stay_those_of_older_caches_without_guidance() {
        let unguided = DetectConfig {
            full_frame_every: 1,
            skip_unchanged_level: 0.0,
            ..DetectConfig::default()
        };
        assert_eq!(
            unguided.cache_key(),
            "DetectConfig { min_face_px: 40, min_match_face_px: 60 }"
        );
        assert!(
            DetectConfig::default()
                .cache_key()
                .ends_with(" full_frame_every=4 skip_unchanged_level=6")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file() {
        for (text, why) in [
            ("[source]\nurl = \"x\"\n", "unknown field"),
            ("[source]\nqueue_capacity = 0\n", "queue_capacity"),
            ("[detect]\nmin_face_px = 3\n", "min_face_px"),
            ("[detect]\nfull_frame_every = 0\n", "full_frame_every"),
            (
                "[detect]\nskip_unchanged_level = -1.0\n",
                "skip_unchanged_level",
            ),
            ("[detect]\nregion = [0.5, 0.0, 0.4, 1.0]\n", "region"),
            ("[detect]\nregion = [0.0, 0.0, 1.0]\n", "region"),
            ("[alerts]\ncooldown_s = \"soon\"\n", "cooldown_s"),
            ("[alerts]\nwebhook_url = \"ftp://x/a\"\n", "webhook_url"),
            (
                "[alerts]\nwebhook_ca_cert = \"ca.pem\"\n",
                "webhook_ca_cert",
            ),
            (
                "[alerts]\nwebhook_url = \"http://x/a\"\nwebhook_ca_cert = \"ca.pem\"\n",
                "webhook_ca_cert",
            ),
        ] {
            let err = format!(
                "{:#}",
                Config::parse(text, Path::new("lane.toml")).unwrap_err()
            );
            assert!(
                err.contains("lane.toml") && err.contains(why),
                "{text:?}: {err}"
            );
        }
    }
}
