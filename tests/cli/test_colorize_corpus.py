"""Issue 13: a corpus of bad and unusual inputs, generated here, run through ``instcolor colorize``.

A run over it reports each bad file in one line, carries on, and leaves nothing in the output
folder except finished images (no temporaries, nothing hidden), even with leftovers of a killed run.
"""

import json
import os
import struct
import time
import zlib

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from tests.support.helpers import gradient_image, tiny_weights_file
from instcolor.cli import app

runner = CliRunner()


def _forged_size_png(path, width, height):
    """A tiny PNG whose header declares ``width x height`` (a decompression bomb by its header)."""
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def make_corpus(folder):
    """Every row of the issue's corpus that a file can show, each small."""
    folder.mkdir()
    grey = gradient_image(height=20, width=28, channels=1)
    Image.fromarray(grey).save(folder / "plain.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    Image.fromarray(grey).save(folder / "whole.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "whole.jpg").read_bytes()[:120])
    (folder / "whole.jpg").unlink()
    (folder / "empty.png").write_bytes(b"")
    _forged_size_png(folder / "bomb.png", 40000, 40000)
    Image.fromarray(np.dstack([grey] * 3)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(grey).convert("P").save(folder / "palette.png")
    Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 128)]), "RGBA").save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(grey).save(folder / "rotated.jpg", exif=exif)
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "deep16.png")
    Image.fromarray(gradient_image(height=20, width=28)).save(folder / "colour.jpg")
    frames = [Image.fromarray(gradient_image(height=12, width=12, channels=1, seed=s)) for s in range(2)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "pages.tif", save_all=True, append_images=frames[1:])
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").symlink_to(folder / "gone.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    return folder


def test_a_run_over_the_corpus_leaves_only_finished_images(tmp_path):
    weights = tiny_weights_file(tmp_path / "tiny.safetensors")
    photos = make_corpus(tmp_path / "photos")
    out = photos / "colour"  # inside the input folder, as users do
    out.mkdir()
    stale = out / ".plain.png.a1b2c3d4.part"  # left by a killed run
    stale.write_bytes(b"half a file")
    os.utime(stale, (time.time() - 30, time.time() - 30))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"plain.png": [{"box": [1, 1, 1e30, 1e30]}, {"box": [5, 5, 2, 2]}] * 10}))
    for _ in range(2):  # twice: the second run must not read the first one's results
        result = runner.invoke(app, ["colorize", str(photos), "-o", str(out), "--weights", str(weights), "--boxes", str(boxes)])
        assert result.exit_code == 1, result.output  # the bad files failed, the rest were written
        assert "Traceback" not in result.output and "Warning" not in result.output
    text = result.output
    for name in ("corrupt.png", "truncated.jpg", "empty.png", "bomb.png"):
        assert sum(f"failed: {photos / name}" in line for line in text.splitlines()) == 1, (name, text)
    assert "broken.png: skipped, broken symlink" in text and "loop.png: skipped, symlink loop" in text
    assert "only the first is colorized" in text and "already has colour" in text
    assert "kept the 8" in text
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert written == sorted([
        "plain.png", "cmyk.jpg", "palette.png", "alpha.png", "rotated.jpg", "deep16.png", "colour.jpg",
        "animated.png", "pages.tif",
    ])  # fmt: skip
    for name in written:
        with Image.open(out / name) as img:
            img.load()
    assert Image.open(out / "rotated.jpg").size == (20, 28)
    assert Image.open(out / "alpha.png").mode == "RGBA"
    assert "skipped 9 file(s) inside the output folder" in text
