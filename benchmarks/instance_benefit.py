"""Does instance-aware fusion colour small objects better? A synthetic benchmark on CPU.

Generates scenes of small shapes whose colour is set by their shape class on textured
backgrounds (:mod:`instcolor.training.synthetic`), trains a small model through the paper's three stages
(:mod:`instcolor.training`, ground-truth boxes), and compares on held-out scenes:

* ``grey``: the grey input itself (ab = 0), the floor;
* ``full``: the full-image network alone (the paper's model without instances);
* ``fusion``: instance-aware fusion with the ground-truth boxes;
* ``fusion+masks``: the same with the ground-truth masks (they act under the confined rule).

Stages 1-2 are trained once; stage 3 once per variant (:data:`VARIANTS`): the paper's reference
fusion rule, the confined rule trained on boxes, and the confined rule trained with masks. Half
the training scenes, and one of the two test sets, have objects standing so close that their
boxes overlap (the paper's failure case).

Protocol: predictions come from :class:`instcolor.Colorizer` on the 8-bit grey image (BT.709 luma,
as in training), at the scene's resolution. PSNR (dB, data range 255, on 8-bit sRGB) is averaged
over images (``image``), over instances inside their boxes (``box``) and inside their exact masks
(``mask``, mean squared error over the mask's pixels).

    nice -n 10 python benchmarks/instance_benefit.py --out runs/instance-benefit

Everything lands in ``--out``: the scenes, the three training runs, and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from instcolor.color import rgb_to_grey
from instcolor.evaluation.metrics import psnr
from instcolor.instances import load_boxes_file, save_boxes_file
from instcolor.io import decode_image
from instcolor.inference.hardware import cpu_info
from instcolor.inference.pipeline import Colorizer
from instcolor.training.synthetic import write_scenes
from instcolor.training import TrainConfig, train
from instcolor.models.weights.store import load_weights


def masked_psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the pixels of a ``(H, W)`` bool mask, all three channels, data range 255."""
    diff = pred[mask].astype(np.float64) - target[mask].astype(np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def evaluate(weights: Path, test_dir: Path, boxes_file: Path, size: int) -> dict[str, dict[str, float]]:
    """Mean PSNR per method and level on the held-out scenes.

    ``fusion`` uses the boxes; ``fusion+masks`` gives the scenes' exact masks too (under the
    confined rule they confine each instance to its shape; the reference rule ignores them).
    """
    model = load_weights(weights).model
    colorizer = Colorizer(model, detector=None, device="cpu", size=size, masks="auto")
    methods = ("grey", "full", "fusion", "fusion+masks")
    scores = {m: {"image": [], "box": [], "mask": []} for m in methods}
    for name, instances in sorted(load_boxes_file(boxes_file).items()):
        truth = np.round(decode_image(test_dir / name).rgb * 255).astype(np.uint8)
        rgb = torch.from_numpy(truth / 255.0).permute(2, 0, 1)[None].float()
        grey = np.round(rgb_to_grey(rgb)[0, 0].numpy() * 255).astype(np.uint8)
        boxes_only = replace(instances, masks=None)
        outputs = {
            "grey": np.repeat(grey[..., None], 3, axis=2),
            "full": np.asarray(colorizer(grey, boxes_only, mode="full").image),
            "fusion": np.asarray(colorizer(grey, boxes_only, mode="fusion").image),
            "fusion+masks": np.asarray(colorizer(grey, instances, mode="fusion").image),
        }
        for method, out in outputs.items():
            scores[method]["image"].append(psnr(out, truth))
            for box, mask in zip(instances.boxes.astype(int), instances.masks):
                x1, y1, x2, y2 = box
                scores[method]["box"].append(psnr(out[y1:y2, x1:x2], truth[y1:y2, x1:x2]))
                scores[method]["mask"].append(masked_psnr(out, truth, mask))
    return {m: {level: float(np.mean(v)) for level, v in levels.items()} for m, levels in scores.items()}


#: Stage-3 variants trained on the same stage-1/2 networks: (fusion rule, masks in training).
VARIANTS = {"reference": ("reference", False), "confined": ("confined", False), "confined-masks": ("confined", True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/instance-benefit"))
    parser.add_argument("--train-scenes", type=int, default=800, help="half of them with overlapping boxes")
    parser.add_argument("--test-scenes", type=int, default=50, help="per test set (separate and overlapping)")
    parser.add_argument("--scene-size", type=int, default=128, help="side of the generated scenes")
    parser.add_argument("--size", type=int, default=128, help="network input side")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=16, help="stages 1-2 (stage 3: 1 image)")
    parser.add_argument("--full-epochs", type=int, nargs=2, default=(6, 3), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--instance-epochs", type=int, nargs=2, default=(16, 4), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--fusion-epochs", type=int, nargs=2, default=(3, 2), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--fusion-lr", type=float, default=5e-5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    timings: dict[str, float] = {}
    scenes = args.out / "scenes"
    half = args.train_scenes // 2
    separate = write_scenes(scenes / "train", half, size=args.scene_size, seed=args.seed, prefix="separate")
    overlap = write_scenes(scenes / "train", args.train_scenes - half, size=args.scene_size, seed=args.seed + 1,
                           prefix="overlap", boxes_name="boxes-overlap.json", overlapping=True)  # fmt: skip
    train_boxes = scenes / "train-boxes.json"
    save_boxes_file(train_boxes, {**load_boxes_file(separate), **load_boxes_file(overlap)})
    tests = {
        "separate": write_scenes(scenes / "test-separate", args.test_scenes, size=args.scene_size,
                                 seed=args.seed + 1_000_003),
        "overlapping": write_scenes(scenes / "test-overlapping", args.test_scenes, size=args.scene_size,
                                    seed=args.seed + 2_000_003, overlapping=True),
    }  # fmt: skip
    timings["scenes"] = time.perf_counter() - started

    common = dict(
        data=[str(scenes / "train")],
        boxes=str(train_boxes),
        width=args.width,
        size=args.size,
        num_workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        checkpoint_every=200,
        sample_every=100,
        log_every=10,
    )
    stages = {
        "full": dict(batch_size=args.batch_size, epochs=args.full_epochs[0], decay_epochs=args.full_epochs[1]),
        "instance": dict(
            batch_size=args.batch_size, epochs=args.instance_epochs[0], decay_epochs=args.instance_epochs[1]
        ),
    }
    fusion = dict(batch_size=1, epochs=args.fusion_epochs[0], decay_epochs=args.fusion_epochs[1], lr=args.fusion_lr)
    for variant in args.variants:
        rule, masks = VARIANTS[variant]
        stages[f"fusion-{variant}"] = dict(fusion, stage="fusion", fusion_rule=rule, fusion_masks=masks)
    previous, steps = None, {}
    for name, settings in stages.items():
        t0 = time.perf_counter()
        run_dir = args.out / "runs" / name
        settings = {"stage": name, **settings}
        init = previous if not name.startswith("fusion") else str(args.out / "runs" / "instance")
        config = TrainConfig(out=str(run_dir), init=init, **common, **settings)
        resume = (run_dir / "checkpoints" / "last.pt").exists()  # a re-run continues where it stopped
        result = train(config, resume=resume)
        previous, steps[name] = str(run_dir), result.step
        timings[f"train_{name}"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    metrics = {
        variant: {
            test: evaluate(args.out / "runs" / f"fusion-{variant}" / "weights.safetensors",
                           boxes.parent, boxes, args.size)
            for test, boxes in tests.items()
        }
        for variant in args.variants
    }  # fmt: skip
    timings["evaluate"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    results = {
        "cpu": cpu_info().model_name,
        "torch_threads": args.threads,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "steps": steps,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "psnr_db": metrics,
        "protocol": __doc__.split("Protocol: ")[1].split("\n\n")[0].replace("\n", " "),
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nCPU: {results['cpu']}; total {timings['total'] / 60:.1f} min; steps {steps}")
    for variant, tests_metrics in metrics.items():
        for test, by_method in tests_metrics.items():
            print(f"\nstage 3 '{variant}', {test} test scenes ({args.test_scenes}), PSNR dB:")
            print(f"{'method':13s} {'image':>8s} {'box':>8s} {'mask':>8s}")
            for method, levels in by_method.items():
                print(f"{method:13s} {levels['image']:8.2f} {levels['box']:8.2f} {levels['mask']:8.2f}")


if __name__ == "__main__":
    main()
