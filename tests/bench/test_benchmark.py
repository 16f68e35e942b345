import json
from pathlib import Path

import numpy as np
import pytest

from instcolor.bench.benchmark import (
    TARGET_KEYS,
    BenchSettings,
    _linear_fit,
    check_targets,
    load_targets,
    megapixels,
    path_options,
    random_boxes,
    random_model,
    run_benchmark,
    size_dimensions,
)

TARGETS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "targets.json"


def test_sizes():
    assert size_dimensions("256") == (256, 256)
    assert size_dimensions("12MP") == (4000, 3000)
    assert size_dimensions("640x480") == (640, 480)
    assert abs(megapixels("0.25MP") - 0.25) < 0.01


def test_path_options():
    assert path_options("eager") == {"fast": False}
    assert path_options("bf16+compile") == {"precision": "bf16", "compile": True}
    assert path_options("fp32-nchw")["channels_last"] is False
    assert path_options("fp16+batched") == {"precision": "fp16", "compile": False, "fusion": "batched"}
    assert path_options("fp16+graphs")["cuda_graphs"] is True
    for bad in ("fp64", "eager+compile", "fp32+fast", "fp32+streamed+batched"):
        with pytest.raises(ValueError):
            path_options(bad)


def test_random_boxes_lie_inside_the_image():
    boxes = np.array(random_boxes(16, 400, 300))
    assert boxes.shape == (16, 4)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 400).all() and (boxes[:, 3] <= 300).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert random_boxes(3, 400, 300) == random_boxes(3, 400, 300)


def test_random_model_keeps_activations_at_a_realistic_scale():
    import torch

    from instcolor.models.model import network_input

    model = random_model(width=0.125)
    with torch.no_grad():
        ab = model.full(network_input(torch.rand(1, 1, 32, 32) - 0.5))[0]
    assert 0.01 < ab.std() < 0.9  # neither vanishing nor saturated tanh outputs


def test_linear_fit():
    fit = _linear_fit([(0, 9.0), (1, 2.0), (8, 9.0), (16, 17.0)])
    assert abs(fit["per_instance_s"] - 1.0) < 1e-9 and abs(fit["r2"] - 1.0) < 1e-9


def test_targets_from_a_report():
    report = {
        "paths": {
            "eager": {"networks": [{"instances": n, "seconds": {"min": t}} for n, t in ((1, 2.0), (8, 9.0))]},
            "fp32": {"networks": [{"instances": n, "seconds": {"min": t}} for n, t in ((1, 1.5), (8, 7.0))]},
        },
        "comparison": {"fp32": {"networks": [
            {"instances": 1, "speedup": 1.33, "max_delta_ab_network_units": 1e-6, "mean_delta_ab_lab": 0.0},
            {"instances": 8, "speedup": 1.29, "max_delta_ab_network_units": 2e-6, "mean_delta_ab_lab": 0.0},
        ]}},
    }  # fmt: skip
    import torch

    targets = check_targets(report, torch.device("cpu"), load_targets(TARGETS_FILE))
    assert targets["fp32_fast_path"]["met"] and targets["linear_in_instances"]["met"]
    report["comparison"]["fp32"]["networks"][0]["max_delta_ab_network_units"] = 1e-3
    assert not check_targets(report, torch.device("cpu"), load_targets(TARGETS_FILE))["fp32_fast_path"]["met"]


def test_targets_file_is_checked(tmp_path):
    assert set(load_targets(TARGETS_FILE)) == set(TARGET_KEYS)
    bad = tmp_path / "targets.json"
    bad.write_text(json.dumps({"fp32_speedup": "fast"}))
    with pytest.raises(ValueError, match="fp32_speedup.*reduced_speedup"):
        load_targets(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_targets(tmp_path / "missing.json")


def test_run_benchmark_compares_paths_end_to_end():
    settings = BenchSettings(device="cpu", paths=["eager", "fp32"], instances=[2], sizes=["96x64"], repeats=1,
                             width=0.0625, input_size=64, detector=None, folder_images=1, folder_size="96x64",
                             isolate=False)  # fmt: skip
    report = run_benchmark(settings, log=lambda message: None, targets=load_targets(TARGETS_FILE))
    eager, fp32 = report["paths"]["eager"], report["paths"]["fp32"]
    assert "error" not in eager and "error" not in fp32
    assert [r["instances"] for r in fp32["networks"]] == [2]
    assert {(r["size"], r["instances"]) for r in fp32["end_to_end"]} == {("256", 2), ("96x64", 2)}
    row = fp32["end_to_end"][-1]
    assert set(row["stages"]) == {"decode", "detect", "networks", "upsample_convert", "encode"}
    assert row["peak_rss_bytes"] > 0 and row["width"] == 96
    assert report["comparison"]["fp32"]["networks"][0]["max_delta_ab_network_units"] <= 1e-4
    assert all(r["max_delta_8bit"] <= 1 for r in report["comparison"]["fp32"]["end_to_end"])
    assert [f["mode"] for f in fp32["folder"]] == ["sequential", "overlapped", "two at once"]
    assert report["device"]["type"] == "cpu" and "fp32_fast_path" in report["targets"]


@pytest.mark.slow
def test_isolated_workers_report_their_own_memory():
    settings = BenchSettings(device="cpu", paths=["fp32"], instances=[1], sizes=["256"], repeats=1, width=0.0625,
                             input_size=64, detector=None, folder_images=0)  # fmt: skip
    report = run_benchmark(settings, log=lambda message: None)
    assert all("error" not in r for r in report["paths"].values())
    assert report["paths"]["fp32"]["end_to_end"][0]["peak_rss_bytes"] > 0
