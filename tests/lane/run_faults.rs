//! The run loop under faults, on real faces: a camera that times out, sends corrupt frames, is
//! unplugged and replugged (with failed reopens and panics in the driver), and a watchlist file
//! replaced by garbage while running. The loop must go on, every alert must reach the journal, and
//! the running watchlist must stay until a valid newer one replaces it (which then takes effect).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::pipeline::*;
use lanewatch::camera::FrameSource;
use lanewatch::camera::reconnect::{ReconnectEvent, ReconnectPolicy, Reconnecting};
use lanewatch::camera::scripted::{Script, Step};
use lanewatch::fsio::write_atomically;
use lanewatch::pipeline::{Pacing, RunOptions, WatchlistSlot, run};

fn wait_for(what: &str, slot: &WatchlistSlot, ok: impl Fn(&WatchlistSlot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok(slot) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn unplugs_corrupt_frames_and_a_bad_watchlist_lose_no_alert() {
    let work = temp("lanewatch-run-faults");
    let w = work.path();
    let (a, b, c) = ("Abel_Pacheco", "Akhmed_Zakayev", "Anders_Fogh_Rasmussen");
    let stranger = identities().into_iter().find(|(_, n)| *n == 1).unwrap().0;
    // Each picture is one frame: lists that decide every face on its own (the lane still raises
    // one alert per passage; the appearance check starts a new passage for each new person).
    let store = state_with(w, &watchlist_per_frame(w, &[(a, &[0]), (b, &[0])], 1));
    let active = store.active_path();
    let next_list = watchlist_per_frame(w, &[(a, &[0]), (b, &[0]), (c, &[0])], 2);

    let pictures = vec![
        picture(a, 1),
        picture(b, 1),
        picture(&stranger, 0),
        picture(a, 2),
        picture(b, 2),
        picture(c, 1),
        picture(c, 2),
    ];
    use Step::*;
    let script = Script::new(
        250,
        250,
        [
            Picture(0), // a: alert
            Timeout,
            Corrupt,
            Picture(1), // b: alert
            Unplug,
            OpenFail,
            OpenFail,
            Picture(2), // stranger: nothing
            PanicOnDrop,
            Unplug,
            Picture(3), // a: alert
            Corrupt,
            Panic,
            Picture(4), // b: alert; then the active file is overwritten with garbage
            Picture(0), // a: continues a's passage (no alert), still against sequence 1
            Picture(5), // c: not on sequence 1; then a valid sequence 2 is flashed
            Picture(6), // c: alert against sequence 2
            End,
        ],
    )
    .with_pictures(pictures);
    let factory_script = script.clone();
    let reconnects = Arc::new(AtomicU64::new(0));
    let counter = reconnects.clone();
    let source = Reconnecting::new(
        "scripted",
        move || factory_script.open(),
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            timeouts_before_reopen: 3,
        },
    )
    .on_event(move |_, e| {
        if matches!(e, ReconnectEvent::Closed { .. }) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let alerts_dir = w.join("alerts");
    let rig = rig(
        Box::new(source) as Box<dyn FrameSource>,
        Pacing::Replay,
        store,
        &alerts_config(&alerts_dir, 0),
        reconnects,
    );
    let slot = rig.lane.watchlist().clone();

    let mut seen: Vec<(Vec<String>, u64)> = Vec::new();
    let mut alert_ids = Vec::new();
    let summary = run(rig, RunOptions::default(), |r| {
        let who: Vec<String> = r.alerts.iter().map(|a| a.identity.id.clone()).collect();
        alert_ids.extend(r.alerts.iter().map(|a| a.id.clone()));
        seen.push((who, r.watchlist.map_or(0, |l| l.sequence())));
        match seen.len() {
            5 => {
                std::fs::write(&active, b"not a watchlist, a half-copied file").unwrap();
                wait_for("the bad file to be rejected", &slot, |s| {
                    s.stats().rejections >= 1
                });
            }
            7 => {
                write_atomically(&active, &next_list).unwrap();
                wait_for("sequence 2", &slot, |s| s.stats().sequence == 2);
            }
            _ => {}
        }
    })
    .unwrap();

    let expect: Vec<(Vec<String>, u64)> = vec![
        (vec![a.into()], 1),
        (vec![b.into()], 1),
        (vec![], 1),
        (vec![a.into()], 1),
        (vec![b.into()], 1),
        // a again, one frame after a's last face: the same passage (a face lost for a frame
        // comes back to its track), so no second alert.
        (vec![], 1),
        (vec![], 1),
        (vec![c.into()], 2),
    ];
    assert_eq!(seen, expect, "{summary:#?}");
    assert_eq!(summary.ended, "end of stream");
    assert_eq!(summary.capture.corrupt, 2, "{summary:#?}");
    assert!(summary.reconnects >= 3, "{summary:#?}");
    // A file written in place can be seen half-written and then whole: one or two rejections.
    assert!(summary.watchlist.rejections >= 1, "{summary:#?}");
    assert_eq!(summary.watchlist.loads, 2);
    assert_eq!(script.live_sources(), 0, "a camera source leaked");
    // The journal is the record of truth: every alert, in order, nothing more.
    let journal: Vec<_> = journal_alerts(&alerts_dir)
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(journal, alert_ids);
    assert_eq!(journal.len(), 5);
}
