"""``instcolor colorize --hints FILE`` and the boxes file's per-instance ``colour``."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from instcolor.cli import app
from tests.support.helpers import gradient_image

runner = CliRunner()


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(gradient_image(channels=1)).save(folder / "a.png")  # 64 x 48
    Image.fromarray(gradient_image(height=40, width=30, channels=1, seed=2)).save(folder / "b.png")
    return folder


def run(*args):
    return runner.invoke(app, ["colorize", *map(str, args), "--detector", "none", "--device", "cpu"])


def pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_hints_file_changes_the_hinted_image_only(photos, weights, tmp_path):
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps({"a.png": [{"xy": [20, 20], "colour": "#ff0000"}, {"xy": [50, 10], "colour": [0, 0, 255]}]}))
    result = run(photos, "-o", tmp_path / "hinted", "--weights", weights, "--hints", hints)
    assert result.exit_code == 0, result.output
    assert "not trained with colour hints" not in " ".join(result.output.split())  # spread: any weights
    fed = run(photos, "-o", tmp_path / "fed", "--weights", weights, "--hints", hints, "--hint-mode", "network")
    assert fed.exit_code == 0, fed.output
    assert " ".join(fed.output.split()).count("not trained with colour hints") == 1  # said once
    run(photos, "-o", tmp_path / "plain", "--weights", weights)
    for hinted in ("hinted", "fed"):
        assert np.abs(pixels(tmp_path / hinted / "a.png") - pixels(tmp_path / "plain" / "a.png")).max() > 0
        assert np.array_equal(pixels(tmp_path / hinted / "b.png"), pixels(tmp_path / "plain" / "b.png"))
    assert np.abs(pixels(tmp_path / "hinted" / "a.png") - pixels(tmp_path / "fed" / "a.png")).max() > 0


def test_boxes_file_colour_pushes_the_instance(photos, weights, tmp_path):
    box = {"box": [5, 5, 40, 30], "score": 0.9, "label": "person"}
    plain, coloured = tmp_path / "plain.json", tmp_path / "coloured.json"
    plain.write_text(json.dumps({"a.png": [box]}))
    coloured.write_text(json.dumps({"a.png": [dict(box, colour="#b22222")]}))
    for boxes, out in ((plain, "plain"), (coloured, "coloured")):
        result = run(photos / "a.png", "-o", tmp_path / out, "--weights", weights, "--boxes", boxes)
        assert result.exit_code == 0, result.output
    assert np.abs(pixels(tmp_path / "coloured" / "a.png") - pixels(tmp_path / "plain" / "a.png")).max() > 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"a.png": {"xy": [1, 1], "colour": "#000000"}}, "must be a list"),
        ({"a.png": [{"xy": [1, 1], "colour": "red"}]}, "hint 1: a colour must be"),
        ({"a.png": [{"xy": "1,1", "colour": "#000000"}]}, "'xy' must be two numbers"),
        ({"a.png": [{"xy": [1, 1], "colour": [0, 0, 300]}]}, "a colour must be"),
    ],
)
def test_malformed_hints_file_exits_2_with_one_line_per_image(photos, weights, tmp_path, entry, message):
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps(dict(entry, **{"b.png": [{"xy": [1, 1]}]})))
    result = run(photos, "-o", tmp_path / "out", "--weights", weights, "--hints", hints)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith(("a.png:", "b.png:"))]
    assert len(lines) == 2 and message in " ".join(lines), result.output
    assert not list((tmp_path / "out").glob("*.png"))


def test_hints_outside_the_image_or_for_unknown_images_exit_2_naming_them(photos, weights, tmp_path):
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps({
        "a.png": [{"xy": [10, 10], "colour": "#000000"}, {"xy": [64.5, 10], "colour": "#000000"}],
        "c.png": [{"xy": [1, 1], "colour": "#000000"}],
    }))  # fmt: skip
    result = run(photos, "-o", tmp_path / "out", "--weights", weights, "--hints", hints)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "a.png: hint 2: point [64.5, 10] is outside the 64x48 image" in output
    assert "c.png: no input image of this name" in output
    assert not list((tmp_path / "out").glob("*.png"))


def test_bad_instance_colour_is_a_malformed_boxes_file(photos, weights, tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [{"box": [5, 5, 40, 30], "colour": "#12345"}]}))
    result = run(photos, "-o", tmp_path / "out", "--weights", weights, "--boxes", boxes)
    assert result.exit_code == 2, result.output
    assert "a.png: a colour must be" in " ".join(result.output.split())
