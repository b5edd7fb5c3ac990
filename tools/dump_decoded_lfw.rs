//! Development tool: writes every LFW image in `../shared/data/lfw` as decoded by lanewatch (raw
//! 8-bit grey, `OUT_DIR/<path>.gray`) for `tools/dlib_reference.py --decoded OUT_DIR`, so that dlib
//! sees exactly the pixels lanewatch sees (`tests/vision/align_dlib_reference.rs` compares against what
//! dlib computed). `cargo run --release --example dump_decoded_lfw -- OUT_DIR`.

use std::path::PathBuf;

const LFW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/lfw");

fn main() {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: dump_decoded_lfw OUT_DIR"),
    );
    let mut stack = vec![PathBuf::from(LFW)];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jpg") {
                let rel = path.strip_prefix(LFW).unwrap();
                let gray = image::open(&path).unwrap().to_luma8();
                let dst = out.join(format!("{}.gray", rel.display()));
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::write(dst, gray.as_raw()).unwrap();
                n += 1;
            }
        }
    }
    eprintln!("{n} images written under {}", out.display());
}
