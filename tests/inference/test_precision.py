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
from tests.support.helpers import tiny_model


def fake_cpu(monkeypatch, *flags):
    monkeypatch.setattr(precision_module, "cpu_info", lambda: CpuInfo("test cpu", frozenset(flags), "AVX512", 2))


def no_int8_engine(monkeypatch):
    import instcolor.inference.quantization as quantization

    monkeypatch.setattr(quantization, "int8_engine", lambda: None)


def test_candidates_bf16_only_native_int8_wherever_an_engine_exists(monkeypatch):
    fake_cpu(monkeypatch, "avx2")  # no VNNI: int8 is still measured (issue 14: 2x fp32 on AVX2)
    assert candidate_precisions("cpu") == ["fp32", "int8"]
    fake_cpu(monkeypatch, "avx512_vnni")  # a Xeon without bf16: bf16 would be emulated, 15x slower
    assert candidate_precisions("cpu") == ["fp32", "int8"]
    fake_cpu(monkeypatch, "avx512_bf16", "avx512_vnni")
    assert candidate_precisions("cpu") == ["fp32", "bf16", "int8"]
    no_int8_engine(monkeypatch)
    assert candidate_precisions("cpu") == ["fp32", "bf16"]
    fake_cpu(monkeypatch, "avx2")
    assert candidate_precisions("cpu") == ["fp32"]


def test_a_machine_without_vnni_gets_int8_when_it_measures_fastest(tmp_path, monkeypatch):
    fake_cpu(monkeypatch, "avx2", "fma")  # the 2-core EPYC of issue 14
    ticks = iter(range(10_000))
    # the real measurement loop runs int8 there (with an injected clock), then issue 14's timings decide
    measured = precision_module.measure_precisions(tiny_model(), "cpu", 32, ["fp32", "int8"], repeats=1,
                                                   clock=lambda: next(ticks))
    assert [t.precision for t in measured] == ["fp32", "int8"] and all(t.accepted for t in measured)

    def issue_14_timings(model, device, size, candidates):
        assert "int8" in candidates and "bf16" not in candidates
        return [trial("fp32", 3.05, 0.0), trial("int8", 1.76, 0.5)]

    monkeypatch.setattr(precision_module, "measure_precisions", issue_14_timings)
    assert choose_precision(tiny_model(), "cpu", 32, cache_path=tmp_path / "p.json") == "int8"


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
    assert len(calls) == 1 and calls[0][:2] == ["fp32", "bf16"]
    stored = json.loads(cache.read_text())
    (entry,) = stored.values()
    assert entry["precision"] == "bf16" and len(entry["trials"]) == 2
    assert choose_precision(model, "cpu", 32, cache_path=cache, remeasure=True) == "bf16"
    assert len(calls) == 2


def test_auto_without_any_reduced_precision_is_fp32_without_measuring(tmp_path, monkeypatch):
    fake_cpu(monkeypatch, "avx2")
    no_int8_engine(monkeypatch)
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


def test_colorizer_auto_really_runs(tmp_path, monkeypatch):
    from instcolor.inference.pipeline import Colorizer
    from tests.support.helpers import gradient_image

    cache = tmp_path / "home"
    monkeypatch.setenv("INSTCOLOR_HOME", str(cache))
    colorizer = Colorizer(tiny_model(), device="cpu", precision="auto")
    assert colorizer.precision in candidate_precisions("cpu")
    result = colorizer(gradient_image(), boxes=[[4, 4, 40, 30]])
    assert result.image.size == (64, 48) and result.mode == "fusion"
    (entry,) = json.loads((cache / "precision.json").read_text()).values()
    assert entry["precision"] == colorizer.precision
    assert {t["precision"] for t in entry["trials"]} == set(candidate_precisions("cpu"))
