//! The `lanewatch run` and `lanewatch demo` command lines: the README's first command works on the
//! bundled sample, `run` takes the flags the issue names (--config, --source, --watchlist, --alerts,
//! --max-frames) and refuses bad input with an error naming the file and the setting.

use std::path::Path;

use crate::common::cli::{lanewatch, text};
use crate::common::pipeline::*;
use lanewatch::fsio::write_atomically;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn demo_alerts_once_for_the_enrolled_face_and_never_for_the_passer_by() {
    let out = lanewatch(&["demo"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // Eileen Collins (enrolled) walks up: one passage, one alert, decided on fused faces.
    assert_eq!(t.matches("ALERT eileen collins").count(), 1, "{t}");
    assert_eq!(t.matches("MATCH eileen collins").count(), 1, "{t}");
    assert!(t.matches("matched eileen collins").count() >= 2, "{t}");
    // Grace Hopper (not enrolled) walks up first: tracked, decided, never matched.
    assert!(
        t.matches("no match: closest is eileen collins").count() >= 2,
        "{t}"
    );
    // One closing record per passer: who passed, when, how sure.
    assert_eq!(t.matches("matched nobody").count(), 1, "{t}");
    assert_eq!(
        t.matches(": matched eileen_collins (combined distance")
            .count(),
        1,
        "{t}"
    );
    assert!(t.contains("tracks 0 live / 2 passages"), "{t}");
    assert!(t.contains("frames 24"), "{t}");
}

#[test]
fn run_with_flags_on_a_frames_folder_and_a_watchlist_file() {
    let work = temp("lanewatch-run-cli");
    let w = work.path();
    let a = "Abel_Pacheco";
    let list = w.join("lane.lwl");
    // One photo per passer: a list that decides each face on its own.
    write_atomically(&list, &watchlist_per_frame(w, &[(a, &[0])], 5)).unwrap();
    let pubkey = w.join("issuer.pub");
    std::fs::write(
        &pubkey,
        lanewatch::watchlist::keys::public_key_line(&key().verifying_key()),
    )
    .unwrap();
    let frames = w.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for (i, (who, n)) in [(a, 1), ("Akhmed_Zakayev", 0), (a, 2)].iter().enumerate() {
        std::fs::copy(lfw(who, *n), frames.join(format!("{i}.jpg"))).unwrap();
    }
    std::fs::write(frames.join("3.jpg"), b"\xff\xd8\xff not really a jpeg").unwrap();
    let alerts = w.join("alerts");
    let config = w.join("lane.toml");
    std::fs::write(
        &config,
        "[alerts]\ncooldown_s = 0\nstdout = true\n[passage]\nembed_every = 1\n",
    )
    .unwrap();

    let source = format!("frames:{}", frames.display());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--config",
            config.to_str().unwrap(),
            "--source",
            &source,
            "--watchlist",
            list.to_str().unwrap(),
            "--pubkey",
            pubkey.to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
            "--status-every",
            "0",
        ];
        args.extend_from_slice(extra);
        lanewatch(&args)
    };
    let out = run(&["--max-frames", "2"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("frames 2 "), "{t}");
    let journal = journal_alerts(&alerts);
    assert_eq!(journal.len(), 1, "{t}");
    assert_eq!(journal[0].identity.id, a);
    // The alert went to stdout as a JSON line too.
    assert!(t.contains(&format!("\"id\":\"{}\"", journal[0].id)), "{t}");

    // Without --max-frames it plays the folder to the end, skipping the corrupt file.
    let out = run(&["--json"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("end of stream") && t.contains("corrupt 1"),
        "{t}"
    );
    // One alert per passage: Abel's second photo, right after the stranger's, is told apart from
    // the stranger and continues Abel's own passage, which already alerted.
    assert_eq!(journal_alerts(&alerts).len(), 2, "{t}");
}

#[test]
fn bad_configuration_and_sources_are_refused_by_name() {
    let work = temp("lanewatch-run-cli-bad");
    let w = work.path();
    let bad = w.join("bad.toml");
    std::fs::write(&bad, "[source]\nqueue_capacity = 0\n").unwrap();
    let t = text(&lanewatch(&["run", "--config", &s(&bad)]));
    assert!(
        t.contains("bad.toml") && t.contains("queue_capacity"),
        "{t}"
    );

    let t = text(&lanewatch(&[
        "run",
        "--config",
        &s(&w.join("missing.toml")),
    ]));
    assert!(t.contains("missing.toml"), "{t}");

    let t = text(&lanewatch(&["run", "--source", "rtsp://camera"]));
    assert!(t.contains("rtsp://camera") && t.contains("source"), "{t}");

    let t = text(&lanewatch(&[
        "run",
        "--source",
        &format!("frames:{}", w.join("nowhere").display()),
        "--watchlist",
        &s(w),
        "--pubkey",
        &s(&w.join("none.pub")),
    ]));
    assert!(t.contains("nowhere"), "{t}");

    let out = lanewatch(&["run", "--print-config", "--source", "frames:/data/lane"]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success());
    let back = lanewatch::config::Config::parse(&t, Path::new("printed.toml")).unwrap();
    assert_eq!(back.source.uri, "frames:/data/lane");
}
