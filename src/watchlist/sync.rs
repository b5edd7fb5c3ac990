//! `lanewatch sync`: fetch the issuer's watchlist from any static web server and install it.
//!
//! One GET with `If-None-Match` (304 = nothing to do; a 304 to a request without it is an error),
//! the body streamed with a size cap: a Content-Length over the cap is refused before reading, and
//! the 22-byte envelope header is checked first (magic, version, length), so a wrong or oversized
//! file costs at most 22 bytes and memory stays proportional to the file's own declared length.
//! The file is verified in memory, then installed atomically by the store. Transport failures
//! (connect, DNS, timeouts, I/O) and 5xx/408/429 answers are retried with exponential back-off;
//! what cannot succeed by trying again is not: a file that fails verification, a refused TLS
//! certificate, a malformed URL or HTTP answer, a redirect loop or a bad redirect.
//!
//! `https://` is verified against the bundled roots or a private CA (see [`crate::http`]); plain
//! `http://` still works because the signature, not the transport, makes the file trustworthy.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{Rejection, WatchlistError};
use super::format::{Envelope, HEADER_LEN, MAX_FILE_LEN, SIGNATURE_LEN};
use super::store::{Installed, Store, StoreError};
use super::verify::{Verifier, unix_now};
use crate::http::{self, ClientConfig, HttpError, Transport};

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub url: String,
    /// Whole-request limit: a stalled server must not hold the box's sync forever.
    pub timeout: Duration,
    /// Attempts after the first one, for transient failures.
    pub retries: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// PEM file of the private CA to trust instead of the bundled roots (https:// only).
    pub ca_cert: Option<PathBuf>,
}

impl SyncConfig {
    pub fn new(url: impl Into<String>) -> SyncConfig {
        SyncConfig {
            url: url.into(),
            timeout: Duration::from_secs(60),
            retries: 4,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            ca_cert: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The server answered 304 Not Modified.
    NotModified,
    /// The server sent the file that is already active.
    Unchanged {
        sequence: u64,
    },
    Installed {
        from: Option<u64>,
        to: u64,
    },
    /// The server's list is at or below the sequence a rollback holds back; not installed.
    Held {
        sequence: u64,
        hold: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] HttpError),
    #[error("fetching {url} failed: {why}")]
    Transport { url: String, why: String },
    /// A failure that trying again cannot fix (bad URL, malformed HTTP, redirect loop, ...).
    #[error("fetching {url} failed: {why}")]
    Permanent { url: String, why: String },
    #[error("fetching {url} failed: {why}")]
    Certificate { url: String, why: String },
    #[error("fetching {url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "fetching {url}: the server answered 304 Not Modified although no If-None-Match was sent (this box has no ETag for its active list); the server or a proxy is misbehaving"
    )]
    UnexpectedNotModified { url: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Whether trying again later could succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Transport { .. } => true,
            SyncError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            SyncError::Client(_)
            | SyncError::Permanent { .. }
            | SyncError::UnexpectedNotModified { .. }
            | SyncError::Certificate { .. }
            | SyncError::Store(_) => false,
        }
    }
}

pub struct Syncer {
    agent: ureq::Agent,
    transport: Transport,
    config: SyncConfig,
    store: Store,
    verifier: Verifier,
}

impl Syncer {
    pub fn new(config: SyncConfig, store: Store, verifier: Verifier) -> Result<Syncer, SyncError> {
        let (agent, transport) = http::agent(&ClientConfig {
            url: &config.url,
            timeout: config.timeout,
            ca_cert: config.ca_cert.as_deref(),
        })?;
        Ok(Syncer {
            agent,
            transport,
            config,
            store,
            verifier,
        })
    }

    /// Whether the server is authenticated (https) or not (plain http).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One GET, verify and install.
    pub fn fetch_once(&self, now: u64) -> Result<SyncOutcome, SyncError> {
        let url = &self.config.url;
        let transport = |e: ureq::Error| {
            let why = http::describe(&e);
            let url = url.clone();
            if http::is_certificate_error(&e) {
                SyncError::Certificate { url, why }
            } else if http::is_transient(&e) {
                SyncError::Transport { url, why }
            } else {
                SyncError::Permanent { url, why }
            }
        };
        let refused =
            |kind: Rejection| SyncError::Store(WatchlistError::new(url.clone(), kind).into());
        let mut request = self.agent.get(url);
        let sent_etag = self.store.etag()?;
        if let Some(etag) = &sent_etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        if status == 304 {
            if sent_etag.is_none() {
                return Err(SyncError::UnexpectedNotModified { url: url.clone() });
            }
            return Ok(SyncOutcome::NotModified);
        }
        if status != 200 {
            return Err(SyncError::Status {
                url: url.clone(),
                status,
            });
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(str::to_string);
        let content_length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = content_length
            && len > MAX_FILE_LEN
        {
            return Err(refused(Rejection::TooLarge {
                size: len,
                max: MAX_FILE_LEN,
            }));
        }
        // The body as a stream: ureq's own limit is the file cap, ours is the declared length.
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(MAX_FILE_LEN + 1)
            .reader();
        let read_err = |e: std::io::Error| SyncError::Transport {
            url: url.clone(),
            why: format!("reading the body: {e}"),
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        (&mut reader)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        // Magic, version and length before anything else is read. A short body is left to the
        // envelope check below (truncated).
        let need = if bytes.len() == HEADER_LEN {
            let mut probe = bytes.clone();
            probe.resize(HEADER_LEN + SIGNATURE_LEN, 0);
            match Envelope::parse(&probe) {
                Ok(_) | Err(Rejection::Truncated { .. }) | Err(Rejection::TrailingBytes { .. }) => {
                    let body_len = u32::from_le_bytes([bytes[18], bytes[19], bytes[20], bytes[21]]);
                    HEADER_LEN as u64 + body_len as u64 + SIGNATURE_LEN as u64
                }
                Err(kind) => return Err(refused(kind)),
            }
        } else {
            HEADER_LEN as u64
        };
        if let Some(len) = content_length
            && len != need
        {
            return Err(refused(if len < need {
                Rejection::Truncated { need, have: len }
            } else {
                Rejection::TrailingBytes { extra: len - need }
            }));
        }
        // One byte more than declared, to tell trailing bytes from an exact file.
        let remaining = (need + 1).saturating_sub(bytes.len() as u64);
        bytes.reserve(remaining.min(1 << 20) as usize);
        reader
            .take(remaining)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let outcome = match self.store.install(&bytes, url, &self.verifier, now)? {
            Installed::Unchanged { sequence } => SyncOutcome::Unchanged { sequence },
            Installed::Replaced { from, to } => SyncOutcome::Installed { from, to },
            Installed::Held { sequence, hold } => return Ok(SyncOutcome::Held { sequence, hold }),
        };
        match etag {
            Some(etag) => self.store.set_etag(&etag, &Sha256::digest(&bytes).into())?,
            None => self.store.clear_etag()?,
        }
        Ok(outcome)
    }

    /// [`Syncer::fetch_once`] with retries on transient failures; `sleep` waits between tries
    /// (injected so tests do not wait for real).
    pub fn sync(&self, sleep: &mut dyn FnMut(Duration)) -> Result<SyncOutcome, SyncError> {
        self.sync_with_clock(&unix_now, sleep)
    }

    /// [`Syncer::sync`] with the clock (unix seconds) given.
    pub fn sync_with_clock(
        &self,
        now: &dyn Fn() -> u64,
        sleep: &mut dyn FnMut(Duration),
    ) -> Result<SyncOutcome, SyncError> {
        let mut backoff = self.config.first_backoff;
        let mut attempt = 0;
        loop {
            match self.fetch_once(now()) {
                Err(e) if e.is_transient() && attempt < self.config.retries => {
                    attempt += 1;
                    eprintln!(
                        "lanewatch sync: {e}; retry {attempt}/{} in {backoff:?}",
                        self.config.retries
                    );
                    sleep(backoff);
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
                other => return other,
            }
        }
    }
}
