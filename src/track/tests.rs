use super::*;
use crate::rng::SplitMix64;

/// A square face box of side `s` centred on `(cx, cy)`.
fn sq(cx: f32, cy: f32, s: f32) -> [f32; 4] {
    [cx - s / 2.0, cy - s / 2.0, cx + s / 2.0, cy + s / 2.0]
}

/// A unit descriptor along axis `k` of `dim`, slightly perturbed (real descriptors are never
/// exactly equal).
fn descriptor(dim: usize, k: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut d: Vec<f32> = (0..dim).map(|_| 0.05 * rng.gaussian_f32()).collect();
    d[k] += 1.0;
    d
}

fn boxes_only(boxes: &[[f32; 4]]) -> Vec<Observation<'static>> {
    boxes
        .iter()
        .map(|&bbox| Observation {
            bbox,
            embedding: None,
        })
        .collect()
}

/// Detector jitter of up to `amp` pixels, reproducible.
fn jitter(rng: &mut SplitMix64, amp: f32) -> f32 {
    (rng.unit_f64() as f32 * 2.0 - 1.0) * amp
}

#[test]
fn one_face_moving_and_growing_keeps_one_id() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut rng = SplitMix64::new(1);
    let mut ids = Vec::new();
    for f in 0..30u64 {
        let t = f as f32;
        let b = sq(
            100.0 + 6.0 * t + jitter(&mut rng, 2.0),
            300.0 + 2.0 * t + jitter(&mut rng, 2.0),
            60.0 + 1.5 * t + jitter(&mut rng, 1.5),
        );
        ids.push(tracker.update(f, &boxes_only(&[b]))[0]);
    }
    assert!(ids[0].is_some());
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(tracker.live(), 1);
    assert!(tracker.take_ended().is_empty());
}

/// Two people of the same size walk towards each other on one line, meet (their boxes coincide),
/// and each turns back. Motion predicts they pass through each other.
fn meet_and_turn_back(f: u64) -> ([f32; 4], [f32; 4]) {
    let t = f as f32;
    let (a, b) = if f <= 15 {
        (200.0 + 10.0 * t, 500.0 - 10.0 * t)
    } else {
        (350.0 - 10.0 * (t - 15.0), 350.0 + 10.0 * (t - 15.0))
    };
    (sq(a, 240.0, 80.0), sq(b, 240.0, 80.0))
}

#[test]
fn two_people_crossing_keep_their_ids_by_appearance() {
    let mut rng = SplitMix64::new(2);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut first = None;
    for f in 0..35u64 {
        let (a, b) = meet_and_turn_back(f);
        let (da, db) = (descriptor(128, 3, &mut rng), descriptor(128, 70, &mut rng));
        let obs = [
            Observation {
                bbox: a,
                embedding: Some(&da),
            },
            Observation {
                bbox: b,
                embedding: Some(&db),
            },
        ];
        let ids = tracker.update(f, &obs);
        let first = first.get_or_insert(ids.clone());
        assert_eq!(&ids, first, "frame {f}");
    }
    assert_eq!(tracker.live(), 2);
}

#[test]
fn crossing_is_ambiguous_before_embedding_and_motion_alone_is_fooled_there() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut first = None;
    let mut swapped = false;
    for f in 0..35u64 {
        let (a, b) = meet_and_turn_back(f);
        let proposals = tracker.propose(f, &[a, b]);
        let ids = tracker.update(f, &boxes_only(&[a, b]));
        let first = first.get_or_insert(ids.clone());
        swapped |= ids != *first;
        let predicted: Vec<_> = proposals.iter().map(|p| p.track).collect();
        assert_eq!(predicted.len(), 2);
        if f > 0 {
            // propose makes the association update makes.
            assert_eq!(predicted, ids, "frame {f}");
        }
        if f == 1 || f == 30 {
            assert!(
                proposals.iter().all(|p| !p.ambiguous),
                "frame {f}: {proposals:?}"
            );
        }
        if (14..=16).contains(&f) {
            assert!(
                proposals.iter().all(|p| p.ambiguous),
                "frame {f}: {proposals:?}"
            );
        }
    }
    // Without descriptors the turn back is read as passing through: the case embeddings are for.
    assert!(swapped);
}

#[test]
fn crossing_at_different_sizes_and_speeds_keeps_ids_by_motion() {
    let mut rng = SplitMix64::new(3);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut first = None;
    let mut most_overlap = 0.0f32;
    for f in 0..60u64 {
        let t = f as f32;
        // A: farther (smaller), walking right fast; B: nearer (larger), walking left slowly.
        let a = sq(
            100.0 + 7.0 * t + jitter(&mut rng, 1.5),
            240.0 + jitter(&mut rng, 1.5),
            80.0 + jitter(&mut rng, 1.0),
        );
        let b = sq(
            420.0 - 4.0 * t + jitter(&mut rng, 1.5),
            250.0 + jitter(&mut rng, 1.5),
            100.0 + jitter(&mut rng, 1.0),
        );
        let (ca, cb) = (
            motion::CentreBox::from_corners(a).unwrap(),
            motion::CentreBox::from_corners(b).unwrap(),
        );
        most_overlap = most_overlap.max(ca.iou(&cb));
        let ids = tracker.update(f, &boxes_only(&[a, b]));
        let first = first.get_or_insert(ids.clone());
        assert_eq!(&ids, first, "frame {f}");
    }
    assert!(most_overlap > 0.5, "they must really cross: {most_overlap}");
}

#[test]
fn a_face_lost_briefly_comes_back_and_one_lost_longer_is_new() {
    let config = TrackerConfig::default(); // max_gap_frames 8
    let mut tracker = Tracker::new(config);
    let at = |f: u64| sq(100.0 + 5.0 * f as f32, 200.0, 70.0);
    let mut id = None;
    for f in 0..=10 {
        id = tracker.update(f, &boxes_only(&[at(f)]))[0];
    }
    // Missed in frames 11..=18 (8 frames): the frames come, without the face.
    for f in 11..=18 {
        assert!(tracker.update(f, &[]).is_empty());
        assert_eq!(tracker.live(), 1, "frame {f}");
    }
    assert_eq!(tracker.update(19, &boxes_only(&[at(19)]))[0], id);
    // Missed in frames 20..=28 (9 frames, frames dropped: no calls at all).
    let back = tracker.update(29, &boxes_only(&[at(29)]))[0];
    assert!(back.is_some() && back != id);
    assert!(back > id, "ids increase");
    let ended = tracker.take_ended();
    assert_eq!(
        ended,
        vec![Ended {
            id: id.unwrap(),
            first_frame: 0,
            last_frame: 19,
            observations: 12,
            evicted: false,
        }]
    );
    assert!(tracker.take_ended().is_empty(), "drained");
}

#[test]
fn prediction_spans_dropped_frames() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    // 25 px a frame with 60 px faces; after the first frames only every third frame arrives, so
    // each box is 75 px (more than a face) from the last one.
    let at = |f: u64| sq(100.0 + 25.0 * f as f32, 200.0, 60.0);
    let frames: Vec<u64> = (0..3).chain((5..40).step_by(3)).collect();
    let ids: Vec<_> = frames
        .iter()
        .map(|&f| tracker.update(f, &boxes_only(&[at(f)]))[0])
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

#[test]
fn several_people_get_distinct_stable_ids() {
    let mut rng = SplitMix64::new(4);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut first: Option<Vec<Option<TrackId>>> = None;
    for f in 0..40u64 {
        let t = f as f32;
        let boxes: Vec<[f32; 4]> = (0..5)
            .map(|k| {
                let k = k as f32;
                sq(
                    80.0 + 150.0 * k + (k - 2.0) * 0.8 * t + jitter(&mut rng, 2.0),
                    150.0 + 3.0 * t + 10.0 * k + jitter(&mut rng, 2.0),
                    50.0 + 8.0 * k + 0.6 * t + jitter(&mut rng, 1.0),
                )
            })
            .collect();
        let ids = tracker.update(f, &boxes_only(&boxes));
        let first = first.get_or_insert_with(|| ids.clone());
        assert_eq!(&ids, first, "frame {f}");
    }
    let ids = first.unwrap();
    let mut distinct: Vec<_> = ids.iter().map(|id| id.unwrap()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5);
    assert_eq!(tracker.live(), 5);
}

#[test]
fn the_cap_bounds_live_tracks_and_reports_evictions() {
    let config = TrackerConfig {
        max_tracks: 4,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config);
    // Ten faces at once, sizes 40..=76: the four largest get the tracks.
    let crowd = |y: f32| -> Vec<[f32; 4]> {
        (0..10)
            .map(|k| sq(60.0 + 100.0 * k as f32, y, 40.0 + 4.0 * k as f32))
            .collect()
    };
    let ids = tracker.update(0, &boxes_only(&crowd(100.0)));
    assert_eq!(tracker.live(), 4);
    assert!(ids[..6].iter().all(Option::is_none), "{ids:?}");
    assert!(ids[6..].iter().all(Option::is_some), "{ids:?}");
    // The same faces again: tracks seen in this frame are never evicted for a newcomer.
    let again = tracker.update(1, &boxes_only(&crowd(100.0)));
    assert_eq!(again, ids);
    assert!(tracker.take_ended().is_empty());
    // Another crowd elsewhere: the old tracks were not seen in this frame and make room.
    let next = tracker.update(2, &boxes_only(&crowd(500.0)));
    assert_eq!(tracker.live(), 4);
    assert_eq!(next.iter().flatten().count(), 4);
    let ended = tracker.take_ended();
    assert_eq!(ended.len(), 4);
    assert!(ended.iter().all(|e| e.evicted && e.last_frame == 1));
    let mut old: Vec<_> = ids.iter().flatten().copied().collect();
    let mut gone: Vec<_> = ended.iter().map(|e| e.id).collect();
    old.sort();
    gone.sort();
    assert_eq!(old, gone);
}

#[test]
fn ten_thousand_frames_of_comings_and_goings_keep_memory_flat() {
    struct Walker {
        x: f32,
        y: f32,
        vx: f32,
        size: f32,
        until: u64,
        look: usize,
    }
    let config = TrackerConfig {
        max_tracks: 8,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config);
    let mut rng = SplitMix64::new(5);
    let mut walkers: Vec<Walker> = Vec::new();
    let mut peak_first_half = 0usize;
    let mut peak_second_half = 0usize;
    let mut last_new_id = 0;
    let mut births = 0u64;
    for f in 0..10_000u64 {
        walkers.retain(|w| w.until > f);
        if walkers.len() < 12 && rng.unit_f64() < 0.15 {
            walkers.push(Walker {
                x: 50.0 + 1100.0 * rng.unit_f64() as f32,
                y: 100.0 + 500.0 * rng.unit_f64() as f32,
                vx: jitter(&mut rng, 6.0),
                size: 40.0 + 80.0 * rng.unit_f64() as f32,
                until: f + 10 + rng.next_u64() % 80,
                look: (rng.next_u64() % 128) as usize,
            });
        }
        let mut boxes = Vec::new();
        let mut descriptors = Vec::new();
        for w in &mut walkers {
            w.x += w.vx;
            w.size += 0.3;
            if rng.unit_f64() < 0.1 {
                continue; // the detector missed it
            }
            boxes.push(sq(w.x, w.y, w.size));
            descriptors.push(descriptor(128, w.look, &mut rng));
        }
        if f % 97 == 0 {
            boxes.push([f32::NAN, 0.0, 10.0, 10.0]);
            descriptors.push(vec![f32::NAN; 128]);
        }
        let obs: Vec<Observation<'_>> = boxes
            .iter()
            .zip(&descriptors)
            .enumerate()
            .map(|(k, (&bbox, d))| Observation {
                bbox,
                embedding: (k % 3 != 0).then_some(d.as_slice()),
            })
            .collect();
        let ids = tracker.update(f, &obs);
        let mut new: Vec<TrackId> = ids
            .iter()
            .flatten()
            .copied()
            .filter(|id| *id > last_new_id)
            .collect();
        new.sort();
        for id in new {
            assert_eq!(id, last_new_id + 1, "ids are dense and increasing");
            last_new_id = id;
            births += 1;
        }
        assert!(tracker.live() <= 8);
        // The caller forgets to drain for the first half: the ended list stays bounded.
        if f >= 5_000 {
            tracker.take_ended();
        }
        assert!(tracker.ended.len() <= 4 * 8);
        let used = tracker.capacity_used();
        if f < 5_000 {
            peak_first_half = peak_first_half.max(used);
        } else {
            peak_second_half = peak_second_half.max(used);
        }
    }
    assert!(births > 500, "the run must churn tracks: {births}");
    assert!(tracker.ended_dropped() > 0);
    assert!(
        peak_second_half <= peak_first_half,
        "{peak_second_half} > {peak_first_half}"
    );
    // Tracks, their descriptors, the ended list, and scratch for a dozen faces.
    let bound = 8 + 8 * 128 + 4 * 8 + 1024;
    assert!(peak_first_half <= bound, "{peak_first_half} > {bound}");
}

#[test]
fn hostile_boxes_neither_panic_nor_create_tracks() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let hostile = [
        [f32::NAN, 0.0, 10.0, 10.0],
        [0.0, f32::NAN, 10.0, 10.0],
        [0.0, 0.0, f32::INFINITY, 10.0],
        [f32::NEG_INFINITY, 0.0, 10.0, 10.0],
        [5.0, 5.0, 5.0, 50.0],      // zero width
        [5.0, 5.0, 50.0, 5.0],      // zero height
        [50.0, 50.0, 10.0, 10.0],   // inverted
        [-3e38, -3e38, 3e38, 3e38], // no camera is this big
        [0.0, 0.0, 1e-30, 1e-30],   // area underflows
    ];
    for f in 0..5 {
        let proposals = tracker.propose(f, &hostile);
        assert!(proposals.iter().all(|p| p.track.is_none() && !p.ambiguous));
        let ids = tracker.update(f, &boxes_only(&hostile));
        assert_eq!(ids.len(), hostile.len());
        assert!(ids.iter().all(Option::is_none), "{ids:?}");
    }
    assert_eq!(tracker.live(), 0);

    // Unusable descriptors are ignored; the box is still tracked.
    let mut tracker = Tracker::new(TrackerConfig::default());
    let nan = vec![f32::NAN; 128];
    let huge = vec![1.0f32; 100_000];
    let zero = vec![0.0f32; 128];
    let empty: Vec<f32> = Vec::new();
    let mut id = None;
    for (f, e) in [&nan, &huge, &zero, &empty].into_iter().enumerate() {
        let obs = [Observation {
            bbox: sq(100.0, 100.0, 50.0),
            embedding: Some(e.as_slice()),
        }];
        let got = tracker.update(f as u64, &obs)[0];
        assert!(got.is_some());
        assert_eq!(*id.get_or_insert(got), got);
    }
    assert!(
        tracker.capacity_used() < 10_000,
        "a huge descriptor is not stored"
    );
    assert!(!tracker.set_appearance(id.flatten().unwrap(), &huge));
    assert!(!tracker.set_appearance(id.flatten().unwrap(), &nan));
    assert!(!tracker.set_appearance(12345, &[1.0, 0.0]));

    // Extreme frame numbers and an empty frame.
    assert!(tracker.update(u64::MAX, &[]).is_empty());
    assert_eq!(tracker.live(), 0, "a gap of u64::MAX frames ends the track");
    let _ = tracker.propose(u64::MAX, &[sq(1.0, 1.0, 1.0)]);
}

#[test]
fn a_frame_number_going_back_starts_a_new_stream() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let b = sq(100.0, 100.0, 50.0);
    let old = tracker.update(1000, &boxes_only(&[b]))[0];
    tracker.update(1001, &boxes_only(&[b]));
    assert_eq!(tracker.propose(3, &[b])[0].track, None);
    let new = tracker.update(3, &boxes_only(&[b]))[0];
    assert!(new.is_some() && new != old);
    let ended = tracker.take_ended();
    assert_eq!(ended.len(), 1);
    assert_eq!((ended[0].id, ended[0].last_frame), (old.unwrap(), 1001));
}

#[test]
fn a_set_appearance_vetoes_a_different_face_in_the_same_place() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let b = sq(200.0, 200.0, 80.0);
    let id = tracker.update(0, &boxes_only(&[b]))[0].unwrap();
    assert!(tracker.set_appearance(id, &[2.0, 0.0, 0.0]));
    // Same place, same look: continues.
    let same = [Observation {
        bbox: b,
        embedding: Some(&[0.9f32, 0.1, 0.0][..]),
    }];
    assert_eq!(tracker.update(1, &same)[0], Some(id));
    // Same place, someone else (cos distance 1 > 0.6): a new track, never this one.
    let other = [Observation {
        bbox: b,
        embedding: Some(&[0.0f32, 0.0, 1.0][..]),
    }];
    let got = tracker.update(2, &other)[0];
    assert!(got.is_some() && got != Some(id));
}

#[test]
fn finish_ends_every_track_oldest_first() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    tracker.update(0, &boxes_only(&[sq(100.0, 100.0, 50.0)]));
    tracker.update(
        1,
        &boxes_only(&[sq(100.0, 100.0, 50.0), sq(400.0, 100.0, 50.0)]),
    );
    tracker.update(2, &boxes_only(&[sq(400.0, 100.0, 50.0)]));
    tracker.finish();
    assert_eq!(tracker.live(), 0);
    let ended = tracker.take_ended();
    assert_eq!(ended.len(), 2);
    assert_eq!((ended[0].id, ended[0].last_frame), (1, 1));
    assert_eq!((ended[1].id, ended[1].last_frame), (2, 2));
    assert!(ended.iter().all(|e| !e.evicted));
    // After finish the same tracker takes a new stream; ids are not reused.
    let id = tracker.update(0, &boxes_only(&[sq(100.0, 100.0, 50.0)]))[0];
    assert_eq!(id, Some(3));
}

#[test]
fn propose_agrees_with_update_without_descriptors() {
    let mut rng = SplitMix64::new(6);
    let mut tracker = Tracker::new(TrackerConfig {
        max_tracks: 6,
        ..TrackerConfig::default()
    });
    for f in 0..500u64 {
        let n = (rng.next_u64() % 7) as usize;
        let boxes: Vec<[f32; 4]> = (0..n)
            .map(|k| {
                sq(
                    100.0 + 60.0 * k as f32 + jitter(&mut rng, 30.0),
                    200.0 + jitter(&mut rng, 30.0),
                    50.0 + jitter(&mut rng, 10.0),
                )
            })
            .collect();
        let proposals = tracker.propose(f, &boxes);
        let ids = tracker.update(f, &boxes_only(&boxes));
        for (p, id) in proposals.iter().zip(&ids) {
            if p.track.is_some() {
                assert_eq!(p.track, *id, "frame {f}");
            }
        }
        tracker.take_ended();
    }
}
