"""Peak memory and time of the ONNX Runtime fusion graph, one fresh process per measurement.

For each network width and instance count: export the graphs once (cached in ``--cache``, in a
process of their own), then, in a new process, load the model and the ONNX Runtime sessions, run the fusion graph once on a
256x256 calibration photo with N boxes (its two boxes repeated), and print the process's peak
RSS, its RSS before the run, and the seconds of that run (first run: includes ORT's warm-up).
The model is the bundled starter (``starter``, width 0.25, confined rule) or random weights at a
given width (reference rule).

    PYTHONPATH=src python benchmarks/ort_memory.py --models starter,1.0 --instances 1,8 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = 256


def load_model(which: str):
    if which == "starter":
        from instcolor.models.weights.registry import resolve_weights_path
        from instcolor.models.weights.store import load_weights

        return load_weights(resolve_weights_path("starter")).model.eval()
    from instcolor.bench.benchmark import random_model

    return random_model(float(which), input_size=SIZE)


def measure(which: str, count: int, cache: Path, precision: str) -> dict:
    """In this process: the fusion graph once with ``count`` instances; RSS in bytes."""
    import torch

    from instcolor.inference.backends import ort_runtime
    from instcolor.inference.quantization import calibration_samples
    from instcolor.inference.runtime import RuntimeOptions

    runtime = ort_runtime(load_model(which), "cpu", RuntimeOptions(precision=precision), SIZE, cache=cache)
    sample = calibration_samples(SIZE, names=("chelsea",))[0]
    repeat = (count + 1) // 2
    crops = torch.cat([sample.crops] * repeat)[:count]
    box_info = {g: torch.cat([i] * repeat)[:count] for g, i in sample.box_info.items()}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    runtime.run_fusion(sample.full, crops, box_info)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"model": which, "instances": count, "precision": precision, "seconds": seconds,
            "peak_rss_bytes": peak, "rss_before_run_bytes": before}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="starter,1.0", help="starter and/or random-weight widths")
    parser.add_argument("--instances", default="1,8")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "instcolor-ort-memory")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # model, count: measure in this process
    parser.add_argument("--export-only", help=argparse.SUPPRESS)  # model: export (and quantize) in this process
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.export_only:
        from instcolor.inference.backends import ort_runtime
        from instcolor.inference.runtime import RuntimeOptions

        ort_runtime(load_model(args.export_only), "cpu", RuntimeOptions(precision=args.precision), SIZE, cache=args.cache)
        return
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.cache, args.precision)))
        return
    rows = []
    common = ["--cache", str(args.cache), "--precision", args.precision, "--threads", str(args.threads)]
    for which in args.models.split(","):
        subprocess.run([sys.executable, __file__, "--export-only", which, *common], check=True, capture_output=True)
        for count in [int(c) for c in args.instances.split(",")]:
            command = [sys.executable, __file__, "--one", which, str(count), *common]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            print(f"{which:>8} {args.precision} N={count}: {row['seconds']:.2f} s, peak RSS "
                  f"{row['peak_rss_bytes'] / 2**30:.2f} GiB (before the run {row['rss_before_run_bytes'] / 2**30:.2f}), "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
