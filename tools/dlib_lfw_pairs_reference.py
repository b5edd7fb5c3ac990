#!/usr/bin/env python3
"""Reference accuracy of dlib's own face pipeline on an LFW pairs file (development only).

Uses the pip package `dlib` (see tools/dlib_reference.py for the venv) to score each pair by the
Euclidean distance of dlib ResNet descriptors, with the chip made three ways:
  hog     dlib HOG box -> 5-point landmarks -> get_face_chip_details(150, 0.25) (dlib's own path);
  mapped  MTCNN box mapped by lanewatch's FITTED_BOX_MAPPING -> 5-point landmarks -> same chip
          (what the box runs; needs --mtcnn);
  mtcnn   lanewatch's approximate chip from MTCNN's five points and MTCNN_TEMPLATE (needs --mtcnn).
lanewatch reproduces dlib's landmarks and chips bit for bit (tests/vision/align_dlib_reference.rs), so
these figures are what the Rust pipeline gets with the same embedder.

--mtcnn is a JSON list of {image, bbox, landmarks} (lanewatch's MTCNN main face per image, paths
relative to the LFW folder); --decoded as in tools/dlib_reference.py. Prints accuracy at dlib's
threshold 0.6 and at the best threshold on the same pairs (optimistic).
"""

import argparse
import json
import os

import dlib
import numpy as np
from PIL import Image

# Keep in step with src/vision/align/mtcnn.rs.
CX, CY, SIDE = [0.039601, -0.060937], [-0.361987, 0.114226], [0.199150, 0.910349]
MTCNN_TEMPLATE = [[0.234833, 0.218691], [0.781206, 0.216048], [0.502804, 0.530434],
                  [0.270065, 0.811984], [0.745017, 0.810788]]
PADDING = 0.25


def mapped_box(e):
    p = np.array(e["landmarks"], dtype=np.float32).astype(np.float64)
    m = p.sum(0) / 5
    em = np.hypot(*((p[0] + p[1]) / 2 - (p[3] + p[4]) / 2))
    x1, y1, x2, y2 = [float(np.float32(v)) for v in e["bbox"]]
    bs = np.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0))
    cx, cy = m[0] + CX[0] * em + CX[1] * bs, m[1] + CY[0] * em + CY[1] * bs
    half = (SIDE[0] * em + SIDE[1] * bs - 1) / 2
    r = lambda v: int(np.floor(v + 0.5))
    return dlib.rectangle(r(cx - half), r(cy - half), r(cx + half), r(cy + half))


def pairs_of(path):
    lines = open(path).read().strip().split("\n")[1:]
    name = lambda n, i: f"images/{n}/{n}_{int(i):04d}.jpg"
    out = []
    for p in (l.split("\t") for l in lines):
        out.append((name(p[0], p[1]), name(p[0], p[2]), 1) if len(p) == 3 else (name(p[0], p[1]), name(p[2], p[3]), 0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", required=True)
    ap.add_argument("--pairs", help="default: LFW/pairs-fold1.txt")
    ap.add_argument("--models", required=True, help="folder with dlib's shape_predictor_5_face_landmarks.dat and dlib_face_recognition_resnet_model_v1.dat")
    ap.add_argument("--decoded")
    ap.add_argument("--mtcnn")
    ap.add_argument("--jitter", type=int, default=0, help="dlib's num_jitters per descriptor (its 99.38%% used 100)")
    args = ap.parse_args()

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(os.path.join(args.models, "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(os.path.join(args.models, "dlib_face_recognition_resnet_model_v1.dat"))
    mt = {e["image"]: e for e in json.load(open(args.mtcnn))} if args.mtcnn else {}
    chip_pts = dlib.dpoints([dlib.dpoint((PADDING + x) / (2 * PADDING + 1) * 150, (PADDING + y) / (2 * PADDING + 1) * 150)
                             for x, y in MTCNN_TEMPLATE])
    pairs = pairs_of(args.pairs or os.path.join(args.lfw, "pairs-fold1.txt"))
    images = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
    desc = {k: {} for k in (["hog", "mapped", "mtcnn"] if mt else ["hog"])}
    missing = {"hog": 0, "mtcnn": 0}
    for im in images:
        path = os.path.join(args.lfw, im)
        w, h = Image.open(path).size
        if args.decoded:
            g = np.fromfile(os.path.join(args.decoded, im + ".gray"), dtype=np.uint8).reshape(h, w)
        else:
            g = np.asarray(Image.open(path).convert("L"))
        rgb = np.ascontiguousarray(np.stack([g] * 3, -1))
        fallback = dlib.rectangle(w // 4, h // 4, 3 * w // 4, 3 * h // 4)
        dets = det(g, 1)
        if len(dets):
            box = min(dets, key=lambda d: (d.center().x - w / 2) ** 2 + (d.center().y - h / 2) ** 2)
        else:
            missing["hog"] += 1
            box = mapped_box(mt[im]) if im in mt else fallback
        shape = sp(g, box)
        desc["hog"][im] = np.array(rec.compute_face_descriptor(rgb, shape))
        if args.jitter:
            desc.setdefault("hog-jit", {})[im] = np.array(rec.compute_face_descriptor(rgb, shape, args.jitter))
        if mt:
            e = mt.get(im)
            if e is None:
                missing["mtcnn"] += 1
            mbox = mapped_box(e) if e else box
            desc["mapped"][im] = np.array(rec.compute_face_descriptor(rgb, sp(g, mbox)))
            pts = e["landmarks"] if e else [[p.x, p.y] for p in sp(g, box).parts()][:5]
            cd = dlib.chip_details(chip_pts, dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in pts]), dlib.chip_dims(150, 150))
            desc["mtcnn"][im] = np.array(rec.compute_face_descriptor(dlib.extract_image_chip(rgb, cd)))
    y = np.array([s for _, _, s in pairs])
    if args.jitter:
        # Enrolment-side jitter only: the first image of each pair jittered, the second plain (a
        # watchlist built with jitter, searched with live faces that are not).
        desc["hog-jit-a"] = None
    for kind, d in desc.items():
        if d is None:
            dj, dp = desc["hog-jit"], desc["hog"]
            dist = np.array([np.linalg.norm(dj[a] - dp[b]) for a, b, _ in pairs])
        else:
            dist = np.array([np.linalg.norm(d[a] - d[b]) for a, b, _ in pairs])
        best = max(np.mean((dist < t) == y) for t in np.sort(dist))
        print(f"{kind:7s}: {len(pairs)} pairs, accuracy at 0.6 {np.mean((dist < 0.6) == y) * 100:.2f}%, best threshold {best * 100:.2f}%")
    print(f"images without a HOG face: {missing['hog']}, without an MTCNN face: {missing['mtcnn']}")


if __name__ == "__main__":
    main()
