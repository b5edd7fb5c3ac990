//! Webhook delivery from the journal to a lane controller played by a 127.0.0.1 server started
//! here: retries, the persistent cursor across restarts (nothing lost, nothing sent twice),
//! permanent rejections, direct delivery while the journal fails, and the background sink.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lanewatch::alerts::cooldown::Cooldown;
use lanewatch::alerts::dispatch::Dispatcher;
use lanewatch::alerts::journal::{Journal, JournalConfig};
use lanewatch::alerts::webhook::{Delivery, WebhookConfig, WebhookSink};
use lanewatch::alerts::{Alert, FaceBox, FrameInfo, Identity, MatchScores};

use crate::common::temp_dir;

fn alert(person: &str) -> Alert {
    Alert::new(
        "lane-3",
        Identity {
            id: person.into(),
            name: person.to_uppercase(),
            list: "wanted".into(),
            severity: "high".into(),
        },
        MatchScores {
            distance: 0.5,
            similarity: 0.8,
            margin: Some(0.1),
        },
        FaceBox {
            x: 1.0,
            y: 2.0,
            width: 80.0,
            height: 90.0,
        },
        FrameInfo {
            seq: 1,
            time_unix_ms: 0,
            width: 640,
            height: 480,
        },
    )
}

/// One request as the controller saw it.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    idempotency_key: String,
    alert: Alert,
}

/// A minimal HTTP/1.1 controller on 127.0.0.1: answers each request with the next scripted status
/// (200 when the script is empty) and records it. Stops when dropped, or after 60 s at most.
struct Controller {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Controller {
    fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, statuses, stop) =
                (Arc::clone(&seen), Arc::clone(&statuses), Arc::clone(&stop));
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                            if let Some((key, alert)) = serve(stream, status) {
                                seen.lock().unwrap().push(Seen {
                                    status,
                                    idempotency_key: key,
                                    alert,
                                });
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Controller {
            url,
            seen,
            statuses,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Ids of the alerts the controller accepted (2xx), in order.
    fn accepted(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|s| (200..300).contains(&s.status))
            .map(|s| s.alert.identity.id)
            .collect()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = &self.statuses;
    }
}

fn serve(stream: TcpStream, status: u16) -> Option<(String, Alert)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /alerts HTTP/1.1"), "{line}");
    let (mut length, mut key, mut json) = (0usize, String::new(), false);
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "idempotency-key" => key = value.trim().to_string(),
            "content-type" => json = value.trim() == "application/json",
            _ => {}
        }
    }
    assert!(json, "alerts are sent as application/json");
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    stream.flush().ok()?;
    Some((
        key,
        serde_json::from_slice(&body).expect("body is an alert"),
    ))
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        timeout: Duration::from_secs(5),
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(80),
        poll: Duration::from_millis(20),
        ..WebhookConfig::new(url)
    }
}

fn journal_with(dir: &Path, people: &[&str]) -> Journal {
    let (mut journal, _) = Journal::open(dir, JournalConfig::default()).unwrap();
    for p in people {
        journal.append(&alert(p)).unwrap();
    }
    journal
}

#[test]
fn retries_until_accepted_and_a_restart_neither_loses_nor_repeats() {
    let dir = temp_dir("webhook-restart");
    let cursor = dir.join("webhook.cursor");
    let controller = Controller::start(&[503, 500]);
    let mut journal = journal_with(&dir.join("journal"), &["a", "b", "c"]);

    let (mut delivery, warning) =
        Delivery::open(config(&controller.url), &dir.join("journal"), &cursor).unwrap();
    assert!(warning.is_none());
    let err = delivery.run_once().unwrap_err().to_string();
    assert!(
        err.contains("HTTP 503") && err.contains(&controller.url),
        "{err}"
    );
    assert!(
        delivery
            .run_once()
            .unwrap_err()
            .to_string()
            .contains("HTTP 500")
    );
    assert_eq!(delivery.run_once().unwrap(), 3);
    assert_eq!(delivery.stats().failures, 2);
    drop(delivery); // the box restarts

    let (mut delivery, _) =
        Delivery::open(config(&controller.url), &dir.join("journal"), &cursor).unwrap();
    assert_eq!(
        delivery.run_once().unwrap(),
        0,
        "nothing is sent twice after a restart"
    );
    journal.append(&alert("d")).unwrap();
    journal.append(&alert("e")).unwrap();
    assert_eq!(delivery.run_once().unwrap(), 2);

    assert_eq!(controller.accepted(), ["a", "b", "c", "d", "e"]);
    let seen = controller.seen();
    assert_eq!(seen.len(), 7, "two failed attempts, then each alert once");
    assert_eq!(
        seen[0].idempotency_key, seen[2].idempotency_key,
        "a retry keeps its key"
    );
    assert!(seen.iter().all(|s| s.idempotency_key == s.alert.id.0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_controller_is_retried_later() {
    let dir = temp_dir("webhook-down");
    let _journal = journal_with(&dir.join("journal"), &["a"]);
    // Bind then drop: nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/alerts");
    let (mut delivery, _) =
        Delivery::open(config(&url), &dir.join("journal"), &dir.join("cursor")).unwrap();
    assert!(delivery.run_once().is_err());
    assert_eq!(
        delivery.cursor().offset,
        0,
        "the cursor stays on the undelivered alert"
    );
    let controller = Controller::start(&[]);
    let (mut delivery, _) = Delivery::open(
        config(&controller.url),
        &dir.join("journal"),
        &dir.join("cursor"),
    )
    .unwrap();
    assert_eq!(delivery.run_once().unwrap(), 1);
    assert_eq!(controller.accepted(), ["a"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_permanent_rejection_is_skipped_not_retried_forever() {
    let dir = temp_dir("webhook-reject");
    let controller = Controller::start(&[200, 422, 200]);
    let _journal = journal_with(&dir.join("journal"), &["a", "b", "c"]);
    let (mut delivery, _) = Delivery::open(
        config(&controller.url),
        &dir.join("journal"),
        &dir.join("cursor"),
    )
    .unwrap();
    assert_eq!(delivery.run_once().unwrap(), 2);
    assert_eq!(delivery.stats().rejected, 1);
    assert_eq!(controller.accepted(), ["a", "c"]);
    assert_eq!(controller.seen().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_cursor_restarts_from_the_oldest_alert_with_a_warning() {
    let dir = temp_dir("webhook-badcursor");
    let controller = Controller::start(&[]);
    let _journal = journal_with(&dir.join("journal"), &["a", "b"]);
    std::fs::write(dir.join("cursor"), b"{\"segment\": 1, \"off").unwrap();
    let (mut delivery, warning) = Delivery::open(
        config(&controller.url),
        &dir.join("journal"),
        &dir.join("cursor"),
    )
    .unwrap();
    assert!(warning.unwrap().contains("damaged"));
    assert_eq!(delivery.run_once().unwrap(), 2);
    assert!(Delivery::open(config("ftp://tls.example/alerts"), &dir, &dir.join("c")).is_err());
    let https = Delivery::open(config("https://tls.example/alerts"), &dir, &dir.join("c"));
    assert_eq!(https.is_ok(), cfg!(feature = "https"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn alerts_sent_directly_while_the_journal_failed_are_not_sent_again() {
    let dir = temp_dir("webhook-direct");
    let controller = Controller::start(&[]);
    let mut journal = journal_with(&dir.join("journal"), &["a"]);
    let (mut delivery, _) = Delivery::open(
        config(&controller.url),
        &dir.join("journal"),
        &dir.join("cursor"),
    )
    .unwrap();
    assert_eq!(delivery.run_once().unwrap(), 1);
    // The journal refused "b" (disk full), so the dispatcher handed it over directly ...
    let b = alert("b");
    delivery.push_direct(b.clone());
    assert_eq!(delivery.run_once().unwrap(), 1);
    // ... and later the journal caught up.
    journal.append(&b).unwrap();
    journal.append(&alert("c")).unwrap();
    assert_eq!(delivery.run_once().unwrap(), 1);
    assert_eq!(controller.accepted(), ["a", "b", "c"]);
    assert_eq!(delivery.stats().skipped_already_sent, 1);
    assert_eq!(delivery.stats().delivered_direct, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn alerts_rotated_away_before_delivery_are_counted_as_lost() {
    let dir = temp_dir("webhook-rotated");
    let controller = Controller::start(&[]);
    let line = alert("x").to_json_line().unwrap().len() as u64;
    let (mut journal, _) = Journal::open(
        &dir.join("journal"),
        JournalConfig {
            max_file_bytes: line + 5,
            keep_files: 2,
            max_pending: 8,
        },
    )
    .unwrap();
    for p in ["a", "b", "c", "d", "e"] {
        journal.append(&alert(p)).unwrap();
    }
    let (mut delivery, _) = Delivery::open(
        config(&controller.url),
        &dir.join("journal"),
        &dir.join("cursor"),
    )
    .unwrap();
    assert_eq!(delivery.run_once().unwrap(), 2);
    assert_eq!(controller.accepted(), ["d", "e"]);
    assert_eq!(delivery.stats().lost_segments, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_background_sink_delivers_what_the_dispatcher_raises() {
    let dir = temp_dir("webhook-sink");
    let controller = Controller::start(&[503]);
    let (journal, _) = Journal::open(&dir.join("journal"), JournalConfig::default()).unwrap();
    let (delivery, _) = Delivery::open(
        config(&controller.url),
        &dir.join("journal"),
        &dir.join("cursor"),
    )
    .unwrap();
    let sink = WebhookSink::spawn(delivery);
    let mut dispatcher =
        Dispatcher::new(Some(journal), Cooldown::new(Duration::ZERO)).with_sink(Box::new(sink));
    let now = Instant::now();
    for p in ["a", "b", "c"] {
        dispatcher.raise(&alert(p), now);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while controller.accepted().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(dispatcher); // stops the worker
    assert_eq!(controller.accepted(), ["a", "b", "c"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
