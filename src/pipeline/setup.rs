//! Builds a runnable lane from the configuration: opens the source, loads the models, prepares
//! the watchlist watcher and the alert destinations. Every failure names the setting to fix.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::alerting::dispatcher_from_config;
use super::capture::Pacing;
use super::lane::{Lane, LaneSettings};
use super::run::LaneRig;
use super::watch::{Watcher, WatchlistSlot};
use crate::camera::reconnect::{ReconnectEvent, ReconnectPolicy, reconnecting};
use crate::camera::{CaptureConfig, FrameSource, SourceSpec};
use crate::config::Config;
use crate::vision::faces::{FaceAnalyzer, FaceModels};
use crate::watchlist::{EmbedderId, Store, TrustedKeys, Verifier};

/// The models a configuration names.
pub fn face_models(config: &Config) -> FaceModels {
    let m = &config.models;
    FaceModels {
        pnet: m.pnet.clone(),
        rnet: m.rnet.clone(),
        onet: m.onet.clone(),
        landmarks: m.landmarks.clone(),
        embedder: m.embedder.clone(),
    }
}

/// Opens the configured source. A camera is wrapped so that it reconnects by itself (and a camera
/// missing at start is waited for); folders and recordings are replayed frame by frame.
pub fn open_source(
    config: &Config,
    reconnects: Arc<AtomicU64>,
) -> anyhow::Result<(Box<dyn FrameSource>, Pacing)> {
    let spec: SourceSpec = config
        .source
        .uri
        .parse()
        .context("source.uri (or --source)")?;
    let capture = CaptureConfig {
        width: config.source.width,
        height: config.source.height,
        ..CaptureConfig::default()
    };
    Ok(match spec {
        SourceSpec::V4l2 { .. } => {
            let source = reconnecting(spec, capture, ReconnectPolicy::default()).on_event(
                move |name, event| {
                    if matches!(event, ReconnectEvent::Closed { .. }) {
                        reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    eprintln!("lanewatch: camera {name}: {event:?}");
                },
            );
            (Box::new(source) as Box<dyn FrameSource>, Pacing::Live)
        }
        SourceSpec::Frames { .. } | SourceSpec::Mjpeg { .. } => (
            spec.open(&capture).map_err(anyhow::Error::new)?,
            Pacing::Replay,
        ),
    })
}

/// The watcher for `config.watchlist.dir`, which is either a state directory (as written by
/// `lanewatch watchlist install` and `sync`) or a single signed watchlist file.
pub fn watcher(config: &Config) -> anyhow::Result<Watcher> {
    let w = &config.watchlist;
    let store = if w.dir.is_file() {
        Store::for_file(&w.dir)?
    } else {
        Store::open(&w.dir).with_context(|| {
            format!(
                "watchlist.dir {} (or --watchlist): cannot open the state directory",
                w.dir.display()
            )
        })?
    };
    let keys = TrustedKeys::from_files(std::slice::from_ref(&w.pubkey))
        .with_context(|| format!("watchlist.pubkey {} (or --pubkey)", w.pubkey.display()))?;
    let embedder = EmbedderId::from_model_file(&config.models.embedder)?;
    Ok(Watcher::new(
        store,
        Verifier::new(keys).with_embedder(Some(embedder)),
    ))
}

/// The whole lane as configured.
pub fn lane_from_config(config: &Config) -> anyhow::Result<LaneRig> {
    config.validate()?;
    let reconnects = Arc::new(AtomicU64::new(0));
    let (source, pacing) = open_source(config, reconnects.clone())?;
    let models = face_models(config);
    let mut analyzer = FaceAnalyzer::open(
        &models,
        config.source.width,
        config.source.height,
        config.detect.detector(),
    )
    .context("loading the face models named in [models]")?;
    analyzer.guide_detection(
        config.detect.full_frame_every,
        config.detect.skip_unchanged_level,
    );
    let watcher = watcher(config)?;
    let dispatcher = dispatcher_from_config(&config.alerts)?;
    let lane = Lane::new(
        analyzer,
        Arc::new(WatchlistSlot::default()),
        dispatcher,
        LaneSettings {
            camera: config
                .source
                .lane
                .clone()
                .unwrap_or_else(|| config.source.uri.clone()),
            min_match_face_px: config.detect.min_match_face_px as f32,
            include_crop: config.alerts.include_crop,
            passage: config.passage.clone(),
        },
    );
    Ok(LaneRig {
        source,
        pacing,
        frame_timeout: config.frame_timeout(),
        queue_capacity: config.source.queue_capacity,
        lane,
        watcher: Some(watcher),
        reload_every: Duration::from_millis(config.watchlist.reload_every_ms),
        reconnects,
    })
}
