//! Bounded memory over a long run: 10,000 frames (a real face every 25th, an empty lane otherwise)
//! through the whole loop, with alerts, crops and the journal. Resident memory after a warm-up must
//! not grow: a leak of even 200 bytes per frame would show as 2 MB here.
//!
//! `LANEWATCH_MEMORY_FRAMES` changes the length (e.g. 100000 for a soak run).

use std::sync::Arc;

use crate::common::pipeline::*;
use lanewatch::camera::FrameSource;
use lanewatch::camera::scripted::{Script, Step};
use lanewatch::pipeline::memory::resident;
use lanewatch::pipeline::{Pacing, RunOptions, run};

#[test]
#[cfg(target_os = "linux")]
fn ten_thousand_frames_without_resident_growth() {
    let frames: usize = std::env::var("LANEWATCH_MEMORY_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let warmup = 500.min(frames / 2);
    let work = temp("lanewatch-run-memory");
    let w = work.path();
    let a = "Abel_Pacheco";
    // Single-frame passers: a list that decides each face on its own.
    let store = state_with(w, &watchlist_per_frame(w, &[(a, &[0])], 1));
    let steps = (0..frames).map(|i| {
        if i % 25 == 0 {
            Step::Picture(i / 25 % 2)
        } else {
            Step::Frame((i % 200) as u8 + 20)
        }
    });
    let script = Script::new(250, 250, steps.chain([Step::End]))
        .with_pictures(vec![picture(a, 1), picture(a, 2)]);
    let source = script.open().unwrap();
    // Cool-down 1 s: some frames alert (journal, crop, stdout-less sinks), most are suppressed.
    let mut config = alerts_config(&w.join("alerts"), 1);
    config.rotate_bytes = 64 << 10;
    config.keep_files = 2;
    let rig = rig(
        Box::new(source) as Box<dyn FrameSource>,
        Pacing::Replay,
        store,
        &config,
        Arc::default(),
    );
    let mut n = 0usize;
    let mut after_warmup = 0u64;
    let mut samples = Vec::new();
    let summary = run(rig, RunOptions::default(), |_| {
        n += 1;
        if n == warmup {
            after_warmup = resident().unwrap().current_bytes;
        }
        if n > warmup && n.is_multiple_of((frames / 10).max(1)) {
            samples.push((n, resident().unwrap().current_bytes));
        }
    })
    .unwrap();
    let end = resident().unwrap();
    let mb = |b: u64| b as f64 / 1048576.0;
    eprintln!(
        "{frames} frames: rss {:.1} MB after {warmup}, {:.1} MB at the end (peak {:.1} MB); samples {:?}; {}",
        mb(after_warmup),
        mb(end.current_bytes),
        mb(end.peak_bytes),
        samples
            .iter()
            .map(|(n, b)| format!("{n}:{:.1}", mb(*b)))
            .collect::<Vec<_>>(),
        summary.line()
    );
    assert_eq!(summary.lane.frames, frames as u64);
    assert!(summary.lane.alerts_raised >= 1);
    let growth = end.current_bytes as i64 - after_warmup as i64;
    assert!(
        growth < 2 << 20,
        "resident memory grew by {:.2} MB over {} frames",
        growth as f64 / 1048576.0,
        frames - warmup
    );
}
