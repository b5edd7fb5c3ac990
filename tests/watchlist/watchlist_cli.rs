//! The technician's commands end to end, through the real binary: keygen, verify (with and
//! without the box's model), inspect, diff, install and rollback.

use std::path::Path;

use crate::common::cli::{lanewatch, text};
use crate::common::watchlist::*;
use lanewatch::vision::contract::{Contract, EmbeddingSpec, InputSpec, Metric, Role};
use lanewatch::vision::model::Fingerprint;
use lanewatch::vision::onnx_writer::{Attr, GraphBuilder, encode};
use lanewatch::watchlist::format::{Entry, Severity, Thresholds};
use lanewatch::watchlist::keys::read_signing_key;
use lanewatch::watchlist::verify::unix_now;
use lanewatch::watchlist::{EmbedderId, WatchlistBuilder};

/// A 2-dim "embedder" (conv 1x1, global pool): only its fingerprint and contract matter here.
fn tiny_embedder(path: &Path, bias: f32) -> EmbedderId {
    let contract = Contract {
        role: Role::Embedder,
        name: "cli-test-embedder".into(),
        source: "tests/watchlist/watchlist_cli.rs".into(),
        licence: "Apache-2.0".into(),
        precision: "fp32".into(),
        input: InputSpec {
            height: Some(4),
            width: Some(4),
            color: "RGB".into(),
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        embedding: Some(EmbeddingSpec {
            dim: 2,
            metric: Metric::Euclidean,
            threshold: 0.5,
            far: 1e-3,
            alignment: "none".into(),
        }),
    };
    let mut g = GraphBuilder::new("tiny", "image", &[Some(1), Some(3), Some(4), Some(4)]);
    let w = g.initializer_f32("w", &[2, 3, 1, 1], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let b = g.initializer_f32("b", &[2], &[bias, 0.0]);
    let conv = g.node(
        "Conv",
        &["image", &w, &b],
        &[("kernel_shape", Attr::Ints(vec![1, 1]))],
    );
    let pool = g.node("GlobalAveragePool", &[&conv], &[]);
    let flat = g.node("Flatten", &[&pool], &[("axis", Attr::Int(1))]);
    g.output(&flat, &[Some(1), Some(2)]);
    let bytes = encode(&g.into_model(&contract, "lanewatch-tests"));
    std::fs::write(path, &bytes).unwrap();
    EmbedderId {
        fingerprint: Fingerprint::of(&bytes),
        dim: 2,
        metric: Metric::Euclidean,
    }
}

fn entry(id: &str, v: [f32; 2]) -> Entry {
    Entry {
        id: id.into(),
        display_name: format!("Name of {id}"),
        list: "wanted".into(),
        severity: Severity::Critical,
        embeddings: vec![v.to_vec()],
        photo_sha256: vec![[7; 32]],
    }
}

#[test]
fn technician_workflow() {
    let dir = TempDir::new("cli");
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (key, pubkey, model, other_model, state) = (
        p("issuer"),
        p("issuer.pub"),
        p("box.onnx"),
        p("other.onnx"),
        p("state"),
    );

    let out = lanewatch(&["keygen", "--out", &key]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("key id:"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = lanewatch(&["keygen", "--out", &key]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    let embedder = tiny_embedder(Path::new(&model), 0.1);
    tiny_embedder(Path::new(&other_model), 0.2);
    let signing = read_signing_key(Path::new(&key)).unwrap();
    let thresholds = Thresholds {
        max_distance: 0.5,
        min_margin: 0.1,
    };
    let now = unix_now();
    let mut v1 = WatchlistBuilder::new(embedder, thresholds, 1, now - 60, now + 30 * DAY);
    v1.add(entry("a", [1.0, 0.0])).add(entry("b", [0.0, 1.0]));
    let mut v2 = WatchlistBuilder::new(embedder, thresholds, 2, now - 30, now + 30 * DAY);
    v2.add(entry("b", [0.0, 1.5])).add(entry("c", [1.0, 1.0]));
    let (f1, f2) = (p("v1.lwl"), p("v2.lwl"));
    std::fs::write(&f1, v1.sign(&signing).unwrap()).unwrap();
    std::fs::write(&f2, v2.sign(&signing).unwrap()).unwrap();

    let out = lanewatch(&[
        "watchlist",
        "verify",
        &f1,
        "--pubkey",
        &pubkey,
        "--model",
        &model,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("OK (sequence 1, 2 entries"));
    let out = lanewatch(&[
        "watchlist",
        "verify",
        &f1,
        "--pubkey",
        &pubkey,
        "--model",
        &other_model,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("re-enrol the watchlist with the box's model"),
        "{}",
        text(&out)
    );

    let out = lanewatch(&["watchlist", "inspect", &f2, "--entries"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("NOT CHECKED") && t.contains("sequence:    2") && t.contains("c \"Name of c\""),
        "{t}"
    );
    let out = lanewatch(&["watchlist", "inspect", &f2, "--pubkey", &pubkey]);
    assert!(text(&out).contains(": valid"), "{}", text(&out));

    let out = lanewatch(&["watchlist", "diff", &f1, &f2]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("sequence: 1 -> 2"), "{t}");
    assert!(
        t.contains("+ c ") && t.contains("- a ") && t.contains("~ b: embeddings changed"),
        "{t}"
    );
    assert!(t.contains("1 added, 1 removed, 1 changed"), "{t}");

    let install = |f: &str| {
        lanewatch(&[
            "watchlist",
            "install",
            f,
            "--pubkey",
            &pubkey,
            "--dir",
            &state,
            "--model",
            &model,
        ])
    };
    assert!(install(&f1).status.success());
    let out = install(&f2);
    assert!(
        text(&out).contains("installed sequence 2"),
        "{}",
        text(&out)
    );
    let out = install(&f1);
    assert!(!out.status.success());
    assert!(text(&out).contains("refusing a rollback"), "{}", text(&out));
    let active = Path::new(&state).join("watchlist.lwl");
    assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&f2).unwrap());

    let out = lanewatch(&[
        "watchlist",
        "rollback",
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
        "--model",
        &model,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--allow-lower-sequence"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&f2).unwrap());
    let out = lanewatch(&[
        "watchlist",
        "rollback",
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
        "--model",
        &model,
        "--allow-lower-sequence",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("from sequence 2 to 1"));
    assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&f1).unwrap());
}

/// `lanewatch sync --ca-cert` end to end over HTTPS (x86 only: this spawns the binary), and the
/// start-up refusals that name the problem.
#[cfg(feature = "https")]
#[test]
fn sync_over_https_with_a_private_ca() {
    use lanewatch::watchlist::keys::public_key_line;

    let dir = TempDir::new("cli-https");
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (pubkey, state) = (p("issuer.pub"), p("state"));
    std::fs::write(&pubkey, public_key_line(&signer().verifying_key())).unwrap();
    let pki = crate::common::tls::pki(dir.path(), &["127.0.0.1"]);
    let now = unix_now();
    let mut list = body(7, 2);
    (list.created_at, list.expires_at) = (now - DAY, now + 30 * DAY);
    let (url, server) = crate::common::tls::serve(
        &pki,
        vec![crate::common::tls::Canned {
            status: 200,
            etag: Some("\"v7\""),
            body: sign(&list, &signer()),
        }],
    );
    let ca = pki.ca_pem.display().to_string();
    let args = [
        "sync",
        "--url",
        &url,
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
        "--any-embedder",
    ];
    let out = lanewatch(&[&args[..], &["--ca-cert", &ca]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installed sequence 7"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("unauthenticated"), "{}", text(&out));
    assert_eq!(server.join().unwrap().len(), 1);

    let missing = p("missing-ca.pem");
    let out = lanewatch(&[&args[..], &["--ca-cert", &missing]].concat());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("CA certificate file") && text(&out).contains(&missing),
        "{}",
        text(&out)
    );

    let plain = url.replacen("https://", "http://", 1);
    let out = lanewatch(&[
        "sync",
        "--url",
        &plain,
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
        "--any-embedder",
        "--ca-cert",
        &ca,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("plain http://"), "{}", text(&out));
}

/// What a hostile or careless input does to the technician's commands: a list for another
/// embedder, escape sequences in a list's strings, unverified diffs, special files as inputs,
/// an out-of-range sequence.
#[test]
fn hostile_inputs_through_the_cli() {
    let dir = TempDir::new("cli-hostile");
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (key, pubkey, model, state) = (p("issuer"), p("issuer.pub"), p("box.onnx"), p("state"));
    assert!(lanewatch(&["keygen", "--out", &key]).status.success());
    let embedder = tiny_embedder(Path::new(&model), 0.1);
    let signing = read_signing_key(Path::new(&key)).unwrap();
    let thresholds = Thresholds {
        max_distance: 0.5,
        min_margin: 0.1,
    };
    let now = unix_now();
    let mut v1 = WatchlistBuilder::new(embedder, thresholds, 1, now - 60, now + 30 * DAY);
    let mut evil = entry("id\x1b]0;pwned\x07", [1.0, 0.0]);
    evil.display_name = "Mallory\n+ forged line\x1b[2J\u{202e}".into();
    v1.add(evil).add(entry("b", [0.0, 1.0]));
    let mut v2 = WatchlistBuilder::new(embedder, thresholds, 2, now - 30, now + 30 * DAY);
    let mut renamed = entry("b", [0.0, 1.0]);
    renamed.display_name = "Bob\r\x1b[1A".into();
    v2.add(renamed);
    let (f1, f2) = (p("v1.lwl"), p("v2.lwl"));
    std::fs::write(&f1, v1.sign(&signing).unwrap()).unwrap();
    std::fs::write(&f2, v2.sign(&signing).unwrap()).unwrap();

    // 2. Without --model, install checks the box's embedder (the bundled one by default).
    let out = lanewatch(&[
        "watchlist",
        "install",
        &f1,
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("re-enrol the watchlist with the box's model"),
        "{}",
        text(&out)
    );
    assert!(!Path::new(&state).join("watchlist.lwl").exists());
    let out = lanewatch(&[
        "watchlist",
        "install",
        &f1,
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
        "--any-embedder",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("WARNING: --any-embedder"),
        "{}",
        text(&out)
    );
    let missing = p("missing.onnx");
    let out = lanewatch(&[
        "watchlist",
        "install",
        &f2,
        "--pubkey",
        &pubkey,
        "--dir",
        &state,
        "--model",
        &missing,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&missing), "{}", text(&out));

    // 10. A list's strings are escaped wherever they are printed.
    let out = lanewatch(&["watchlist", "inspect", &f1, "--entries"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        !t.contains('\x1b') && !t.contains('\x07') && !t.contains('\u{202e}'),
        "{t:?}"
    );
    assert!(t.contains("id\\u{1b}]0;pwned\\u{7}"), "{t}");
    assert!(!t.contains("\n+ forged"), "{t}");
    let out = lanewatch(&["watchlist", "diff", &f1, &f2]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("UNVERIFIED"), "{t}");
    assert!(!t.contains('\x1b') && !t.contains('\r'), "{t:?}");
    let out = lanewatch(&["watchlist", "diff", &f1, &f2, "--pubkey", &pubkey]);
    assert!(
        text(&out).contains("signatures: both valid"),
        "{}",
        text(&out)
    );
    let other = p("other");
    assert!(lanewatch(&["keygen", "--out", &other]).status.success());
    let out = lanewatch(&[
        "watchlist",
        "diff",
        &f1,
        &f2,
        "--pubkey",
        &format!("{other}.pub"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not among the trusted keys"),
        "{}",
        text(&out)
    );

    // 11. Special files given as inputs are refused at once, naming the file.
    for args in [
        &["run", "--config", "/dev/zero", "--print-config"][..],
        &["probe", "--model", "/dev/zero"][..],
        &["watchlist", "inspect", "/dev/zero"][..],
        &[
            "watchlist",
            "install",
            &f2,
            "--pubkey",
            "/dev/zero",
            "--dir",
            &state,
            "--any-embedder",
        ][..],
    ] {
        let out = lanewatch(args);
        assert!(!out.status.success(), "{args:?}");
        let t = text(&out);
        assert!(
            t.contains("/dev/zero") && t.contains("character device"),
            "{args:?}: {t}"
        );
    }

    // 7. A sequence that would lock every later list out is refused up front.
    let out = lanewatch(&[
        "enroll",
        "--photos",
        &p("photos"),
        "--key",
        &key,
        "--out",
        &p("x.lwl"),
        "--sequence",
        "18446744073709551615",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("2^53"), "{}", text(&out));
}
