"""Does telling the networks each instance's class help? A synthetic benchmark on CPU.

Scenes of small objects whose colour is decided by their label alone
(:func:`instcolor.training.synthetic.make_scene` with ``colour_by="label"``: five COCO labels, five
colours; shapes and lightness drawn apart from the label, so the grey image cannot tell the
colour). A small model is trained through the paper's three stages with the ground-truth boxes and
labels; stage 1 is shared, then stages 2-3 are trained once per variant:

* ``blind``: class-blind (the paper's model);
* ``instance``: class-aware, a class embedding added to the instance net's first feature map;
* ``fusion``: class-aware, a per-class bias on the fusion weight logits (stage 2 as ``blind``);
* ``both``: both embeddings (stage 2 as ``instance``).

Class-aware variants start from the class-blind weights of the stage before with the class
embeddings at zero (``instcolor train --class-aware``), and train with 10 % of labels dropped to
unknown.

Protocol: predictions come from :class:`instcolor.Colorizer` on the 8-bit grey image (BT.709 luma,
as in training), at the scene's resolution, given the test scenes' boxes and labels. PSNR (dB,
data range 255, on 8-bit sRGB) is averaged over held-out images (``image``), over instances inside
their boxes (``box``) and inside their exact masks (``mask``). Class-aware variants are also run
with ``class_aware="off"`` (every instance of unknown class). Each variant's gain over ``blind``
inside boxes is a paired per-instance difference with a 95 % bootstrap interval over test images,
per training seed.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/class_aware.py --out runs/class-aware

Everything lands in ``--out``: the scenes, the training runs, and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from instance_benefit import masked_psnr

from instcolor.color import rgb_to_grey
from instcolor.evaluation.metrics import psnr
from instcolor.evaluation.stats import bootstrap_mean
from instcolor.inference.hardware import cpu_info
from instcolor.inference.pipeline import Colorizer
from instcolor.instances import load_boxes_file
from instcolor.io import decode_image
from instcolor.models.weights.store import load_weights
from instcolor.training import TrainConfig, train
from instcolor.training.synthetic import write_scenes

#: Variant -> (stage-2 run it starts stage 3 from, class inputs of its stage 3 or None for blind).
VARIANTS = {
    "blind": ("blind", None),
    "instance": ("instance", "instance"),
    "fusion": ("blind", "fusion"),
    "both": ("instance", "both"),
}


def evaluate(weights: Path, test_dir: Path, boxes_file: Path, size: int, class_aware: str) -> dict[str, list]:
    """Per-image PSNR lists: ``image`` (one value per image), ``box`` and ``mask`` (one list per image)."""
    model = load_weights(weights).model
    colorizer = Colorizer(model, detector=None, device="cpu", size=size, masks="auto", class_aware=class_aware)
    scores: dict[str, list] = {"image": [], "box": [], "mask": []}
    for name, instances in sorted(load_boxes_file(boxes_file).items()):
        truth = np.round(decode_image(test_dir / name).rgb * 255).astype(np.uint8)
        rgb = torch.from_numpy(truth / 255.0).permute(2, 0, 1)[None].float()
        grey = np.round(rgb_to_grey(rgb)[0, 0].numpy() * 255).astype(np.uint8)
        out = np.asarray(colorizer(grey, instances, mode="fusion").image)
        scores["image"].append(psnr(out, truth))
        boxes, masks = [], []
        for (x1, y1, x2, y2), mask in zip(instances.boxes.astype(int), instances.masks):
            boxes.append(psnr(out[y1:y2, x1:x2], truth[y1:y2, x1:x2]))
            masks.append(masked_psnr(out, truth, mask))
        scores["box"].append(boxes)
        scores["mask"].append(masks)
    return scores


def mean_of(per_image: list) -> float:
    values = np.concatenate([np.atleast_1d(np.asarray(v, np.float64)) for v in per_image])
    return float(np.mean(values[np.isfinite(values)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/class-aware"))
    parser.add_argument("--train-scenes", type=int, default=300)
    parser.add_argument("--test-scenes", type=int, default=60)
    parser.add_argument("--scene-size", type=int, default=64, help="side of the generated scenes")
    parser.add_argument("--size", type=int, default=64, help="network input side")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=16, help="stages 1-2 (stage 3: 1 image)")
    parser.add_argument("--full-epochs", type=int, nargs=2, default=(6, 2), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--instance-epochs", type=int, nargs=2, default=(6, 2), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--fusion-epochs", type=int, nargs=2, default=(1, 1), metavar=("EPOCHS", "DECAY"))
    parser.add_argument("--fusion-lr", type=float, default=1e-4)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (the scenes stay)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    if "blind" not in args.variants:
        args.variants.insert(0, "blind")

    started = time.perf_counter()
    timings: dict[str, float] = {}
    scenes = args.out / "scenes"
    train_boxes = write_scenes(scenes / "train", args.train_scenes, size=args.scene_size, seed=0, colour_by="label")
    test_boxes = write_scenes(
        scenes / "test", args.test_scenes, size=args.scene_size, seed=1_000_003, colour_by="label"
    )
    timings["scenes"] = time.perf_counter() - started

    common = dict(
        data=[str(scenes / "train")], boxes=str(train_boxes), width=args.width, size=args.size,
        num_workers=args.workers, threads=args.threads, checkpoint_every=10_000, sample_every=10_000,
        log_every=50, progress=False,
    )  # fmt: skip
    batch = dict(batch_size=args.batch_size)
    fusion = dict(batch_size=1, epochs=args.fusion_epochs[0], decay_epochs=args.fusion_epochs[1], lr=args.fusion_lr)
    stage2_needed = {VARIANTS[v][0] for v in args.variants}
    results: dict[str, dict] = {}
    for seed in args.seeds:
        runs = args.out / f"seed-{seed}"
        plan: dict[str, dict] = {
            "full": dict(stage="full", epochs=args.full_epochs[0], decay_epochs=args.full_epochs[1], **batch),
        }
        for name in sorted(stage2_needed):
            plan[f"instance-{name}"] = dict(
                stage="instance", init=str(runs / "full"), epochs=args.instance_epochs[0],
                decay_epochs=args.instance_epochs[1], class_aware=name != "blind", **batch,
            )  # fmt: skip
        for variant in args.variants:
            stage2, inputs = VARIANTS[variant]
            classes = dict(class_aware=True, class_inputs=inputs) if inputs else dict(class_aware=False)
            plan[f"fusion-{variant}"] = dict(stage="fusion", init=str(runs / f"instance-{stage2}"), **classes, **fusion)
        for name, settings in plan.items():
            t0 = time.perf_counter()
            run_dir = runs / name
            if not (run_dir / "weights.safetensors").is_file():
                train(TrainConfig(out=str(run_dir), seed=seed, **common, **settings))
            timings[f"seed{seed}_train_{name}"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        per_variant = {}
        for variant in args.variants:
            weights = runs / f"fusion-{variant}" / "weights.safetensors"
            per_variant[variant] = evaluate(weights, test_boxes.parent, test_boxes, args.size, "auto")
            if VARIANTS[variant][1]:
                off = evaluate(weights, test_boxes.parent, test_boxes, args.size, "off")
                per_variant[f"{variant} (classes off)"] = off
        timings[f"seed{seed}_evaluate"] = time.perf_counter() - t0
        blind_boxes = per_variant["blind"]["box"]
        seed_result = {}
        for name, scores in per_variant.items():
            gain = [np.asarray(a) - np.asarray(b) for a, b in zip(scores["box"], blind_boxes)]
            summary = bootstrap_mean(gain, n_resamples=args.bootstrap, seed=seed)
            seed_result[name] = {
                **{level: round(mean_of(values), 3) for level, values in scores.items()},
                "box_gain_over_blind": round(summary.mean, 3),
                "box_gain_ci95": [round(summary.low, 3), round(summary.high, 3)],
            }
        results[f"seed {seed}"] = seed_result
    timings["total"] = time.perf_counter() - started

    names = list(next(iter(results.values())))
    across = {
        name: {
            key: round(float(np.mean([results[s][name][key] for s in results])), 3)
            for key in ("image", "box", "mask", "box_gain_over_blind")
        }
        for name in names
    }
    report = {
        "cpu": cpu_info().model_name,
        "torch_threads": args.threads,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "psnr_db_per_seed": results,
        "psnr_db_mean_over_seeds": across,
        "protocol": __doc__.split("Protocol: ")[1].split("\n\n")[0].replace("\n", " "),
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nCPU: {report['cpu']}; {args.threads} thread(s); total {timings['total'] / 60:.1f} min")
    print(f"{args.test_scenes} held-out scenes; PSNR dB (box gain over blind: mean [95% CI] per seed)")
    print(f"{'variant':24s} {'image':>7s} {'box':>7s} {'mask':>7s}  gain in boxes")
    for name in names:
        gains = "  ".join(
            f"{results[s][name]['box_gain_over_blind']:+.2f} [{results[s][name]['box_gain_ci95'][0]:+.2f}, "
            f"{results[s][name]['box_gain_ci95'][1]:+.2f}]"
            for s in results
        )
        row = across[name]
        print(f"{name:24s} {row['image']:7.2f} {row['box']:7.2f} {row['mask']:7.2f}  {gains}")


if __name__ == "__main__":
    main()
