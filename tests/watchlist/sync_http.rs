//! `sync` against a web server on 127.0.0.1 started by the test: canned responses, recorded
//! requests. Covers 200 + ETag, 304 via If-None-Match, retries with back-off on 5xx and on a dead
//! server, and that a refused file never touches the state directory.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::watchlist::*;
use lanewatch::watchlist::sync::{SyncConfig, SyncError, SyncOutcome, Syncer};
use lanewatch::watchlist::{Rejection, Store, StoreError, WatchlistError};

struct Canned {
    status: u16,
    etag: Option<&'static str>,
    body: Vec<u8>,
    /// Sent as the whole response instead (malformed answers, odd headers, redirects).
    raw: Option<Vec<u8>>,
}

fn ok(body: Vec<u8>, etag: Option<&'static str>) -> Canned {
    Canned {
        status: 200,
        etag,
        body,
        raw: None,
    }
}

fn status(code: u16) -> Canned {
    Canned {
        status: code,
        etag: None,
        body: Vec::new(),
        raw: None,
    }
}

fn raw(response: &[u8]) -> Canned {
    Canned {
        raw: Some(response.to_vec()),
        ..status(0)
    }
}

/// Serves `responses` in order, one per connection, then stops. Returns the URL and the request
/// heads received (lower-cased).
fn serve(responses: Vec<Canned>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/lists/watchlist.lwl",
        listener.local_addr().unwrap()
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for canned in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line.to_ascii_lowercase());
            }
            log.lock().unwrap().push(head);
            if let Some(raw) = &canned.raw {
                let mut stream = reader.into_inner();
                let _ = stream.write_all(raw);
                let _ = stream.flush();
                continue;
            }
            let reason = match canned.status {
                200 => "OK",
                304 => "Not Modified",
                _ => "Error",
            };
            let mut out = format!(
                "HTTP/1.1 {} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n",
                canned.status,
                canned.body.len()
            );
            if let Some(etag) = canned.etag {
                out.push_str(&format!("ETag: {etag}\r\n"));
            }
            out.push_str("\r\n");
            let mut stream = reader.into_inner();
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&canned.body);
            let _ = stream.flush();
        }
    });
    (url, seen)
}

fn syncer(url: &str, dir: &TempDir) -> Syncer {
    let mut config = SyncConfig::new(url);
    config.timeout = Duration::from_secs(10);
    config.retries = 2;
    config.first_backoff = Duration::from_millis(100);
    Syncer::new(config, Store::open(dir.path()).unwrap(), verifier()).unwrap()
}

#[test]
fn installs_then_sends_if_none_match_and_takes_304_as_no_change() {
    let dir = TempDir::new("sync-etag");
    let list = file(3);
    let (url, seen) = serve(vec![
        ok(list.clone(), Some("\"v3\"")),
        status(304),
        // Same bytes under a new ETag (e.g. a server that rewrote the file): not an error.
        ok(list.clone(), Some("\"v3b\"")),
    ]);
    let s = syncer(&url, &dir);
    assert_eq!(
        s.fetch_once(NOW).unwrap(),
        SyncOutcome::Installed { from: None, to: 3 }
    );
    assert_eq!(s.store().active_bytes().unwrap().unwrap(), list);
    assert_eq!(s.fetch_once(NOW).unwrap(), SyncOutcome::NotModified);
    assert_eq!(
        s.fetch_once(NOW).unwrap(),
        SyncOutcome::Unchanged { sequence: 3 }
    );
    let heads = seen.lock().unwrap();
    assert!(heads[0].starts_with("get /lists/watchlist.lwl http/1.1"));
    assert!(!heads[0].contains("if-none-match"));
    assert!(heads[1].contains("if-none-match: \"v3\""), "{}", heads[1]);
    assert!(heads[2].contains("if-none-match: \"v3\""), "{}", heads[2]);
    assert_eq!(s.store().etag().unwrap().as_deref(), Some("\"v3b\""));
}

#[test]
fn retries_server_errors_with_backoff_then_installs() {
    let dir = TempDir::new("sync-retry");
    let (url, seen) = serve(vec![status(503), status(500), ok(file(4), None)]);
    let s = syncer(&url, &dir);
    let mut waits = Vec::new();
    let outcome = s.sync_with_clock(&|| NOW, &mut |d| waits.push(d)).unwrap();
    assert_eq!(outcome, SyncOutcome::Installed { from: None, to: 4 });
    assert_eq!(
        waits,
        [Duration::from_millis(100), Duration::from_millis(200)]
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[test]
fn gives_up_after_the_retries_and_keeps_the_active_list() {
    let dir = TempDir::new("sync-down");
    let store = Store::open(dir.path()).unwrap();
    store.install(&file(2), "seed", &verifier(), NOW).unwrap();
    // A port with no server behind it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = syncer(&format!("http://127.0.0.1:{port}/w.lwl"), &dir);
    let mut waits = 0;
    let err = s.sync_with_clock(&|| NOW, &mut |_| waits += 1).unwrap_err();
    assert!(matches!(err, SyncError::Transport { .. }), "{err}");
    assert_eq!(waits, 2);
    assert_eq!(store.active_bytes().unwrap().unwrap(), file(2));
}

#[test]
fn refused_files_are_not_retried_and_never_touch_disk() {
    let dir = TempDir::new("sync-refused");
    let store = Store::open(dir.path()).unwrap();
    store.install(&file(5), "seed", &verifier(), NOW).unwrap();
    let mut forged = file(6);
    let at = forged.len() - 80;
    forged[at] ^= 1;
    let (url, seen) = serve(vec![
        ok(forged, Some("\"x\"")),
        ok(file(4), Some("\"old\"")),
        ok(sign(&body(7, 5), &other_signer()), None),
        status(404),
    ]);
    let s = syncer(&url, &dir);
    let kinds: Vec<Rejection> = (0..3)
        .map(|_| {
            match s.sync_with_clock(&|| NOW, &mut |_| {
                panic!("a refused file must not be retried")
            }) {
                Err(SyncError::Store(StoreError::Rejected(WatchlistError { kind, origin }))) => {
                    assert_eq!(origin, url);
                    kind
                }
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(matches!(kinds[0], Rejection::BadSignature { .. }));
    assert!(matches!(
        kinds[1],
        Rejection::Rollback {
            sequence: 4,
            installed: 5
        }
    ));
    assert!(matches!(kinds[2], Rejection::UnknownKey { .. }));
    let err = s
        .sync_with_clock(&|| NOW, &mut |_| panic!("404 is not retried"))
        .unwrap_err();
    assert!(matches!(err, SyncError::Status { status: 404, .. }));
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert_eq!(store.active_bytes().unwrap().unwrap(), file(5));
    assert_eq!(store.etag().unwrap(), None);
    let entries = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "watchlist.lock")
        .count();
    assert_eq!(entries, 1, "only the active file (and the writers' lock)");
}

#[test]
fn unsupported_schemes_and_https_without_the_feature_are_refused_clearly() {
    let dir = TempDir::new("sync-scheme");
    let open = |url: &str| {
        Syncer::new(
            SyncConfig::new(url),
            Store::open(dir.path()).unwrap(),
            verifier(),
        )
        .err()
        .map(|e| e.to_string())
    };
    let err = open("ftp://example.invalid/w.lwl").unwrap();
    assert!(err.contains("only http:// and https://"), "{err}");
    let https = open("https://example.invalid/w.lwl");
    if cfg!(feature = "https") {
        assert_eq!(https, None);
    } else {
        let err = https.unwrap();
        assert!(err.contains("rebuild it with `--features https`"), "{err}");
    }
}

/// Sync `s` once with retries allowed, counting the back-off waits.
fn sync_counting_waits(s: &Syncer) -> (Result<SyncOutcome, SyncError>, usize) {
    let mut waits = 0;
    let r = s.sync_with_clock(&|| NOW, &mut |_| waits += 1);
    (r, waits)
}

#[test]
fn oversized_or_foreign_bodies_are_refused_early_and_not_retried() {
    let dir = TempDir::new("sync-early");
    let list = file(3);
    // The declared length of a real list, then a body that is not a watchlist at all.
    let (url, seen) = serve(vec![
        raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2000000000\r\n\r\nLWLIST"),
        ok(b"<html>not found, but 200</html>".repeat(1000), None),
        ok([&list[..], &b"extra"[..]].concat(), None),
        ok(list[..list.len() - 10].to_vec(), None),
    ]);
    let s = syncer(&url, &dir);
    let kinds: Vec<String> = (0..4)
        .map(|_| {
            let (r, waits) = sync_counting_waits(&s);
            assert_eq!(waits, 0, "a refused body is not fetched again");
            match r {
                Err(SyncError::Store(StoreError::Rejected(WatchlistError { kind, .. }))) => {
                    format!("{kind:?}")
                }
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(kinds[0].starts_with("TooLarge"), "{}", kinds[0]);
    assert!(kinds[1].starts_with("BadMagic"), "{}", kinds[1]);
    assert!(kinds[2].starts_with("TrailingBytes"), "{}", kinds[2]);
    assert!(kinds[3].starts_with("Truncated"), "{}", kinds[3]);
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert_eq!(s.store().active_bytes().unwrap(), None);
}

#[test]
fn a_304_to_a_request_without_if_none_match_is_an_error() {
    let dir = TempDir::new("sync-304");
    let (url, seen) = serve(vec![status(304)]);
    let s = syncer(&url, &dir);
    let (r, waits) = sync_counting_waits(&s);
    let err = r.unwrap_err();
    assert!(
        matches!(err, SyncError::UnexpectedNotModified { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no If-None-Match"), "{err}");
    assert_eq!((waits, seen.lock().unwrap().len()), (0, 1));
}

#[test]
fn permanent_http_failures_are_not_retried() {
    let dir = TempDir::new("sync-permanent");
    let loop_to_self =
        b"HTTP/1.1 302 Found\r\nConnection: close\r\nLocation: /lists/watchlist.lwl\r\nContent-Length: 0\r\n\r\n";
    let mut responses: Vec<Canned> = (0..12).map(|_| raw(loop_to_self)).collect();
    responses.push(raw(
        b"HTTP/1.1 302 Found\r\nConnection: close\r\nLocation: ftp://127.0.0.1/w.lwl\r\nContent-Length: 0\r\n\r\n",
    ));
    responses.push(raw(b"HTTP/1.1 two hundred\r\nx\r\n\r\n"));
    let (url, _) = serve(responses);
    let s = syncer(&url, &dir);
    for what in ["redirect loop", "redirect to ftp://", "malformed answer"] {
        let (r, waits) = sync_counting_waits(&s);
        let err = r.unwrap_err();
        assert!(!err.is_transient(), "{what}: {err}");
        assert_eq!(waits, 0, "{what}: {err}");
    }
    // A URL that cannot be requested at all.
    let s = syncer("http://exa mple.invalid/w.lwl", &dir);
    let (r, waits) = sync_counting_waits(&s);
    assert!(r.is_err());
    assert_eq!(waits, 0, "{:?}", r);
}

#[test]
fn after_a_rollback_sync_does_not_reinstall_the_newer_list() {
    let dir = TempDir::new("sync-hold");
    let store = Store::open(dir.path()).unwrap();
    store.install(&file(1), "seed", &verifier(), NOW).unwrap();
    store.install(&file(2), "seed", &verifier(), NOW).unwrap();
    assert_eq!(store.rollback(&verifier(), NOW, true).unwrap(), (2, 1));
    let (url, _) = serve(vec![ok(file(2), None), ok(file(3), None)]);
    let mut config = SyncConfig::new(&url);
    config.retries = 0;
    let s = Syncer::new(
        config,
        Store::open(dir.path()).unwrap().respecting_hold(),
        verifier(),
    )
    .unwrap();
    assert_eq!(
        s.fetch_once(NOW).unwrap(),
        SyncOutcome::Held {
            sequence: 2,
            hold: 2
        }
    );
    assert_eq!(store.active_bytes().unwrap().unwrap(), file(1));
    // A newer list than the one rolled away from lifts the hold.
    assert_eq!(
        s.fetch_once(NOW).unwrap(),
        SyncOutcome::Installed {
            from: Some(1),
            to: 3
        }
    );
    assert_eq!(store.hold().unwrap(), None);
}
