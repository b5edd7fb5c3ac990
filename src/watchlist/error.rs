//! Why a watchlist file was refused: one variant per check, each saying what to do about it.

use crate::vision::model::Fingerprint;

use super::keys::KeyId;

/// A refused watchlist, naming where it came from (a path or a URL).
#[derive(Debug, thiserror::Error)]
#[error("watchlist {origin}: {kind}")]
pub struct WatchlistError {
    pub origin: String,
    pub kind: Rejection,
}

impl WatchlistError {
    pub fn new(origin: impl Into<String>, kind: Rejection) -> WatchlistError {
        WatchlistError {
            origin: origin.into(),
            kind,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("cannot read it: {0}")]
    Io(#[source] std::io::Error),
    #[error(
        "it does not start with the watchlist magic bytes: it is not a lanewatch watchlist (or it is corrupted)"
    )]
    BadMagic,
    #[error(
        "it is format version {found}, this lanewatch reads versions 1 to {supported}; re-issue it with a matching `lanewatch` or update the box"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error(
        "it is truncated: {have} bytes, the header says {need}; the download or copy was cut short, fetch it again"
    )]
    Truncated { need: u64, have: u64 },
    #[error(
        "it has {extra} unexpected bytes after the signature; the file was altered or concatenated, fetch it again"
    )]
    TrailingBytes { extra: u64 },
    #[error("it is {size} bytes, over the {max}-byte limit for a watchlist")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "it was signed with key {key_id}, which is not among the trusted keys ({trusted}); pass the right --pubkey"
    )]
    UnknownKey { key_id: KeyId, trusted: String },
    #[error(
        "its signature does not verify with key {key_id}: the file was modified after signing or is corrupted; do not use it"
    )]
    BadSignature { key_id: KeyId },
    #[error("its signed body is malformed: {0}; the issuing tool is broken, report it")]
    Malformed(String),
    #[error(
        "its sequence number {sequence} is not greater than the installed watchlist's {installed}: refusing a rollback (an operator can roll back with `lanewatch watchlist rollback`)"
    )]
    Rollback { sequence: u64, installed: u64 },
    #[error(
        "it expired at {expires_at} (unix seconds), the clock says {now}; issue a fresh watchlist (or check the box's clock)"
    )]
    Expired { expires_at: u64, now: u64 },
    #[error(
        "it was created at {created_at} (unix seconds), more than {tolerance_s} s after the box's clock {now}; check the clock of the box or of the issuer"
    )]
    CreatedInFuture {
        created_at: u64,
        now: u64,
        tolerance_s: u64,
    },
    #[error(
        "it was made by embedder {file}, but this box runs embedder {model}; re-enrol the watchlist with the box's model"
    )]
    WrongEmbedder {
        file: Fingerprint,
        model: Fingerprint,
    },
    #[error(
        "its embeddings have {file} dimensions, the box's embedder outputs {model}; re-enrol the watchlist with the box's model"
    )]
    WrongDim { file: u32, model: usize },
    #[error(
        "it compares embeddings by {file} distance, the box's embedder contract says {model}; re-enrol the watchlist with the box's model"
    )]
    WrongMetric {
        file: &'static str,
        model: &'static str,
    },
}
