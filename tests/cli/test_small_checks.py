"""Issue 13, smaller items: bench targets without points, video with a missing input."""

import pytest
import torch
from typer.testing import CliRunner

from instcolor.cli import app

runner = CliRunner()


def test_linear_in_instances_is_not_met_without_points():
    from pathlib import Path

    from instcolor.bench.benchmark import check_targets, load_targets

    report = {"paths": {"eager": {"networks": [{"instances": 0, "seconds": {"min": 0.1}}]}}, "comparison": {}}
    thresholds = load_targets(Path(__file__).parents[2] / "benchmarks" / "targets.json")
    targets = check_targets(report, torch.device("cpu"), thresholds)
    assert targets["linear_in_instances"]["met"] is None
    assert "not measured" in targets["linear_in_instances"]["note"]


def test_video_with_a_missing_input_says_so_before_loading_the_model(tmp_path, monkeypatch):
    import instcolor.inference.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("model loaded before the input was checked")

    monkeypatch.setattr(pipeline.Colorizer, "from_pretrained", classmethod(never))
    result = runner.invoke(app, ["video", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 2, result.output
    assert "missing.mp4" in result.output and "no such file" in result.output


def test_video_output_that_is_a_folder_is_refused_first(tmp_path, monkeypatch):
    import instcolor.inference.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("model loaded before the output was checked")

    monkeypatch.setattr(pipeline.Colorizer, "from_pretrained", classmethod(never))
    source = tmp_path / "in.mp4"
    source.write_bytes(b"not really a video")
    (tmp_path / "out.mp4").mkdir()
    result = runner.invoke(app, ["video", str(source), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 2 and "is a folder" in result.output
