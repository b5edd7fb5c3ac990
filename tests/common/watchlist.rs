//! Shared fixtures for the watchlist tests: a seeded RNG for synthetic embeddings (never a model's
//! output), fixed keys, and scratch directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use lanewatch::rng::SplitMix64;
use lanewatch::vision::contract::Metric;
use lanewatch::vision::model::Fingerprint;
use lanewatch::watchlist::format::{Body, DecisionMode, Entry, Severity, Thresholds, Views};
use lanewatch::watchlist::{EmbedderId, TrustedKeys, Verifier, builder};

/// A fixed "now" (2027-01-15) so that tests do not depend on the machine's clock.
pub const NOW: u64 = 1_800_000_000;
pub const DAY: u64 = 86_400;
pub const DIM: usize = 16;

/// Seeded synthetic descriptors.
pub struct Rng(pub SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }
    pub fn vector(&mut self, dim: usize, sigma: f32) -> Vec<f32> {
        (0..dim).map(|_| sigma * self.0.gaussian_f32()).collect()
    }
}

pub fn signer() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub fn other_signer() -> SigningKey {
    SigningKey::from_bytes(&[43; 32])
}

pub fn embedder() -> EmbedderId {
    EmbedderId {
        fingerprint: Fingerprint::of(b"the box's embedder"),
        dim: DIM,
        metric: Metric::Euclidean,
    }
}

pub fn verifier() -> Verifier {
    Verifier::new(TrustedKeys::new().with(signer().verifying_key())).with_embedder(Some(embedder()))
}

pub fn body(sequence: u64, entries: usize) -> Body {
    let e = embedder();
    let mut rng = Rng::new(sequence * 1000 + entries as u64);
    Body {
        sequence,
        created_at: NOW - DAY,
        expires_at: NOW + 30 * DAY,
        embedder: e.fingerprint,
        dim: DIM as u32,
        metric: e.metric,
        thresholds: Thresholds {
            max_distance: 0.6,
            min_margin: 0.05,
        },
        entries: (0..entries)
            .map(|i| Entry {
                id: format!("person-{i}"),
                display_name: format!("Person {i}"),
                list: "test".into(),
                severity: Severity::High,
                embeddings: (0..1 + i % 3).map(|_| rng.vector(DIM, 0.1)).collect(),
                photo_sha256: vec![[i as u8; 32]],
            })
            .collect(),
        views: Views::Chip,
        decision: DecisionMode::Frame,
    }
}

pub fn sign(body: &Body, key: &SigningKey) -> Vec<u8> {
    builder::sign_body(body, key).expect("valid test body")
}

pub fn file(sequence: u64) -> Vec<u8> {
    sign(&body(sequence, 5), &signer())
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(super::temp_dir(tag))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
