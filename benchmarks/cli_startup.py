"""How fast the command line starts: ``instcolor --help`` and each ``instcolor COMMAND --help``.

Each is run ``--repeat`` times in a fresh interpreter and compared with a bare ``python -c pass``;
the target (issue 12) is at most 0.5 s each.

    python benchmarks/cli_startup.py [--repeat 5] [--target 0.5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = ["", "colorize", "detect", "video", "serve", "train", "evaluate", "bench", "weights",
            "weights list", "weights download", "weights import", "weights verify", "weights convert-centernet"]  # fmt: skip


def seconds(argv: list[str], repeat: int) -> float:
    """Median wall-clock seconds of ``argv``, run ``repeat`` times."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.5, help="seconds each --help may take")
    args = parser.parse_args()
    bare = seconds([sys.executable, "-c", "pass"], args.repeat)
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"{'command':38} {'seconds':>8} {'x bare python':>14}")
    print(f"{'python -c pass':38} {bare:8.3f} {1.0:14.1f}")
    slow = 0
    for command in COMMANDS:
        argv = [sys.executable, "-m", "instcolor.cli", *command.split(), "--help"]
        took = seconds(argv, args.repeat)
        slow += took > args.target
        label = f"instcolor {command} --help".replace("  ", " ")
        print(f"{label:38} {took:8.3f} {took / bare:14.1f}{'  SLOW' if took > args.target else ''}")
    print(f"target <= {args.target} s: {'met' if not slow else f'{slow} over'}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
