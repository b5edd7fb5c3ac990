//! Turning bytes into a trusted watchlist: envelope, key, signature, body, clock and model checks,
//! in that order. Nothing in the body is decoded before its signature has verified.

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};

use super::error::{Rejection, WatchlistError};
use super::format::{Body, Envelope, Header};
use super::keys::TrustedKeys;
use crate::vision::contract::{Metric, Role};
use crate::vision::model::{Fingerprint, ModelError, ModelFile};

/// Default allowance for a box clock running behind the issuer's.
pub const DEFAULT_CLOCK_TOLERANCE_S: u64 = 300;

/// What the box's embedder produces; a watchlist made by anything else is refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbedderId {
    pub fingerprint: Fingerprint,
    pub dim: usize,
    pub metric: Metric,
}

impl EmbedderId {
    /// Reads an embedder ONNX file's fingerprint and contract (no plan is built).
    pub fn from_model_file(path: &std::path::Path) -> Result<EmbedderId, ModelError> {
        let file = ModelFile::open(path)?;
        file.expect_role(Role::Embedder)?;
        let spec = file
            .contract
            .embedding
            .as_ref()
            .ok_or_else(|| ModelError::Shape {
                path: path.to_path_buf(),
                what: "the embedder contract has no embedding section".into(),
            })?;
        Ok(EmbedderId {
            fingerprint: file.fingerprint,
            dim: spec.dim,
            metric: spec.metric,
        })
    }
}

/// A watchlist whose signature, structure and policy checks all passed.
#[derive(Clone, Debug)]
pub struct Verified {
    pub header: Header,
    pub body: Body,
    /// sha256 of the whole file: tells two files apart without comparing bytes.
    pub file_sha256: [u8; 32],
}

/// Everything a box checks a watchlist against, except the installed sequence (the store's job).
#[derive(Clone)]
pub struct Verifier {
    pub keys: TrustedKeys,
    pub clock_tolerance_s: u64,
    /// `None` skips the model binding (a technician's laptop without the box's model).
    pub embedder: Option<EmbedderId>,
}

impl Verifier {
    pub fn new(keys: TrustedKeys) -> Verifier {
        Verifier {
            keys,
            clock_tolerance_s: DEFAULT_CLOCK_TOLERANCE_S,
            embedder: None,
        }
    }

    pub fn with_embedder(mut self, embedder: Option<EmbedderId>) -> Verifier {
        self.embedder = embedder;
        self
    }

    /// Signature and structure only: for the files already on the box, whose clock and model
    /// checks are the caller's business (rollback ordering, an expired list on a running box).
    pub fn authenticate(&self, bytes: &[u8]) -> Result<(Header, Body), Rejection> {
        let envelope = Envelope::parse(bytes)?;
        let key_id = envelope.header.key_id;
        let key = self.keys.get(key_id).ok_or_else(|| Rejection::UnknownKey {
            key_id,
            trusted: trusted_list(&self.keys),
        })?;
        let signature = Signature::from_bytes(&envelope.signature);
        key.verify_strict(envelope.signed, &signature)
            .map_err(|_| Rejection::BadSignature { key_id })?;
        let body = Body::decode(envelope.body, envelope.header.version)?;
        Ok((envelope.header, body))
    }

    /// All checks at time `now` (unix seconds).
    pub fn verify_at(&self, bytes: &[u8], now: u64) -> Result<Verified, Rejection> {
        let (header, body) = self.authenticate(bytes)?;
        self.check_policy(&body, now)?;
        Ok(Verified {
            header,
            body,
            file_sha256: Sha256::digest(bytes).into(),
        })
    }

    pub fn verify(&self, bytes: &[u8], origin: &str) -> Result<Verified, WatchlistError> {
        self.verify_at(bytes, unix_now())
            .map_err(|kind| WatchlistError::new(origin, kind))
    }

    pub fn check_policy(&self, body: &Body, now: u64) -> Result<(), Rejection> {
        if body.expires_at <= now {
            return Err(Rejection::Expired {
                expires_at: body.expires_at,
                now,
            });
        }
        if body.created_at > now.saturating_add(self.clock_tolerance_s) {
            return Err(Rejection::CreatedInFuture {
                created_at: body.created_at,
                now,
                tolerance_s: self.clock_tolerance_s,
            });
        }
        if let Some(model) = &self.embedder {
            if body.embedder != model.fingerprint {
                return Err(Rejection::WrongEmbedder {
                    file: body.embedder,
                    model: model.fingerprint,
                });
            }
            if body.dim as usize != model.dim {
                return Err(Rejection::WrongDim {
                    file: body.dim,
                    model: model.dim,
                });
            }
            if body.metric != model.metric {
                return Err(Rejection::WrongMetric {
                    file: body.metric.as_str(),
                    model: model.metric.as_str(),
                });
            }
        }
        Ok(())
    }
}

fn trusted_list(keys: &TrustedKeys) -> String {
    let ids: Vec<String> = keys.ids().map(|k| k.to_string()).collect();
    if ids.is_empty() {
        "none given".into()
    } else {
        ids.join(", ")
    }
}

/// Seconds since the Unix epoch. A clock set before 1970 reads as 0, so every list then looks
/// created in the future and is refused rather than trusted.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
