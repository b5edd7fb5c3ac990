//! The passage engine on hand-made observations (no model): when tracks are searched, and what a
//! last look at a track's end raises.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use image::RgbImage;

use super::*;
use crate::vision::landmarks::Point;
use crate::vision::model::Fingerprint;
use crate::vision::quality::{Pose, QualityInputs};
use crate::watchlist::format::{Body, Entry, Header, Severity, Thresholds, Views};
use crate::watchlist::keys::KeyId;
use crate::watchlist::verify::Verified;

const PERSON: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

/// A good face of `descriptor` at a fixed place (one track).
fn face(descriptor: &[f32]) -> FaceObservation {
    FaceObservation {
        bbox: [100.0, 100.0, 200.0, 200.0],
        score: 0.99,
        landmarks: [Point::default(); 5],
        quality: Some(QualityInputs {
            face_px: 100.0,
            sharpness: 500.0,
            pose: Pose {
                roll_deg: 0.0,
                yaw: 0.0,
                pitch: 0.0,
            },
            detector_score: 0.99,
        }),
        embedding: Some(descriptor.to_vec()),
    }
}

fn engine(config: PassageConfig) -> Passages {
    let mut e = Passages::new(config, false, Metric::Cosine);
    e.record_decision_points(true);
    e
}

fn config() -> PassageConfig {
    PassageConfig {
        min_quality: 0.0,
        min_faces: 3,
        max_wait_frames: 1000,
        embed_every: 1,
        max_embeddings_per_track: 100,
        max_gap_frames: 2,
        ..PassageConfig::default()
    }
}

fn list(entry: &[f32], max_distance: f32) -> LoadedWatchlist {
    let body = Body {
        sequence: 1,
        created_at: 0,
        expires_at: u64::MAX,
        embedder: Fingerprint([0; 32]),
        dim: entry.len() as u32,
        metric: Metric::Cosine,
        thresholds: Thresholds {
            max_distance,
            min_margin: 0.0,
        },
        entries: vec![Entry {
            id: "p-1".into(),
            display_name: "Listed".into(),
            list: "test".into(),
            severity: Severity::High,
            embeddings: vec![entry.to_vec()],
            photo_sha256: vec![[0; 32]],
        }],
        views: Views::Chip,
        decision: DecisionMode::Passage,
    };
    let verified = Verified {
        header: Header {
            version: body.version(),
            key_id: KeyId([0; 8]),
            body_len: 0,
        },
        body,
        file_sha256: [0; 32],
    };
    LoadedWatchlist::from_verified(PathBuf::from("test.wl"), verified).unwrap()
}

/// Plays `faces` frames of one face each, then `blank` empty frames; returns the good faces behind
/// each search, and the matches, as (frame, at track end).
fn play(
    e: &mut Passages,
    descriptors: &[Vec<f32>],
    blank: u64,
    list: Option<&LoadedWatchlist>,
) -> (Vec<u32>, Vec<(u64, bool)>) {
    let frame = RgbImage::new(320, 240);
    let t0 = SystemTime::UNIX_EPOCH;
    let (mut looks, mut matches) = (Vec::new(), Vec::new());
    let mut seq = 0;
    let mut take = |out: FrameOutcome, seq: u64| {
        looks.extend(out.decision_points.iter().map(|d| d.faces));
        matches.extend(out.matches.iter().map(|m| (seq, m.at_track_end)));
    };
    // Frames with the one face, then empty frames.
    let frames = descriptors
        .iter()
        .map(|d| vec![face(d)])
        .chain((0..blank).map(|_| Vec::new()));
    for faces in frames {
        seq += 1;
        let time = t0 + Duration::from_millis(seq * 100);
        let out = e
            .update(seq, time, &frame, &faces, list, DecisionMode::Passage)
            .unwrap();
        take(out, seq);
    }
    (looks, matches)
}

/// Views of the listed person turned to one side (+1) or the other (-1): cosine distance 0.029 to
/// the person, 0.113 between sides (one track: below `max_appearance_distance`).
fn sides(signs: &[f32]) -> Vec<Vec<f32>> {
    let r = 0.06f32.sqrt();
    signs.iter().map(|s| vec![1.0, s * r, 0.0, 0.0]).collect()
}

#[test]
fn looks_double_the_evidence_and_the_last_look_sees_every_face() {
    let views = vec![PERSON.to_vec(); 14];
    let (looks, _) = play(&mut engine(config()), &views, 5, None);
    // First at min_faces, then at 6 and 12 faces; the track ends with 14 and is looked at again.
    assert_eq!(looks, [3, 6, 12, 14]);

    let every_face = PassageConfig {
        relook_growth: 1.0,
        look_at_track_end: false,
        ..config()
    };
    let (looks, _) = play(&mut engine(every_face), &views, 5, None);
    assert_eq!(looks, (3..=14).collect::<Vec<_>>());

    // Nothing new since the last look: no last look.
    let (looks, _) = play(&mut engine(config()), &views[..12], 5, None);
    assert_eq!(looks, [3, 6, 12]);
    // Too short for min_faces: decided once, at the end, on what it had.
    let (looks, _) = play(&mut engine(config()), &views[..2], 5, None);
    assert_eq!(looks, [2]);
}

#[test]
fn the_last_look_can_raise_the_passage_alert_once() {
    // Views on either side of the listed person: each face alone is too far, their mean is near.
    let views = sides(&[1.0, 1.0, 1.0, -1.0, -1.0]);
    let listed = list(&PERSON, 0.02);
    let single = 1.0 - 1.0 / (1.0f32 + 0.06).sqrt();
    assert!(single > 0.02, "each face alone must not match: {single}");
    // Looks at 3 (all on one side: too far), then the 5-face mean at the end.
    let (looks, matches) = play(&mut engine(config()), &views, 5, Some(&listed));
    assert_eq!(looks, [3, 5]);
    assert_eq!(matches.len(), 1, "{matches:?}");
    let (frame, at_end) = matches[0];
    assert!(at_end && frame > 5, "{matches:?}");

    // Without the last look the passage goes unnoticed.
    let no_last = PassageConfig {
        look_at_track_end: false,
        ..config()
    };
    let (_, matches) = play(&mut engine(no_last), &views, 5, Some(&listed));
    assert!(matches.is_empty());
}

#[test]
fn finishing_the_run_gives_live_tracks_their_last_look() {
    let views = sides(&[1.0, 1.0, 1.0, -1.0]);
    let listed = list(&PERSON, 0.02);
    let mut e = engine(config());
    let (looks, matches) = play(&mut e, &views, 0, Some(&listed));
    assert_eq!(looks, [3]);
    assert!(matches.is_empty());
    let out = e.finish(Some(&listed));
    assert_eq!(out.matches.len(), 1);
    assert!(out.matches[0].at_track_end);
    assert_eq!(out.matches[0].faces_used, 4);
    assert_eq!(out.ended.len(), 1);
    assert_eq!(out.ended[0].outcome, episode::Outcome::Matched);
}

#[test]
fn a_last_look_that_cannot_search_still_closes_the_passage() {
    // A list of another dimension than the descriptors: the search fails, the episode is kept.
    let other = list(&[1.0, 0.0, 0.0], 0.5);
    let waits = PassageConfig {
        min_faces: 100,
        ..config()
    };
    let mut e = engine(waits);
    // (Any search during the track would fail the same way: the list arrives at the end.)
    let (looks, matches) = play(&mut e, &sides(&[1.0, 1.0]), 0, None);
    assert!(looks.is_empty() && matches.is_empty());
    let out = e.finish(Some(&other));
    assert!(out.matches.is_empty());
    assert_eq!(out.ended.len(), 1);
    assert_eq!(e.stats().failed_last_looks, 1);
}

#[test]
fn relook_growth_is_validated_and_next_look_never_stalls() {
    for bad in [0.5, f32::NAN, 1000.0] {
        let c = PassageConfig {
            relook_growth: bad,
            ..PassageConfig::default()
        };
        assert!(c.validate().is_err(), "{bad}");
    }
    assert_eq!(next_look(3, 2.0), 6);
    assert_eq!(next_look(3, 1.0), 4);
    assert_eq!(next_look(5, 1.5), 8);
    assert_eq!(next_look(u32::MAX - 1, 100.0), u32::MAX);
    assert_eq!(next_look(u32::MAX, 2.0), u32::MAX);
}
