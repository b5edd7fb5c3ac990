#!/usr/bin/env python3
"""Expected values for lanewatch's alignment tests, produced by the real dlib (pip package `dlib`).

Development reference only: it is not part of the product and nothing here ships. It writes numbers
(no image data): dlib HOG boxes, the 5 landmarks of `shape_predictor_5_face_landmarks.dat`, the chip
geometry of `get_face_chip_details(shape, 150, 0.25)`, and statistics plus a fixed set of sampled
pixel values of `get_face_chip(img, shape, 150, 0.25)`.

    python3 -m venv /work/venv-dlib && /work/venv-dlib/bin/pip install cmake numpy pillow dlib
    /work/venv-dlib/bin/python tools/dlib_reference.py --lfw ../shared/data/lfw \
        --sp /path/to/shape_predictor_5_face_landmarks.dat

JPEG decoders differ by a grey level here and there, and the shape predictor's pixel comparisons
notice, so dlib is run on the pixels exactly as lanewatch decodes them: first dump them with
`cargo run --release --example dump_decoded_lfw -- /tmp/lfw-decoded` (tools/dump_decoded_lfw.rs),
then pass `--decoded /tmp/lfw-decoded`. The Rust tests check the
decoded pixels against `pixels_sha256` first, so a decoder change cannot pass for an alignment error.

Entries with `scale` 3 or 6 are the same images enlarged by pixel replication, which makes the chip
much smaller than its source region and so exercises one or two levels of dlib's image pyramid.
"""

import argparse
import hashlib
import json
import os
import sys

import dlib
import numpy as np
from PIL import Image

CHIP_SIZE = 150
PADDING = 0.25
NUM_SAMPLES = 256


def sample_positions():
    # A fixed pseudo-random set of chip pixels (x, y); the Rust test reads them from the fixture.
    rng = np.random.RandomState(20261128)
    xs = rng.randint(0, CHIP_SIZE, NUM_SAMPLES)
    ys = rng.randint(0, CHIP_SIZE, NUM_SAMPLES)
    return [[int(x), int(y)] for x, y in zip(xs, ys)]


def load_gray(path, scale, decoded_dir, rel):
    if decoded_dir:
        w, h = Image.open(path).size  # header only
        raw = np.fromfile(os.path.join(decoded_dir, rel + ".gray"), dtype=np.uint8)
        img = raw.reshape(h, w)
    else:
        img = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    if scale > 1:
        img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(img)


def central_detection(dets, img):
    h, w = img.shape[:2]
    if len(dets) == 0:
        return None
    return min(dets, key=lambda d: (d.center().x - w / 2) ** 2 + (d.center().y - h / 2) ** 2)


def reference(detector, sp, path, rel, scale, positions, dump_dir, decoded_dir):
    gray = load_gray(path, scale, decoded_dir, rel)
    dets = detector(gray, 1 if scale == 1 else 0)
    det = central_detection(dets, gray)
    if det is None:
        return None
    shape = sp(gray, det)
    rgb = np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    chip = np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=PADDING))
    details = dlib.get_face_chip_details(shape, CHIP_SIZE, PADDING)
    if dump_dir:
        name = rel.replace("/", "__") + f".x{scale}.rgb"
        chip.astype(np.uint8).tofile(os.path.join(dump_dir, name))
    chip_g = chip[:, :, 0].astype(np.float64)
    return {
        "image": rel,
        "scale": scale,
        "width": int(gray.shape[1]),
        "height": int(gray.shape[0]),
        "pixels_sha256": hashlib.sha256(gray.tobytes()).hexdigest(),
        "box": [det.left(), det.top(), det.right(), det.bottom()],
        "landmarks": [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
        "chip_rect": [details.rect.left(), details.rect.top(), details.rect.right(), details.rect.bottom()],
        "chip_angle": details.angle,
        "chip_mean": float(chip_g.mean()),
        "chip_std": float(chip_g.std()),
        "samples": [int(chip[y, x, 0]) for x, y in positions],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", required=True, help="LFW folder with images/ and calib/")
    ap.add_argument("--sp", required=True, help="shape_predictor_5_face_landmarks.dat")
    ap.add_argument("--out", default="tests/fixtures/dlib_align_reference.json")
    ap.add_argument("--calib-out", default="tests/fixtures/dlib_hog_calib.json")
    ap.add_argument("--count", type=int, default=40, help="evaluation images to sample")
    ap.add_argument("--pyramid-count", type=int, default=8, help="of those, also enlarged 3x")
    ap.add_argument("--decoded", help="raw grey pixels as lanewatch decodes them (see above)")
    ap.add_argument("--dump-chips", help="also write dlib's full chips here (development only, never commit)")
    args = ap.parse_args()

    detector = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(args.sp)
    positions = sample_positions()
    if args.dump_chips:
        os.makedirs(args.dump_chips, exist_ok=True)

    images_dir = os.path.join(args.lfw, "images")
    all_images = sorted(
        os.path.join(person, f)
        for person in os.listdir(images_dir)
        for f in os.listdir(os.path.join(images_dir, person))
        if f.endswith(".jpg")
    )
    step = max(1, len(all_images) // args.count)
    chosen = all_images[::step][: args.count]
    entries = []
    for i, rel in enumerate(chosen):
        # x6 puts the chip region beyond 600 px: two pyramid levels.
        scales = [1, 3, 6] if i < 2 else [1, 3] if i < args.pyramid_count else [1]
        for scale in scales:
            e = reference(detector, sp, os.path.join(images_dir, rel), "images/" + rel, scale, positions,
                          args.dump_chips, args.decoded)
            if e is None:
                print(f"no face found by dlib HOG in {rel} x{scale}; skipped", file=sys.stderr)
            else:
                entries.append(e)
    with open(args.out, "w") as f:
        json.dump({"generator": "tools/dlib_reference.py", "dlib": dlib.__version__, "chip_size": CHIP_SIZE,
                   "padding": PADDING, "sample_positions": positions, "entries": entries}, f, indent=1)
    print(f"{len(entries)} entries -> {args.out}")

    calib_dir = os.path.join(args.lfw, "calib")
    calib = []
    for name in sorted(os.listdir(calib_dir)):
        if not name.endswith(".jpg"):
            continue
        gray = load_gray(os.path.join(calib_dir, name), 1, args.decoded, "calib/" + name)
        det = central_detection(detector(gray, 1), gray)
        if det is None:
            continue
        shape = sp(gray, det)
        calib.append({
            "image": "calib/" + name,
            "pixels_sha256": hashlib.sha256(gray.tobytes()).hexdigest(),
            "box": [det.left(), det.top(), det.right(), det.bottom()],
            "landmarks": [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
        })
    with open(args.calib_out, "w") as f:
        json.dump({"generator": "tools/dlib_reference.py", "dlib": dlib.__version__, "entries": calib}, f, indent=1)
    print(f"{len(calib)} calibration boxes -> {args.calib_out}")


if __name__ == "__main__":
    main()
