//! `trainer eval lane` on the LFW subset (`../shared/data/lfw`): walk-through clips through the
//! lane's own tracks, fusion and decisions, per-passer figures for both decision modes, the
//! per-passer threshold rows, and the faces cache giving the same figures back.

use std::path::PathBuf;

use lanewatch::fsio::TempDir;
use lanewatch::watchlist::format::DecisionMode;
use lanewatch::watchlist::threshold_table::{RateUnit, ThresholdTable};
use trainer::eval::lane::{LaneArgs, LaneReport, execute};

fn args(tmp: &TempDir) -> LaneArgs {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut args = LaneArgs::new(
        crate::common::lfw_dir().join("images"),
        root.join("models/dlib_resnet_v1.onnx"),
        root.join("models"),
    );
    // 40 of the subset's 81 people with 3 or more photos, 8 frames each; lists of 20 and 60 of
    // its 163 people.
    args.max_passers = Some(40);
    args.frames = 8;
    args.watchlist_sizes = vec![20, 60];
    args.draws = 5;
    args.cache = Some(tmp.path().join("enrolment.json"));
    args.faces_cache = Some(tmp.path().join("faces.json"));
    args
}

fn json(r: &LaneReport) -> String {
    serde_json::to_string(r).unwrap()
}

#[test]
fn lane_evaluation_runs_the_lane_per_passer_and_replays_from_the_faces_cache() {
    let tmp = TempDir::new("eval-lane").unwrap();
    let mut args = args(&tmp);
    let shipped = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/dlib_resnet_v1.thresholds.json"
    ));
    let table = tmp.path().join("thresholds.json");
    std::fs::copy(&shipped, &table).unwrap();
    args.thresholds_out = Some(table.clone());
    args.plot = Some(tmp.path().join("det.svg"));
    let report = execute(&args).unwrap();

    assert_eq!(report.passers, 40);
    assert!(report.passers_without_own_face <= 1, "{report:?}");
    assert!(report.track_splits <= 4, "{report:?}");
    assert_eq!(report.sizes.len(), 2);
    for s in &report.sizes {
        assert!(s.listed_passers > 0 && s.unlisted_passers > 0, "{s:?}");
        // The passage policy embeds fewer faces than deciding every face.
        assert!(
            s.passage.embeddings_per_passer < s.frame.embeddings_per_passer,
            "{s:?}"
        );
        for m in [&s.frame, &s.passage] {
            let at1 = &m.at_targets[0];
            assert_eq!(at1.fpir_target, 0.01);
            assert!(at1.threshold.is_finite() && at1.threshold > 0.0, "{m:?}");
            assert!(at1.fpir <= 0.01 + 1e-9, "{m:?}");
            // The bundled embedder finds most listed passers of a small list.
            assert!(at1.fnir < 0.5, "{m:?}");
        }
    }
    let svg = std::fs::read_to_string(tmp.path().join("det.svg")).unwrap();
    assert!(svg.contains("passage decisions, 20 listed"));

    // The per-passer rows joined the per-search ones, for both modes and both sizes.
    let t = ThresholdTable::read(&table).unwrap();
    let searches = t.rows.iter().filter(|r| r.per == RateUnit::Search).count();
    let shipped_searches = ThresholdTable::read(&shipped)
        .unwrap()
        .rows
        .iter()
        .filter(|r| r.per == RateUnit::Search)
        .count();
    assert_eq!(searches, shipped_searches);
    for n in [20, 60] {
        for mode in [DecisionMode::Frame, DecisionMode::Passage] {
            let rows = t
                .rows
                .iter()
                .filter(|r| {
                    r.per == RateUnit::Passer && r.watchlist_size == n && r.decision == mode
                })
                .count();
            assert_eq!(rows, 2, "size {n}, {mode:?}");
        }
    }

    // What the lane saw is replayed from the faces cache: the same figures, no detection.
    args.plot = None;
    let replayed = execute(&args).unwrap();
    assert!(
        json(&replayed) == json(&report),
        "the replay from the faces cache changed the figures"
    );

    // Another schedule on the same faces: the frame decisions cannot change.
    let lane = tmp.path().join("lane.toml");
    std::fs::write(
        &lane,
        "[passage]\nrelook_growth = 1.0\nlook_at_track_end = false\n",
    )
    .unwrap();
    args.config = Some(lane);
    let other = execute(&args).unwrap();
    for (a, b) in other.sizes.iter().zip(&report.sizes) {
        assert!(
            serde_json::to_string(&a.frame).unwrap() == serde_json::to_string(&b.frame).unwrap(),
            "frame decisions changed with the passage schedule"
        );
    }
}
