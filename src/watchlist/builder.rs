//! Building and signing a watchlist from embeddings already computed (by `lanewatch enroll`).

use ed25519_dalek::{Signer, SigningKey};

use super::error::Rejection;
use super::format::{Body, DecisionMode, Entry, Thresholds, Views, encode_header};
use super::keys::KeyId;
use super::verify::EmbedderId;

/// Collects entries, then validates and signs them into file bytes. The same validation the
/// reader applies runs here, so an issuer cannot produce a file that boxes will refuse as malformed.
pub struct WatchlistBuilder {
    body: Body,
}

impl WatchlistBuilder {
    pub fn new(
        embedder: EmbedderId,
        thresholds: Thresholds,
        sequence: u64,
        created_at: u64,
        expires_at: u64,
    ) -> WatchlistBuilder {
        WatchlistBuilder {
            body: Body {
                sequence,
                created_at,
                expires_at,
                embedder: embedder.fingerprint,
                // Out-of-range dims are refused by `validate` at signing time.
                dim: u32::try_from(embedder.dim).unwrap_or(u32::MAX),
                metric: embedder.metric,
                thresholds,
                entries: Vec::new(),
                views: Views::Chip,
                decision: DecisionMode::Frame,
            },
        }
    }

    /// Records what the threshold was calibrated for; lanes loading the list decide that way.
    pub fn decision(&mut self, decision: DecisionMode) -> &mut WatchlistBuilder {
        self.body.decision = decision;
        self
    }

    /// Records how every embedding was made; lanes loading the list describe faces the same way.
    pub fn views(&mut self, views: Views) -> &mut WatchlistBuilder {
        self.body.views = views;
        self
    }

    /// Adds one person; checked with the rest of the list in [`WatchlistBuilder::sign`].
    pub fn add(&mut self, entry: Entry) -> &mut WatchlistBuilder {
        self.body.entries.push(entry);
        self
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Validates, encodes and signs. Returns the complete file.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, Rejection> {
        sign_body(&self.body, key)
    }
}

/// Encodes `body` into a signed file.
pub fn sign_body(body: &Body, key: &SigningKey) -> Result<Vec<u8>, Rejection> {
    let encoded = body.encode()?;
    let len = u32::try_from(encoded.len()).map_err(|_| Rejection::TooLarge {
        size: encoded.len() as u64,
        max: u32::MAX as u64,
    })?;
    let key_id = KeyId::of(&key.verifying_key());
    let mut file = Vec::with_capacity(super::format::HEADER_LEN + encoded.len() + 64);
    file.extend_from_slice(&encode_header(key_id, body.version(), len));
    file.extend_from_slice(&encoded);
    let signature = key.sign(&file);
    file.extend_from_slice(&signature.to_bytes());
    Ok(file)
}
