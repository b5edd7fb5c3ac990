//! Delivers alerts to the lane controller by HTTP POST (JSON body, `Idempotency-Key: <alert id>`),
//! reading them from the journal behind a persistent cursor. The cursor (`{"segment":..,"offset":..}`)
//! is replaced atomically (temp file, fsync, rename, fsync of the folder) after each accepted
//! alert, so a restart resumes exactly after the last alert the controller accepted. The one window
//! left, a crash between the controller's answer and the cursor write, repeats that single alert with
//! the same idempotency key, for the controller to drop.
//!
//! Alerts the journal could not record (full disk) are sent directly from memory and remembered, so
//! that they are not sent again when the journal catches up.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::journal::{self, Next, Position};
use super::{Alert, AlertId, AlertSink};
use crate::fsio::write_atomically;
use crate::http::{self, ClientConfig, HttpError, Transport};

/// Where and how to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://host:port/path` or `https://…` of the lane controller.
    pub url: String,
    /// PEM file of the private CA to trust instead of the bundled roots (https:// only).
    pub ca_cert: Option<PathBuf>,
    /// Limit for one request, connect included.
    pub timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How often the journal is checked when nothing wakes the worker.
    pub poll: Duration,
    /// Journal lines longer than this are skipped as bad.
    pub max_line: usize,
    /// Alerts held for direct delivery while the journal fails.
    pub max_direct: usize,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            ca_cert: None,
            timeout: Duration::from_secs(5),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_line: 4 << 20,
            max_direct: 256,
        }
    }
}

/// Why a delivery round stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("lane controller {url} did not take alert {id}: {reason}; will retry")]
    Send {
        url: String,
        id: String,
        reason: String,
    },
    #[error("cannot read the alert journal in {dir}: {source}")]
    Journal {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot save the delivery cursor {path}: {source}; alerts already sent may be repeated after a restart"
    )]
    Cursor {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("webhook: {0}")]
    Client(#[from] HttpError),
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub delivered: u64,
    pub delivered_direct: u64,
    pub failures: u64,
    /// Alerts the controller refused with a 4xx that retrying cannot fix (logged and skipped).
    pub rejected: u64,
    /// Journal lines that were not alerts.
    pub malformed: u64,
    /// Segments deleted by rotation before delivery.
    pub lost_segments: u64,
    /// Direct alerts dropped because too many were waiting.
    pub lost_direct: u64,
    /// Journal lines skipped because they had been sent directly.
    pub skipped_already_sent: u64,
}

/// The delivery state machine: journal reader, cursor, HTTP client. Driven by [`WebhookSink`]'s
/// thread, or step by step with [`Delivery::run_once`].
pub struct Delivery {
    config: WebhookConfig,
    journal_dir: PathBuf,
    cursor_path: PathBuf,
    cursor: Position,
    cursor_dirty: bool,
    agent: ureq::Agent,
    transport: Transport,
    direct: VecDeque<Alert>,
    sent_directly: VecDeque<AlertId>,
    stats: DeliveryStats,
}

const MAX_REMEMBERED: usize = 4096;

impl Delivery {
    /// Reads the cursor at `cursor_path` (none yet: start at the oldest journal line). A damaged
    /// cursor restarts from the oldest line too (repeats rather than losses); the warning says so.
    pub fn open(
        config: WebhookConfig,
        journal_dir: &Path,
        cursor_path: &Path,
    ) -> Result<(Self, Option<String>), WebhookError> {
        let (agent, transport) = http::agent(&ClientConfig {
            url: &config.url,
            timeout: config.timeout,
            ca_cert: config.ca_cert.as_deref(),
        })?;
        if let Some(parent) = cursor_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| WebhookError::Cursor {
                path: cursor_path.to_path_buf(),
                source,
            })?;
        }
        let (cursor, warning) = match fs::read(cursor_path) {
            Ok(bytes) => match serde_json::from_slice::<Position>(&bytes) {
                Ok(p) => (p, None),
                Err(e) => (
                    Position::default(),
                    Some(format!(
                        "delivery cursor {} is damaged ({e}); delivering the journal from its oldest alert",
                        cursor_path.display()
                    )),
                ),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Position::default(), None),
            Err(source) => {
                return Err(WebhookError::Cursor {
                    path: cursor_path.to_path_buf(),
                    source,
                });
            }
        };
        Ok((
            Delivery {
                config,
                journal_dir: journal_dir.to_path_buf(),
                cursor_path: cursor_path.to_path_buf(),
                cursor,
                cursor_dirty: false,
                agent,
                transport,
                direct: VecDeque::new(),
                sent_directly: VecDeque::new(),
                stats: DeliveryStats::default(),
            },
            warning,
        ))
    }

    /// Whether the controller is authenticated (https) or not (plain http).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn cursor(&self) -> Position {
        self.cursor
    }

    pub fn stats(&self) -> DeliveryStats {
        self.stats
    }

    /// Queues an alert the journal could not record, for delivery from memory.
    pub fn push_direct(&mut self, alert: Alert) {
        if self.direct.len() >= self.config.max_direct.max(1) {
            self.direct.pop_front();
            self.stats.lost_direct += 1;
        }
        self.direct.push_back(alert);
    }

    /// Sends what is waiting: direct alerts first, then journal lines after the cursor. Returns
    /// the number delivered, or the error that stopped the round (retry later).
    pub fn run_once(&mut self) -> Result<usize, WebhookError> {
        let mut delivered = 0;
        if self.cursor_dirty {
            self.save_cursor()?;
        }
        while let Some(alert) = self.direct.front().cloned() {
            match self.post(&alert) {
                Ok(()) => self.stats.delivered_direct += 1,
                Err(Verdict::Rejected(reason)) => {
                    self.stats.rejected += 1;
                    eprintln!(
                        "lanewatch: webhook rejected alert {}: {reason}; skipped",
                        alert.id
                    );
                }
                Err(Verdict::Retry(reason)) => return Err(self.send_error(&alert.id, reason)),
            }
            self.direct.pop_front();
            if self.sent_directly.len() >= MAX_REMEMBERED {
                self.sent_directly.pop_front();
            }
            self.sent_directly.push_back(alert.id);
            delivered += 1;
        }
        loop {
            let next = journal::read_next(&self.journal_dir, self.cursor, self.config.max_line)
                .map_err(|source| WebhookError::Journal {
                    dir: self.journal_dir.clone(),
                    source,
                })?;
            match next {
                Next::Idle => return Ok(delivered),
                Next::Moved { to, lost_segments } => {
                    if lost_segments > 0 {
                        self.stats.lost_segments += lost_segments;
                        eprintln!(
                            "lanewatch: {lost_segments} journal segment(s) were rotated away before delivery to {}",
                            self.config.url
                        );
                    }
                    self.advance(to)?;
                }
                // Episode records stay on the box: the webhook carries alerts.
                Next::Record { next, .. } => self.advance(next)?,
                Next::Line {
                    alert: Err(reason),
                    next,
                } => {
                    self.stats.malformed += 1;
                    eprintln!(
                        "lanewatch: skipping journal line at segment {} offset {}: {reason}",
                        self.cursor.segment, self.cursor.offset
                    );
                    self.advance(next)?;
                }
                Next::Line {
                    alert: Ok(alert),
                    next,
                } => {
                    if let Some(i) = self.sent_directly.iter().position(|id| *id == alert.id) {
                        self.sent_directly.remove(i);
                        self.stats.skipped_already_sent += 1;
                    } else {
                        match self.post(&alert) {
                            Ok(()) => {
                                self.stats.delivered += 1;
                                delivered += 1;
                            }
                            Err(Verdict::Rejected(reason)) => {
                                self.stats.rejected += 1;
                                eprintln!(
                                    "lanewatch: webhook rejected alert {}: {reason}; skipped",
                                    alert.id
                                );
                            }
                            Err(Verdict::Retry(reason)) => {
                                return Err(self.send_error(&alert.id, reason));
                            }
                        }
                    }
                    self.advance(next)?;
                }
            }
        }
    }

    fn send_error(&mut self, id: &AlertId, reason: String) -> WebhookError {
        self.stats.failures += 1;
        WebhookError::Send {
            url: self.config.url.clone(),
            id: id.to_string(),
            reason,
        }
    }

    fn post(&self, alert: &Alert) -> Result<(), Verdict> {
        let body = serde_json::to_vec(alert)
            .map_err(|e| Verdict::Rejected(format!("cannot encode: {e}")))?;
        let response = self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", alert.id.0.as_str())
            .send(&body[..])
            .map_err(|e| Verdict::Retry(http::describe(&e)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            408 | 425 | 429 => Err(Verdict::Retry(format!("HTTP {status}"))),
            400..=499 => Err(Verdict::Rejected(format!("HTTP {status}"))),
            _ => Err(Verdict::Retry(format!("HTTP {status}"))),
        }
    }

    fn advance(&mut self, to: Position) -> Result<(), WebhookError> {
        self.cursor = to;
        self.cursor_dirty = true;
        self.save_cursor()
    }

    fn save_cursor(&mut self) -> Result<(), WebhookError> {
        let err = |source| WebhookError::Cursor {
            path: self.cursor_path.clone(),
            source,
        };
        write_atomically(
            &self.cursor_path,
            &serde_json::to_vec(&self.cursor)
                .map_err(io::Error::other)
                .map_err(err)?,
        )
        .map_err(err)?;
        self.cursor_dirty = false;
        Ok(())
    }
}

enum Verdict {
    Retry(String),
    Rejected(String),
}

enum Msg {
    Wake,
    Direct(Box<Alert>),
}

/// The webhook as an [`AlertSink`]: a background thread runs [`Delivery`], woken by each alert,
/// retrying with exponential back-off while the controller is unreachable.
pub struct WebhookSink {
    tx: Option<SyncSender<Msg>>,
    worker: Option<JoinHandle<()>>,
    stats: Arc<Mutex<DeliveryStats>>,
}

impl WebhookSink {
    pub fn spawn(mut delivery: Delivery) -> Self {
        if delivery.transport() == Transport::Plain {
            eprintln!(
                "lanewatch: webhook {} is plain http://: alerts travel unauthenticated and unencrypted",
                delivery.config.url
            );
        }
        let (tx, rx) = mpsc::sync_channel::<Msg>(64);
        let stats = Arc::new(Mutex::new(delivery.stats()));
        let shared = Arc::clone(&stats);
        let worker = std::thread::Builder::new()
            .name("lanewatch-webhook".into())
            .spawn(move || {
                let config = delivery.config.clone();
                let mut backoff = config.retry_min;
                loop {
                    let (wait, backing_off) = match delivery.run_once() {
                        Ok(_) => {
                            backoff = config.retry_min;
                            (config.poll, false)
                        }
                        Err(e) => {
                            eprintln!("lanewatch: webhook: {e}");
                            let wait = backoff;
                            backoff = (backoff * 2).min(config.retry_max);
                            (wait, true)
                        }
                    };
                    *shared.lock().unwrap_or_else(|e| e.into_inner()) = delivery.stats();
                    // Sleep until `wait` has passed or an alert arrives (direct alerts are queued
                    // but do not cut a back-off short, so a dead controller is not hammered).
                    let deadline = Instant::now() + wait;
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(Msg::Direct(alert)) => {
                                delivery.push_direct(*alert);
                                if !backing_off {
                                    break;
                                }
                            }
                            Ok(Msg::Wake) => {
                                if !backing_off {
                                    break;
                                }
                            }
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => {
                                // Last round before exit, so that queued alerts get a chance.
                                let _ = delivery.run_once();
                                *shared.lock().unwrap_or_else(|e| e.into_inner()) =
                                    delivery.stats();
                                return;
                            }
                        }
                    }
                }
            })
            .ok();
        WebhookSink {
            tx: Some(tx),
            worker,
            stats,
        }
    }

    /// Counters as of the worker's last round.
    pub fn stats(&self) -> DeliveryStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AlertSink for WebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    fn deliver(&mut self, alert: &Alert, journaled: bool) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("webhook worker stopped".into());
        };
        if self.worker.is_none() {
            return Err("webhook worker could not be started".into());
        }
        let msg = if journaled {
            Msg::Wake
        } else {
            Msg::Direct(Box::new(alert.clone()))
        };
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            // A full channel already holds wake-ups; the journal has the alert.
            Err(TrySendError::Full(Msg::Wake)) => Ok(()),
            Err(TrySendError::Full(Msg::Direct(_))) => {
                Err("webhook queue full; alert not journaled and not queued".into())
            }
            Err(TrySendError::Disconnected(_)) => Err("webhook worker stopped".into()),
        }
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
