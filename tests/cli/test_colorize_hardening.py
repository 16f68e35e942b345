"""Issue 13: hostile boxes files, output folders, leftovers and colour inputs on ``instcolor colorize``.

Every bad input is generated here (tiny files); nothing large is committed.
"""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from instcolor.cli import app
from tests.support.helpers import gradient_image

runner = CliRunner()


@pytest.fixture()
def photo(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(gradient_image(height=24, width=32, channels=1)).save(folder / "a.png")
    return folder


def run(*args):
    return runner.invoke(app, ["colorize", *map(str, args)])


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_given_boxes_are_capped_by_max_instances(photo, weights, tmp_path):
    boxes = tmp_path / "boxes.json"
    items = [{"box": [i % 20, i % 10, i % 20 + 8 + i % 3, i % 10 + 6], "score": 0.5} for i in range(300)]
    items[7]["score"] = 0.9
    boxes.write_text(json.dumps({"a.png": items}))
    result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--boxes", boxes, "--detector", "none")
    assert result.exit_code == 0, result.output
    assert "kept the 8 highest-scored (then largest) of 300 boxes" in result.output
    result = run(photo, "-o", tmp_path / "out3", "--weights", weights, "--boxes", boxes, "--max-instances", "3")
    assert result.exit_code == 0 and "kept the 3" in result.output


def test_mask_size_is_checked_against_the_image_before_decoding(photo, weights, tmp_path):
    boxes = tmp_path / "boxes.json"
    bomb = {"size": [50000, 50000], "counts": [2_500_000_000]}
    boxes.write_text(json.dumps({"a.png": [{"box": [1, 1, 9, 9], "mask": bomb}]}))
    result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--boxes", boxes)
    assert result.exit_code == 2 and "more than the limit" in result.output
    # a plausible size that is not the image's: that image fails with a clear line, nothing decoded
    boxes.write_text(json.dumps({"a.png": [{"box": [1, 1, 9, 9], "mask": {"size": [2000, 3000], "counts": [6_000_000]}}]}))
    result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--boxes", boxes)
    assert result.exit_code == 1 and "mask is 2000x3000 but the image is 24x32" in result.output
    assert files_in(tmp_path / "out") == []


def test_output_folder_inside_the_input_folder_is_never_read(photo, weights):
    out = photo / "colour"
    for _ in range(3):
        result = run(photo, "-o", out, "--weights", weights, "--detector", "none")
        assert result.exit_code == 0, result.output
    assert files_in(out) == ["a.png"]
    assert "skipped 1 file(s) inside the output folder" in result.output
    assert "wrote 1 of 1" in result.output


@pytest.mark.parametrize(
    "entry",
    [{"a.png": [{"box": 5}]}, {"a.png": ["box"]}, {"a.png": {"box": [1, 2, 3, 4]}}, {"a.png": [{"box": [1, "x", 3, 4]}]},
     {"a.png": [{"box": [1, 2, 3, 4], "score": "high"}]}, {"a.png": [{"box": [1, 2, 3, 4], "mask": {"size": "big"}}]}],
)  # fmt: skip
def test_malformed_boxes_file_exits_2_with_one_line_per_image(photo, weights, tmp_path, entry):
    boxes = tmp_path / "boxes.json"
    entry = dict(entry, **{"b.png": [{"box": None}]})
    boxes.write_text(json.dumps(entry))
    result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--boxes", boxes)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip().startswith(("a.png:", "b.png:"))]
    assert len(lines) == 2, result.output
    assert not (tmp_path / "out").exists()


def test_bad_boxes_get_a_note_each_and_no_numpy_warning(photo, weights, tmp_path):
    boxes = tmp_path / "boxes.json"
    items = [
        [100, 100, 120, 120],  # outside
        [20, 20, 5, 5],  # inverted
        [5, 5, 5, 9],  # zero area
        [1, 1, 1e30, 1e30],  # clipped
        [float("nan"), 1, 4, 4],  # NaN
        [-5, -5, 10, 10],  # clipped
    ]
    boxes.write_text(json.dumps({"a.png": [{"box": b} for b in items]}))  # NaN is written as JSON NaN
    result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--boxes", boxes)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "box 1" in out and "outside the 32x24 image" in out
    assert "box 2" in out and "corners swapped" in out
    assert "box 3" in out and "zero area" in out
    assert "box 4" in out and "clipped" in out
    assert "box 5" in out and "not a finite number" in out
    assert "box 6" in out
    assert "RuntimeWarning" not in out and "invalid value" not in out and "overflow" not in out
    assert "boxes from" in out and "detector:" not in out
    assert files_in(tmp_path / "out") == ["a.png"]


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_unusable_output_is_found_before_any_computing(photo, weights, tmp_path, kind, monkeypatch):
    target = tmp_path / "taken"
    target.write_text("a file")
    out = target if kind == "file" else target / "sub"
    import instcolor.inference.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("weights loaded before the output was checked")

    monkeypatch.setattr(pipeline.Colorizer, "from_pretrained", classmethod(never))
    result = run(photo, "-o", out, "--weights", weights)
    assert result.exit_code == 2, result.output
    assert "taken" in result.output and ".part" not in result.output


def test_stale_temporaries_of_a_killed_run_are_removed(photo, weights, tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".a.png.k3j4l5m6.part", out / "sub" / ".b.jpg.abcd_123.part"]
    for path in stale:
        path.write_bytes(b"half")
        os.utime(path, (time.time() - 60, time.time() - 60))
    mine = [out / "notes.part", out / ".hidden.txt", out / ".x.png.toolong123.part"]
    for path in mine:
        path.write_bytes(b"user's")
    result = run(photo, "-o", out, "--weights", weights, "--detector", "none")
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in mine)
    assert "removed 2 unfinished temporary file(s)" in result.output


def test_sigterm_is_handled_like_ctrl_c(photo, weights, tmp_path, monkeypatch):
    import signal

    import instcolor.inference.runs as overlap  # the local engine calls colorize_files from there

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        yield from ()

    class Unhandled(Exception):
        pass

    def sentinel(signum, frame):  # stands for the default action (which would end pytest itself)
        raise Unhandled

    monkeypatch.setattr(overlap, "colorize_files", killed)
    before = signal.signal(signal.SIGTERM, sentinel)
    try:
        result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--detector", "none")
        assert result.exit_code == 130 and not isinstance(result.exception, Unhandled), result.output
        assert signal.getsignal(signal.SIGTERM) is sentinel  # put back after the run
    finally:
        signal.signal(signal.SIGTERM, before)


def test_colour_input_is_noted_and_can_be_skipped_or_kept(weights, tmp_path):
    folder = tmp_path / "colour"
    folder.mkdir()
    Image.fromarray(gradient_image(height=24, width=32)).save(folder / "c.png")
    Image.fromarray(gradient_image(height=24, width=32, channels=1)).save(folder / "g.png")
    result = run(folder, "-o", tmp_path / "out", "--weights", weights, "--detector", "none")
    assert result.exit_code == 0, result.output
    assert result.output.count("already has colour") == 1 and "c.png" in result.output
    result = run(folder, "-o", tmp_path / "skip", "--weights", weights, "--colour-input", "skip", "--detector", "none")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "skip") == ["g.png"] and "1 skipped" in result.output
    result = run(folder, "-o", tmp_path / "keep", "--weights", weights, "--colour-input", "keep-chroma", "--detector", "none")
    assert result.exit_code == 0, result.output
    kept = np.asarray(Image.open(tmp_path / "keep" / "c.png")).astype(int)
    assert np.abs(kept - gradient_image(height=24, width=32).astype(int)).mean() < 3


def test_broken_symlinks_and_loops_are_listed_as_skipped(photo, weights, tmp_path):
    (photo / "broken.png").symlink_to(photo / "nowhere.png")
    (photo / "loop.png").symlink_to(photo / "loop.png")
    result = run(photo, "-o", tmp_path / "out", "--weights", weights, "--detector", "none")
    assert result.exit_code == 0, result.output
    assert "broken.png: skipped, broken symlink" in result.output
    assert "loop.png: skipped, symlink loop" in result.output


def test_animated_gif_says_only_the_first_frame_is_colorized(weights, tmp_path):
    frames = [Image.fromarray(gradient_image(height=16, width=16, channels=1, seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = run(tmp_path / "anim.gif", "-o", tmp_path / "out", "--weights", weights, "--detector", "none")
    assert result.exit_code == 0, result.output
    assert "has 3 frames or pages; only the first is colorized" in result.output
