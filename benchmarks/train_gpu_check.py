"""GPU check of training: each stage and precision runs a few steps, with throughput and memory.

    python benchmarks/train_gpu_check.py --out /tmp/train-gpu-check

Trains on synthetic scenes (:mod:`instcolor.training.synthetic`) through stages full -> instance -> fusion
at the paper's width and input size, in fp32, bf16 and fp16 autocast, and once with
``torch.compile``; checks every loss is finite and every exported file loads; prints one line per
run and writes ``results.json``. ``--device cpu --width 0.0625 --size 32`` gives a quick CPU run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from instcolor.training.synthetic import write_scenes
from instcolor.training import TrainConfig, train
from instcolor.models.weights.store import load_weights

#: (name, stage, precision, compile, init run).
PLAN = (
    ("full-fp32", "full", "fp32", False, None),
    ("full-bf16", "full", "bf16", False, None),
    ("full-fp16", "full", "fp16", False, None),
    ("full-bf16-compile", "full", "bf16", True, None),
    ("instance-fp16", "instance", "fp16", False, "full-fp32"),
    ("instance-bf16", "instance", "bf16", False, "full-fp32"),
    ("fusion-fp32", "fusion", "fp32", False, "instance-fp16"),
    ("fusion-bf16", "fusion", "bf16", False, "instance-fp16"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scenes", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--skip", nargs="*", default=(), help="run names to leave out")
    args = parser.parse_args()

    boxes = write_scenes(args.out / "scenes", args.scenes, size=args.size, seed=0)
    results = []
    for name, stage, precision, compiled, init in PLAN:
        if name in args.skip or (precision == "fp16" and args.device == "cpu"):
            continue
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        config = TrainConfig(
            stage=stage,
            data=[str(args.out / "scenes")],
            boxes=str(boxes),
            out=str(args.out / "runs" / name),
            init=str(args.out / "runs" / init) if init else None,
            width=args.width,
            size=args.size,
            batch_size=1 if stage == "fusion" else 16,
            epochs=1000,
            decay_epochs=0,
            max_steps=args.steps * (4 if stage == "fusion" else 1),
            precision=precision,
            compile=compiled,
            device=args.device,
            num_workers=args.workers,
            log_every=args.steps // 3 if stage != "fusion" else args.steps,
            progress=False,
        )
        started = time.perf_counter()
        try:
            result = train(config)
        except Exception as err:  # report and go on: one failing combination must not hide the others
            results.append({"run": name, "error": f"{type(err).__name__}: {err}"})
            print(f"{name:20s} FAILED {type(err).__name__}: {err}", flush=True)
            continue
        seconds = time.perf_counter() - started
        records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in records if r["loss"] is not None]
        load_weights(result.weights)
        entry = {
            "run": name,
            "steps": result.step,
            "seconds": round(seconds, 1),
            "samples_per_s_last": round(records[-1]["samples_per_s"], 1),
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "finite": all(math.isfinite(v) for v in losses),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
            "tensorboard": (result.run_dir / "tensorboard").is_dir(),
        }
        results.append(entry)
        print(
            f"{name:20s} {entry['steps']:4d} steps {seconds:6.1f} s  {entry['samples_per_s_last']:7.1f} img/s  "
            f"loss {entry['first_loss']:.3f} -> {entry['last_loss']:.3f}  finite={entry['finite']}  "
            f"peak {entry['peak_gib']} GiB  tensorboard={entry['tensorboard']}",
            flush=True,
        )
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    summary = {"device": device, "torch": torch.__version__, "runs": results}
    (args.out / "results.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
