//! From a matched face to an [`Alert`], and the alert destinations a configuration asks for.

use std::time::Duration;

use anyhow::Context;
use image::RgbImage;

use crate::alerts::cooldown::Cooldown;
use crate::alerts::dispatch::Dispatcher;
use crate::alerts::journal::{Journal, JournalConfig};
use crate::alerts::webhook::{Delivery, WebhookConfig, WebhookSink};
use crate::alerts::{
    Alert, Crop, FrameInfo, Identity, JsonLinesSink, MatchScores, PassageInfo, encode_jpeg, time,
};
use crate::config::AlertsConfig;
use crate::passage::PassageMatch;
use crate::watchlist::LoadedWatchlist;

/// JPEG quality of face crops: enough to recognise a face, small enough for a journal line.
const CROP_QUALITY: u8 = 85;
/// Context kept around the detector box in a crop, as a fraction of the box side.
const CROP_CONTEXT: f32 = 0.25;

/// The alert for a passage that matched on `list`: identity and scores of the decision; face,
/// frame and crop of the passage's best shot so far.
pub fn alert_for_passage(
    camera: &str,
    list: &LoadedWatchlist,
    m: &PassageMatch,
    include_crop: bool,
) -> Option<Alert> {
    let entry = list.body().entries.get(m.scores.entry)?;
    let shot = &m.best_shot;
    let mut alert = Alert::new(
        camera,
        Identity {
            id: entry.id.clone(),
            name: entry.display_name.clone(),
            list: entry.list.clone(),
            severity: entry.severity.as_str().to_string(),
        },
        MatchScores {
            distance: m.scores.distance,
            similarity: m.scores.similarity,
            margin: m.scores.margin.is_finite().then_some(m.scores.margin),
        },
        shot.face_box(),
        FrameInfo {
            seq: shot.frame_seq,
            time_unix_ms: time::unix_millis(shot.frame_time),
            width: shot.frame_size.0,
            height: shot.frame_size.1,
        },
    );
    alert.passage = Some(PassageInfo {
        track: m.track,
        decision: m.mode.as_str().to_string(),
        faces_used: m.faces_used,
        combined_distance: m.scores.distance,
        best_single_distance: m.best_single.as_ref().map(|b| b.distance),
        best_shot_quality: shot.quality,
        at_track_end: m.at_track_end,
    });
    if include_crop
        && let Some(crop) = &shot.crop
        && let Ok(jpeg) = encode_jpeg(crop, CROP_QUALITY)
    {
        alert.crop = Some(Crop::inline_jpeg(&jpeg));
    }
    Some(alert)
}

/// The face box widened by [`CROP_CONTEXT`] on every side, clipped to the frame.
pub fn face_crop(frame: &RgbImage, bbox: [f32; 4]) -> Option<RgbImage> {
    let [x1, y1, x2, y2] = bbox;
    if !bbox.iter().all(|v| v.is_finite()) {
        return None;
    }
    let pad = (x2 - x1).max(y2 - y1) * CROP_CONTEXT;
    let clamp = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
    let (left, top) = (
        clamp(x1 - pad, frame.width()),
        clamp(y1 - pad, frame.height()),
    );
    let (right, bottom) = (
        clamp(x2 + pad, frame.width()),
        clamp(y2 + pad, frame.height()),
    );
    if right <= left || bottom <= top {
        return None;
    }
    Some(image::imageops::crop_imm(frame, left, top, right - left, bottom - top).to_image())
}

/// The dispatcher a lane box runs with: journal (fsync'd, rotated) first, then stdout, the
/// webhook and the GPIO line as configured.
pub fn dispatcher_from_config(config: &AlertsConfig) -> anyhow::Result<Dispatcher> {
    let (journal, recovery) = Journal::open(
        &config.journal_dir,
        JournalConfig {
            max_file_bytes: config.rotate_bytes,
            keep_files: config.keep_files,
            ..JournalConfig::default()
        },
    )?;
    if let Some(r) = recovery {
        eprintln!("lanewatch: {r}");
    }
    let mut dispatcher = Dispatcher::new(
        Some(journal),
        Cooldown::new(Duration::from_secs(config.cooldown_s)),
    );
    if config.stdout {
        dispatcher = dispatcher.with_sink(Box::new(JsonLinesSink::stdout()));
    }
    if let Some(url) = &config.webhook_url {
        let cursor = config.journal_dir.join("webhook.cursor");
        let webhook = WebhookConfig {
            ca_cert: config.webhook_ca_cert.clone(),
            ..WebhookConfig::new(url.clone())
        };
        let (delivery, warning) = Delivery::open(webhook, &config.journal_dir, &cursor)
            .with_context(|| format!("alerts.webhook_url {url}"))?;
        if let Some(w) = warning {
            eprintln!("lanewatch: {w}");
        }
        dispatcher = dispatcher.with_sink(Box::new(WebhookSink::spawn(delivery)));
    }
    if let Some(gpio) = &config.gpio {
        dispatcher = with_gpio(dispatcher, gpio)?;
    }
    Ok(dispatcher)
}

#[cfg(feature = "gpio")]
fn with_gpio(
    dispatcher: Dispatcher,
    gpio: &crate::config::GpioLineConfig,
) -> anyhow::Result<Dispatcher> {
    use crate::alerts::gpio::{GpioConfig, GpioSink};
    let sink = GpioSink::open(&GpioConfig {
        chip: gpio.chip.clone(),
        line: gpio.line,
        active_low: gpio.active_low,
        pulse: Duration::from_millis(gpio.pulse_ms),
    })
    .map_err(anyhow::Error::msg)?;
    Ok(dispatcher.with_sink(Box::new(sink)))
}

#[cfg(not(feature = "gpio"))]
fn with_gpio(
    _dispatcher: Dispatcher,
    gpio: &crate::config::GpioLineConfig,
) -> anyhow::Result<Dispatcher> {
    anyhow::bail!(
        "alerts.gpio asks for line {} on {}, but this build has no GPIO support: rebuild with `--features gpio` or remove [alerts.gpio]",
        gpio.line,
        gpio.chip.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_padded_and_clipped_to_the_frame() {
        let frame = RgbImage::new(100, 80);
        let c = face_crop(&frame, [10.0, 10.0, 50.0, 50.0]).unwrap();
        assert_eq!(c.dimensions(), (60, 60));
        let edge = face_crop(&frame, [80.0, 60.0, 120.0, 100.0]).unwrap();
        assert_eq!(edge.dimensions(), (30, 30));
        assert!(face_crop(&frame, [200.0, 10.0, 240.0, 50.0]).is_none());
        assert!(face_crop(&frame, [f32::NAN, 0.0, 1.0, 1.0]).is_none());
    }
}
