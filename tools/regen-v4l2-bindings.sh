#!/usr/bin/env bash
# Regenerates vendor/v4l2-sys-mit/bindings/<target>.rs, the committed V4L2 bindings that let lanewatch
# build without libclang, for every supported target (x86_64, aarch64, armv7 linux-gnu).
#
# Needs libclang and each target's kernel headers (Debian/Ubuntu):
#   apt-get install libclang-dev linux-libc-dev libc6-dev-arm64-cross libc6-dev-armhf-cross
# Then review the diff and commit it. CI checks the committed files against a fresh run
# (`cargo test -p v4l2-sys-mit --test committed_bindings`, part of `cargo test --workspace`).
# To support another target, add it to TARGETS in vendor/v4l2-sys-mit/tests/committed_bindings.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The feature runs bindgen in the crate's own build too, so a target with no committed file yet builds.
V4L2_SYS_MIT_WRITE=1 cargo test -p v4l2-sys-mit --features bindgen --test committed_bindings -- --nocapture
git status --short vendor/v4l2-sys-mit/bindings
