#!/usr/bin/env python3
"""tract (through `lanewatch bench --models`) against onnxruntime on the same ONNX files, same shapes,
same machine, in one run; prints each network's median latency and the tract/onnxruntime ratio.

Dev only (onnxruntime from PyPI is never shipped):
  python3 -m venv v && v/bin/pip install onnxruntime numpy
  cargo build --release && v/bin/python tools/bench_tract_vs_onnxruntime.py target/release/lanewatch [runs]
Both runtimes use one thread (tract runs single-threaded; onnxruntime is pinned to 1 intra-op thread).
"""
import json
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = {
    "embedder": "dlib_resnet_v1.onnx",
    "pnet": "mtcnn_pnet.onnx",
    "rnet": "mtcnn_rnet.onnx",
    "onet": "mtcnn_onet.onnx",
}


def ort_median(path: pathlib.Path, shape, runs: int) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    n = int(np.prod(shape))
    x = (((np.arange(n) % 251) / 250.0 - 0.5) * 2.0).astype(np.float32).reshape(shape)
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/release/lanewatch")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    tract = json.loads(
        subprocess.run([binary, "bench", "--models", "--json", "--runs", str(runs)],
                       check=True, capture_output=True, text=True, cwd=ROOT).stdout
    )
    print(f"{platform.machine()}, onnxruntime {ort.__version__}, {runs} runs, 1 thread each")
    print(f"{'network':<9} {'input':<18} {'tract ms':>9} {'ort ms':>9} {'tract/ort':>9}")
    for name, shape, summary in tract:
        o = ort_median(ROOT / "models" / FILES[name], shape, runs)
        t = summary["median_ms"]
        print(f"{name:<9} {str(shape):<18} {t:>9.2f} {o:>9.2f} {t / o:>9.2f}")


if __name__ == "__main__":
    main()
