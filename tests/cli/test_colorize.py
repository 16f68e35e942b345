import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from instcolor.cli import app
from tests.support.cli_process import REPO, instcolor_command, kill_when, subprocess_env
from tests.support.helpers import gradient_image

runner = CliRunner()


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(gradient_image(channels=1)).save(folder / "a.png")
    Image.fromarray(gradient_image(height=40, width=30, channels=1, seed=2)).save(folder / "sub" / "b.jpg")
    return folder


def run(*args):
    return runner.invoke(app, ["colorize", *map(str, args)])


def test_folder_run_writes_full_resolution_results(photos, weights, tmp_path):
    out = tmp_path / "out"
    result = run(photos, "-o", out, "--weights", weights, "--detector", "none", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "a.png").size == (64, 48)
    assert Image.open(out / "sub" / "b.jpg").size == (30, 40)
    assert Image.open(out / "a.png").mode == "RGB"


def test_bad_file_is_reported_and_the_rest_continue(photos, weights, tmp_path):
    (photos / "broken.png").write_bytes(b"this is not a png")
    out = tmp_path / "out"
    result = run(photos, "-o", out, "--weights", weights, "--detector", "none")
    assert result.exit_code == 1
    assert "broken.png" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "sub/b.jpg"]  # no partial file left for the broken one


def test_never_overwrites_an_input(photos, weights):
    before = (photos / "a.png").read_bytes()
    result = run(photos / "a.png", "-o", photos, "--weights", weights, "--detector", "none")
    assert result.exit_code == 1 and "overwrite an input" in result.output
    assert (photos / "a.png").read_bytes() == before


def test_boxes_file_and_glob(photos, weights, tmp_path):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [{"box": [5, 5, 40, 30], "score": 0.9, "label": "person"}]}))
    out = tmp_path / "out"
    result = run(str(photos / "*.png"), "-o", out, "--weights", weights, "--boxes", boxes, "--detector", "none")
    assert result.exit_code == 0, result.output
    fused = np.asarray(Image.open(out / "a.png"))
    plain_out = tmp_path / "plain"
    run(str(photos / "*.png"), "-o", plain_out, "--weights", weights, "--detector", "none")
    assert np.abs(fused.astype(int) - np.asarray(Image.open(plain_out / "a.png")).astype(int)).max() > 0


def test_missing_weights_file_is_a_clear_error(photos, tmp_path):
    result = run(photos, "-o", tmp_path / "out", "--weights", tmp_path / "nope.safetensors")
    assert result.exit_code == 1
    assert "not found" in result.output and "instcolor weights" in result.output


def test_nothing_matches(tmp_path, weights):
    result = run(tmp_path / "missing*.png", "-o", tmp_path / "out", "--weights", weights)
    assert result.exit_code == 1 and "no such file" in result.output


def test_usage_error_exit_code():
    assert runner.invoke(app, ["colorize"]).exit_code == 2


def test_reduced_precision_and_its_device_check(photos, weights, tmp_path):
    out = tmp_path / "out"
    result = run(photos, "-o", out, "--weights", weights, "--detector", "none", "--device", "cpu", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert Image.open(out / "a.png").size == (64, 48)
    result = run(photos, "-o", tmp_path / "out16", "--weights", weights, "--device", "cpu", "--precision", "fp16")
    assert result.exit_code == 2 and "CUDA only" in result.output
    assert not (tmp_path / "out16").exists()


def chroma(path: Path) -> float:
    """Mean |a*| + |b*| of an image file (0 for grey)."""
    import torch

    from instcolor.color import rgb_to_lab

    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    lab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0]
    return float(lab[1:].abs().sum(0).mean())


def test_the_readme_first_command_on_the_bundled_samples(tmp_path):
    """``instcolor colorize samples/ -o colour/`` as README.md gives it: default weights (offline and
    with an empty home: the bundled starter), default detector (no Mask R-CNN weights: the embedded
    CenterNet), the bundled sample photos."""
    samples = REPO / "samples"
    photos = sorted(p.name for p in samples.glob("*.jpg"))
    assert len(photos) == 4
    (tmp_path / "home").mkdir()
    result = subprocess.run(
        instcolor_command("colorize", "samples/", "-o", str(tmp_path / "colour")),
        cwd=REPO, env=subprocess_env(tmp_path / "home"), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "starter" in output, output  # says it fell back to the bundled weights
    assert "centernet" in output.lower(), output  # and which detector ran
    written = sorted(p.name for p in (tmp_path / "colour").iterdir())
    assert written == photos
    for name in photos:
        assert Image.open(tmp_path / "colour" / name).size == Image.open(samples / name).size
        assert chroma(samples / name) < 0.5  # the samples are grey
        assert chroma(tmp_path / "colour" / name) > 3.0, name  # the results are not


def test_sigkill_mid_run_leaves_only_complete_images(tmp_path, weights):
    """A real kill: ``instcolor colorize`` in a subprocess, SIGKILLed as soon as it starts writing.

    What holds today: every visible file in the output folder is a complete image; anything else
    is one of our hidden temporaries (``.NAME.*.part``). (That the next run removes such
    temporaries is the separate test below.)
    """
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # large noisy PNGs: each write takes a while
        Image.fromarray(rng.integers(0, 255, (1200, 1600), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
    out = tmp_path / "out"
    (tmp_path / "home").mkdir()
    args = ["colorize", str(photos), "-o", str(out), "--weights", str(weights), "--detector", "none", "--device", "cpu"]
    # the first temporary or result has appeared
    kill_when(args, tmp_path / "home", lambda: out.is_dir() and any(out.iterdir()))
    for path in out.iterdir():
        if path.name.startswith("."):
            assert path.name.endswith(".part"), path.name  # our temporary, never a visible result
            continue
        with Image.open(path) as image:
            image.load()  # a truncated file fails here
            assert image.size == (1600, 1200)
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert set(visible) <= {f"p{i:02d}.png" for i in range(12)} and len(visible) < 12


def test_next_run_removes_temporaries_a_killed_run_left(photos, weights, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.png.k1ll3d_x.part").write_bytes(b"\x89PNG half")  # named as mkstemp names ours
    result = run(photos, "-o", out, "--weights", weights, "--detector", "none", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.jpg"]


def test_precision_auto_measures_runs_and_says_what_it_chose(photos, weights, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    args = (photos, "-o", out, "--weights", weights, "--detector", "none", "--device", "cpu", "--precision", "auto")
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "precision: " in result.output
    assert Image.open(out / "a.png").size == (64, 48)
    assert (tmp_path / "home" / "precision.json").is_file()


def test_export_onnx_then_colorize_on_onnxruntime(photos, weights, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path / "home"))
    exported = runner.invoke(app, ["export", "onnx", str(tmp_path / "onnx"), "--weights", str(weights)])
    assert exported.exit_code == 0, exported.output
    card = json.loads((tmp_path / "onnx" / "model_card.json").read_text())
    assert card["graphs"]["fusion.onnx"]["inputs"][1]["shape"][0] == "instances"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [{"box": [4, 4, 40, 30], "score": 0.9, "label": "person"}]}))
    results = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        args = (photos / "a.png", "-o", out, "--weights", weights, "--boxes", boxes, "--detector", "none", "--device", "cpu")
        result = run(*args, "--backend", backend)
        assert result.exit_code == 0, result.output
        results[backend] = np.asarray(Image.open(out / "a.png"), dtype=int)
    assert np.abs(results["torch"] - results["onnxruntime"]).max() <= 1  # 8-bit rounding at most
    bad = run(photos, "-o", tmp_path / "x", "--weights", weights, "--backend", "onnxruntime", "--precision", "bf16")
    assert bad.exit_code == 2 and "onnxruntime" in bad.output


def test_class_aware_flag_feeds_or_withholds_the_boxes_file_labels(photos, tmp_path):
    from instcolor.models.weights.store import save_model
    from tests.support.helpers import tiny_class_aware_model

    weights = tmp_path / "aware.safetensors"
    save_model(weights, tiny_class_aware_model(0), {"source": "tests"})
    outputs = {}
    cases = (("person", "person", ()), ("unknown", "", ()), ("off", "person", ("--class-aware", "off")))
    for name, label, flags in cases:
        boxes = tmp_path / f"{name}.json"
        boxes.write_text(json.dumps({"a.png": [{"box": [5, 5, 40, 30], "label": label}]}))
        out = tmp_path / name
        result = run(photos / "a.png", "-o", out, "--weights", weights, "--boxes", boxes, "--detector", "none", *flags)
        assert result.exit_code == 0, result.output
        outputs[name] = np.asarray(Image.open(out / "a.png")).astype(int)
    assert np.abs(outputs["person"] - outputs["unknown"]).max() > 0
    np.testing.assert_array_equal(outputs["off"], outputs["unknown"])
    bad = run(photos / "a.png", "-o", tmp_path / "bad", "--weights", weights, "--class-aware", "maybe")
    assert bad.exit_code == 2
