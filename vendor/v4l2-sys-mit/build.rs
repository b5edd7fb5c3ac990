//! Picks the committed bindings for the target (`bindings/<target>.rs`, made by
//! `tools/regen-v4l2-bindings.sh`), so that a build needs no libclang. With the opt-in feature
//! `bindgen` (`--features v4l2-sys-mit/bindgen`), generates them with bindgen at build time instead,
//! as upstream v4l2-sys-mit does.

use std::env;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("v4l2_bindings.rs");
    let target = env::var("TARGET").unwrap();
    println!("cargo:rerun-if-changed=build.rs");
    if cfg!(feature = "bindgen") {
        generate(&out);
    } else {
        committed(&target, &out);
    }
}

#[cfg(feature = "bindgen")]
fn generate(out: &std::path::Path) {
    println!("cargo:rerun-if-changed=wrapper.h");
    bindgen::Builder::default()
        .header("wrapper.h")
        // As the committed files (tests/committed_bindings.rs): no doc comments.
        .generate_comments(false)
        .generate()
        .expect("Failed to generate bindings")
        .write_to_file(out)
        .expect("Failed to write bindings");
}

#[cfg(not(feature = "bindgen"))]
fn generate(_: &std::path::Path) {
    unreachable!()
}

fn committed(target: &str, out: &std::path::Path) {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let committed = manifest.join("bindings").join(format!("{target}.rs"));
    println!("cargo:rerun-if-changed={}", committed.display());
    if !committed.is_file() {
        let mut have: Vec<String> = std::fs::read_dir(manifest.join("bindings"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".rs")
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        have.sort();
        panic!(
            "v4l2-sys-mit (lanewatch's vendored copy): no committed V4L2 bindings for target `{target}` \
             (have: {}). Add them with `tools/regen-v4l2-bindings.sh` (needs libclang-dev and the \
             target's kernel headers), or build with `--features v4l2-sys-mit/bindgen` to run \
             bindgen now.",
            have.join(", ")
        );
    }
    std::fs::copy(&committed, out)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", committed.display(), out.display()));
}
