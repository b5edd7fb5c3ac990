//! `sync` against a web server on 127.0.0.1 started by the test: canned responses, recorded
//! requests. Covers 200 + ETag, 304 via If-None-Match, retries with back-off on 5xx and on a dead
//! server, and that a refused file never touches the state directory.

mod watchlist_common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanewatch::watchlist::sync::{SyncConfig, SyncError, SyncOutcome, Syncer};
use lanewatch::watchlist::{Rejection, Store, StoreError, WatchlistError};
use watchlist_common::*;

struct Canned {
    status: u16,
    etag: Option<&'static str>,
    body: Vec<u8>,
}

fn ok(body: Vec<u8>, etag: Option<&'static str>) -> Canned {
    Canned {
        status: 200,
        etag,
        body,
    }
}

fn status(code: u16) -> Canned {
    Canned {
        status: code,
        etag: None,
        body: Vec::new(),
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
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 1, "only the active file");
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
