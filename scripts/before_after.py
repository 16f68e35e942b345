#!/usr/bin/env python3
"""Render the README's before/after picture from what `instcolor colorize samples/` writes.

    python scripts/before_after.py samples/ docs/starter-before-after.jpg

Runs the colorize command itself (default weights and detector, as a new user would), then lays
out each sample's grey input beside its colorization, one row per photo.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

ROW_HEIGHT = 300
GAP = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("samples", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("extra", nargs="*", help="more options for `instcolor colorize`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "instcolor.cli", "colorize", str(args.samples), "-o", folder, *args.extra]
        subprocess.run(command, check=True)
        rows = []
        for source in sorted(p for p in args.samples.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
            grey = ImageOps.grayscale(Image.open(source)).convert("RGB")
            colour = Image.open(Path(folder) / source.name).convert("RGB")
            scale = ROW_HEIGHT / grey.height
            size = (round(grey.width * scale), ROW_HEIGHT)
            rows.append((grey.resize(size, Image.Resampling.LANCZOS), colour.resize(size, Image.Resampling.LANCZOS)))
    width = max(2 * g.width + GAP for g, _ in rows)
    sheet = Image.new("RGB", (width, len(rows) * (ROW_HEIGHT + GAP) - GAP), "white")
    for i, (grey, colour) in enumerate(rows):
        y = i * (ROW_HEIGHT + GAP)
        sheet.paste(grey, (0, y))
        sheet.paste(colour, (grey.width + GAP, y))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, quality=88)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
