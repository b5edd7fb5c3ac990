#!/usr/bin/env python3
"""Builds lanewatch's bundled demo samples (`samples/`) from public-domain images in registry packages.

Sources (pinned wheels, checked by sha256; fetched with pip at development time, never at run time):
  scikit-image 0.25.2  skimage/data/astronaut.png          Eileen Collins, NASA photo, public domain
  matplotlib 3.10.3    mpl-data/sample_data/grace_hopper.jpg  Grace Hopper, US Navy photo, public domain

Writes:
  samples/watchlist/eileen_collins/astronaut.png  the enrolment photo (the original file, unchanged)
  samples/lane_clip.mjpeg                         a 640x480 "lane" clip, concatenated JPEG frames: an empty
                                                  lane, Grace Hopper walking up (not enrolled), the lane
                                                  again, Eileen Collins walking up (mirrored, relit, rescaled)
  samples/group_clip.mjpeg                        a 640x480 clip of a group: three people in every frame
                                                  (two walking up at the sides, one standing further back
                                                  who leaves halfway and is replaced by another), for
                                                  benchmarks of the multi-face lane

Needs numpy and pillow (dev only):  python3 -m venv v && v/bin/pip install numpy pillow && v/bin/python tools/make_demo_samples.py
"""
import hashlib
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

WHEELS = {
    "scikit-image==0.25.2": (
        "scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641",
        "skimage/data/astronaut.png",
    ),
    "matplotlib==3.10.3": (
        "matplotlib-3.10.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "fdfa07c0ec58035242bc8b2c8aae37037c9a886370eef6850703d7583e19964b",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    ),
}
W, H = 640, 480


def fetch(tmp: pathlib.Path) -> dict:
    out = {}
    for req, (wheel, sha, member) in WHEELS.items():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
             "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64", req, "-d", str(tmp)],
            check=True,
        )
        data = (tmp / wheel).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            sys.exit(f"{wheel}: sha256 mismatch")
        out[member.rsplit("/", 1)[-1]] = zipfile.ZipFile(tmp / wheel).read(member)
    return out


def lane_background() -> Image.Image:
    # A plain corridor: vertical gradient and two lane stripes, so frames without people look like a lane.
    y = np.linspace(0.0, 1.0, H)[:, None, None]
    base = (np.array([150, 158, 170]) * (1.0 - 0.35 * y)).astype(np.float32)
    img = np.broadcast_to(base, (H, W, 3)).copy()
    img[:, 60:70] = [210, 200, 90]
    img[:, W - 70 : W - 60] = [210, 200, 90]
    return Image.fromarray(img.astype(np.uint8))


def walk(person: Image.Image, steps: int, mirror: bool, light: tuple) -> list:
    frames = []
    for i in range(steps):
        t = i / max(steps - 1, 1)
        h = int(round(210 + t * 130))
        w = int(round(person.width * h / person.height))
        p = person.resize((w, h), Image.LANCZOS)
        if mirror:
            p = ImageOps.mirror(p)
        p = ImageEnhance.Brightness(p).enhance(light[0] + t * (light[1] - light[0]))
        frame = lane_background()
        x = int(round(400 - t * 260 - w / 2 + 80))
        frame.paste(p, (max(0, min(W - w, x)), H - h))
        frames.append(frame)
    return frames


def group(hopper: Image.Image, collins: Image.Image, steps: int) -> list:
    # (photo, mirror, brightness, first frame, last frame, height from/to, centre x from/to, bottom gap),
    # pasted far to near so that nearer people cover farther ones.
    half = steps // 2
    people = [
        (hopper, True, 0.75, 0, half - 1, 150, 165, 330, 330, 200),
        (collins, False, 1.05, half, steps - 1, 150, 170, 330, 340, 200),
        (collins, True, 0.9, 0, steps - 1, 200, 260, 560, 480, 0),
        (hopper, False, 1.0, 0, steps - 1, 230, 300, 100, 180, 0),
    ]
    frames = []
    for i in range(steps):
        frame = lane_background()
        for photo, mirror, light, first, last, h0, h1, x0, x1, gap in people:
            if not first <= i <= last:
                continue
            t = (i - first) / max(last - first, 1)
            h = int(round(h0 + t * (h1 - h0)))
            w = int(round(photo.width * h / photo.height))
            p = photo.resize((w, h), Image.LANCZOS)
            if mirror:
                p = ImageOps.mirror(p)
            p = ImageEnhance.Brightness(p).enhance(light)
            x = int(round(x0 + t * (x1 - x0) - w / 2))
            frame.paste(p, (max(0, min(W - w, x)), H - gap - h))
        frames.append(frame)
    return frames


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, optimize=False)
    return buf.getvalue()


def main() -> None:
    root = pathlib.Path(__file__).resolve().parent.parent / "samples"
    with tempfile.TemporaryDirectory() as tmp:
        src = fetch(pathlib.Path(tmp))
    collins = Image.open(io.BytesIO(src["astronaut.png"])).convert("RGB").crop((90, 0, 370, 300))
    hopper = Image.open(io.BytesIO(src["grace_hopper.jpg"])).convert("RGB").crop((90, 40, 430, 420))
    empty = [lane_background()] * 3
    frames = empty + walk(hopper, 7, False, (1.0, 1.0)) + empty + walk(collins, 8, True, (0.8, 1.1)) + empty
    enrol = root / "watchlist" / "eileen_collins"
    enrol.mkdir(parents=True, exist_ok=True)
    (enrol / "astronaut.png").write_bytes(src["astronaut.png"])
    (root / "lane_clip.mjpeg").write_bytes(b"".join(jpeg(f) for f in frames))
    print(f"{len(frames)} frames written to {root / 'lane_clip.mjpeg'}")
    crowd = group(hopper, collins, 36)
    (root / "group_clip.mjpeg").write_bytes(b"".join(jpeg(f) for f in crowd))
    print(f"{len(crowd)} frames written to {root / 'group_clip.mjpeg'}")


if __name__ == "__main__":
    main()
