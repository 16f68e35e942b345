"""PSNR against hint points on real photos: hint modes, weights, and the spreading kernel.

Part 1 (``--weights``): for each photo folder, each weights file and each hint mode
(``Colorizer(hint_mode=...)``), the evaluation's curve (``instcolor evaluate --hints``: fusion,
256x256, the first n of one ground-truth draw per image, 95% bootstrap intervals).

Part 3 (``--instance-colours``): every detected instance of each folder asked, in turn, for the
opposite hue of its own result (chroma at least 20, an sRGB colour at L 60) under each hint mode:
the share within 20 degrees of the asked hue and the mean error, measured on the
8-bit result over the instance (:func:`instcolor.color.hint_spread.instance_colour_weight` above
0.5), and how far pixels outside it moved (Lab units).

Part 2 (``--sweep``): the kernel of :func:`instcolor.color.hint_spread.spread_hints` on the first
weights, from each photo's result without hints (what ``hint_mode="propagate"`` starts from), for
a grid of widths. Choose the widths on a validation folder, then report on held-out photos.

    python benchmarks/hint_curves.py --data val=DIR,BOXES --data heldout=DIR,BOXES \\
        --weights starter --weights hint-finetune.safetensors --sweep --instance-colours --out results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instcolor.color import rgb_to_lab
from instcolor.color.hint_spread import (
    CHROMA_SIGMA,
    LIGHTNESS_SIGMA,
    PRIOR,
    SPATIAL_SIGMA,
    instance_colour_weight,
    spread_hints,
)
from instcolor.evaluation import EvaluationConfig, evaluate
from instcolor.evaluation.hints import ground_truth_hints, image_seed
from instcolor.evaluation.metrics import psnr
from instcolor.evaluation.runner import make_grey, scale_boxes
from instcolor.geometry import sanitize_boxes
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


def lab_of(image: Image.Image) -> np.ndarray:
    rgb = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0
    return rgb_to_lab(rgb)[0].numpy()


def hue_degrees(ab: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(ab[1], ab[0])))


def instance_colours(folder: Path, boxes: Path, weights: str, mode: str) -> dict:
    from instcolor.color import lab_to_rgb

    colorizer = Colorizer.from_pretrained(weights, device="cpu", detector=None, hint_mode=mode)
    entries = load_boxes_file(boxes)
    errors, moved_max, moved_within = [], [], []
    for path in photos(folder):
        given = entries.get(path.name)
        if given is None or not len(given):
            continue
        grey = np.asarray(Image.open(path).convert("L"))
        plain = colorizer(grey, given)
        found = plain.instances  # with the silhouettes the colorizer used
        lightness = torch.from_numpy(lab_of(Image.fromarray(grey))[None, :1])
        sanitized = sanitize_boxes(found.boxes, (grey.shape[1], grey.shape[0]))
        for k in range(len(found)):
            weight = instance_colour_weight(lightness, sanitized, k, found.masks)[0, 0].numpy()
            inside = weight > 0.5
            if not inside.any():  # nothing of it is the instance's core: no colour to measure
                continue
            mean = plain.ab[:, inside].mean(axis=1)
            angle = np.arctan2(mean[1], mean[0]) + np.pi
            chroma = max(float(np.hypot(*mean)), 20.0)
            lab = torch.tensor([60.0, chroma * np.cos(angle), chroma * np.sin(angle)]).view(1, 3, 1, 1).float()
            colour = tuple(int(round(v * 255)) for v in lab_to_rgb(lab)[0, :, 0, 0].clamp(0, 1).tolist())
            colours = [None] * len(found)
            colours[k] = colour
            asked = lab_of(Image.new("RGB", (1, 1), colour))[1:, 0, 0]
            result = colorizer(grey, dataclasses.replace(found, colours=colours))
            before, after = lab_of(plain.image), lab_of(result.image)
            got = after[1:, inside].mean(axis=1)
            errors.append(abs((hue_degrees(got) - hue_degrees(asked) + 180) % 360 - 180))
            moved = np.abs(after - before).max(axis=0)[weight == 0]
            moved_max.append(float(moved.max()) if moved.size else 0.0)
            moved_within.append(float((moved <= 1).mean()) if moved.size else 1.0)
    errors_arr = np.array(errors)
    return {
        "instances": len(errors),
        "share_within_20_degrees": round(float((errors_arr <= 20).mean()), 3),
        "mean_hue_error_degrees": round(float(errors_arr.mean()), 2),
        "outside_max_lab": round(max(moved_max), 3),
        "outside_share_within_1_lab": round(float(np.mean(moved_within)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, help="NAME=FOLDER,BOXES_FILE (repeatable)")
    parser.add_argument("--weights", action="append", default=None, help="weights (repeatable; default starter)")
    parser.add_argument("--modes", default=",".join(HINT_MODES), help="hint modes for part 1")
    parser.add_argument("--sweep", action="store_true", help="part 2: the spreading kernel on the first weights")
    parser.add_argument("--instance-colours", action="store_true", help="part 3: instance colours, first weights")
    parser.add_argument("--no-curves", action="store_true", help="skip part 1")
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
        for weight, mode in itertools.product(weights, [] if args.no_curves else args.modes.split(",")):
            start = time.perf_counter()
            curve = curves(folder, boxes, weight, mode)
            report["curves"].setdefault(name, []).append({"weights": weight, "hint_mode": mode, "psnr_db": curve})
            gain = curve["10"][0] - curve["0"][0]
            print(f"{name} {weight} {mode}: 0 pts {curve['0'][0]:.2f} dB, 10 pts {gain:+.2f} dB "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
        if args.sweep:
            print(f"{name}: kernel sweep on {weights[0]}", flush=True)
            report["sweep"][name] = sweep(plain_results(folder, boxes, weights[0]))
        for mode in args.modes.split(",") if args.instance_colours else []:
            found = instance_colours(folder, boxes, weights[0], mode)
            report.setdefault("instance_colours", {}).setdefault(name, {})[mode] = found
            print(f"{name}: instance colours on {weights[0]}, {mode}: {found}", flush=True)
        args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
