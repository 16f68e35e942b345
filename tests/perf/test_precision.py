import json

import pytest
import torch

from instcolor.inference import precision as precision_module
from instcolor.inference.hardware import CpuInfo
from instcolor.inference.precision import (
    PrecisionTrial,
    candidate_precisions,
    choose_precision,
    pick,
    precision_cache_path,
)
from helpers import tiny_model


def fake_cpu(monkeypatch, *flags):
    monkeypatch.setattr(precision_module, "cpu_info", lambda: CpuInfo("test cpu", frozenset(flags), "AVX512", 2))


def test_candidates_follow_native_instructions(monkeypatch):
    fake_cpu(monkeypatch, "avx2")
    assert candidate_precisions("cpu") == ["fp32"]
    fake_cpu(monkeypatch, "avx512_vnni")  # a Xeon without bf16: bf16 would be emulated, slower
    assert candidate_precisions("cpu") in (["fp32", "int8"], ["fp32"])
    fake_cpu(monkeypatch, "avx512_bf16", "avx512_vnni")
    assert candidate_precisions("cpu")[:2] == ["fp32", "bf16"]


def trial(precision, seconds, mean=0.1):
    return PrecisionTrial(precision, seconds, mean, mean * 5, mean <= 1.0)


def test_pick_needs_a_clear_win_and_accuracy():
    assert pick([trial("fp32", 1.0, 0.0), trial("bf16", 0.5)]) == "bf16"
    assert pick([trial("fp32", 1.0, 0.0), trial("bf16", 0.95)]) == "fp32"  # under 1.1x: not worth it
    assert pick([trial("fp32", 1.0, 0.0), trial("int8", 0.3, mean=2.0), trial("bf16", 0.6)]) == "bf16"


def test_cache_lives_beside_the_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path))
    assert precision_cache_path() == tmp_path / "precision.json"


def test_auto_measures_once_and_caches(tmp_path, monkeypatch):
    fake_cpu(monkeypatch, "avx512_bf16")
    calls = []

    def fake_measure(model, device, size, candidates):
        calls.append(list(candidates))
        return [trial("fp32", 1.0, 0.0), trial("bf16", 0.4)]

    monkeypatch.setattr(precision_module, "measure_precisions", fake_measure)
    cache = tmp_path / "precision.json"
    model = tiny_model()
    assert choose_precision(model, "cpu", 32, cache_path=cache) == "bf16"
    assert choose_precision(model, "cpu", 32, cache_path=cache) == "bf16"
    assert calls == [["fp32", "bf16"]]
    stored = json.loads(cache.read_text())
    (entry,) = stored.values()
    assert entry["precision"] == "bf16" and len(entry["trials"]) == 2
    assert choose_precision(model, "cpu", 32, cache_path=cache, remeasure=True) == "bf16"
    assert len(calls) == 2


def test_auto_on_a_plain_cpu_is_fp32_without_measuring(tmp_path, monkeypatch):
    fake_cpu(monkeypatch, "avx2")
    monkeypatch.setattr(precision_module, "measure_precisions", lambda *a, **k: pytest.fail("measured"))
    assert choose_precision(tiny_model(), "cpu", 32, cache_path=tmp_path / "p.json") == "fp32"


def test_corrupt_cache_is_remeasured(tmp_path, monkeypatch):
    fake_cpu(monkeypatch, "avx512_bf16")
    slow_bf16 = [trial("fp32", 1.0, 0.0), trial("bf16", 2.0)]
    monkeypatch.setattr(precision_module, "measure_precisions", lambda *a, **k: slow_bf16)
    cache = tmp_path / "precision.json"
    cache.write_text("{not json")
    assert choose_precision(tiny_model(), "cpu", 32, cache_path=cache) == "fp32"
    assert json.loads(cache.read_text())


def test_measure_precisions_reports_real_errors():
    trials = precision_module.measure_precisions(tiny_model(), torch.device("cpu"), 32, ["fp32", "bf16"], repeats=1)
    assert [t.precision for t in trials] == ["fp32", "bf16"]
    assert trials[0].mean_delta_ab == 0.0 and trials[1].mean_delta_ab > 0.0
    assert all(t.seconds > 0 for t in trials)


def int8_backend_or_skip():
    from instcolor.inference.runtime import check_precision

    try:
        check_precision("int8", "cpu")
    except ValueError as err:
        pytest.skip(f"no int8 backend in this torch build: {err}")


def test_int8_is_offered_and_chosen_where_the_cpu_has_int8_dot_products(tmp_path, monkeypatch):
    int8_backend_or_skip()
    fake_cpu(monkeypatch, "avx512_vnni")  # VNNI, no native bf16
    assert candidate_precisions("cpu") == ["fp32", "int8"]
    fake_cpu(monkeypatch, "amx_int8", "amx_bf16", "avx512_bf16", "avx512_vnni")
    assert candidate_precisions("cpu") == ["fp32", "bf16", "int8"]
    assert pick([trial("fp32", 1.0, 0.0), trial("bf16", 0.6), trial("int8", 0.3)]) == "int8"
    measured = [trial("fp32", 1.0, 0.0), trial("bf16", 0.6), trial("int8", 0.3)]
    monkeypatch.setattr(precision_module, "measure_precisions", lambda *a, **k: measured)
    assert choose_precision(tiny_model(), "cpu", 32, cache_path=tmp_path / "p.json") == "int8"


@pytest.fixture(scope="module")
def auto_home(tmp_path_factory):
    """One INSTCOLOR_HOME for the two runs below: the second reads the choice the first measured
    (each still measures when run alone). int8 calibration makes a measurement take ~10 s."""
    return tmp_path_factory.mktemp("auto_home")


def tiny_32():
    from dataclasses import replace

    from helpers import TINY

    return tiny_model(config=replace(TINY, input_size=32))  # auto measures at the network's size


def test_colorizer_with_auto_precision_runs(auto_home, monkeypatch):
    """The contract of ``precision="auto"`` (however it measures): one of this machine's precisions, and it runs."""
    from instcolor.inference.pipeline import Colorizer
    from helpers import gradient_image

    monkeypatch.setenv("INSTCOLOR_HOME", str(auto_home))
    available = candidate_precisions("cpu")
    colorizer = Colorizer(tiny_32(), precision="auto")
    assert colorizer.precision in available, (colorizer.precision, available)
    result = colorizer(gradient_image(channels=1))
    assert result.image.size == (64, 48)
    assert abs(result.ab).max() > 0.1  # it predicted chroma
    again = Colorizer(tiny_32(), precision="auto")  # the cached choice
    assert again.precision == colorizer.precision


def test_cli_precision_auto_runs(auto_home, tmp_path, monkeypatch):
    from PIL import Image
    from typer.testing import CliRunner

    from instcolor.cli import app
    from instcolor.models.weights.store import save_model
    from helpers import gradient_image

    monkeypatch.setenv("INSTCOLOR_HOME", str(auto_home))
    Image.fromarray(gradient_image(channels=1)).save(tmp_path / "grey.png")
    weights = tmp_path / "tiny.safetensors"
    save_model(weights, tiny_32(), {"source": "tests", "licence": "MIT"})
    args = ["colorize", str(tmp_path / "grey.png"), "-o", str(tmp_path / "out"), "--weights", str(weights)]
    result = CliRunner().invoke(app, [*args, "--detector", "none", "--device", "cpu", "--precision", "auto"])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("precision:")]
    assert line.split()[1] in candidate_precisions("cpu"), result.output
    assert Image.open(tmp_path / "out" / "grey.png").size == (64, 48)
