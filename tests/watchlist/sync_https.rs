//! `sync` over HTTPS against a rustls server on 127.0.0.1 started by the test, with a throwaway CA
//! and server certificate made at test time (rcgen). Covers: the private CA given (`ca_cert`, what
//! `lanewatch sync --ca-cert` sets) installs and then takes 304 via If-None-Match; without it, or
//! with a certificate for another name, the certificate is refused with a clear error, not retried,
//! and nothing is installed. Runs on x86 and under qemu-aarch64 in CI.
#![cfg(feature = "https")]

use std::path::PathBuf;
use std::time::Duration;

use crate::common::tls::{Canned, Pki, pki, serve};
use crate::common::watchlist::*;
use lanewatch::http::Transport;
use lanewatch::watchlist::Store;
use lanewatch::watchlist::sync::{SyncConfig, SyncError, SyncOutcome, Syncer};

fn syncer(url: &str, dir: &TempDir, ca_cert: Option<PathBuf>) -> Syncer {
    let config = SyncConfig {
        timeout: Duration::from_secs(20),
        retries: 2,
        first_backoff: Duration::from_millis(100),
        ca_cert,
        ..SyncConfig::new(url)
    };
    let state = dir.path().join("state");
    Syncer::new(config, Store::open(&state).unwrap(), verifier()).unwrap()
}

#[test]
fn installs_over_https_with_the_private_ca_then_takes_304() {
    let dir = TempDir::new("sync-https-ok");
    let pki = pki(dir.path(), &["127.0.0.1"]);
    let list = file(3);
    let (url, server) = serve(
        &pki,
        vec![
            Canned {
                status: 200,
                etag: Some("\"v3\""),
                body: list.clone(),
            },
            Canned {
                status: 304,
                etag: None,
                body: Vec::new(),
            },
        ],
    );
    let s = syncer(&url, &dir, Some(pki.ca_pem.clone()));
    assert_eq!(s.transport(), Transport::Tls);
    let mut no_wait = |_| panic!("nothing here should be retried");
    assert_eq!(
        s.sync_with_clock(&|| NOW, &mut no_wait).unwrap(),
        SyncOutcome::Installed { from: None, to: 3 }
    );
    assert_eq!(s.store().active_bytes().unwrap().unwrap(), list);
    assert_eq!(
        s.sync_with_clock(&|| NOW, &mut no_wait).unwrap(),
        SyncOutcome::NotModified
    );
    let heads = server.join().unwrap();
    assert_eq!(heads.len(), 2);
    assert!(
        heads[0].starts_with("get /lists/watchlist.lwl http/1.1"),
        "{}",
        heads[0]
    );
    assert!(!heads[0].contains("if-none-match"));
    assert!(heads[1].contains("if-none-match: \"v3\""), "{}", heads[1]);
    assert_eq!(s.store().etag().unwrap().as_deref(), Some("\"v3\""));
}

/// Certificate refusals: a clear error, not retried, the active list and state untouched.
fn assert_refused(dir: &TempDir, pki: &Pki, ca_cert: Option<PathBuf>, expect: &str) {
    let (url, server) = serve(
        pki,
        vec![Canned {
            status: 200,
            etag: Some("\"v9\""),
            body: file(9),
        }],
    );
    let s = syncer(&url, dir, ca_cert);
    s.store()
        .install(&file(2), "seed", &verifier(), NOW)
        .unwrap();
    let err = s
        .sync_with_clock(&|| NOW, &mut |_| {
            panic!("a refused certificate must not be retried")
        })
        .unwrap_err();
    assert!(matches!(err, SyncError::Certificate { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.contains("certificate was refused") && text.contains(expect),
        "{text}"
    );
    assert_eq!(s.store().active_bytes().unwrap().unwrap(), file(2));
    assert_eq!(s.store().etag().unwrap(), None);
    let entries = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "watchlist.lock")
        .count();
    assert_eq!(entries, 1, "only the active file (and the writers' lock)");
    let heads = server.join().unwrap();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].starts_with("handshake failed"), "{}", heads[0]);
}

#[test]
fn without_the_private_ca_the_certificate_is_refused_and_nothing_installed() {
    let dir = TempDir::new("sync-https-noca");
    let pki = pki(dir.path(), &["127.0.0.1"]);
    // The bundled public roots do not know the test CA.
    assert_refused(&dir, &pki, None, "UnknownIssuer");
}

#[test]
fn a_certificate_for_another_name_is_refused_even_from_the_trusted_ca() {
    let dir = TempDir::new("sync-https-name");
    let pki = pki(dir.path(), &["watchlists.example"]);
    let ca = Some(pki.ca_pem.clone());
    assert_refused(&dir, &pki, ca, "not valid for name");
}

#[test]
fn a_bad_ca_file_is_named_at_start_up() {
    let dir = TempDir::new("sync-https-badca");
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for path in [bad, missing] {
        let config = SyncConfig {
            ca_cert: Some(path.clone()),
            ..SyncConfig::new("https://127.0.0.1:9/w.lwl")
        };
        let err = Syncer::new(config, Store::open(dir.path()).unwrap(), verifier())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("CA certificate file"),
            "{err}"
        );
    }
}
