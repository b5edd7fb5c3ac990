//! A journal segment repaired while the box runs (a failed write that could not be cut back, then
//! a reopen that truncates the torn bytes) is reported once and counted in the journal's stats,
//! which the run summary shows as `journal_recoveries` ("journal repairs" on the status line).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanewatch::alerts::cooldown::Cooldown;
use lanewatch::alerts::dispatch::Dispatcher;
use lanewatch::alerts::journal::{Journal, JournalConfig};

use crate::journal_store::{alert, failing_opener};

#[test]
fn a_repair_after_a_failed_write_is_reported_and_counted() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("journal-repair-report");
    let _ = std::fs::remove_dir_all(&dir);
    let broken = Arc::new(AtomicBool::new(false));
    // While `broken` is set, a write lands a third of its bytes then fails (EIO), and cutting it
    // back fails too: the torn bytes stay in the file until the journal reopens and repairs it.
    let opener = failing_opener(Arc::clone(&broken), 5, true);
    let (journal, at_open) = Journal::open_with(&dir, JournalConfig::default(), opener).unwrap();
    assert!(at_open.is_none());
    let reports = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&reports);
    let mut dispatcher = Dispatcher::new(Some(journal), Cooldown::new(Duration::ZERO))
        .on_report(move |msg| seen.lock().unwrap().push(msg.to_string()));
    let now = Instant::now();

    dispatcher.raise(&alert("p1"), now);
    broken.store(true, Ordering::SeqCst);
    dispatcher.raise(&alert("p2"), now);
    assert_eq!(dispatcher.journal().unwrap().stats().recoveries, 0);
    broken.store(false, Ordering::SeqCst);
    assert_eq!(dispatcher.retry_journal(), 1);

    let stats = dispatcher.journal().unwrap().stats();
    assert_eq!(stats.recoveries, 1, "{stats:?}");
    let repairs = || -> Vec<String> {
        let all = reports.lock().unwrap();
        all.iter()
            .filter(|r| r.contains("interrupted write"))
            .cloned()
            .collect()
    };
    let first = repairs();
    assert_eq!(first.len(), 1, "{:?}", reports.lock().unwrap());
    assert!(
        first[0].contains(&dir.display().to_string()),
        "{}",
        first[0]
    );
    // Reported once: later calls have nothing new to say.
    dispatcher.retry_journal();
    dispatcher.raise(&alert("p3"), now);
    assert_eq!(repairs().len(), 1);
    assert_eq!(dispatcher.journal().unwrap().stats().recoveries, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
