"""Torch vs ONNX Runtime, fp32 and int8, networks alone: the rows ``instcolor bench --backends`` adds.

Every runtime runs the same inputs (a calibration photo with 0, 1 or 8 boxes) in interleaved
repeats, so that a busy machine slows all of them alike; seconds are the minimum over repeats,
ratios are against torch fp32 of the same run, and |delta ab| is in Lab units against torch fp32.
The row ``auto`` says what ``precision="auto"`` and ``backend="auto"`` pick from these numbers
(fastest within :data:`~instcolor.inference.precision.MAX_MEAN_DELTA_AB` Lab units).
"""

from __future__ import annotations

import copy
import sys

import torch

from instcolor.color import AB_SCALE
from instcolor.inference.backends import ort_available, ort_runtime, time_runtimes
from instcolor.inference.precision import MAX_MEAN_DELTA_AB, candidate_precisions
from instcolor.inference.runtime import EAGER_FP32, FAST_FP32, prepare_model, with_precision

INSTANCES = (0, 1, 8)


def measure_backend_rows(model, size: int = 256, instances=INSTANCES, repeats: int = 2, log=None) -> dict:
    """Seconds, ratio vs torch fp32 and |delta ab| of each (backend, precision) at each instance count."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    device = torch.device("cpu")
    runtimes = {"torch eager fp32": prepare_model(copy.deepcopy(model), device, EAGER_FP32, size)}
    for precision in candidate_precisions(device):
        runtimes[f"torch {precision}"] = prepare_model(copy.deepcopy(model), device, with_precision(FAST_FP32, precision), size)
    if ort_available():
        for precision in ("fp32", "int8"):
            options = with_precision(FAST_FP32, precision)
            runtimes[f"onnxruntime {precision}"] = ort_runtime(copy.deepcopy(model), device, options, size)
    rows = []
    for count in instances:
        log(f"  backends: {count} instances, {len(runtimes)} runtimes x {repeats} interleaved repeats")
        measured = time_runtimes(runtimes, size, repeats=repeats, instances=count)
        base = measured["seconds"]["torch fp32"]
        want = measured["outputs"]["torch fp32"]
        for name, seconds in measured["seconds"].items():
            delta = (measured["outputs"][name] - want).abs() * AB_SCALE
            rows.append({
                "runtime": name, "instances": count, "seconds": seconds, "speedup_vs_torch_fp32": base / seconds,
                "speedup_vs_eager_fp32": measured["seconds"]["torch eager fp32"] / seconds,
                "mean_delta_ab_lab": float(delta.mean()), "max_delta_ab_lab": float(delta.max()),
            })  # fmt: skip
    totals: dict[str, float] = {}
    worst: dict[str, float] = {}
    for row in rows:
        totals[row["runtime"]] = totals.get(row["runtime"], 0.0) + row["seconds"]
        worst[row["runtime"]] = max(worst.get(row["runtime"], 0.0), row["mean_delta_ab_lab"])
    accepted = [name for name in totals if worst[name] <= MAX_MEAN_DELTA_AB and name != "torch eager fp32"]
    pick = min(accepted, key=totals.get)
    return {"rows": rows, "pick": pick, "total_seconds": totals, "worst_mean_delta_ab_lab": worst}


def render_backend_rows(result: dict, console) -> None:
    from rich.console import Console
    from rich.table import Table

    if console.width < 160:
        console = Console(file=console.file, width=160, soft_wrap=True)

    table = Table(title="networks at 256x256 by backend: seconds (min), ratio vs torch fp32 and vs eager, mean|max |dab| Lab")
    for column in ("runtime", "instances", "seconds", "vs torch fp32", "vs eager fp32", "mean |dab|", "max |dab|"):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    for row in result["rows"]:
        table.add_row(
            row["runtime"], str(row["instances"]), f"{row['seconds']:.3f}", f"{row['speedup_vs_torch_fp32']:.2f}x",
            f"{row['speedup_vs_eager_fp32']:.2f}x", f"{row['mean_delta_ab_lab']:.3f}", f"{row['max_delta_ab_lab']:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"auto would pick: {result['pick']} (fastest over the instance counts within "
                  f"{MAX_MEAN_DELTA_AB} Lab units mean)", highlight=False)  # fmt: skip
