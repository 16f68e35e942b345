"""Folder throughput at several photo sizes: the overlapped runner against the one-at-a-time loop.

For each size (0.3, 1 and 12 MP by default) a folder of grey JPEGs with one given box each is
colorized by :func:`instcolor.inference.overlap.colorize_files` with ``overlap=False`` (decode,
colorize, encode in turn) and ``overlap=True``, in alternating rounds (the best round of each is
kept), and images/s and their ratio are reported.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from instcolor.bench.benchmark import photo, random_boxes, size_dimensions
from instcolor.inference.overlap import Job, colorize_files
from instcolor.instances import Instances

SIZES = ("0.3MP", "1MP", "12MP")


def measure_folder(colorizer, sizes=SIZES, images: int = 6, rounds: int = 2, instances: int = 1, log=print) -> list[dict]:
    import numpy as np
    from PIL import Image

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
                jobs.append((source, Instances(boxes=boxes)))
            best = {False: 0.0, True: 0.0}
            for r in range(rounds):
                for overlap in (False, True) if r % 2 == 0 else (True, False):
                    out = Path(tmp) / f"out_{size}_{overlap}_{r}"
                    start = time.perf_counter()
                    done = list(colorize_files(colorizer, [Job(s, out / s.name, i) for s, i in jobs], overlap=overlap))
                    rate = len(done) / (time.perf_counter() - start)
                    assert not any(d.error for d in done), [d.error for d in done if d.error]
                    best[overlap] = max(best[overlap], rate)
            row = {"size": size, "width": width, "height": height, "images": count, "instances": instances,
                   "one_at_a_time_images_per_second": best[False], "overlapped_images_per_second": best[True],
                   "ratio": best[True] / best[False]}  # fmt: skip
            log(f"  folder {size}: {best[False]:.2f} -> {best[True]:.2f} images/s ({row['ratio']:.2f}x)")
            rows.append(row)
    return rows


def render_folder(rows: list[dict], precision: str, console) -> None:
    from rich.console import Console
    from rich.table import Table

    if console.width < 160:
        console = Console(file=console.file, width=160, soft_wrap=True)

    table = Table(title=f"folder throughput ({precision}, 1 box per photo): overlapped vs one at a time")
    for column in ("size", "images", "one at a time (img/s)", "overlapped (img/s)", "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["size"], str(row["images"]), f"{row['one_at_a_time_images_per_second']:.2f}",
                      f"{row['overlapped_images_per_second']:.2f}", f"{row['ratio']:.2f}x")  # fmt: skip
    console.print(table)
