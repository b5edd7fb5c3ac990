//! Bad inputs to `trainer train` / `trainer export` give clear errors naming the file, never a panic:
//! missing, empty and pair-less dataset folders; truncated, damaged and foreign checkpoints.

use std::path::{Path, PathBuf};

use burn::optim::AdamConfig;
use burn::prelude::*;
use sha2::{Digest, Sha256};
use trainer::export::{ExportArgs, export};
use trainer::train::arch::{ArchConfig, MobileFaceNet, MobileFaceNetConfig};
use trainer::train::checkpoint::{Checkpoint, Header};
use trainer::train::command::{Backend, Settings};
use trainer::train::data::augment::Augment;
use trainer::train::loss::Mining;
use trainer::train::run::{Job, run};

fn tmp(name: &str) -> PathBuf {
    crate::common::temp_dir(&format!("train-errors-{name}"))
}

fn small() -> MobileFaceNetConfig {
    MobileFaceNetConfig {
        input: 32,
        width: 0.25,
        embedding: 8,
    }
}

fn settings() -> Settings {
    Settings {
        steps: 2,
        p: 2,
        k: 2,
        min_images: 2,
        margin: 0.2,
        mining: Mining::SemiHard,
        hard_share: 0.5,
        lr: 1e-3,
        weight_decay: 0.0,
        warmup: 0,
        seed: 1,
        augment: Augment::NONE,
        validate_every: 10,
        checkpoint_every: 10,
    }
}

fn job(data: &Path, run_dir: &Path, resume: bool) -> Job {
    Job {
        data: data.to_path_buf(),
        run: run_dir.to_path_buf(),
        models_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")),
        dlib_dat: None,
        arch: ArchConfig::Mobilefacenet(small()),
        chip_padding: 0.25,
        settings: settings(),
        validation: None,
        resume,
        stop_at: None,
        threads: 1,
        backend: Backend::Cpu,
        quiet: true,
    }
}

fn err_text(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn unusable_dataset_folders_are_refused_with_the_reason() {
    let root = tmp("data");
    let run_dir = root.join("run");
    let missing = root.join("nope");
    let e = err_text(run(&job(&missing, &run_dir, false)));
    assert!(
        e.contains("does not exist") && e.contains(&*missing.to_string_lossy()),
        "{e}"
    );

    let empty = root.join("empty");
    std::fs::create_dir_all(empty.join("someone")).unwrap();
    let e = err_text(run(&job(&empty, &run_dir, false)));
    assert!(
        e.contains("holds no images") && e.contains(&*empty.to_string_lossy()),
        "{e}"
    );

    let singles = root.join("singles");
    for who in ["a", "b", "c"] {
        std::fs::create_dir_all(singles.join(who)).unwrap();
        std::fs::write(singles.join(who).join(format!("{who}_0001.jpg")), b"jpeg?").unwrap();
    }
    let e = err_text(run(&job(&singles, &run_dir, false)));
    assert!(e.contains("none with at least 2 images"), "{e}");

    let file = root.join("file.txt");
    std::fs::write(&file, b"x").unwrap();
    let e = err_text(run(&job(&file, &run_dir, false)));
    assert!(e.contains("is not a folder"), "{e}");

    // Two images of one person that are not images at all: the decoder's error names the file.
    let broken = root.join("broken");
    std::fs::create_dir_all(broken.join("x")).unwrap();
    std::fs::write(broken.join("x/x_0001.jpg"), b"not a jpeg").unwrap();
    std::fs::write(broken.join("x/x_0002.jpg"), b"not a jpeg").unwrap();
    let e = err_text(run(&job(&broken, &run_dir, false)));
    assert!(e.contains("x_000"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A valid checkpoint of the small network.
fn write_checkpoint(path: &Path) -> Vec<u8> {
    let device = Device::flex();
    let model = MobileFaceNet::new(&small(), &device);
    let optim = AdamConfig::new().init();
    let header = Header {
        arch: ArchConfig::Mobilefacenet(small()),
        chip_size: 32,
        chip_padding: 0.25,
        step: 0,
        settings: settings(),
        validation: None,
    };
    Checkpoint::write(path, &header, &model, &optim).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_file() {
    let root = tmp("ckpt");
    let path = root.join("checkpoint.lwck");
    let good = write_checkpoint(&path);
    let ckpt = Checkpoint::read(&path).unwrap();
    let device = Device::flex();
    ckpt.load_model(MobileFaceNet::new(&small(), &device))
        .unwrap();

    let name = path.to_string_lossy().into_owned();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("inside the magic", good[..4].to_vec()),
        ("header cut", good[..20].to_vec()),
        ("half", good[..good.len() / 2].to_vec()),
        ("last byte missing", good[..good.len() - 1].to_vec()),
        ("not a checkpoint", b"PK\x03\x04 some zip".to_vec()),
    ];
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    cases.push(("one bit flipped", flipped));
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let e = Checkpoint::read(&path)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let text = e.to_string();
        assert!(text.contains(&name), "{what}: {text}");
        assert!(
            text.contains("truncated or corrupt")
                || text.contains("not a lanewatch trainer checkpoint"),
            "{what}: {text}"
        );
    }

    // A well-formed file (right checksum) whose weight record is garbage: an error, not a panic.
    let mut body = b"LWCKPT01".to_vec();
    let header_len = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
    let header = good[12..12 + header_len].to_vec();
    body.extend((header.len() as u32).to_le_bytes());
    body.extend(&header);
    for part in [&b"garbage weights"[..], &b"garbage optimizer"[..]] {
        body.extend((part.len() as u64).to_le_bytes());
        body.extend(part);
    }
    let digest = Sha256::digest(&body);
    body.extend(digest);
    std::fs::write(&path, &body).unwrap();
    let ckpt = Checkpoint::read(&path).unwrap();
    let e = ckpt
        .load_model(MobileFaceNet::new(&small(), &device))
        .expect_err("garbage weights accepted")
        .to_string();
    assert!(e.contains(&name), "{e}");

    // Resume and export go through the same checks.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let e = err_text(run(&job(&root, &root, true)));
    assert!(e.contains(&name), "{e}");
    let e = err_text(export(&ExportArgs {
        run: root.clone(),
        out: root.join("out.onnx"),
        threshold: Some(1.0),
        far: Some(0.01),
        name: None,
        licence: "test".into(),
    }));
    assert!(e.contains(&name), "{e}");
    assert!(!root.join("out.onnx").exists());

    // A checkpoint of another network shape is refused on resume.
    write_checkpoint(&path);
    let mut other = job(&root, &root, true);
    other.arch = ArchConfig::Mobilefacenet(MobileFaceNetConfig {
        embedding: 16,
        ..small()
    });
    let e = err_text(run(&other));
    assert!(e.contains("does not fit this network"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}
