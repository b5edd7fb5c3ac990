//! Crash safety: an install stopped before each of its steps (as a power cut would stop it) leaves
//! a state directory that, after the restart's `Store::open`, holds a complete valid watchlist:
//! the old one or the new one, byte for byte, and no temp file.

use crate::common::watchlist::*;
use lanewatch::watchlist::store::{InstallStep, Installed};
use lanewatch::watchlist::{Store, StoreError};

fn interrupt_at(stop: InstallStep) -> impl FnMut(InstallStep) -> Result<(), StoreError> {
    move |step| {
        if step == stop {
            Err(StoreError::Interrupted(step))
        } else {
            Ok(())
        }
    }
}

fn temp_files(store: &Store) -> Vec<String> {
    std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn interrupted_replacement_leaves_old_or_new_complete() {
    // `previous` holds v1 and `active` v2 when the install of v3 is cut.
    let (v1, old, new) = (file(1), file(2), file(3));
    let mut seen_new = 0;
    for stop in InstallStep::ALL {
        let dir = TempDir::new(&format!("crash-{stop:?}"));
        let store = Store::open(dir.path()).unwrap();
        store.install(&v1, "v1", &verifier(), NOW).unwrap();
        store.install(&old, "old", &verifier(), NOW).unwrap();

        let err = store
            .install_with_hook(&new, "new", &verifier(), NOW, &mut interrupt_at(stop))
            .unwrap_err();
        assert!(matches!(err, StoreError::Interrupted(s) if s == stop));
        if stop == InstallStep::WriteRest {
            // The crash really left a half-written file behind...
            assert_eq!(temp_files(&store).len(), 1, "{stop:?}");
        }

        // Restart: ...which is never read and is cleaned away.
        let store = Store::open(dir.path()).unwrap();
        assert!(temp_files(&store).is_empty(), "{stop:?}");
        let loaded = store.load_active(&verifier(), NOW).unwrap();
        let on_disk = store.active_bytes().unwrap().unwrap();
        match loaded.sequence() {
            2 => assert_eq!(on_disk, old, "{stop:?}"),
            3 => {
                assert_eq!(on_disk, new, "{stop:?}");
                seen_new += 1;
            }
            s => panic!("{stop:?}: sequence {s}"),
        }
        // Before the rename the old list must still be active.
        let renamed = matches!(stop, InstallStep::SyncDir | InstallStep::RenamePrevious);
        assert_eq!(loaded.sequence() == 3, renamed, "{stop:?}");
        // The rollback target only changes once the new list is in place: until then it is
        // still v1, complete (an install cut early must not destroy it).
        let prev = std::fs::read(store.previous_path()).unwrap();
        if renamed {
            assert!(prev == v1 || prev == old, "{stop:?}");
        } else {
            assert_eq!(prev, v1, "{stop:?}: the rollback target was replaced");
        }

        // And the interrupted install can simply be run again.
        let again = store.install(&new, "new", &verifier(), NOW).unwrap();
        assert!(matches!(
            again,
            Installed::Replaced {
                from: Some(2),
                to: 3
            } | Installed::Unchanged { sequence: 3 }
        ));
        assert_eq!(store.active_bytes().unwrap().unwrap(), new);
    }
    assert_eq!(seen_new, 2);
}

/// Two writers at once (a technician's install while `sync --every` installs, each with its own
/// `Store::open`): the second waits for the first, neither removes the other's temp file, and the
/// directory ends with a complete, verified list.
#[test]
fn two_concurrent_writers_never_corrupt_the_active_list() {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    let dir = TempDir::new("crash-two-writers");
    Store::open(dir.path()).unwrap();
    let (a, b) = (file(2), file(3));
    let path = dir.path().to_path_buf();
    let started = Arc::new(Barrier::new(2));
    let writer_a = {
        let (path, a, started) = (path.clone(), a.clone(), started.clone());
        std::thread::spawn(move || {
            let store = Store::open(&path).unwrap();
            store.install_with_hook(&a, "A", &verifier(), NOW, &mut |step| {
                if step == InstallStep::WriteRest {
                    // A is half-way through its temp file when B starts.
                    started.wait();
                    std::thread::sleep(Duration::from_millis(300));
                }
                Ok(())
            })
        })
    };
    started.wait();
    let writer_b = {
        let (path, b) = (path.clone(), b.clone());
        std::thread::spawn(move || {
            let store = Store::open(&path).unwrap();
            store.install(&b, "B", &verifier(), NOW)
        })
    };
    let ra = writer_a.join().unwrap();
    let rb = writer_b.join().unwrap();
    assert!(
        matches!(ra, Ok(Installed::Replaced { from: None, to: 2 })),
        "{ra:?}"
    );
    assert!(
        matches!(
            rb,
            Ok(Installed::Replaced {
                from: Some(2),
                to: 3
            })
        ),
        "{rb:?}"
    );
    let store = Store::open(&path).unwrap();
    assert_eq!(store.load_active(&verifier(), NOW).unwrap().sequence(), 3);
    assert_eq!(store.active_bytes().unwrap().unwrap(), b);
    assert_eq!(std::fs::read(store.previous_path()).unwrap(), a);
    assert!(temp_files(&store).is_empty());
    // And later installs still work.
    store.install(&file(4), "C", &verifier(), NOW).unwrap();
}

/// Writers in separate processes (flock is per open file, so this holds across processes too):
/// a child process holds the lock; our install waits until it lets go.
#[test]
fn an_install_waits_for_another_process_holding_the_lock() {
    use std::time::{Duration, Instant};

    let dir = TempDir::new("crash-lock-process");
    let store = Store::open(dir.path()).unwrap();
    let lock = dir.path().join("watchlist.lock");
    let mut child = match std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "1"])
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return, // no util-linux flock(1) here: the thread test above covers the lock
    };
    // Wait until the child holds the lock.
    let start = Instant::now();
    loop {
        let probe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .unwrap();
        if probe.try_lock().is_err() {
            break;
        }
        drop(probe);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "flock(1) never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let held = Instant::now();
    store.install(&file(1), "one", &verifier(), NOW).unwrap();
    assert!(
        held.elapsed() >= Duration::from_millis(500),
        "the install did not wait for the lock holder ({:?})",
        held.elapsed()
    );
    child.wait().unwrap();
}

#[test]
fn rollback_refuses_a_previous_list_with_the_same_sequence() {
    let dir = TempDir::new("crash-rollback-same");
    let store = Store::open(dir.path()).unwrap();
    store.install(&file(1), "one", &verifier(), NOW).unwrap();
    store.install(&file(2), "two", &verifier(), NOW).unwrap();
    // What a rollback interrupted between its two renames leaves: the same list twice.
    std::fs::copy(store.active_path(), store.previous_path()).unwrap();
    let err = store.rollback(&verifier(), NOW, true).unwrap_err();
    assert!(
        matches!(err, StoreError::SameSequence { sequence: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("nothing to roll back to"), "{err}");
}

#[test]
fn interrupted_first_install_leaves_nothing_or_the_complete_file() {
    let new = file(1);
    for stop in InstallStep::ALL {
        let dir = TempDir::new(&format!("crash-first-{stop:?}"));
        let store = Store::open(dir.path()).unwrap();
        let result =
            store.install_with_hook(&new, "new", &verifier(), NOW, &mut interrupt_at(stop));
        let store = Store::open(dir.path()).unwrap();
        assert!(temp_files(&store).is_empty());
        match store.load_active(&verifier(), NOW) {
            Ok(loaded) => assert_eq!(loaded.sequence(), 1),
            Err(StoreError::NoActive { .. }) => assert!(result.is_err()),
            Err(e) => panic!("{stop:?}: {e}"),
        }
    }
}
