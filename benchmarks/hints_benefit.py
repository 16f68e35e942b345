"""Do colour hints work? A synthetic benchmark on CPU: models trained with and without hints.

Generates scenes of small shapes whose colour is set by their shape class on textured backgrounds
(:mod:`instcolor.training.synthetic`) and trains the paper's three stages twice with the same
steps and seed, once plain and once with random hints (``TrainConfig.hints``, Zhang et al. 2017),
stage 3 under the confined rule with the scenes' masks. On held-out scenes it measures:

* ``psnr_by_points``: whole-image PSNR of the fusion result against the number of hint points drawn
  from the ground truth (:mod:`instcolor.evaluation.hints`, the protocol of
  ``instcolor evaluate --hints``);
* ``instance_colour``: each object in turn asked for the opposite hue of its class colour (ab
  negated, an sRGB colour at L 60) through per-instance hints, for several ways of spreading them
  over the instance (:func:`instcolor.color.hints.instance_hints`, ``lattice`` x ``patch``):
  the share of instances whose mean hue (inside the mask) lands within 20 degrees of the asked
  hue, the mean hue error, and how the pixels outside the instance moved against the result
  without the hint (Lab units: mean, 99th percentile, share within 1).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/hints_benefit.py --out runs/hints-benefit

Everything lands in ``--out``: the scenes, the training runs, and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from instcolor.color import lab_to_rgb, rgb_to_grey, rgb_to_lab
from instcolor.color.hints import colours_ab, instance_hints
from instcolor.evaluation.hints import hint_psnr, image_seed
from instcolor.geometry import sanitize_boxes
from instcolor.inference.hardware import cpu_info
from instcolor.inference.pipeline import Colorizer
from instcolor.instances import Instances, load_boxes_file
from instcolor.io import decode_image
from instcolor.models.weights.store import load_weights
from instcolor.training import TrainConfig, train
from instcolor.training.synthetic import write_scenes

#: Per-instance hint spreads measured: name -> (lattice points per crop side, patch side / lattice step).
SPREADS = {"lattice4-cover0.6": (4, 0.6), "lattice8-cover0.6": (8, 0.6), "lattice8-cover1": (8, 1.0), "lattice16-cover1": (16, 1.0)}


def lab_of(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 sRGB -> ``(3, H, W)`` float Lab."""
    return rgb_to_lab(torch.from_numpy(image / 255.0).permute(2, 0, 1)[None].float())[0].numpy()


def opposite_colour(label_ab: np.ndarray) -> tuple[int, int, int]:
    """An 8-bit sRGB colour of the opposite hue (ab negated) at L 60, inside the gamut."""
    lab = torch.tensor([60.0, -float(label_ab[0]), -float(label_ab[1])]).view(1, 3, 1, 1)
    rgb = lab_to_rgb(lab)[0, :, 0, 0].numpy()
    return tuple(int(v) for v in np.clip(np.round(rgb * 255), 0, 255))


def hue_degrees(a: float, b: float) -> float:
    return float(np.degrees(np.arctan2(b, a)))


def hue_error(a: float, b: float, asked: float) -> float:
    return abs((hue_degrees(a, b) - asked + 180.0) % 360.0 - 180.0)


def scenes_of(folder: Path, boxes_file: Path):
    for name, instances in sorted(load_boxes_file(boxes_file).items()):
        truth = np.round(decode_image(folder / name).rgb * 255).astype(np.uint8)
        rgb = torch.from_numpy(truth / 255.0).permute(2, 0, 1)[None].float()
        grey = np.round(rgb_to_grey(rgb)[0, 0].numpy() * 255).astype(np.uint8)
        yield name, truth, grey, instances


def psnr_by_points(colorizer: Colorizer, tests, points: tuple[int, ...], seed: int) -> dict[int, float]:
    per_image = [hint_psnr(colorizer, grey, truth, inst, points, image_seed(seed, name)) for name, truth, grey, inst in tests]
    return {n: float(np.mean([values[n] for values in per_image])) for n in points}


def instance_colour(colorizer: Colorizer, tests, size: int) -> dict[str, dict[str, float]]:
    """Each instance asked for the opposite hue; per spread: hue hits and what moved outside."""
    out = {}
    for spread, (lattice, coverage) in SPREADS.items():
        errors, outside_mean, outside_p99, outside_within1 = [], [], [], []
        for _, truth, grey, instances in tests:
            plain = lab_of(np.asarray(colorizer(grey, instances).image))
            boxes = sanitize_boxes(instances.boxes, (grey.shape[1], grey.shape[0]))
            for k in range(len(instances)):
                mask = instances.masks[k]
                truth_ab = lab_of(truth)[1:, mask].mean(axis=1)
                asked = opposite_colour(truth_ab)
                asked_ab = colours_ab([asked])[0]
                colours = [None] * len(instances)
                colours[k] = asked
                hints = instance_hints(boxes, colours, size, instances.masks, lattice=lattice, coverage=coverage)
                result = lab_of(np.asarray(colorizer(grey, instances, hints=hints).image))
                a, b = result[1:, mask].mean(axis=1)
                errors.append(hue_error(a, b, hue_degrees(*asked_ab)))
                moved = np.sqrt(((result - plain) ** 2).sum(axis=0))[~mask]
                outside_mean.append(moved.mean())
                outside_p99.append(np.percentile(moved, 99))
                outside_within1.append((moved <= 1.0).mean())
        errors = np.asarray(errors)
        out[spread] = {
            "instances": int(len(errors)),
            "hue_within_20deg": float((errors <= 20).mean()),
            "hue_error_mean_deg": float(errors.mean()),
            "hue_error_median_deg": float(np.median(errors)),
            "outside_delta_e_mean": float(np.mean(outside_mean)),
            "outside_delta_e_p99": float(np.mean(outside_p99)),
            "outside_share_within_1": float(np.mean(outside_within1)),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/hints-benefit"))
    parser.add_argument("--train-scenes", type=int, default=256)
    parser.add_argument("--test-scenes", type=int, default=24)
    parser.add_argument("--scene-size", type=int, default=64, help="side of the generated scenes")
    parser.add_argument("--size", type=int, default=64, help="network input side")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=16, help="stages 1-2 (stage 3: 1 image)")
    parser.add_argument("--full-epochs", type=int, nargs=2, default=(8, 4), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--instance-epochs", type=int, nargs=2, default=(6, 2), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--fusion-epochs", type=int, nargs=2, default=(1, 1), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--points", default="0,1,2,5,10,20")
    parser.add_argument("--variants", nargs="+", default=["plain", "hints"], choices=["plain", "hints"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    timings: dict[str, float] = {}
    scenes = args.out / "scenes"
    train_boxes = write_scenes(scenes / "train", args.train_scenes, size=args.scene_size, seed=args.seed)
    test_boxes = write_scenes(scenes / "test", args.test_scenes, size=args.scene_size, seed=args.seed + 1_000_003)
    common = dict(
        data=[str(scenes / "train")], boxes=str(train_boxes), width=args.width, size=args.size,
        num_workers=args.workers, threads=args.threads, seed=args.seed, checkpoint_every=200, sample_every=1000,
        log_every=10, progress=False,
    )  # fmt: skip
    stages = {
        "full": dict(batch_size=args.batch_size, epochs=args.full_epochs[0], decay_epochs=args.full_epochs[1]),
        "instance": dict(batch_size=args.batch_size, epochs=args.instance_epochs[0], decay_epochs=args.instance_epochs[1]),
        "fusion": dict(batch_size=1, epochs=args.fusion_epochs[0], decay_epochs=args.fusion_epochs[1],
                       fusion_rule="confined", fusion_masks=True),
    }  # fmt: skip
    steps: dict[str, dict[str, int]] = {}
    for variant in args.variants:
        previous = None
        for stage, settings in stages.items():
            t0 = time.perf_counter()
            run_dir = args.out / "runs" / variant / stage
            config = TrainConfig(out=str(run_dir), init=previous, stage=stage, hints=variant == "hints", **common, **settings)
            result = train(config, resume=(run_dir / "checkpoints" / "last.pt").exists())
            previous = str(run_dir)
            steps.setdefault(variant, {})[stage] = result.step
            timings[f"train_{variant}_{stage}"] = time.perf_counter() - t0
            print(f"{variant} {stage}: {result.step} steps, loss {result.loss}, {timings[f'train_{variant}_{stage}']:.0f} s")

    points = tuple(int(p) for p in args.points.split(","))
    tests = list(scenes_of(scenes / "test", test_boxes))
    metrics = {}
    for variant in args.variants:
        t0 = time.perf_counter()
        model = load_weights(args.out / "runs" / variant / "fusion" / "weights.safetensors").model
        # the networks' own hint following (the default hint_mode spreads hints over the result instead)
        colorizer = Colorizer(model, detector=None, device="cpu", size=args.size, masks="auto", hint_mode="network")
        no_boxes = [(name, truth, grey, Instances()) for name, truth, grey, _ in tests]
        metrics[variant] = {
            "trained_with_hints": model.config.hints,
            "psnr_by_points": psnr_by_points(colorizer, tests, points, args.seed),
            "psnr_by_points_full_network": psnr_by_points(colorizer, no_boxes, points, args.seed),
            "instance_colour": instance_colour(colorizer, tests, args.size),
        }
        timings[f"evaluate_{variant}"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    results = {
        "cpu": cpu_info().model_name,
        "torch_threads": args.threads,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "steps": steps,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "results": metrics,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nCPU: {results['cpu']}; total {timings['total'] / 60:.1f} min; steps {steps}")
    for variant, found in metrics.items():
        print(f"\n{variant}: PSNR (dB) by hint points, fusion / full-image network:")
        for n in points:
            print(f"  {n:3d}: {found['psnr_by_points'][n]:6.2f} / {found['psnr_by_points_full_network'][n]:6.2f}")
        print(f"{variant}: per-instance colour (opposite hue asked):")
        for spread, values in found["instance_colour"].items():
            print(f"  {spread:18s} " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()))


if __name__ == "__main__":
    main()
