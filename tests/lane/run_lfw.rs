//! `lanewatch run` end to end on real faces: a frames folder built from `../shared/data/lfw/images`
//! (one enrolled image per watchlisted person; other images of them and of people not enrolled are
//! played as passers), through the same loop, tracks, watchlist slot and journal as the box.
//!
//! A passer is one photo shown for `FRAMES_PER_PASSER` frames, then blank frames end their track:
//! the lane must raise exactly one alert per listed passer and none for strangers, and close one
//! episode per passer in the journal. The test lists use the LFW pairs protocol's best 1:1
//! threshold (FAR about 1e-2), so the number of false alerts to expect grows with enrolled ×
//! strangers: the exact test expects well under one (5 × 6 = 30 impostor comparisons); the larger
//! run (8 × 16 = 128) bounds false alerts by what that rate predicts, and checks that each false
//! alert names the closest enrolled person.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::pipeline::*;
use lanewatch::camera::SourceSpec;
use lanewatch::camera::spec::CaptureConfig;
use lanewatch::passage::episode::{Episode, Outcome};
use lanewatch::pipeline::{Pacing, RunOptions, RunSummary, Verdict, run};
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::embed::distance;
use lanewatch::vision::faces::{FaceAnalyzer, FaceModels};
use lanewatch::watchlist::format::{DecisionMode, Views, decode_unverified};

const FRAMES_PER_PASSER: usize = 3;
const BLANK_FRAMES: usize = 2;

struct Played {
    /// Who each passer is: `Some(enrolled id)` or `None` for a person not enrolled.
    expected: Vec<Option<String>>,
    /// Identities alerted per passer.
    alerted: BTreeMap<usize, Vec<String>>,
    /// Closest enrolled identity and distance per passer (its last search).
    closest: BTreeMap<usize, (String, f32)>,
    episodes: Vec<Episode>,
    summary: RunSummary,
    journal: Vec<lanewatch::alerts::Alert>,
    threshold: f32,
}

/// Enrols the first `n_enrolled` identities (by name) with at least 3 images from their first
/// image, and plays their second and third images as passers interleaved with one image each of
/// the first `n_strangers` identities that have a single image.
fn play(n_enrolled: usize, n_strangers: usize) -> Played {
    let work = temp("lanewatch-run-lfw");
    let w = work.path();
    let ids = identities();
    let enrolled: Vec<&str> = ids
        .iter()
        .filter(|(_, n)| *n >= 3)
        .take(n_enrolled)
        .map(|(s, _)| s.as_str())
        .collect();
    let strangers: Vec<&str> = ids
        .iter()
        .filter(|(_, n)| *n == 1)
        .take(n_strangers)
        .map(|(s, _)| s.as_str())
        .collect();
    let people: Vec<(&str, &[usize])> = enrolled.iter().map(|p| (*p, &[0usize][..])).collect();
    let bytes = watchlist(w, &people, 1);
    let threshold = decode_unverified(&bytes).unwrap().1.thresholds.max_distance;
    let store = state_with(w, &bytes);

    let frames = w.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let mut plan: Vec<(Option<String>, std::path::PathBuf)> = Vec::new();
    for n in [1usize, 2] {
        for p in &enrolled {
            plan.push((Some(p.to_string()), lfw(p, n)));
        }
    }
    for (i, s) in strangers.iter().enumerate() {
        plan.insert((2 * i + 1).min(plan.len()), (None, lfw(s, 0)));
    }
    // Frame index -> passer index (blank frames belong to nobody).
    let mut passer_of: Vec<Option<usize>> = Vec::new();
    let blank = image::RgbImage::from_pixel(250, 250, image::Rgb([128, 128, 128]));
    for (i, (_, path)) in plan.iter().enumerate() {
        let photo = image::open(path).unwrap().to_rgb8();
        for _ in 0..FRAMES_PER_PASSER {
            photo
                .save(frames.join(format!("{:05}.png", passer_of.len())))
                .unwrap();
            passer_of.push(Some(i));
        }
        for _ in 0..BLANK_FRAMES {
            blank
                .save(frames.join(format!("{:05}.png", passer_of.len())))
                .unwrap();
            passer_of.push(None);
        }
    }

    let spec: SourceSpec = format!("frames:{}", frames.display()).parse().unwrap();
    let source = spec.open(&CaptureConfig::default()).unwrap();
    let alerts_dir = w.join("alerts");
    // Cool-down 0: every matching passage alerts, so each passer's outcome is visible.
    let rig = rig(
        source,
        Pacing::Replay,
        store,
        &alerts_config(&alerts_dir, 0),
        Arc::default(),
    );
    let mut alerted: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut closest = BTreeMap::new();
    let mut episodes = Vec::new();
    let summary = run(rig, RunOptions::default(), |r| {
        let passer = passer_of[r.frame.seq as usize];
        for a in r.alerts {
            alerted
                .entry(passer.expect("alerts only on a passer's frames"))
                .or_default()
                .push(a.identity.id.clone());
        }
        for d in r.decisions {
            // The search that raised an alert names it; otherwise the passer's last search.
            if let (
                Verdict::NoMatch { best: Some(c) } | Verdict::Match { candidate: c, .. },
                Some(list),
                Some(p),
            ) = (d.verdict, r.watchlist, passer)
            {
                let id = list.body().entries[c.entry].id.clone();
                let alerting = matches!(d.verdict, Verdict::Match { new: true, .. });
                if alerting || !alerted.contains_key(&p) {
                    closest.insert(p, (id, c.distance));
                }
            }
        }
        episodes.extend(r.ended.iter().cloned());
    })
    .unwrap();
    episodes.extend(summary.closed_at_stop.iter().cloned());
    assert_eq!(summary.lane.frames, passer_of.len() as u64, "{summary:?}");
    assert_eq!(summary.ended, "end of stream");
    let journal = journal_alerts(&alerts_dir);
    assert_eq!(journal.len() as u64, summary.lane.alerts_raised);
    Played {
        expected: plan.into_iter().map(|(who, _)| who).collect(),
        alerted,
        closest,
        episodes,
        summary,
        journal,
        threshold,
    }
}

/// A list made with mirror-averaged descriptors (format version 2) makes the lane describe live
/// faces the same way, and a plain list does not: the distance the lane reports is the one between
/// the entry and the live face described as the list says, not the other way.
#[test]
fn the_lane_describes_faces_the_way_its_list_was_made() {
    let (name, _) = identities().into_iter().find(|(_, n)| *n >= 2).unwrap();
    for views in [Views::Chip, Views::ChipAndMirror] {
        let work = temp("lanewatch-run-views");
        let w = work.path();
        let bytes = watchlist_with_views(w, &[(&name, &[0usize][..])], 1, views);
        let store = state_with(w, &bytes);
        let (header, body) = decode_unverified(&bytes).unwrap();
        assert_eq!(body.views, views);
        assert_eq!(header.version, body.version());
        let entry = body.entries[0].embeddings[0].clone();

        let frames = w.join("frames");
        std::fs::create_dir_all(&frames).unwrap();
        // PNG: the lane and this test read the same pixels, whichever decoder each uses.
        let frame = picture(&name, 1);
        // A passer: the same face for a few frames, enough evidence for a passage decision.
        for i in 0..FRAMES_PER_PASSER {
            frame.save(frames.join(format!("{i:04}.png"))).unwrap();
        }
        let spec: SourceSpec = format!("frames:{}", frames.display()).parse().unwrap();
        let source = spec.open(&CaptureConfig::default()).unwrap();
        let rig = rig(
            source,
            Pacing::Replay,
            store,
            &alerts_config(&w.join("alerts"), 0),
            Arc::default(),
        );
        let mut reported = None;
        run(rig, RunOptions::default(), |r| {
            for d in r.decisions {
                if let Verdict::NoMatch { best: Some(c) } | Verdict::Match { candidate: c, .. } =
                    d.verdict
                {
                    reported = Some(c.distance);
                }
            }
        })
        .unwrap();
        let reported = reported.expect("the lane compared the face with the list");

        // The live face described both ways, compared with the entry directly in f32.
        let config = DetectorConfig {
            min_face: lanewatch::config::Config::default().detect.min_face_px as f32,
            ..DetectorConfig::default()
        };
        let mut analyzer = FaceAnalyzer::open(&FaceModels::bundled(), 250, 250, config).unwrap();
        let metric = analyzer.embedder().spec().metric;
        let mut direct = |v: Views| {
            analyzer.set_augmentation(v.augmentation());
            let live = analyzer.analyze(&frame, 0.0).unwrap()[0]
                .embedding
                .clone()
                .unwrap();
            distance(metric, &entry, &live)
        };
        let (same, other) = match views {
            Views::Chip => (direct(Views::Chip), direct(Views::ChipAndMirror)),
            Views::ChipAndMirror => (direct(Views::ChipAndMirror), direct(Views::Chip)),
        };
        // The matcher stores int8 vectors: its distances are off by a few thousandths.
        assert!(
            (reported - same).abs() < 0.005 && (reported - same).abs() < (reported - other).abs(),
            "{views:?}: lane {reported}, described as the list says {same}, the other way {other}"
        );
    }
}

#[test]
fn enrolled_people_alert_once_per_passage_and_strangers_do_not() {
    let p = play(5, 6);
    for (i, who) in p.expected.iter().enumerate() {
        let got = p.alerted.get(&i).cloned().unwrap_or_default();
        let near = p.closest.get(&i);
        match who {
            Some(id) => assert_eq!(got, vec![id.clone()], "passer {i} ({near:?})"),
            None => assert!(
                got.is_empty(),
                "passer {i}: stranger alerted {got:?} ({near:?})"
            ),
        }
    }
    assert_eq!(p.journal.len(), 10);
    for a in &p.journal {
        assert!(a.scores.distance <= p.threshold && a.crop.is_some() && a.face_size_px >= 60);
        assert_eq!(a.camera, "test-lane");
        // The alert carries its passage: track, faces used, best shot.
        let passage = a.passage.as_ref().expect("a passage alert");
        assert_eq!(passage.decision, DecisionMode::Passage.as_str());
        assert!(passage.faces_used >= 2, "{passage:?}");
        assert!(passage.best_shot_quality > 0.0);
        assert_eq!(passage.combined_distance, a.scores.distance);
    }
    // One closing record per passer; matched ones name the person, strangers carry no face data.
    // At least one per passer (a bystander in an LFW photo is a passage of its own).
    assert!(p.episodes.len() >= p.expected.len(), "{:?}", p.episodes);
    let matched = p
        .episodes
        .iter()
        .filter(|e| e.outcome == Outcome::Matched)
        .count();
    assert_eq!(matched, 10);
    for e in p.episodes.iter().filter(|e| e.outcome != Outcome::Matched) {
        assert!(e.matched.is_none() && e.best_shot.is_none(), "{e:?}");
    }
    assert_eq!(p.summary.lane.frame_errors, 0);
    assert!(p.summary.lane.passages.tracks_started >= p.expected.len() as u64);
}

#[test]
fn larger_population_every_listed_passer_alerts_and_false_alerts_stay_rare() {
    let p = play(8, 16);
    let mut false_alerts = 0;
    for (i, who) in p.expected.iter().enumerate() {
        let got = p.alerted.get(&i).cloned().unwrap_or_default();
        let near = p.closest.get(&i).cloned();
        match who {
            Some(id) => assert_eq!(got, vec![id.clone()], "passer {i} ({near:?})"),
            None => {
                if !got.is_empty() {
                    false_alerts += 1;
                    // A false alert is still the rule applied to the closest enrolled person.
                    let (id, d) = near.unwrap();
                    assert_eq!(got, vec![id]);
                    assert!(d <= p.threshold);
                }
            }
        }
    }
    // 128 impostor comparisons at FAR ≈ 1e-2 expect about 1.3 false alerts.
    assert!(false_alerts <= 3, "{false_alerts} false alerts");
    assert_eq!(p.journal.len(), 16 + false_alerts);
}
