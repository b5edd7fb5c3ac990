//! `lanewatch sync`: fetch the issuer's watchlist from any static web server and install it.
//!
//! One GET with `If-None-Match` (304 = nothing to do), the body read with a size cap, verified in
//! memory, then installed atomically by the store. Transport failures and 5xx/408/429 answers are
//! retried with exponential back-off; a file that fails verification is not (fetching it again
//! would not make it valid), nor is a refused TLS certificate.
//!
//! `https://` is verified against the bundled roots or a private CA (see [`crate::http`]); plain
//! `http://` still works because the signature, not the transport, makes the file trustworthy.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::format::MAX_FILE_LEN;
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
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] HttpError),
    #[error("fetching {url} failed: {why}")]
    Transport { url: String, why: String },
    #[error("fetching {url} failed: {why}")]
    Certificate { url: String, why: String },
    #[error("fetching {url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Whether trying again later could succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Transport { .. } => true,
            SyncError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            SyncError::Client(_) | SyncError::Certificate { .. } | SyncError::Store(_) => false,
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
            } else {
                SyncError::Transport { url, why }
            }
        };
        let mut request = self.agent.get(url);
        if let Some(etag) = self.store.etag()? {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request.call().map_err(transport)?;
        let status = response.status().as_u16();
        if status == 304 {
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
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_FILE_LEN)
            .read_to_vec()
            .map_err(transport)?;
        let outcome = match self.store.install(&bytes, url, &self.verifier, now)? {
            Installed::Unchanged { sequence } => SyncOutcome::Unchanged { sequence },
            Installed::Replaced { from, to } => SyncOutcome::Installed { from, to },
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
