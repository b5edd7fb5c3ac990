//! `lanewatch enroll` end to end on real faces (LFW subset in `../shared/data/lfw`, copied to a temp
//! folder, never into the repo): a good photo set becomes a watchlist that `watchlist verify` accepts,
//! and photos of two people in one folder, a photo with two faces, or one without a face, are refused
//! with no file written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lanewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanewatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Temp(PathBuf);
impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lfw(name: &str, n: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../shared/data/lfw/images/{name}/{name}_{n:04}.jpg"
    ))
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
    let tmp = Temp(std::env::temp_dir().join(format!("lanewatch-enroll-{}", std::process::id())));
    let t = &tmp.0;
    std::fs::create_dir_all(t).unwrap();
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
