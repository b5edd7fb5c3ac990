//! The alert journal: append + fsync, rotation, torn-line recovery after a power cut, a full disk
//! (injected ENOSPC) that must not stop alerts, and the dispatcher's cool-down.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanewatch::alerts::cooldown::Cooldown;
use lanewatch::alerts::dispatch::{Dispatcher, Outcome};
use lanewatch::alerts::journal::{
    self, Journal, JournalConfig, Next, Opener, Position, SegmentFile, list_segments, read_next,
    segment_path,
};
use lanewatch::alerts::{
    Alert, AlertSink, Crop, FaceBox, FrameInfo, Identity, JsonLinesSink, MatchScores,
};
use lanewatch::passage::episode::{Episode, EpisodeShot, MatchedEntry, Outcome as Passage};

use crate::common::temp_dir;

pub(crate) fn alert(person: &str) -> Alert {
    Alert::new(
        "v4l2:/dev/video0",
        Identity {
            id: person.into(),
            name: format!("Name of {person}"),
            list: "wanted".into(),
            severity: "high".into(),
        },
        MatchScores {
            distance: 0.42,
            similarity: 0.91,
            margin: Some(0.12),
        },
        FaceBox {
            x: 10.0,
            y: 20.0,
            width: 96.0,
            height: 110.0,
        },
        FrameInfo {
            seq: 7,
            time_unix_ms: 1_795_824_000_000,
            width: 1280,
            height: 720,
        },
    )
}

/// Every alert readable from the journal, oldest first.
fn read_all(dir: &Path) -> Vec<Alert> {
    let mut pos = Position::default();
    let mut out = Vec::new();
    loop {
        match read_next(dir, pos, 1 << 20).unwrap() {
            Next::Line { alert, next } => {
                out.push(*alert.expect("only complete alerts in the journal"));
                pos = next;
            }
            Next::Record { next, .. } => pos = next,
            Next::Moved { to, .. } => pos = to,
            Next::Idle => return out,
        }
    }
}

/// Every line of the journal, oldest first: alerts and episode records. Panics on a line that is
/// neither (a torn or foreign line must never be read back).
fn read_alerts_and_episodes(dir: &Path) -> (Vec<Alert>, Vec<Episode>) {
    let mut pos = Position::default();
    let (mut alerts, mut episodes) = (Vec::new(), Vec::new());
    loop {
        match read_next(dir, pos, 1 << 20).unwrap() {
            Next::Line { alert, next } => {
                alerts.push(*alert.unwrap_or_else(|e| panic!("bad line at {pos:?}: {e}")));
                pos = next;
            }
            Next::Record { kind, line, next } => {
                assert_eq!(kind, "episode");
                episodes.push(Episode::from_json_line(&line).unwrap());
                pos = next;
            }
            Next::Moved { to, .. } => pos = to,
            Next::Idle => return (alerts, episodes),
        }
    }
}

#[test]
fn alerts_round_trip_through_the_journal_with_unique_ids() {
    let dir = temp_dir("journal-rt");
    let (mut journal, recovery) = Journal::open(&dir, JournalConfig::default()).unwrap();
    assert!(recovery.is_none());
    let mut written = Vec::new();
    for i in 0..50 {
        let mut a = alert(&format!("p{i}"));
        if i == 3 {
            a.crop = Some(Crop::inline_jpeg(b"\xFF\xD8fake jpeg bytes\xFF\xD9"));
        }
        journal.append(&a).unwrap();
        written.push(a);
    }
    let read = read_all(&dir);
    assert_eq!(read, written);
    let mut ids: Vec<_> = read.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50, "ids are unique");
    assert!(
        written[0].time.ends_with('Z') && written[0].time.len() == 24,
        "{}",
        written[0].time
    );
    assert_eq!(written[0].face_size_px, 110);
    assert_eq!(journal.stats().appended, 50);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segments_rotate_by_size_and_only_the_newest_are_kept() {
    let dir = temp_dir("journal-rotate");
    let line_len = alert("p00").to_json_line().unwrap().len() as u64;
    let config = JournalConfig {
        max_file_bytes: line_len * 3 + 10,
        keep_files: 4,
        max_pending: 16,
    };
    let (mut journal, _) = Journal::open(&dir, config).unwrap();
    let mut written = Vec::new();
    for i in 0..30 {
        let a = alert(&format!("p{i:02}"));
        journal.append(&a).unwrap();
        written.push(a);
    }
    let segments = list_segments(&dir).unwrap();
    assert_eq!(segments.len(), 4);
    assert_eq!(*segments.last().unwrap(), 10, "30 alerts, 3 per segment");
    for &seq in &segments {
        let len = std::fs::metadata(segment_path(&dir, seq)).unwrap().len();
        assert!(len <= config.max_file_bytes, "segment {seq} is {len} bytes");
    }
    assert_eq!(
        read_all(&dir),
        written[18..].to_vec(),
        "the last 4 segments survive"
    );
    assert_eq!(journal.stats().rotations, 9);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_last_line_is_truncated_reported_and_never_read_as_an_alert() {
    let dir = temp_dir("journal-torn");
    let (mut journal, _) = Journal::open(&dir, JournalConfig::default()).unwrap();
    let (a, b) = (alert("a"), alert("b"));
    journal.append(&a).unwrap();
    journal.append(&b).unwrap();
    drop(journal);
    // Power cut in the middle of the third line.
    let path = segment_path(&dir, 1);
    let clean_len = std::fs::metadata(&path).unwrap().len();
    let third = alert("c").to_json_line().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&third[..third.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();

    let (mut journal, recovery) = Journal::open(&dir, JournalConfig::default()).unwrap();
    let recovery = recovery.expect("the torn line is reported");
    assert!(recovery.torn_tail);
    assert_eq!(recovery.truncated_bytes, (third.len() / 2) as u64);
    assert!(recovery.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), clean_len);
    let d = alert("d");
    journal.append(&d).unwrap();
    assert_eq!(read_all(&dir), [a, b, d]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zero_filled_blocks_after_a_power_cut_are_removed_too() {
    let dir = temp_dir("journal-zeros");
    let (mut journal, _) = Journal::open(&dir, JournalConfig::default()).unwrap();
    let a = alert("a");
    journal.append(&a).unwrap();
    drop(journal);
    let path = segment_path(&dir, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 100]);
    bytes.push(b'\n');
    bytes.extend_from_slice(&[0u8; 50]);
    std::fs::write(&path, &bytes).unwrap();
    let (_journal, recovery) = Journal::open(&dir, JournalConfig::default()).unwrap();
    let recovery = recovery.unwrap();
    assert_eq!(
        (
            recovery.torn_tail,
            recovery.bad_lines,
            recovery.truncated_bytes
        ),
        (true, 1, 151)
    );
    assert_eq!(read_all(&dir), [a]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A segment file whose writes fail with `errno` while `failing` is set, after writing part of the
/// buffer (as a real full or failing disk can); with `cut_back_fails` the journal cannot truncate
/// the torn bytes either, and they stay until it reopens and repairs the segment.
struct FailingDisk {
    inner: std::fs::File,
    failing: Arc<AtomicBool>,
    errno: i32,
    cut_back_fails: bool,
}

impl SegmentFile for FailingDisk {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            io::Write::write_all(&mut self.inner, &buf[..buf.len() / 3])?;
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        io::Write::write_all(&mut self.inner, buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        if self.cut_back_fails && self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        self.inner.set_len(len)
    }
}

/// Opens segments as [`FailingDisk`]s.
pub(crate) fn failing_opener(failing: Arc<AtomicBool>, errno: i32, cut_back_fails: bool) -> Opener {
    Box::new(move |path| {
        let inner = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(FailingDisk {
            inner,
            failing: Arc::clone(&failing),
            errno,
            cut_back_fails,
        }) as Box<dyn SegmentFile>)
    })
}

/// A full disk: writes fail with ENOSPC after landing part of the line; cutting back works.
fn flaky_opener(full: Arc<AtomicBool>) -> Opener {
    failing_opener(full, 28, false)
}

/// Records what reached it and whether the journal had it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, bool)>>>);

impl AlertSink for Capture {
    fn name(&self) -> &str {
        "capture"
    }

    fn deliver(&mut self, alert: &Alert, journaled: bool) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((alert.identity.id.clone(), journaled));
        Ok(())
    }
}

#[test]
fn a_full_disk_does_not_stop_alerts_and_the_journal_catches_up_in_order() {
    let dir = temp_dir("journal-enospc");
    let full = Arc::new(AtomicBool::new(false));
    let (journal, _) = Journal::open_with(
        &dir,
        JournalConfig::default(),
        flaky_opener(Arc::clone(&full)),
    )
    .unwrap();
    let sink = Capture::default();
    let reports = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&reports);
    let stdout_copy = Arc::new(Mutex::new(Vec::new()));
    let mut dispatcher = Dispatcher::new(Some(journal), Cooldown::new(Duration::ZERO))
        .with_sink(Box::new(sink.clone()))
        .with_sink(Box::new(JsonLinesSink::new(
            "stdout",
            SharedBuf(Arc::clone(&stdout_copy)),
        )))
        .on_report(move |msg| seen.lock().unwrap().push(msg.to_string()));
    let t0 = Instant::now();

    let first = alert("p1");
    assert!(matches!(
        dispatcher.raise(&first, t0),
        Outcome::Raised {
            journaled: true,
            ..
        }
    ));
    full.store(true, Ordering::SeqCst);
    let during: Vec<Alert> = (2..=4).map(|i| alert(&format!("p{i}"))).collect();
    for a in &during {
        let outcome = dispatcher.raise(a, t0);
        assert_eq!(
            outcome,
            Outcome::Raised {
                journaled: false,
                sink_failures: vec![]
            }
        );
    }
    assert_eq!(dispatcher.retry_journal(), 0, "still full");
    assert_eq!(dispatcher.journal().unwrap().pending(), 3);
    {
        let reports = reports.lock().unwrap();
        assert!(reports.len() >= 3);
        assert!(
            reports[0].contains("No space left on device"),
            "{}",
            reports[0]
        );
        assert!(
            reports[0].contains(&dir.display().to_string()),
            "{}",
            reports[0]
        );
    }
    // Nothing torn was left in the file while the disk was full.
    assert_eq!(read_all(&dir), std::slice::from_ref(&first));

    full.store(false, Ordering::SeqCst);
    assert_eq!(dispatcher.retry_journal(), 3);
    let fifth = alert("p5");
    assert!(matches!(
        dispatcher.raise(&fifth, t0),
        Outcome::Raised {
            journaled: true,
            ..
        }
    ));

    let mut want = vec![first];
    want.extend(during);
    want.push(fifth);
    assert_eq!(read_all(&dir), want, "every alert exactly once, in order");
    let delivered = sink.0.lock().unwrap().clone();
    let journaled: Vec<bool> = delivered.iter().map(|d| d.1).collect();
    assert_eq!(journaled, [true, false, false, false, true]);
    let printed = String::from_utf8(stdout_copy.lock().unwrap().clone()).unwrap();
    assert_eq!(printed.lines().count(), 5, "stdout got every alert");
    let stats = dispatcher.stats();
    assert_eq!((stats.raised, stats.journal_failures), (5, 3));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pending_alerts_are_bounded_while_the_disk_stays_full() {
    let dir = temp_dir("journal-bounded");
    let full = Arc::new(AtomicBool::new(true));
    let config = JournalConfig {
        max_pending: 5,
        ..JournalConfig::default()
    };
    let (mut journal, _) =
        Journal::open_with(&dir, config, flaky_opener(Arc::clone(&full))).unwrap();
    let all: Vec<Alert> = (0..12).map(|i| alert(&format!("p{i}"))).collect();
    for a in &all {
        assert!(journal.append(a).is_err());
    }
    assert_eq!(journal.pending(), 5);
    assert_eq!(journal.stats().lost, 7);
    full.store(false, Ordering::SeqCst);
    assert_eq!(journal.retry_pending().unwrap(), 5);
    assert_eq!(
        read_all(&dir),
        all[7..].to_vec(),
        "the newest alerts are kept"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(Clone)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn cooldown_allows_one_alert_per_person_per_window() {
    let dir = temp_dir("journal-cooldown");
    let (journal, _) = Journal::open(&dir, JournalConfig::default()).unwrap();
    let sink = Capture::default();
    let mut dispatcher = Dispatcher::new(Some(journal), Cooldown::new(Duration::from_secs(30)))
        .with_sink(Box::new(sink.clone()));
    let t0 = Instant::now();
    assert!(matches!(
        dispatcher.raise(&alert("ann"), t0),
        Outcome::Raised { .. }
    ));
    match dispatcher.raise(&alert("ann"), t0 + Duration::from_secs(10)) {
        Outcome::Suppressed { remaining } => assert_eq!(remaining, Duration::from_secs(20)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        dispatcher.raise(&alert("bob"), t0 + Duration::from_secs(10)),
        Outcome::Raised { .. }
    ));
    assert!(matches!(
        dispatcher.raise(&alert("ann"), t0 + Duration::from_secs(30)),
        Outcome::Raised { .. }
    ));
    let ids: Vec<String> = sink.0.lock().unwrap().iter().map(|d| d.0.clone()).collect();
    assert_eq!(ids, ["ann", "bob", "ann"]);
    assert_eq!(
        read_all(&dir).len(),
        3,
        "suppressed alerts are not journaled"
    );
    assert_eq!(dispatcher.stats().suppressed, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn side_file_crops_are_written_atomically() {
    let dir = temp_dir("journal-crop");
    let a = alert("p");
    let img = image::RgbImage::from_pixel(32, 32, image::Rgb([100, 150, 200]));
    let jpeg = lanewatch::alerts::encode_jpeg(&img, 85).unwrap();
    let crop = Crop::side_file(&lanewatch::alerts::crops_dir(&dir), &a.id, &jpeg).unwrap();
    let Crop::File { path, sha256 } = &crop else {
        panic!("{crop:?}")
    };
    assert_eq!(std::fs::read(path).unwrap(), jpeg);
    assert_eq!(sha256.len(), 64);
    let _ = journal::segment_path(&dir, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Only an unfinished last line is an interrupted write: a complete line that is not an alert
/// (written whole by someone else, or by a newer lanewatch) is kept, and nothing is reported.
#[test]
fn a_complete_non_alert_last_line_is_kept() {
    let dir = temp_dir("journal-foreign-line");
    let (mut journal, _) = Journal::open(&dir, JournalConfig::default()).unwrap();
    journal.append(&alert("a")).unwrap();
    drop(journal);
    let path = segment_path(&dir, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"note\":\"operator checked lane 3\"}\n");
    std::fs::write(&path, &bytes).unwrap();
    let (_journal, recovery) = Journal::open(&dir, JournalConfig::default()).unwrap();
    assert_eq!(recovery, None);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The closing record of passage `n` of writer round `round`, as a lane would write it.
fn episode(round: u64, n: u64) -> Episode {
    let matched = n.is_multiple_of(3);
    Episode {
        record: "episode".into(),
        track: round * 100_000 + n,
        first_frame: n * 10,
        last_frame: n * 10 + 7,
        started_unix_ms: 1_795_824_000_000 + n * 400,
        ended_unix_ms: 1_795_824_000_280 + n * 400,
        faces: 8,
        good_faces: 6,
        embedded: 4,
        embeddings_saved: 4,
        outcome: if matched {
            Passage::Matched
        } else {
            Passage::NotMatched
        },
        matched: matched.then(|| MatchedEntry {
            id: format!("r{round}-p{n}"),
            distance: 0.031,
            best_single_distance: Some(0.044),
        }),
        evicted: false,
        watchlist_sequence: 12,
        best_shot: matched.then(|| EpisodeShot {
            frame: n * 10 + 3,
            quality: 0.81,
            face: FaceBox {
                x: 100.0,
                y: 80.0,
                width: 120.0,
                height: 140.0,
            },
        }),
    }
}

/// Set in the child process of [`episode_records_are_read_back_after_kills`]: the journal dir and
/// the writer round.
const CHILD_ENV: &str = "LANEWATCH_TEST_JOURNAL_WRITER";

/// The child: a lane's dispatcher raising an alert and closing a passage, over and over, saying
/// on stdout which passage's record has been written (fsynced) until it is killed.
fn write_until_killed(spec: &str) -> ! {
    use std::io::Write;
    let (dir, round) = spec.rsplit_once('|').unwrap();
    let round: u64 = round.parse().unwrap();
    let config = JournalConfig {
        max_file_bytes: 16 << 10,
        keep_files: 1000,
        max_pending: 16,
    };
    let (journal, _) = Journal::open(Path::new(dir), config).unwrap();
    let mut dispatcher = Dispatcher::new(Some(journal), Cooldown::new(Duration::ZERO));
    let mut stdout = io::stdout().lock();
    for n in 0.. {
        let e = episode(round, n);
        if let Some(m) = &e.matched {
            let outcome = dispatcher.raise(&alert(&m.id), Instant::now());
            assert!(matches!(
                outcome,
                Outcome::Raised {
                    journaled: true,
                    ..
                }
            ));
        }
        dispatcher.record_episode(&e);
        assert_eq!(dispatcher.stats().journal_failures, 0);
        writeln!(stdout, "{n}").unwrap();
        stdout.flush().unwrap();
    }
    unreachable!()
}

#[test]
fn episode_records_are_read_back_after_kills() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        write_until_killed(&spec);
    }
    let dir = temp_dir("journal-kill");
    // The test's name as the harness lists it: its module path without the binary's name.
    let this_test = format!(
        "{}::episode_records_are_read_back_after_kills",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let rounds = 5u64;
    let mut confirmed = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &this_test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}|{round}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = io::BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill at a different point each round, in the middle of the writer's loop.
        let stop_after = 40 + round * 37;
        let mut last = None;
        while let Some(Ok(line)) = lines.next() {
            if line.parse::<u64>().is_err() {
                continue; // the test harness's own lines
            }
            last = Some(line.parse::<u64>().unwrap());
            if last == Some(stop_after) {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        // Whatever the child confirmed before it died is also written.
        for line in lines.map_while(Result::ok) {
            if let Ok(n) = line.parse::<u64>() {
                last = Some(n);
            }
        }
        child.wait().unwrap();
        confirmed.push(last.expect("the writer confirmed no record before it was killed"));
    }

    let (alerts, episodes) = read_alerts_and_episodes(&dir);
    for round in 0..rounds {
        let got: Vec<&Episode> = episodes
            .iter()
            .filter(|e| e.track / 100_000 == round)
            .collect();
        let n = confirmed[round as usize];
        // Every confirmed record, in order and whole; at most one more that was fsynced but not
        // yet confirmed when the kill came.
        assert!(
            got.len() as u64 == n + 1 || got.len() as u64 == n + 2,
            "round {round}: {} records read back, {} confirmed",
            got.len(),
            n + 1
        );
        for (i, e) in got.iter().enumerate() {
            assert_eq!(**e, episode(round, i as u64), "round {round}, record {i}");
        }
        let matched = got.iter().filter(|e| e.outcome == Passage::Matched).count();
        let round_alerts = alerts
            .iter()
            .filter(|a| a.identity.id.starts_with(&format!("r{round}-")))
            .count();
        assert!(
            round_alerts == matched || round_alerts == matched + 1,
            "round {round}: {round_alerts} alerts for {matched} matched passages"
        );
    }
    assert!(
        list_segments(&dir).unwrap().len() > 1,
        "the journal rotated while being killed"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
