"""PSNR against hint points on real photos: hint modes, weights, and the spreading kernel.

Part 1 (``--weights``): for each photo folder, each weights file and each hint mode
(``Colorizer(hint_mode=...)``), the evaluation's curve (``instcolor evaluate --hints``: fusion,
256x256, the first n of one ground-truth draw per image, 95% bootstrap intervals).

Part 2 (``--sweep``): the kernel of :func:`instcolor.color.hint_spread.spread_hints` on the first
weights, from each photo's result without hints (what ``hint_mode="propagate"`` starts from), for
a grid of widths. Choose the widths on a validation folder, then report on held-out photos.

    python benchmarks/hint_curves.py --data val=DIR,BOXES --data heldout=DIR,BOXES \\
        --weights starter --weights hint-finetune.safetensors --sweep --out results.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instcolor.color import rgb_to_lab
from instcolor.color.hint_spread import CHROMA_SIGMA, LIGHTNESS_SIGMA, PRIOR, SPATIAL_SIGMA, spread_hints
from instcolor.evaluation import EvaluationConfig, evaluate
from instcolor.evaluation.hints import ground_truth_hints, image_seed
from instcolor.evaluation.metrics import psnr
from instcolor.evaluation.runner import make_grey, scale_boxes
from instcolor.inference.hardware import cpu_info
from instcolor.inference.pipeline import HINT_MODES, Colorizer
from instcolor.instances import Instances, load_boxes_file
from instcolor.io import decode_image

POINTS = (0, 1, 2, 5, 10, 20)
SWEEP = {"spatial": (0.1, 0.2, 0.4), "lightness": (5.0, 10.0, 20.0), "chroma": (10.0, None), "prior": (0.1,)}


def photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"))


def curves(folder: Path, boxes: Path, weights: str, mode: str) -> dict[str, list[float]]:
    colorizer = Colorizer.from_pretrained(weights, device="cpu", detector=None, hint_mode=mode)
    config = EvaluationConfig(lpips=False, fid=False, hint_points=POINTS, bootstrap_resamples=1000)
    result = evaluate(photos(folder), colorizer, boxes=load_boxes_file(boxes), config=config)
    return {str(n): [round(s.mean, 3), round(s.low, 3), round(s.high, 3)] for n, s in result.hint_curve.items()}


def plain_results(folder: Path, boxes: Path, weights: str) -> list[dict]:
    """Per photo at the evaluation's 256x256: lightness, ab without hints, truth and its hint draw."""
    colorizer = Colorizer.from_pretrained(weights, device="cpu", detector=None)
    entries = load_boxes_file(boxes)
    found = []
    for path in photos(folder):
        truth_full = np.clip(np.round(decode_image(path).rgb * 255.0), 0, 255).astype(np.uint8)  # as evaluate does
        truth = np.asarray(Image.fromarray(truth_full).resize((256, 256), Image.Resampling.BILINEAR))
        grey = make_grey(truth)
        given = entries.get(path.name, Instances()).top(8)
        eval_boxes = scale_boxes(given.boxes, (truth_full.shape[1], truth_full.shape[0]), (256, 256))
        result = colorizer(grey, Instances(boxes=eval_boxes.astype(np.float32), labels=given.labels))
        lightness = rgb_to_lab(torch.from_numpy(np.repeat(grey[None], 3, axis=0)[None] / 255.0).float())[:, :1]
        hints = ground_truth_hints(truth, max(POINTS), colorizer.size, image_seed(0, path.name))
        found.append({"lightness": lightness, "ab": torch.from_numpy(result.ab)[None], "truth": truth, "hints": hints})
    return found


def rgb_of(lightness: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    from instcolor.color import lab_to_rgb

    rgb = lab_to_rgb(torch.cat([lightness, ab], dim=1))[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def sweep(results: list[dict]) -> list[dict]:
    rows = []
    for spatial, lightness, chroma, prior in itertools.product(*SWEEP.values()):
        gains = {n: [] for n in POINTS[1:]}
        for photo in results:
            base = psnr(rgb_of(photo["lightness"], photo["ab"]), photo["truth"])
            for n in POINTS[1:]:
                spread = spread_hints(
                    photo["lightness"], photo["ab"], photo["hints"].select(slice(0, n)), spatial_sigma=spatial,
                    lightness_sigma=lightness, chroma_sigma=chroma or float("inf"), prior=prior,
                )  # fmt: skip
                gains[n].append(psnr(rgb_of(photo["lightness"], spread), photo["truth"]) - base)
        row = {"spatial": spatial, "lightness": lightness, "chroma": chroma, "prior": prior}
        row["gain_db"] = {str(n): round(float(np.mean(v)), 3) for n, v in gains.items()}
        rows.append(row)
        print(f"  spatial {spatial} lightness {lightness} chroma {chroma} prior {prior}: "
              + " ".join(f"{n}:{g:+.2f}" for n, g in row["gain_db"].items()), flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, help="NAME=FOLDER,BOXES_FILE (repeatable)")
    parser.add_argument("--weights", action="append", default=None, help="weights (repeatable; default starter)")
    parser.add_argument("--modes", default=",".join(HINT_MODES), help="hint modes for part 1")
    parser.add_argument("--sweep", action="store_true", help="part 2: the spreading kernel on the first weights")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    weights = args.weights or ["starter"]
    sets = {}
    for item in args.data:
        name, rest = item.split("=", 1)
        folder, boxes = rest.split(",", 1)
        sets[name] = (Path(folder), Path(boxes))
    report: dict = {
        "cpu": f"{cpu_info().model_name} ({cpu_info().capability}, {cpu_info().threads} threads)",
        "torch": torch.__version__,
        "points": list(POINTS),
        "kernel_default": {"spatial": SPATIAL_SIGMA, "lightness": LIGHTNESS_SIGMA, "chroma": CHROMA_SIGMA, "prior": PRIOR},
        "curves": {},
        "sweep": {},
    }
    for name, (folder, boxes) in sets.items():
        for weight, mode in itertools.product(weights, args.modes.split(",")):
            start = time.perf_counter()
            curve = curves(folder, boxes, weight, mode)
            report["curves"].setdefault(name, []).append({"weights": weight, "hint_mode": mode, "psnr_db": curve})
            gain = curve["10"][0] - curve["0"][0]
            print(f"{name} {weight} {mode}: 0 pts {curve['0'][0]:.2f} dB, 10 pts {gain:+.2f} dB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
        if args.sweep:
            print(f"{name}: kernel sweep on {weights[0]}", flush=True)
            report["sweep"][name] = sweep(plain_results(folder, boxes, weights[0]))
        args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
