//! The reconnecting wrapper driven through scripted faults: unplugs, failed reopens, silence,
//! corrupt frames and panics. It must recover, count, keep at most one source open, and never leak.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanewatch::camera::reconnect::{ReconnectEvent, ReconnectPolicy, Reconnecting};
use lanewatch::camera::scripted::{Script, ScriptedSource, Step};
use lanewatch::camera::{Frame, FrameSource, SourceError};

const T: Duration = Duration::from_millis(200);

fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        timeouts_before_reopen: 3,
    }
}

type Wrapped =
    Reconnecting<ScriptedSource, Box<dyn FnMut() -> Result<ScriptedSource, SourceError> + Send>>;

fn wrap(script: &Script, policy: ReconnectPolicy, log: Arc<Mutex<Vec<String>>>) -> Wrapped {
    let s = script.clone();
    let factory: Box<dyn FnMut() -> Result<ScriptedSource, SourceError> + Send> =
        Box::new(move || s.open());
    Reconnecting::new("scripted-cam", factory, policy).on_event(move |_, event| {
        log.lock().unwrap().push(format!("{event:?}"));
    })
}

/// Runs until end of stream; returns the fill values of the frames delivered, checking the
/// invariants on every call.
fn drain(source: &mut Wrapped, script: &Script) -> (Vec<u8>, Vec<&'static str>) {
    let mut frame = Frame::empty();
    let (mut values, mut errors) = (Vec::new(), Vec::new());
    let mut last_seq = None;
    for _ in 0..10_000 {
        let result = source.next_frame(&mut frame, T);
        assert!(
            script.live_sources() <= 1,
            "more than one source open at once"
        );
        match result {
            Ok(()) => {
                values.push(frame.rgb.as_raw()[0]);
                if let Some(prev) = last_seq {
                    assert_eq!(frame.seq, prev + 1, "seq must continue across reconnects");
                }
                last_seq = Some(frame.seq);
            }
            Err(SourceError::EndOfStream { .. }) => return (values, errors),
            Err(e) => {
                assert!(
                    !matches!(e, SourceError::Unplugged { .. } | SourceError::Open { .. }),
                    "wrapper leaked {e}"
                );
                errors.push(e.kind());
            }
        }
    }
    panic!("script never ended");
}

#[test]
fn recovers_from_unplugs_failed_reopens_and_silence_and_counts_them() {
    use Step::*;
    let script = Script::new(
        8,
        4,
        [
            Frame(1),
            Frame(2),
            Unplug,
            OpenFail,
            OpenFail,
            Frame(3),
            Corrupt,
            Frame(4),
            Timeout,
            Timeout,
            Timeout, // third in a row: closed and reopened
            Frame(5),
            Timeout,
            Frame(6), // a single timeout does not reopen
            Unplug,
            Frame(7),
            End,
        ],
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut source = wrap(&script, fast_policy(), Arc::clone(&log));
    let (values, errors) = drain(&mut source, &script);
    assert_eq!(values, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        errors,
        ["corrupt", "timeout", "timeout", "timeout", "timeout"]
    );
    let stats = source.stats();
    assert_eq!(stats.frames, 7);
    assert_eq!(stats.unplugs, 3, "two unplugs and one silent camera");
    assert_eq!(stats.opens, 4);
    assert_eq!(stats.open_failures, 2);
    assert_eq!(stats.corrupt, 1);
    assert_eq!(stats.timeouts, 4);
    assert_eq!(stats.panics, 0);
    assert!(stats.connected);
    assert_eq!(script.opens(), 4);
    drop(source);
    assert_eq!(
        script.live_sources(),
        0,
        "dropping the wrapper closes the source"
    );
    let log = log.lock().unwrap();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("OpenFailed")).count(),
        2
    );
    assert!(
        log.iter().any(|l| l.contains("3 timeouts in a row")),
        "{log:?}"
    );
}

#[test]
fn panics_in_the_source_and_in_its_drop_are_contained() {
    use Step::*;
    let script = Script::new(
        4,
        4,
        [
            Frame(1),
            PanicOnDrop,
            Unplug,
            Frame(2),
            Panic,
            Frame(3),
            End,
        ],
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut source = wrap(&script, fast_policy(), Arc::clone(&log));
    let (values, _) = drain(&mut source, &script);
    assert_eq!(values, [1, 2, 3]);
    let stats = source.stats();
    assert_eq!(stats.panics, 2, "one from drop, one from next_frame");
    assert_eq!(stats.unplugs, 2);
    drop(source);
    assert_eq!(script.live_sources(), 0);
}

#[test]
fn a_thousand_unplugs_leak_nothing() {
    let mut steps = Vec::new();
    for i in 0..1000u32 {
        steps.push(Step::Frame((i % 250) as u8));
        steps.push(Step::Unplug);
    }
    steps.push(Step::End);
    let script = Script::new(2, 2, steps);
    let policy = ReconnectPolicy {
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        timeouts_before_reopen: 3,
    };
    let mut source = wrap(&script, policy, Arc::new(Mutex::new(Vec::new())));
    let (values, errors) = drain(&mut source, &script);
    assert_eq!(values.len(), 1000);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(source.stats().unplugs, 1000);
    assert_eq!(script.opens(), 1001);
    drop(source);
    assert_eq!(script.live_sources(), 0);
}

#[test]
fn back_off_doubles_up_to_the_cap_and_calls_respect_their_timeout() {
    let script = Script::new(
        2,
        2,
        std::iter::repeat_n(Step::OpenFail, 8).chain([Step::Frame(9), Step::End]),
    );
    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&retries);
    let policy = ReconnectPolicy {
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(16),
        timeouts_before_reopen: 3,
    };
    let s = script.clone();
    let mut source =
        Reconnecting::new("cam", move || s.open(), policy).on_event(move |_, event| {
            if let ReconnectEvent::OpenFailed { retry_in, .. } = event {
                seen.lock().unwrap().push(retry_in.as_millis() as u64);
            }
        });
    let mut frame = Frame::empty();
    let started = Instant::now();
    let mut timeouts = 0;
    loop {
        let call = Instant::now();
        match source.next_frame(&mut frame, Duration::from_millis(5)) {
            Ok(()) => break,
            Err(SourceError::Timeout { .. }) => {
                timeouts += 1;
                assert!(
                    call.elapsed() < Duration::from_millis(100),
                    "a call overran its timeout"
                );
            }
            Err(e) => panic!("{e}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    assert_eq!(frame.rgb.as_raw()[0], 9);
    assert_eq!(*retries.lock().unwrap(), [2, 4, 8, 16, 16, 16, 16, 16]);
    assert!(timeouts > 0, "calls returned while the camera was away");
    // The waits add up to the back-off schedule (2+4+8+16*5 = 94 ms).
    assert!(started.elapsed() >= Duration::from_millis(90));
}

#[test]
fn end_of_stream_passes_through_and_factory_panics_are_contained() {
    let mut calls = 0;
    let script = Script::new(2, 2, [Step::Frame(4), Step::End]);
    let s = script.clone();
    let mut source = Reconnecting::new(
        "cam",
        move || {
            calls += 1;
            if calls == 1 {
                panic!("factory bug");
            }
            s.open()
        },
        fast_policy(),
    )
    .on_event(|_, _| {});
    let mut frame = Frame::empty();
    let mut got = None;
    for _ in 0..100 {
        match source.next_frame(&mut frame, T) {
            Ok(()) => got = Some(frame.rgb.as_raw()[0]),
            Err(SourceError::EndOfStream { .. }) => break,
            Err(SourceError::Timeout { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, Some(4));
    assert_eq!(source.stats().panics, 1);
    assert_eq!(source.stats().open_failures, 1);
}
