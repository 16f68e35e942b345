"""Speed of every fast path against the plain eager fp32 path, on this machine (CPU or CUDA).

A thin recipe around :mod:`instcolor.bench.benchmark` (the same as ``instcolor bench``): the paper's
full-width networks with random weights, 256x256 / 0.25 / 1 / 12 megapixel photos with 0, 1, 8
and 16 instances, and a folder run; it writes ``speed.json`` and prints the tables.

    nice -n 5 python benchmarks/speed.py --out runs/speed                 # everything
    nice -n 5 python benchmarks/speed.py --out runs/speed --networks-only # networks only, quicker
    nice -n 5 python benchmarks/speed.py --out runs/speed --threads 1     # stable on a shared machine

On a machine shared with other work, give torch one thread: with two threads on two busy
cores, every parallel region waits for a descheduled thread and timings vary tenfold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from instcolor.bench.benchmark import (
    DEFAULT_INSTANCES,
    DEFAULT_SIZES,
    BenchSettings,
    load_targets,
    render,
    run_benchmark,
    write_report,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/speed"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--paths", default=None, help="comma-separated (default: eager, fp32, native reduced precisions)")
    parser.add_argument("--instances", default=",".join(map(str, DEFAULT_INSTANCES)))
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", default=None, help="installed weights (default: random, width 1)")
    parser.add_argument("--detector", default="centernet")
    parser.add_argument("--folder-images", type=int, default=6)
    parser.add_argument("--networks-only", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--targets", type=Path, default=Path(__file__).with_name("targets.json"),
                        help="thresholds to judge the results against (default: benchmarks/targets.json)")
    args = parser.parse_args()
    settings = BenchSettings(
        device=args.device,
        paths=args.paths.split(",") if args.paths else None,
        instances=[int(v) for v in args.instances.split(",")],
        sizes=args.sizes.split(","),
        repeats=args.repeats,
        weights=args.weights,
        detector=None if args.detector == "none" else args.detector,
        folder_images=args.folder_images,
        networks_only=args.networks_only,
        compile=args.compile,
        threads=args.threads,
    )
    console = Console(stderr=True, width=180)
    report = run_benchmark(
        settings, log=lambda message: console.print(message, highlight=False), targets=load_targets(args.targets)
    )
    render(report, console)
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(report, args.out / "speed.json")
    console.print(f"written {args.out / 'speed.json'}")


if __name__ == "__main__":
    main()
