"""``instcolor detect``: boxes files from folders, bad inputs, drawings, class filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import instcolor.cli.detect as detect_cli
from instcolor.cli.app import app
from instcolor.detection import FilteredDetector
from instcolor.instances import Instances, load_boxes_file

runner = CliRunner()


class FakeDetector:
    """One "person" with a mask and one "cup" without overlap, both inside any image >= 24 px."""

    name = "fake"
    default_score_threshold = 0.5

    def __init__(self, empty: bool = False) -> None:
        self.empty = empty

    def raw(self, image: np.ndarray) -> Instances:
        if self.empty:
            return Instances()
        height, width = image.shape[:2]
        masks = np.zeros((2, height, width), bool)
        masks[0, 2:10, 3:12] = True
        masks[1, 14:20, 14:22] = True
        return Instances(
            boxes=np.array([[3, 2, 12, 10], [14, 14, 22, 20]], np.float32),
            scores=np.array([0.9, 0.6], np.float32),
            labels=["person", "cup"],
            masks=masks,
        )


@pytest.fixture
def fake_detector(monkeypatch):
    """Replace the real detectors; records the options the command asked for."""
    calls = []

    def load(name, **options):
        calls.append((name, options))
        return FilteredDetector(
            FakeDetector(empty=options.get("max_instances") == 99),
            score_threshold=options.get("score_threshold"),
            max_instances=options.get("max_instances", 8),
            classes=options.get("classes"),
        )

    monkeypatch.setattr("instcolor.detection.load_detector", load)
    return calls


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def test_folder_to_boxes_file_round_trip(tmp_path, fake_detector):
    write_image(tmp_path / "in" / "a.png", 0)
    write_image(tmp_path / "in" / "sub" / "b.jpg", 1)
    result = runner.invoke(app, ["detect", str(tmp_path / "in"), "-o", str(tmp_path / "boxes.json")])
    assert result.exit_code == 0, result.output
    assert "detector: fake" in result.output
    entries = load_boxes_file(tmp_path / "boxes.json")
    assert sorted(entries) == ["a.png", "b.jpg"]
    for instances in entries.values():
        assert instances.labels == ["person", "cup"]
        np.testing.assert_allclose(instances.boxes, [[3, 2, 12, 10], [14, 14, 22, 20]])
        assert instances.masks.shape == (2, 24, 32) and instances.masks[0, 2:10, 3:12].all()
        assert instances.masks.sum() == 8 * 9 + 6 * 8
    raw = json.loads((tmp_path / "boxes.json").read_text())
    assert raw["a.png"][0]["mask"]["size"] == [24, 32]
    assert fake_detector[0][0] == "auto"


def test_options_reach_the_detector_and_filter(tmp_path, fake_detector):
    write_image(tmp_path / "a.png")
    args = ["detect", str(tmp_path / "a.png"), "-o", str(tmp_path / "boxes.json"), "--detector", "centernet"]
    args += ["--score-threshold", "0.3", "--max-instances", "1", "--classes", "cup, person", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    name, options = fake_detector[0]
    assert name == "centernet" and options["device"] == "cpu" and options["score_threshold"] == 0.3
    assert options["classes"] == {"cup", "person"}
    assert load_boxes_file(tmp_path / "boxes.json")["a.png"].labels == ["person"]


def test_class_filter_drops_other_classes(tmp_path, fake_detector):
    write_image(tmp_path / "a.png")
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.json"), "--classes", "cup"])
    assert result.exit_code == 0, result.output
    assert load_boxes_file(tmp_path / "b.json")["a.png"].labels == ["cup"]


def test_bad_file_fails_alone_and_exits_1(tmp_path, fake_detector):
    write_image(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image at all")
    result = runner.invoke(app, ["detect", str(tmp_path / "in"), "-o", str(tmp_path / "boxes.json")])
    assert result.exit_code == 1
    assert "broken.jpg" in result.output
    assert list(load_boxes_file(tmp_path / "boxes.json")) == ["good.png"]


def test_missing_input_exits_1_and_keeps_the_others(tmp_path, fake_detector):
    write_image(tmp_path / "a.png")
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), str(tmp_path / "nope*.png"), "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 1
    assert list(load_boxes_file(tmp_path / "b.json")) == ["a.png"]


def test_zero_detections_are_written_as_empty_lists(tmp_path, fake_detector):
    write_image(tmp_path / "a.png")
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.json"), "--max-instances", "99"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b.json").read_text()) == {"a.png": []}
    assert len(load_boxes_file(tmp_path / "b.json")["a.png"]) == 0


def test_same_file_names_in_different_folders_get_relative_keys(tmp_path, fake_detector):
    write_image(tmp_path / "in" / "x" / "1.png", 0)
    write_image(tmp_path / "in" / "y" / "1.png", 1)
    write_image(tmp_path / "in" / "2.png", 2)
    result = runner.invoke(app, ["detect", str(tmp_path / "in"), "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert sorted(load_boxes_file(tmp_path / "b.json")) == ["2.png", "x/1.png", "y/1.png"]


def test_draw_writes_labelled_images(tmp_path, fake_detector):
    source = write_image(tmp_path / "a.jpg", size=(64, 48))
    write_image(tmp_path / "a.png", 1, size=(64, 48))
    result = runner.invoke(app, ["detect", str(tmp_path), "-o", str(tmp_path / "b.json"), "--draw", str(tmp_path / "drawn")])
    assert result.exit_code == 0, result.output
    drawn_files = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn_files == ["a.jpg.png", "a.png.png"]  # both would be a.png: the full names keep them apart
    drawn = np.asarray(Image.open(tmp_path / "drawn" / "a.jpg.png"), dtype=np.int16)
    original = np.asarray(Image.open(source), dtype=np.int16)
    assert drawn.shape == original.shape
    assert np.abs(drawn - original)[2:10, 3:12].mean() > 10  # the tinted mask and the box outline
    assert np.abs(drawn - original)[30:, 40:].max() == 0  # untouched away from the instances


def test_unknown_class_is_a_usage_error(tmp_path, fake_detector):
    write_image(tmp_path / "a.png")
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.json"), "--classes", "persn"])
    assert result.exit_code == 2
    assert "persn" in result.output
    assert not fake_detector and not (tmp_path / "b.json").exists()


def test_detector_that_cannot_load_exits_1(tmp_path, monkeypatch):
    def unavailable(name, **options):
        raise RuntimeError("no weights here")

    monkeypatch.setattr("instcolor.detection.load_detector", unavailable)
    write_image(tmp_path / "a.png")
    result = runner.invoke(app, ["detect", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "no weights here" in result.output


def test_help_lists_the_options():
    result = runner.invoke(app, ["detect", "--help"])
    assert result.exit_code == 0
    for option in ("--detector", "--score-threshold", "--max-instances", "--classes", "--draw", "--device"):
        assert option in result.output


def test_embedded_centernet_finds_the_astronaut(tmp_path):
    from skimage import data

    from instcolor.detection.centernet import CenterNetDetector, default_weights_path

    if not default_weights_path().is_file():
        pytest.skip(f"embedded CenterNet weights not built yet ({default_weights_path()})")
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    args = ["detect", str(tmp_path / "astronaut.png"), "-o", str(tmp_path / "b.json"), "--detector", "centernet"]
    result = runner.invoke(app, args + ["--device", "cpu", "--draw", str(tmp_path / "drawn")])
    assert result.exit_code == 0, result.output
    assert "detector: centernet" in result.output
    found = load_boxes_file(tmp_path / "b.json")["astronaut.png"]
    assert "person" in found.labels and 1 <= len(found) <= 8
    assert (found.scores >= CenterNetDetector.default_score_threshold).all()
    # --masks auto (default): the person gets her silhouette from the embedded segmenter, inside her box
    person = found.labels.index("person")
    x1, y1, x2, y2 = found.boxes[person].astype(int)
    share = found.masks[person][y1:y2, x1:x2].mean()
    assert 0.05 < share < 0.95 and not found.masks[person][:, x2 + 2 :].any()
    assert found.masks[person][110:140, 200:240].all()  # her face (the segmenter misses most of the suit)
    result = runner.invoke(app, args + ["--device", "cpu", "--masks", "none", "-o", str(tmp_path / "n.json")])
    assert result.exit_code == 0, result.output
    assert load_boxes_file(tmp_path / "n.json")["astronaut.png"].masks is None
    person = found.boxes[found.labels.index("person")]
    assert person[2] - person[0] > 100 and person[3] - person[1] > 150  # she fills much of the 512 x 512 frame
    assert (tmp_path / "drawn" / "astronaut.png").is_file()
