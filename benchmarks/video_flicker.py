"""Flicker, PSNR and speed of film colorization: per-frame against ours (cuts, tracks, smoothing).

Clips, written to a temporary folder (x264, crf 16, 12 frames/s, 192x144):

* ``synthetic``: a red square moving 4 px a frame over a textured colour background, with a cut to
  another (blue-grey) scene with a yellow square half way; its colour frames are the ground truth;
* ``pan:<photo>``: one per ``--photo`` (default ``samples/pig.jpg``, public domain, see
  samples/README.md): a crop window 60 % of the photo, zooming in from 1x to 1.5x while it slides
  from the left edge to the right and from 30 % to 70 % of the free height. The sample photos are
  grey, so there the "ground truth" is grey and PSNR says how far each result's colour strays; give
  a colour photo (e.g. the held-out set's public-domain ``palapeli__cincinnati-bridge.jpg``) for a
  real ground truth.

Each is made grey (as training does) and colorized twice by :func:`instcolor.apps.video.evaluate_video`:
per frame (no smoothing, detection per frame) and ours. Flicker follows the camera (the previous
frame warped by the global motion before pixels are compared); the same-pixel figure is printed
too. Done when, on every clip: flicker of ours <= 30 % of per-frame, nothing carried across the
cut (``cut_leak == 0``), PSNR of ours not below per-frame. Prints frames/s on this machine.

    PYTHONPATH=src python benchmarks/video_flicker.py [--weights starter] [--frames 36] \
        [--photo samples/pig.jpg --photo /work/data/heldout/palapeli__cincinnati-bridge.jpg] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def write_clip(path: Path, frames, rate=12) -> None:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "16", "threads": "1"}  # one thread: the same clip on every run
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def synthetic_frames(n=36, size=(144, 192)):
    h, w = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([120 + 60 * np.sin(xx / 9.0), 140 + 50 * np.cos(yy / 7.0), 90 + 40 * np.sin((xx + yy) / 13.0)], -1)
    texture = np.clip(base + rng.normal(0, 12, (h, w, 1)), 0, 255)
    other = np.clip(np.stack([60 + 0 * xx, 80 + 30 * np.sin(yy / 5.0), 150 + 40 * np.cos(xx / 11.0)], -1), 0, 255)
    for i in range(n):
        frame = (texture if i < n // 2 else other).copy()
        x = 10 + 4 * (i % (n // 2))
        frame[40:90, x : x + 40] = (220, 40, 30) if i < n // 2 else (240, 200, 40)
        yield frame.astype(np.uint8)


def pan_frames(n=36, size=(144, 192), photo_path: Path = ROOT / "samples" / "pig.jpg"):
    photo = Image.open(photo_path).convert("RGB")
    pw, ph = photo.size
    h, w = size
    for i in range(n):
        t = i / max(n - 1, 1)
        zoom = 1.0 + 0.5 * t  # zoom in while panning
        cw, ch = pw * 0.6 / zoom, ph * 0.6 / zoom
        x0 = (pw - cw) * t
        y0 = (ph - ch) * (0.3 + 0.4 * t)
        yield np.asarray(photo.resize((w, h), Image.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="weights name or file (default: the installed default)")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--smoothing", type=float, default=None, help="default: colorize_video's")
    parser.add_argument("--window", type=int, default=None, help="frames each side of the two-sided mean (0: the running blend); default: colorize_video's")
    parser.add_argument("--photo", type=Path, action="append", help="photo to pan over (repeat; default samples/pig.jpg)")
    parser.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)), help="torch threads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    import inspect

    from instcolor.apps.video import colorize_video, evaluate_video
    from instcolor.inference.hardware import cpu_info
    from instcolor.inference.pipeline import Colorizer
    from instcolor.models.weights.download import default_weights

    torch.set_num_threads(args.threads)
    defaults = inspect.signature(colorize_video).parameters
    smoothing = args.smoothing if args.smoothing is not None else defaults["smoothing"].default
    window = args.window if args.window is not None else defaults["window"].default
    photos = args.photo or [ROOT / "samples" / "pig.jpg"]
    weights = args.weights or default_weights()[0]
    colorizer = Colorizer.from_pretrained(weights, device="cpu", detector=args.detector)
    cpu = cpu_info().model_name
    print(f"weights: {colorizer.metadata.get('source', weights)}; detector: {getattr(colorizer.detector, 'name', None)}; "
          f"window {window}, smoothing {smoothing}; CPU: {cpu}, {torch.get_num_threads()} threads")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = [("synthetic", synthetic_frames(args.frames))]
        clips += [(f"pan:{photo.stem}", pan_frames(args.frames, photo_path=photo)) for photo in photos]
        for index, (name, frames) in enumerate(clips):
            clip = Path(tmp) / f"clip{index}.mp4"
            write_clip(clip, frames)
            report = evaluate_video(clip, colorizer, smoothing=smoothing, window=window)
            results[name] = report
            ok = (report["flicker_ratio"] <= 0.30, report["cut_leak"] == 0.0, report["ours"]["psnr"] >= report["per_frame"]["psnr"] - 1e-6)
            same_pixel = {k: report[k]["flicker_same_pixel"] for k in ("per_frame", "ours", "ground_truth")}
            print(
                f"{name}: {report['frames']} frames, {report['cuts']} cut(s) | flicker per-frame {report['per_frame']['flicker']:.3f}, "
                f"ours {report['ours']['flicker']:.3f} ({report['flicker_ratio']:.0%}), truth {report['ground_truth']['flicker']:.3f} | "
                f"same-pixel flicker per-frame {same_pixel['per_frame']:.3f}, ours {same_pixel['ours']:.3f} "
                f"({same_pixel['ours'] / same_pixel['per_frame']:.0%}), truth {same_pixel['ground_truth']:.3f} | "
                f"PSNR per-frame {report['per_frame']['psnr']:.2f} dB, ours {report['ours']['psnr']:.2f} dB | cut leak {report['cut_leak']:.3f} | "
                f"frames/s per-frame {report['per_frame']['fps']:.2f}, ours {report['ours']['fps']:.2f} | "
                f"targets (flicker<=30%, no leak, PSNR>=): {'PASS' if all(ok) else 'FAIL ' + str(ok)}"
            )
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "window": window, "smoothing": smoothing, "results": results}, indent=2))


if __name__ == "__main__":
    main()
