//! Crash safety: an install stopped before each of its steps (as a power cut would stop it) leaves
//! a state directory that, after the restart's `Store::open`, holds a complete valid watchlist:
//! the old one or the new one, byte for byte, and no temp file.

mod watchlist_common;

use lanewatch::watchlist::store::{InstallStep, Installed};
use lanewatch::watchlist::{Store, StoreError};
use watchlist_common::*;

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
    let old = file(1);
    let new = file(2);
    let mut seen_new = 0;
    for stop in InstallStep::ALL {
        let dir = TempDir::new(&format!("crash-{stop:?}"));
        let store = Store::open(dir.path()).unwrap();
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
            1 => assert_eq!(on_disk, old, "{stop:?}"),
            2 => {
                assert_eq!(on_disk, new, "{stop:?}");
                seen_new += 1;
            }
            s => panic!("{stop:?}: sequence {s}"),
        }
        // Before the rename the old list must still be active.
        let renamed = matches!(stop, InstallStep::SyncDir);
        assert_eq!(loaded.sequence() == 2, renamed, "{stop:?}");
        // A previous file, if there is one, is complete too.
        if let Ok(prev) = std::fs::read(store.previous_path()) {
            assert_eq!(prev, old, "{stop:?}");
        }

        // And the interrupted install can simply be run again.
        let again = store.install(&new, "new", &verifier(), NOW).unwrap();
        assert!(matches!(
            again,
            Installed::Replaced {
                from: Some(1),
                to: 2
            } | Installed::Unchanged { sequence: 2 }
        ));
        assert_eq!(store.active_bytes().unwrap().unwrap(), new);
    }
    assert_eq!(seen_new, 1);
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
