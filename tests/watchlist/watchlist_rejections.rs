//! Every rejection, at install and at load: the error is the right one AND the previously active
//! watchlist is unchanged on disk and in memory (the `ActiveWatchlist` the run loop holds).

use crate::common::watchlist::*;
use ed25519_dalek::Signer;
use lanewatch::vision::contract::Metric;
use lanewatch::vision::model::Fingerprint;
use lanewatch::watchlist::format::{self, Body};
use lanewatch::watchlist::{
    ActiveWatchlist, KeyId, Rejection, Reload, Store, StoreError, Verifier, WatchlistError,
};

/// A box with sequence 5 installed and loaded.
struct Box_ {
    _dir: TempDir,
    store: Store,
    active: ActiveWatchlist,
    installed: Vec<u8>,
}

fn box_with_sequence_5(tag: &str) -> Box_ {
    let dir = TempDir::new(tag);
    let store = Store::open(dir.path()).unwrap();
    // Sequence 4 first, so that a `previous` file exists too and must also stay untouched.
    store.install(&file(4), "seq4", &verifier(), NOW).unwrap();
    let installed = file(5);
    store.install(&installed, "seq5", &verifier(), NOW).unwrap();
    let active = ActiveWatchlist::load_at(store.clone(), verifier(), NOW).unwrap();
    Box_ {
        _dir: dir,
        store,
        active,
        installed,
    }
}

fn assert_untouched(b: &Box_) {
    assert_eq!(
        b.store.active_bytes().unwrap().as_deref(),
        Some(&b.installed[..])
    );
    assert_eq!(std::fs::read(b.store.previous_path()).unwrap(), file(4));
    let names: Vec<String> = std::fs::read_dir(b.store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert_eq!(
        b.active.reload_if_changed_at(NOW).unwrap(),
        Reload::Unchanged
    );
    let current = b.active.current();
    assert_eq!(current.sequence(), 5);
    assert_eq!(current.verified.body, body(5, 5));
}

/// Installs `bad`, expects `want`; then writes `bad` over the active file behind lanewatch's back and
/// expects the hot reload to refuse it with the same error while the running list stays.
fn check(tag: &str, bad: &[u8], verifier: &Verifier, want: fn(&Rejection) -> bool) {
    let b = box_with_sequence_5(tag);
    match b.store.install(bad, "bad", verifier, NOW) {
        Err(StoreError::Rejected(WatchlistError { kind, origin })) => {
            assert!(want(&kind), "{tag}: install gave {kind}");
            assert_eq!(origin, "bad");
        }
        other => panic!("{tag}: install gave {other:?}"),
    }
    assert_untouched(&b);

    let b = box_with_sequence_5(tag);
    let active = ActiveWatchlist::load_at(b.store.clone(), verifier.clone(), NOW).unwrap();
    // A different mtime/size/inode is what makes the reload look at the file.
    let path = b.store.active_path();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, bad).unwrap();
    for _ in 0..2 {
        match active.reload_if_changed_at(NOW) {
            Err(StoreError::Rejected(WatchlistError { kind, .. })) => {
                assert!(want(&kind), "{tag}: reload gave {kind}")
            }
            other => panic!("{tag}: reload gave {other:?}"),
        }
        let current = active.current();
        assert_eq!(current.sequence(), 5);
        assert_eq!(current.verified.body, body(5, 5));
    }
}

fn resigned(mutate: impl Fn(&mut Body)) -> Vec<u8> {
    let mut b = body(6, 5);
    mutate(&mut b);
    sign(&b, &signer())
}

#[test]
fn bad_magic() {
    let mut f = file(6);
    f[0] = b'X';
    check("magic", &f, &verifier(), |k| {
        matches!(k, Rejection::BadMagic)
    });
    check("magic-empty", b"", &verifier(), |k| {
        matches!(k, Rejection::Truncated { have: 0, .. })
    });
    check("magic-text", b"hello world, not a list", &verifier(), |k| {
        matches!(k, Rejection::BadMagic)
    });
}

#[test]
fn unsupported_version() {
    let mut f = file(6);
    f[8..10].copy_from_slice(&4u16.to_le_bytes());
    check("version", &f, &verifier(), |k| {
        matches!(
            k,
            Rejection::UnsupportedVersion {
                found: 4,
                supported: 3
            }
        )
    });
}

#[test]
fn truncated() {
    let f = file(6);
    for cut in [10, format::HEADER_LEN, f.len() / 2, f.len() - 1] {
        check("truncated", &f[..cut], &verifier(), |k| {
            matches!(k, Rejection::Truncated { .. })
        });
    }
}

#[test]
fn trailing_bytes() {
    let mut f = file(6);
    f.extend_from_slice(b"\n");
    check("trailing", &f, &verifier(), |k| {
        matches!(k, Rejection::TrailingBytes { extra: 1 })
    });
}

#[test]
fn too_large_length_field() {
    let mut f = file(6);
    f[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
    check("too-large", &f, &verifier(), |k| {
        matches!(k, Rejection::TooLarge { .. })
    });
}

#[test]
fn unknown_key() {
    let f = sign(&body(6, 5), &other_signer());
    check(
        "unknown-key",
        &f,
        &verifier(),
        |k| matches!(k, Rejection::UnknownKey { key_id, .. } if *key_id == KeyId::of(&other_signer().verifying_key())),
    );
}

#[test]
fn bad_signature() {
    // One flipped bit anywhere in the signed part or the signature itself.
    let f = file(6);
    for at in [12, 19, format::HEADER_LEN + 3, f.len() - 70, f.len() - 1] {
        let mut g = f.clone();
        g[at] ^= 0x10;
        check("signature", &g, &verifier(), |k| {
            matches!(
                k,
                Rejection::BadSignature { .. }
                    | Rejection::UnknownKey { .. }
                    | Rejection::Truncated { .. }
                    | Rejection::TrailingBytes { .. }
            )
        });
    }
    let mut g = f.clone();
    g[format::HEADER_LEN + 3] ^= 0x10;
    check("signature-body", &g, &verifier(), |k| {
        matches!(k, Rejection::BadSignature { .. })
    });
}

#[test]
fn malformed_but_signed_body() {
    // Garbage signed with the trusted key: the signature passes, the body decoder must refuse it.
    let key = signer();
    for garbage in [vec![0xffu8; 40], vec![5, 1, 2], Vec::new()] {
        let mut f = format::encode_header(KeyId::of(&key.verifying_key()), 1, garbage.len() as u32)
            .to_vec();
        f.extend_from_slice(&garbage);
        let sig = key.sign(&f);
        f.extend_from_slice(&sig.to_bytes());
        check("malformed", &f, &verifier(), |k| {
            matches!(k, Rejection::Malformed(_))
        });
    }
    // A valid body followed by bytes postcard would ignore.
    let mut encoded = body(6, 5).encode().unwrap();
    encoded.push(0);
    let mut f =
        format::encode_header(KeyId::of(&key.verifying_key()), 1, encoded.len() as u32).to_vec();
    f.extend_from_slice(&encoded);
    let sig = key.sign(&f);
    f.extend_from_slice(&sig.to_bytes());
    check(
        "leftover",
        &f,
        &verifier(),
        |k| matches!(k, Rejection::Malformed(m) if m.contains("left over")),
    );
}

#[test]
fn rollback_to_equal_or_lower_sequence() {
    for seq in [5, 4, 0] {
        let mut b = body(seq, 5);
        // Different content, so it is not the same file as the active one.
        b.entries.pop();
        check("rollback", &sign(&b, &signer()), &verifier(), move |k| {
            matches!(k, Rejection::Rollback { installed: 5, .. })
        });
    }
}

#[test]
fn expired() {
    let f = resigned(|b| {
        b.created_at = NOW - 10 * DAY;
        b.expires_at = NOW;
    });
    check("expired", &f, &verifier(), |k| {
        matches!(
            k,
            Rejection::Expired {
                expires_at: NOW,
                now: NOW
            }
        )
    });
}

#[test]
fn created_in_the_future_beyond_tolerance() {
    let tolerance = verifier().clock_tolerance_s;
    let f = resigned(|b| b.created_at = NOW + tolerance + 1);
    check("future", &f, &verifier(), |k| {
        matches!(k, Rejection::CreatedInFuture { .. })
    });
    // Within the tolerance is accepted.
    let b = box_with_sequence_5("future-ok");
    let ok = resigned(|b| b.created_at = NOW + tolerance);
    b.store.install(&ok, "ok", &verifier(), NOW).unwrap();
}

#[test]
fn wrong_embedder_fingerprint() {
    let f = resigned(|b| b.embedder = Fingerprint::of(b"another model"));
    check("embedder", &f, &verifier(), |k| {
        matches!(k, Rejection::WrongEmbedder { .. })
    });
}

#[test]
fn wrong_dimension() {
    let f = resigned(|b| {
        b.dim = DIM as u32 + 1;
        for e in &mut b.entries {
            for v in &mut e.embeddings {
                v.push(0.0);
            }
        }
    });
    check(
        "dim",
        &f,
        &verifier(),
        |k| matches!(k, Rejection::WrongDim { file, model } if *file == DIM as u32 + 1 && *model == DIM),
    );
}

#[test]
fn wrong_metric() {
    let f = resigned(|b| b.metric = Metric::Cosine);
    check("metric", &f, &verifier(), |k| {
        matches!(k, Rejection::WrongMetric { .. })
    });
}

#[test]
fn a_good_file_installs_and_hot_reloads_while_old_snapshots_stay_valid() {
    let b = box_with_sequence_5("good");
    let before = b.active.current();
    let next = file(6);
    b.store.install(&next, "seq6", &verifier(), NOW).unwrap();
    assert_eq!(
        b.active.reload_if_changed_at(NOW).unwrap(),
        Reload::Swapped { from: 5, to: 6 }
    );
    assert_eq!(b.active.current().sequence(), 6);
    // A frame in flight still holds the old list, intact.
    assert_eq!(before.sequence(), 5);
    assert_eq!(before.index.identities(), 5);
    assert_eq!(std::fs::read(b.store.previous_path()).unwrap(), b.installed);
    assert_eq!(
        b.active.reload_if_changed_at(NOW).unwrap(),
        Reload::Unchanged
    );
}

/// Signs `body` as it is, without the writer's validation (a hostile or broken issuer).
fn sign_raw(encoded: &[u8]) -> Vec<u8> {
    let key = signer();
    let mut f =
        format::encode_header(KeyId::of(&key.verifying_key()), 1, encoded.len() as u32).to_vec();
    f.extend_from_slice(encoded);
    let sig = key.sign(&f);
    f.extend_from_slice(&sig.to_bytes());
    f
}

#[test]
fn a_sequence_above_2_pow_53_is_refused() {
    for seq in [u64::MAX, format::MAX_SEQUENCE + 1] {
        let mut b = body(6, 5);
        b.sequence = seq;
        let f = sign_raw(&postcard::to_stdvec(&b).unwrap());
        check(
            "huge-sequence",
            &f,
            &verifier(),
            |k| matches!(k, Rejection::Malformed(m) if m.contains("over the limit") && m.contains("2^53")),
        );
        // The writer refuses it too.
        assert!(b.encode().is_err());
    }
    let mut b = body(6, 5);
    b.sequence = format::MAX_SEQUENCE;
    assert!(b.encode().is_ok());
}

#[test]
fn cap_errors_say_which_count_is_over_which_cap() {
    let mut b = body(6, 1);
    b.entries[0].embeddings = vec![vec![0.5; DIM]; format::MAX_EMBEDDINGS_PER_ENTRY + 1];
    let f = sign_raw(&postcard::to_stdvec(&b).unwrap());
    check(
        "cap-embeddings",
        &f,
        &verifier(),
        |k| matches!(k, Rejection::Malformed(m) if m.contains("33 embeddings in one entry, over the cap of 32")),
    );
    let mut b = body(6, 1);
    b.entries[0].display_name = "x".repeat(format::MAX_TEXT_LEN + 1);
    let f = sign_raw(&postcard::to_stdvec(&b).unwrap());
    check(
        "cap-name",
        &f,
        &verifier(),
        |k| matches!(k, Rejection::Malformed(m) if m.contains("display name is 257 bytes, over the cap of 256")),
    );
}

/// A body of many tiny entries (1 dimension, 17 bytes each) costs far more memory than bytes; the
/// decoder stops at its budget (8 bytes per body byte + 4 MiB) instead of using ~20x the file.
#[test]
fn many_tiny_entries_are_refused_by_the_memory_budget() {
    let n: u32 = 400_000;
    let mut encoded = Vec::new();
    // sequence 6, created 1, expires 2^40, embedder, dim 1, euclidean, thresholds
    encoded.extend([6, 1]);
    encoded.extend(postcard::to_stdvec(&(1u64 << 40)).unwrap());
    encoded.extend([9u8; 32]);
    encoded.extend([1, 0]);
    encoded.extend(0.6f32.to_le_bytes());
    encoded.extend(0.05f32.to_le_bytes());
    encoded.extend(postcard::to_stdvec(&n).unwrap());
    for i in 0..n {
        // id (6 ASCII digits), name "", list "", severity, 1 embedding of 1 value, no photos
        encoded.push(6);
        encoded.extend(format!("{i:06}").bytes());
        encoded.extend([0, 0, 0, 1, 1]);
        encoded.extend(1.0f32.to_le_bytes());
        encoded.push(0);
    }
    let len = encoded.len();
    match Body::decode(&encoded, 1) {
        Err(Rejection::Malformed(m)) => {
            assert!(m.contains("bytes of memory"), "{m}");
            assert!(!m.contains("Serde"), "{m}");
        }
        other => panic!("{len} bytes: {:?}", other.map(|b| b.entries.len())),
    }
}

/// The active file must be a regular file: a FIFO would hang the run loop before the first
/// frame, a symlink to /dev/zero would read 256 MiB on every reload check.
#[cfg(unix)]
#[test]
fn an_active_file_that_is_a_fifo_or_a_device_is_refused_without_reading() {
    let b = box_with_sequence_5("special-active");
    let path = b.store.active_path();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let start = std::time::Instant::now();
    match b.active.reload_if_changed_at(NOW) {
        Err(StoreError::Rejected(WatchlistError { kind, .. })) => {
            assert!(kind.to_string().contains("character device"), "{kind}")
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&path).status();
    if made.is_ok_and(|s| s.success()) {
        match b.store.load_active(&verifier(), NOW) {
            Err(StoreError::Rejected(WatchlistError { kind, origin })) => {
                assert!(kind.to_string().contains("FIFO"), "{kind}");
                assert!(origin.contains("watchlist.lwl"), "{origin}");
            }
            other => panic!("{:?}", other.map(|l| l.sequence())),
        }
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(b.active.current().sequence(), 5);
}
