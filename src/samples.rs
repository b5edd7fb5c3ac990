//! The bundled demo samples (`samples/`, public-domain images from registry packages; see
//! `samples/README.md`) and the throwaway signed watchlist `lanewatch demo` and `lanewatch bench`
//! enrol them into.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Config, ModelsConfig};

use crate::enrollment::{ListTerms, PhotoRules, enrol_folder, sign_watchlist};
use crate::vision::detect::DetectorConfig;
use crate::vision::faces::{FaceAnalyzer, FaceModels};
use crate::watchlist::format::{DecisionMode, Severity, Thresholds, Views};
use crate::watchlist::keys::{generate, read_signing_key};
use crate::watchlist::verify::unix_now;
use crate::watchlist::{EmbedderId, Store, TrustedKeys, Verifier};

/// The samples folder of this source tree.
pub fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// The models folder of this source tree.
pub fn bundled_models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The bundled lane clip, as a source spec.
pub fn clip_spec(samples: &Path) -> String {
    format!("mjpeg:{}", samples.join("lane_clip.mjpeg").display())
}

/// A demo watchlist installed in a state directory, and the key that signed it.
pub struct DemoWatchlist {
    pub state_dir: PathBuf,
    pub pubkey: PathBuf,
    pub people: usize,
    pub sequence: u64,
}

/// The `lanewatch run` configuration that plays `source` against an installed demo list, with the
/// models from `models_dir` and the alert journal in `work/alerts` (alerts not echoed on stdout).
pub fn demo_config(source: String, models_dir: &Path, list: &DemoWatchlist, work: &Path) -> Config {
    let mut config = Config::default();
    config.source.uri = source;
    config.models = ModelsConfig::in_dir(models_dir);
    config.watchlist.dir = list.state_dir.clone();
    config.watchlist.pubkey = list.pubkey.clone();
    config.alerts.journal_dir = work.join("alerts");
    config.alerts.stdout = false;
    config
}

/// Enrols `samples/watchlist/<person>/` with a fresh key into `work/state`, the way a technician
/// would (keygen, enroll, install), and returns where it went.
pub fn install_demo_watchlist(
    samples: &Path,
    models: &FaceModels,
    work: &Path,
    views: Views,
) -> anyhow::Result<DemoWatchlist> {
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let secret = work.join("demo-key");
    let (verifying, pubkey) = generate(&secret)?;
    let key = read_signing_key(&secret)?;
    let embedder = EmbedderId::from_model_file(&models.embedder)?;
    let mut analyzer = FaceAnalyzer::open(models, 640, 480, DetectorConfig::default())?;
    analyzer.set_augmentation(views.augmentation());
    let threshold = analyzer.embedder().spec().threshold;
    let people = enrol_folder(
        &mut analyzer,
        &samples.join("watchlist"),
        &PhotoRules::new(80.0, threshold),
    )?
    .all_or_error()?;
    let now = unix_now();
    let terms = ListTerms {
        embedder,
        thresholds: Thresholds {
            max_distance: threshold,
            min_margin: 0.0,
        },
        sequence: 1,
        created_at: now,
        expires_at: now + 86_400,
        list: "demo".into(),
        severity: Severity::High,
        views,
        decision: DecisionMode::Passage,
    };
    let bytes = sign_watchlist(&people, &terms, &key)?;
    let state_dir = work.join("state");
    let store = Store::open(&state_dir)?;
    let verifier = Verifier::new(TrustedKeys::new().with(verifying)).with_embedder(Some(embedder));
    store.install(&bytes, "demo watchlist", &verifier, now)?;
    Ok(DemoWatchlist {
        state_dir,
        pubkey,
        people: people.len(),
        sequence: terms.sequence,
    })
}
