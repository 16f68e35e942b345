"""``instcolor weights convert-person-masks``."""

from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from instcolor.cli.app import app
from instcolor.detection.person_masks import PersonSegmenter, default_weights_path

FIXTURE = Path(__file__).parents[1] / "fixtures" / "selfie"
runner = CliRunner()


def test_converts_the_tfjs_files_into_the_shipped_weights(tmp_path):
    output = tmp_path / "out" / "person-masks.safetensors"
    result = runner.invoke(app, ["weights", "convert-person-masks", str(FIXTURE), "-o", str(output)])
    assert result.exit_code == 0, result.output
    converted, shipped = load_file(output), load_file(default_weights_path())
    assert converted.keys() == shipped.keys() and all(torch.equal(converted[k], shipped[k]) for k in shipped)
    assert PersonSegmenter(output).config.input_size == 256


def test_missing_or_foreign_input_fails_with_exit_code_1(tmp_path):
    result = runner.invoke(
        app, ["weights", "convert-person-masks", str(tmp_path / "missing"), "-o", str(tmp_path / "a")]
    )
    assert result.exit_code == 1 and "does not exist" in result.output
    (tmp_path / "model.json").write_text('{"modelTopology": {"node": [{"name": "x", "op": "Placeholder"}]}}')
    result = runner.invoke(
        app, ["weights", "convert-person-masks", str(tmp_path), "-o", str(tmp_path / "b.safetensors")]
    )
    assert result.exit_code == 1 and "input_1" in result.output
    assert not (tmp_path / "b.safetensors").exists()


def test_usage_error_without_arguments():
    assert runner.invoke(app, ["weights", "convert-person-masks"]).exit_code == 2
