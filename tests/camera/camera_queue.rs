//! The bounded capture → inference queue: drop-oldest under load, counted, with buffers handed back.

use std::sync::Arc;
use std::time::Duration;

use lanewatch::queue::{DropOldest, Pop};

#[test]
fn evicts_the_oldest_and_counts() {
    let q: DropOldest<u32, 3> = DropOldest::new();
    assert_eq!(q.push(1), None);
    assert_eq!(q.push(2), None);
    assert_eq!(q.push(3), None);
    assert_eq!(q.push(4), Some(1), "oldest handed back for reuse");
    assert_eq!(q.push(5), Some(2));
    let stats = q.stats();
    assert_eq!(
        (stats.len, stats.capacity, stats.pushed, stats.dropped),
        (3, 3, 5, 2)
    );
    assert_eq!(q.pop_timeout(Duration::ZERO), Pop::Item(3));
    assert_eq!(q.try_pop(), Some(4));
    assert_eq!(q.try_pop(), Some(5));
    assert_eq!(q.pop_timeout(Duration::from_millis(5)), Pop::TimedOut);
    assert_eq!(q.stats().popped, 3);
}

#[test]
fn close_drains_then_reports_closed_and_refuses_pushes() {
    let q: DropOldest<&str, 2> = DropOldest::new();
    q.push("a");
    q.close();
    assert_eq!(q.push("b"), Some("b"));
    assert_eq!(q.pop_timeout(Duration::from_secs(1)), Pop::Item("a"));
    assert_eq!(q.pop_timeout(Duration::from_secs(1)), Pop::Closed);
}

#[test]
fn a_slow_consumer_sees_fresh_frames_in_order_and_nothing_is_unaccounted() {
    let q: Arc<DropOldest<u64, 4>> = Arc::new(DropOldest::new());
    let producer = {
        let q = Arc::clone(&q);
        std::thread::spawn(move || {
            for seq in 0..20_000u64 {
                q.push(seq);
                if seq % 1000 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            q.close();
        })
    };
    let mut seen = Vec::new();
    loop {
        match q.pop_timeout(Duration::from_secs(5)) {
            Pop::Item(seq) => {
                seen.push(seq);
                std::thread::sleep(Duration::from_micros(50));
            }
            Pop::Closed => break,
            Pop::TimedOut => panic!("producer stalled"),
        }
    }
    producer.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "frames must stay in order"
    );
    assert_eq!(
        *seen.last().unwrap(),
        19_999,
        "the newest frame is never the one dropped"
    );
    let stats = q.stats();
    assert_eq!(stats.pushed, 20_000);
    assert_eq!(stats.popped + stats.dropped, 20_000);
    assert!(
        stats.dropped > 0,
        "the consumer was slower, so frames were dropped"
    );
}

#[test]
fn waiting_consumer_wakes_on_push() {
    let q: Arc<DropOldest<u8, 2>> = Arc::new(DropOldest::new());
    let consumer = {
        let q = Arc::clone(&q);
        std::thread::spawn(move || q.pop_timeout(Duration::from_secs(10)))
    };
    std::thread::sleep(Duration::from_millis(20));
    q.push(7);
    assert_eq!(consumer.join().unwrap(), Pop::Item(7));
}

#[test]
fn runtime_limit_below_capacity_drops_at_the_limit() {
    let q: DropOldest<u32, 64> = DropOldest::with_limit(2);
    assert_eq!(q.push(1), None);
    assert_eq!(q.push(2), None);
    assert_eq!(q.push(3), Some(1));
    let s = q.stats();
    assert_eq!((s.len, s.capacity, s.dropped), (2, 2, 1));
    // Clamped to the storage size, and to at least one.
    assert_eq!(DropOldest::<u8, 4>::with_limit(100).stats().capacity, 4);
    assert_eq!(DropOldest::<u8, 4>::with_limit(0).stats().capacity, 1);
}

#[test]
fn push_wait_blocks_until_there_is_room_and_never_drops() {
    let q: Arc<DropOldest<u64, 2>> = Arc::new(DropOldest::new());
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || {
            for i in 0..1000 {
                q.push_wait(i).unwrap();
            }
            q.close();
        })
    };
    let mut got = Vec::new();
    loop {
        match q.pop_timeout(Duration::from_secs(10)) {
            Pop::Item(i) => got.push(i),
            Pop::Closed => break,
            Pop::TimedOut => panic!("producer stalled"),
        }
    }
    producer.join().unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_eq!(q.stats().dropped, 0);
}

#[test]
fn push_wait_returns_the_item_when_closed() {
    let q: Arc<DropOldest<u8, 1>> = Arc::new(DropOldest::new());
    q.push_wait(1).unwrap();
    let waiting = {
        let q = q.clone();
        std::thread::spawn(move || q.push_wait(2))
    };
    std::thread::sleep(Duration::from_millis(20));
    q.close();
    assert_eq!(waiting.join().unwrap(), Err(2));
}
