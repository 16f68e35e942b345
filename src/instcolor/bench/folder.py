"""Folder throughput at several photo sizes: each way of running a folder against the one-at-a-time loop.

For each size (0.3, 1 and 12 MP by default) a folder of grey JPEGs is colorized (detected by the
colorizer's detector, as ``instcolor colorize`` does, or with one given box each when it has none)
by :func:`instcolor.inference.overlap.colorize_files`, in rotating order over the rounds (the best
round of each is kept): one at a time (decode, colorize, encode in turn), with decoding and encoding
overlapped, and two images at once (where the colorizer allows it:
:func:`~instcolor.inference.overlap.side_by_side_refusal`). Images/s of each, their ratios to one
at a time, and what ``colorize`` does by default here (``in_flight="auto"``) are reported.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from instcolor.bench.benchmark import photo, random_boxes, size_dimensions
from instcolor.inference.overlap import Job, colorize_files
from instcolor.instances import Instances

SIZES = ("0.3MP", "1MP", "12MP")

#: name -> colorize_files options
MODES = {
    "one at a time": {"overlap": False, "in_flight": 1},
    "overlapped I/O": {"overlap": True, "in_flight": 1},
    "two at once": {"in_flight": 2},
}


def measure_folder(colorizer, sizes=SIZES, images: int = 6, rounds: int = 2, instances: int = 1, log=print) -> list[dict]:
    import numpy as np
    from PIL import Image

    from instcolor.inference.overlap import images_in_flight, side_by_side_refusal, spare_core

    modes = {name: options for name, options in MODES.items() if options.get("in_flight", 1) == 1 or side_by_side_refusal(colorizer) is None}

    rows = []
    with tempfile.TemporaryDirectory(prefix="instcolor-folder-") as tmp:
        for size in sizes:
            width, height = size_dimensions(size)
            count = max(2, images if width * height < 4e6 else images // 2)
            jobs = []
            for k in range(count):
                source = Path(tmp) / size / f"photo_{k:02d}.jpg"
                source.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(photo(width, height)).save(source, quality=90)
                boxes = np.asarray(random_boxes(instances, width, height, seed=k), np.float32).reshape(-1, 4)
                jobs.append((source, None if colorizer.detector is not None else Instances(boxes=boxes)))
            best = dict.fromkeys(modes, 0.0)
            names = list(modes)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    out = Path(tmp) / f"out_{size}_{names.index(name)}_{r}"
                    start = time.perf_counter()
                    done = list(colorize_files(colorizer, [Job(s, out / s.name, i) for s, i in jobs], **modes[name]))
                    rate = len(done) / (time.perf_counter() - start)
                    assert not any(d.error for d in done), [d.error for d in done if d.error]
                    best[name] = max(best[name], rate)
            if images_in_flight(colorizer, count) == 2:
                default = "two at once"
            else:  # colorize_files' overlap="auto"
                default = "overlapped I/O" if spare_core(colorizer.device) else "one at a time"
            base = best["one at a time"]
            row = {"size": size, "width": width, "height": height, "images": count, "instances": instances,
                   "images_per_second": best, "ratio": {name: rate / base for name, rate in best.items()},
                   "default": default}  # fmt: skip
            log(f"  folder {size}: " + ", ".join(f"{name} {rate:.2f} images/s ({rate / base:.2f}x)" for name, rate in best.items()))
            rows.append(row)
    return rows


def render_folder(rows: list[dict], precision: str, console, detector: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console.width < 160:
        console = Console(file=console.file, width=160, soft_wrap=True)

    boxes = f"{detector} detection" if detector else "1 given box per photo"
    table = Table(title=f"folder throughput ({precision}, {boxes}): images/s (ratio to one at a time)")
    for column in ("size", "images", *MODES, "colorize's default"):
        table.add_column(column, justify="right")
    for row in rows:
        rates, ratios = row["images_per_second"], row["ratio"]
        cells = [f"{rates[name]:.2f} ({ratios[name]:.2f}x)" if name in rates else "-" for name in MODES]
        table.add_row(row["size"], str(row["images"]), *cells, row["default"])
    console.print(table)
