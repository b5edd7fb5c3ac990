//! The run loop's watchlist slot over the life of a box, with the clock given: no list yet (faces
//! counted), a list installed, a garbage file and a replayed older file (both ignored, the running
//! list stays), expiry (matching paused), and a newer list (matching resumes).

use std::sync::{Arc, Mutex};

use crate::common::watchlist::*;
use lanewatch::fsio::write_atomically;
use lanewatch::pipeline::{Watcher, WatchlistSlot};
use lanewatch::watchlist::Store;

#[test]
fn slot_follows_the_state_directory_and_keeps_what_it_had() {
    let tmp = TempDir::new("run-watch");
    let store = Store::open(&tmp.0).unwrap();
    let active = store.active_path();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    let mut watcher =
        Watcher::new(store, verifier()).on_report(move |m| sink.lock().unwrap().push(m.into()));
    let slot = WatchlistSlot::default();
    let said = |what: &str| log.lock().unwrap().iter().any(|m| m.contains(what));

    // No list yet: nothing to match against, said once however often it is checked.
    watcher.check_at(&slot, NOW);
    watcher.check_at(&slot, NOW + 1);
    assert!(slot.current().is_none());
    assert_eq!(log.lock().unwrap().len(), 1);
    assert!(said("no watchlist installed"));

    write_atomically(&active, &file(3)).unwrap();
    watcher.check_at(&slot, NOW + 2);
    assert_eq!(slot.current().unwrap().sequence(), 3);
    assert_eq!(slot.stats().loads, 1);

    // Garbage over the active file: refused, sequence 3 stays in use.
    std::fs::write(&active, b"LWLIST\r\n and then nothing valid").unwrap();
    watcher.check_at(&slot, NOW + 3);
    assert_eq!(slot.current().unwrap().sequence(), 3);
    assert_eq!(slot.stats().rejections, 1);
    assert!(said("still matching against sequence 3"));

    // A validly signed but older list copied over it: a rollback, refused too.
    write_atomically(&active, &file(2)).unwrap();
    watcher.check_at(&slot, NOW + 4);
    assert_eq!(slot.current().unwrap().sequence(), 3);
    assert_eq!(slot.stats().rejections, 2);

    // Sequence 3 expires (30 days after NOW): matching pauses rather than using a stale list.
    let later = NOW + 31 * DAY;
    watcher.check_at(&slot, later);
    assert!(slot.current().is_none());
    assert!(slot.stats().expired);
    assert!(said("expired"));

    // A newer list brings matching back.
    let mut b = body(4, 5);
    b.created_at = later - 60;
    b.expires_at = later + DAY;
    write_atomically(&active, &sign(&b, &signer())).unwrap();
    watcher.check_at(&slot, later + 1);
    assert_eq!(slot.current().unwrap().sequence(), 4);
    assert!(!slot.stats().expired);
    assert_eq!(slot.stats().loads, 2);
}
