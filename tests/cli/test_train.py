"""``instcolor train``: flags, config files, resume and usage errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from instcolor.cli import app
from instcolor.training.synthetic import write_scenes
from instcolor.models.weights.store import load_weights

runner = CliRunner()
TINY = ["--width", "0.0625", "--size", "32", "--workers", "0", "--threads", "1", "--no-progress"]


def test_train_runs_from_a_config_file_with_flags_overriding_it(tmp_path):
    write_scenes(tmp_path / "data", 4, size=48, seed=2)
    (tmp_path / "run.toml").write_text('batch-size = 2\nepochs = 1\ndecay-epochs = 1\nlr = 1e-3\nmax_steps = 3\n')
    args = ["train", "--stage", "full", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *TINY]
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "run.toml"), "--lr", "2e-3"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["batch_size"] == 2 and config["lr"] == 2e-3 and config["max_steps"] == 3
    weights = load_weights(tmp_path / "run" / "weights.safetensors")
    assert weights.metadata["stage"] == "full" and weights.metadata["step"] == "3"
    assert weights.metadata["complete"] == "false"

    resume = ["train", "--resume", "--out", str(tmp_path / "run"), "--no-progress"]
    resumed = runner.invoke(app, [*resume, "--max-steps", "4"])
    assert resumed.exit_code == 0, resumed.output
    assert load_weights(tmp_path / "run" / "weights.safetensors").metadata["step"] == "4"

    changed = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path / "run"), "--lr", "1.0"])
    assert changed.exit_code == 2 and "lr" in changed.output
    again = runner.invoke(app, [*args, "--batch-size", "2"])
    assert again.exit_code == 2 and "already holds a run" in again.output


def test_usage_errors_exit_2(tmp_path):
    assert runner.invoke(app, ["train", "--stage", "full", "--out", str(tmp_path / "r")]).exit_code == 2  # no data
    write_scenes(tmp_path / "data", 2, size=48, seed=2)
    too_big = runner.invoke(app, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r"), *TINY])
    assert too_big.exit_code == 2 and "fewer than one batch" in too_big.output
    fp16 = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "f"), "--precision", "fp16"]
    fp16 += ["--device", "cpu"]
    assert runner.invoke(app, fp16).exit_code == 2
    assert runner.invoke(app, ["train", "--help"]).exit_code == 0


def test_class_aware_flags_reach_the_run_configuration(tmp_path):
    write_scenes(tmp_path / "data", 2, size=48, seed=2, colour_by="label")
    args = ["train", "--stage", "instance", "--data", str(tmp_path / "data"), "--boxes",
            str(tmp_path / "data" / "boxes.json"), "--batch-size", "2", "--max-steps", "1", *TINY]  # fmt: skip
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "aware"), "--class-aware", "--class-inputs", "both",
                                 "--class-dropout", "0.25"])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "aware" / "config.json").read_text())
    assert (config["class_aware"], config["class_inputs"], config["class_dropout"]) == (True, "both", 0.25)
    model = load_weights(tmp_path / "aware" / "weights.safetensors").model
    assert model.config.class_aware and model.config.class_inputs == "both"

    blind = runner.invoke(app, [*args, "--out", str(tmp_path / "blind")])
    assert blind.exit_code == 0, blind.output
    assert json.loads((tmp_path / "blind" / "config.json").read_text())["class_aware"] is False
    assert not load_weights(tmp_path / "blind" / "weights.safetensors").model.config.class_aware

    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--class-aware", "--class-inputs", "head"])
    assert bad.exit_code == 2 and "class_inputs" in bad.output
