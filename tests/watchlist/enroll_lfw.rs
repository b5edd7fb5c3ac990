//! `lanewatch enroll` end to end on real faces (LFW subset in `../shared/data/lfw`, copied to a temp
//! folder, never into the repo): a good photo set becomes a watchlist that `watchlist verify` accepts,
//! and photos of two people in one folder, a photo with two faces, or one without a face, are refused
//! with no file written.

use std::path::{Path, PathBuf};

use crate::common::cli::{lanewatch, text};
use lanewatch::fsio::TempDir;

fn lfw(name: &str, n: u32) -> PathBuf {
    crate::common::lfw_dir().join(format!("images/{name}/{name}_{n:04}.jpg"))
}

fn person(root: &Path, id: &str, photos: &[(&str, u32)]) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (name, n)) in photos.iter().enumerate() {
        std::fs::copy(lfw(name, *n), dir.join(format!("{i}.jpg"))).unwrap();
    }
}

#[test]
fn enrol_verify_and_refuse_bad_photo_sets() {
    let tmp = TempDir::new("lanewatch-enroll").unwrap();
    let t = tmp.path();
    let key = t.join("issuer");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    assert!(lanewatch(&["keygen", "--out", &s(&key)]).status.success());

    let good = t.join("good");
    person(
        &good,
        "Angela_Bassett",
        &[("Angela_Bassett", 1), ("Angela_Bassett", 2)],
    );
    person(
        &good,
        "Akhmed_Zakayev",
        &[("Akhmed_Zakayev", 1), ("Akhmed_Zakayev", 3)],
    );
    let out = t.join("list.lwl");
    let o = lanewatch(&[
        "enroll",
        "--photos",
        &s(&good),
        "--key",
        &s(&key),
        "--out",
        &s(&out),
        "--sequence",
        "7",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("enrolled 2 people from 4 photos"),
        "{}",
        text(&o)
    );
    let pubkey = format!("{}.pub", s(&key));
    let o = lanewatch(&[
        "watchlist",
        "verify",
        &s(&out),
        "--pubkey",
        &pubkey,
        "--model",
        "models/dlib_resnet_v1.onnx",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // Two different people in one folder.
    let mixed = t.join("mixed");
    person(
        &mixed,
        "Abel_Pacheco",
        &[("Abel_Pacheco", 1), ("Akhmed_Zakayev", 2)],
    );
    let out2 = t.join("mixed.lwl");
    let o = lanewatch(&[
        "enroll",
        "--photos",
        &s(&mixed),
        "--key",
        &s(&key),
        "--out",
        &s(&out2),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("disagree"), "{}", text(&o));
    assert!(!out2.exists());

    // A photo with a second large face in it (a bystander close to the camera).
    let crowd = t.join("crowd");
    person(&crowd, "Angela_Bassett", &[("Angela_Bassett", 3)]);
    let o = lanewatch(&[
        "enroll",
        "--photos",
        &s(&crowd),
        "--key",
        &s(&key),
        "--out",
        &s(&out2),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("2 faces found"), "{}", text(&o));
    assert!(!out2.exists());

    // A photo with no face in it.
    let blank = t.join("blank");
    std::fs::create_dir_all(blank.join("Nobody")).unwrap();
    image::RgbImage::from_pixel(200, 200, image::Rgb([120, 130, 140]))
        .save(blank.join("Nobody/0.png"))
        .unwrap();
    let o = lanewatch(&[
        "enroll",
        "--photos",
        &s(&blank),
        "--key",
        &s(&key),
        "--out",
        &s(&out2),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no face found") && text(&o).contains("0.png"),
        "{}",
        text(&o)
    );
    assert!(!out2.exists());
}

/// A threshold table row for the test tables below.
fn row(n: usize, fpir: Option<f64>, threshold: f32) -> serde_json::Value {
    serde_json::json!({
        "watchlist_size": n,
        "fpir_target": fpir,
        "threshold": threshold,
        "fpir": fpir.unwrap_or(0.5),
        "fnir": 0.3,
        "method": "measured",
        "false_alerts": if fpir == Some(0.001) { 3 } else { 40 },
    })
}

#[test]
fn enrol_with_a_threshold_chosen_by_list_size() {
    use sha2::Digest;
    let tmp = TempDir::new("lanewatch-enroll-fpir").unwrap();
    let t = tmp.path();
    let key = t.join("issuer");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    assert!(lanewatch(&["keygen", "--out", &s(&key)]).status.success());
    let photos = t.join("photos");
    person(
        &photos,
        "Angela_Bassett",
        &[("Angela_Bassett", 1), ("Angela_Bassett", 2)],
    );
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dlib_resnet_v1.onnx");
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&model).unwrap()));
    let contract_threshold = lanewatch::vision::embed::Embedder::load(&model)
        .unwrap()
        .spec()
        .threshold;
    let table = |sha: &str| {
        serde_json::json!({
            "format": "lanewatch-thresholds/1",
            "embedder_sha256": sha,
            "measured_on": "a test table",
            "rows": [
                row(100, Some(0.01), 0.45),
                row(1000, Some(0.01), 0.42),
                row(100, Some(0.001), 0.40),
                row(100, None, contract_threshold),
            ],
        })
    };
    let good_table = t.join("good.thresholds.json");
    std::fs::write(&good_table, table(&sha).to_string()).unwrap();
    let out = t.join("list.lwl");
    let enrol = |table: &Path, extra: &[&str]| {
        let mut args = vec![
            "enroll".to_string(),
            "--photos".into(),
            s(&photos),
            "--key".into(),
            s(&key),
            "--out".into(),
            s(&out),
            "--thresholds".into(),
            s(table),
            // These tables hold per-search rows: the rows for lanes that decide every face.
            "--decision".into(),
            "frame".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        lanewatch(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // One person: the row for lists of up to 100 at FPIR 0.01.
    let o = enrol(&good_table, &["--fpir", "0.01"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "threshold 0.4500 keeps FPIR at 0.01 per search for lists of up to 100 people"
        ),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("uncertain"), "{}", text(&o));
    let pubkey = format!("{}.pub", s(&key));
    let o = lanewatch(&["watchlist", "inspect", &s(&out), "--pubkey", &pubkey]);
    assert!(text(&o).contains("distance <= 0.45,"), "{}", text(&o));

    // A row resting on a handful of false alerts is used, with a warning.
    let o = enrol(&good_table, &["--fpir", "0.001"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("threshold 0.4000") && text(&o).contains("rests on 3 false alerts"),
        "{}",
        text(&o)
    );

    // Without --fpir the embedder's own threshold is kept, with a warning of what it costs.
    let o = enrol(&good_table, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("alerted on 50.0% of strangers"),
        "{}",
        text(&o)
    );

    // An FPIR the table lacks, or a table made for another model: refused, nothing written.
    std::fs::remove_file(&out).unwrap();
    let o = enrol(&good_table, &["--fpir", "0.05"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no per-passer rows for FPIR 0.05"),
        "{}",
        text(&o)
    );
    let foreign = t.join("foreign.thresholds.json");
    std::fs::write(&foreign, table(&"0".repeat(64)).to_string()).unwrap();
    let o = enrol(&foreign, &["--fpir", "0.01"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("foreign.thresholds.json") && text(&o).contains("not the one in use"),
        "{}",
        text(&o)
    );
    let broken = t.join("broken.thresholds.json");
    std::fs::write(&broken, "{\"format\": ").unwrap();
    let o = enrol(&broken, &["--fpir", "0.01"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("broken.thresholds.json"), "{}", text(&o));
    assert!(!out.exists());

    // --mirror: a table measured on plain descriptors is refused; one measured with --mirror is
    // used, and the list says how its faces were described (format version 2).
    let o = enrol(&good_table, &["--fpir", "0.01", "--mirror"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("good.thresholds.json") && text(&o).contains("--mirror"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
    let mirror_table = t.join("mirror.thresholds.json");
    let mut mirrored = table(&sha);
    mirrored["views"] = "chip-and-mirror".into();
    std::fs::write(&mirror_table, mirrored.to_string()).unwrap();
    let o = enrol(&mirror_table, &["--fpir", "0.01", "--mirror"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = lanewatch(&["watchlist", "inspect", &s(&out), "--pubkey", &pubkey]);
    assert!(
        text(&o).contains("version 2,") && text(&o).contains("views:       chip-and-mirror"),
        "{}",
        text(&o)
    );
}
