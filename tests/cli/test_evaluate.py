"""``instcolor evaluate``: synthetic scenes end to end, named layouts, exit codes."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.support.helpers import gradient_image, tiny_weights_file
from instcolor.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return tiny_weights_file(folder / "tiny.safetensors", seed=0), tiny_weights_file(folder / "other.safetensors", seed=1)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from instcolor.training.synthetic import write_scenes

    folder = tmp_path_factory.mktemp("scenes")
    boxes = write_scenes(folder, count=3, size=64, seed=1, objects=(1, 2), object_size=(0.3, 0.4))
    return folder, boxes


def run(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_synthetic_scenes_end_to_end(scenes, weights, random_alexnet, tmp_path):
    folder, boxes = scenes
    out = tmp_path / "report"
    result = run(
        "--data", folder, "--boxes", boxes, "--weights", weights[0], "--compare", weights[1], "--out", out,
        "--resolution", "128", "--lpips-weights", random_alexnet, "--device", "cpu", "--bootstrap", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"metrics.json", "report.md", "contact_sheet.png", "distributions.png"}
    data = json.loads((out / "metrics.json").read_text())
    assert len(data["images"]) == 3 and set(data["methods"]) == {"grey", "full", "fusion", "compare"}
    assert data["summary"]["instance"]["fusion"]["lpips"]["n"] > 0
    assert data["protocol"]["compare_given"] == str(weights[1])
    assert data["protocol"]["command"].startswith("instcolor ")
    assert "fid: unavailable:" in result.output
    assert "FID: unavailable: inception_v3_google" in (out / "report.md").read_text()


def test_broken_image_fails_the_run_but_the_report_is_written(weights, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(gradient_image(48, 64)).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "report"
    result = run("--data", folder, "--weights", weights[0], "--detector", "none", "--out", out, "--resolution", "64", "--no-lpips")
    assert result.exit_code == 1
    assert "broken.jpg" in result.output
    data = json.loads((out / "metrics.json").read_text())
    assert [item["image"] for item in data["images"]] == ["good.png"]
    assert data["unavailable"]["lpips"] == "turned off for this run"


def test_named_dataset_layout_and_limit(weights, tmp_path):
    root = tmp_path / "cocostuff"
    (root / "images" / "val2017").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(gradient_image(40, 56, seed=i)).save(root / "images" / "val2017" / f"00000{i}.jpg")
    out = tmp_path / "report"
    result = run(
        "--dataset", "cocostuff-val", "--root", root, "--weights", weights[0], "--detector", "none",
        "--out", out, "--resolution", "full", "--limit", "2", "--no-lpips", "--no-fid",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "found 3 of the 5000 images of cocostuff-val" in result.output
    data = json.loads((out / "metrics.json").read_text())
    assert [item["image"] for item in data["images"]] == ["images/val2017/000000.jpg", "images/val2017/000001.jpg"]
    assert data["protocol"]["resolution"] == "full" and data["images"][0]["eval_size"] == [56, 40]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --data"),
        (["--dataset", "cocostuff-val"], "needs --root"),
        (["--data", "{folder}", "--resolution", "100"], "multiple of 8"),
        (["--data", "{folder}/nothing"], "is not a folder"),
        (["--data", "{folder}", "--boxes", "{folder}/bad.json"], "cannot read boxes file"),
        (["--dataset", "cocostuff-val", "--root", "{folder}/absent"], "is not a folder"),
    ],
)
def test_usage_errors_exit_2(args, message, tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2")
    Image.fromarray(gradient_image()).save(tmp_path / "a.png")
    result = run(*[a.format(folder=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_dataset_names_match_the_layouts():
    from instcolor.cli.evaluate import DATASET_NAMES
    from instcolor.evaluation.datasets import DATASETS

    assert DATASET_NAMES == tuple(DATASETS)


def test_class_aware_flag_is_written_into_the_protocol(scenes, tmp_path):
    from instcolor.models.weights.store import save_model
    from tests.support.helpers import tiny_class_aware_model

    folder, boxes = scenes
    weights = tmp_path / "aware.safetensors"
    save_model(weights, tiny_class_aware_model(0), {"source": "tests"})
    said = {}
    for setting in ("auto", "off"):
        out = tmp_path / setting
        result = run("--data", folder, "--boxes", boxes, "--weights", weights, "--out", out, "--resolution", "64",
                     "--no-lpips", "--no-fid", "--bootstrap", "10", "--class-aware", setting)  # fmt: skip
        assert result.exit_code == 0, result.output
        said[setting] = json.loads((out / "metrics.json").read_text())["protocol"]["instance_classes"]
    assert "given each instance's label" in said["auto"] and "unknown class" in said["off"]


def test_hints_option_adds_the_curve_and_its_plot(scenes, weights, tmp_path):
    folder, boxes = scenes
    out = tmp_path / "report"
    result = run("--data", folder, "--boxes", boxes, "--weights", weights[0], "--out", out, "--resolution", "64",
                 "--no-lpips", "--no-fid", "--device", "cpu", "--bootstrap", "0", "--hints", "0,2")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "hints.png").is_file()
    assert "not trained with colour hints" not in " ".join(result.output.split())  # spread: any weights
    assert set(json.loads((out / "metrics.json").read_text())["hint_curve"]) == {"0", "2"}
    fed = run("--data", folder, "--boxes", boxes, "--weights", weights[0], "--out", tmp_path / "fed", "--resolution",
              "64", "--no-lpips", "--no-fid", "--device", "cpu", "--bootstrap", "0", "--hints", "0,2",
              "--hint-mode", "network")  # fmt: skip
    assert fed.exit_code == 0, fed.output
    assert " ".join(fed.output.split()).count("not trained with colour hints") == 1
    assert json.loads((tmp_path / "fed" / "metrics.json").read_text())["protocol"]["hint_mode"] == "network"
    bad = run("--data", folder, "--weights", weights[0], "--out", out, "--hints", "two")
    assert bad.exit_code == 2 and "--hints takes point counts" in bad.output
