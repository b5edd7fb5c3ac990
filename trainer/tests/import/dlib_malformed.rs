//! Bad input to `trainer import dlib`: missing, empty, garbage, another dlib network, truncated and
//! corrupted files must give an error that names the file and says where it went wrong, never a panic.
//!
//! The cases built from the real .dat (and the other networks of the same PyPI sdist, found beside
//! it) run when `LANEWATCH_DLIB_DAT` is set (required under CI); the synthetic ones always run.

use std::path::{Path, PathBuf};

use trainer::import::dlib;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(crate::common::temp_dir(&format!("dlib-malformed-{tag}")))
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads `path`, expecting an error; returns its full text after checking that it names the file.
fn load_err(path: &Path) -> String {
    match dlib::load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => {
            let text = format!("{e:#}");
            assert!(
                text.contains(&path.display().to_string()),
                "the error does not name the file: {text}"
            );
            text
        }
    }
}

fn dat() -> Option<PathBuf> {
    crate::common::inputs::require(&crate::common::inputs::DLIB_DAT, "damaging the real .dat")
}

/// dlib's integer encoding, for hand-made headers.
fn int(v: u64) -> Vec<u8> {
    let bytes = v.to_le_bytes();
    let len = (8 - v.leading_zeros() as usize / 8).max(1);
    let mut out = vec![len as u8];
    out.extend_from_slice(&bytes[..len]);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut out = int(s.len() as u64);
    out.extend_from_slice(s.as_bytes());
    out
}

#[test]
fn missing_file_is_named() {
    let s = Scratch::new("missing");
    let text = load_err(&s.0.join("nope.dat"));
    assert!(text.contains("cannot read"), "{text}");
}

#[test]
fn empty_file() {
    let s = Scratch::new("empty");
    let text = load_err(&s.file("empty.dat", &[]));
    assert!(
        text.contains("byte offset 0") && text.contains("truncated"),
        "{text}"
    );
}

#[test]
fn garbage() {
    let s = Scratch::new("garbage");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in 0..50 {
        let bytes: Vec<u8> = (0..(i * 37) % 500 + 1)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let text = load_err(&s.file("garbage.dat", &bytes));
        assert!(text.contains("byte offset"), "{text}");
    }
    let text = load_err(&s.file("text.dat", b"this is not a dlib file\n"));
    assert!(text.contains("byte offset 0"), "{text}");
}

#[test]
fn another_dlib_network_is_recognised() {
    // The head of mmod_human_face_detector.dat: add_loss_layer version 1, then "loss_mmod_".
    let s = Scratch::new("other");
    let mut bytes = int(1);
    bytes.extend(string("loss_mmod_"));
    bytes.extend([0x01, 0x01, 0x01, 0x50]);
    let text = load_err(&s.file("mmod.dat", &bytes));
    assert!(
        text.contains("loss_mmod_") && text.contains("different dlib network"),
        "{text}"
    );
}

#[test]
fn wrong_structure_after_a_valid_loss_layer() {
    // A metric-loss network whose first wrapper version is 7: not dlib's ResNet layout.
    let s = Scratch::new("structure");
    let mut bytes = int(1);
    bytes.extend(string("loss_metric_"));
    bytes.extend(int(7));
    let text = load_err(&s.file("structure.dat", &bytes));
    assert!(
        text.contains("layer 130 of 130") && text.contains("version 7"),
        "{text}"
    );
}

#[test]
fn real_file_truncated_anywhere() {
    let Some(dat) = dat() else { return };
    let bytes = std::fs::read(&dat).unwrap();
    let s = Scratch::new("truncated");
    // Every cut in the header (loss, wrapper versions, input layer, first layer), then cuts spread
    // over the whole file.
    let cuts = (0..600)
        .chain((1..64).map(|i| bytes.len() * i / 64))
        .chain([bytes.len() - 1]);
    for cut in cuts {
        let text = load_err(&s.file("cut.dat", &bytes[..cut]));
        assert!(text.contains("byte offset"), "cut at {cut}: {text}");
    }
    // A file that ends mid-network names the layer.
    let text = load_err(&s.file("half.dat", &bytes[..bytes.len() / 2]));
    assert!(text.contains(" of 130 ("), "{text}");
    // Trailing bytes are refused too.
    let mut longer = bytes.clone();
    longer.push(0);
    let text = load_err(&s.file("longer.dat", &longer));
    assert!(text.contains("trailing"), "{text}");
}

#[test]
fn real_file_corrupted_bytes_never_panic() {
    let Some(dat) = dat() else { return };
    let bytes = std::fs::read(&dat).unwrap();
    let s = Scratch::new("corrupt");
    let mut state = 0x0123_4567_89ab_cdefu64;
    // Structure bytes live in the first ~300 bytes and between the weight tensors.
    for i in 0..200 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = if i < 150 {
            (state % 400) as usize
        } else {
            (state % bytes.len() as u64) as usize
        };
        let mut bad = bytes.clone();
        bad[at] ^= (state >> 32) as u8 | 1;
        // Flipping a weight byte can still give a valid network; anything else must be an error.
        if let Err(e) = dlib::load(&s.file("corrupt.dat", &bad)) {
            let text = format!("{e:#}");
            assert!(text.contains("byte offset"), "flip at {at}: {text}");
        }
    }
}

#[test]
fn other_networks_from_the_same_package() {
    let Some(dat) = dat() else { return };
    let dir = dat.parent().unwrap();
    let mut seen = 0;
    for (name, hint) in [
        ("mmod_human_face_detector.dat", "loss_mmod_"),
        ("shape_predictor_5_face_landmarks.dat", "byte offset"),
    ] {
        let p = dir.join(name);
        if !p.is_file() {
            continue;
        }
        seen += 1;
        let text = load_err(&p);
        assert!(text.contains(hint), "{name}: {text}");
        println!("{name}: {text}");
    }
    assert!(
        seen > 0 || !crate::common::inputs::in_ci(),
        "the sdist's other .dat files should sit beside {}",
        dat.display()
    );
}
