"""ONNX export and the ONNX Runtime backend: parity with torch, the model card, int8, auto."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from instcolor.inference import backends
from instcolor.inference.backends import BackendTrial, choose_backend, ort_runtime
from instcolor.inference.onnx_export import FusionGraph, export_onnx, placement_inputs
from instcolor.inference.quantization import calibration_samples
from instcolor.inference.runtime import RuntimeOptions, prepare_model
from tests.support.helpers import gradient_image, tiny_model

SIZE = 32


def inputs(count):
    sample = calibration_samples(SIZE)[0]
    if count == 0:
        return sample.full, None, None
    repeat = (count + 1) // 2
    crops = torch.cat([sample.crops] * repeat)[:count]
    box_info = {g: torch.cat([i] * repeat)[:count] for g, i in sample.box_info.items()}
    return sample.full, crops, box_info


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    cache = tmp_path_factory.mktemp("onnx")
    torch_rt = prepare_model(tiny_model(), "cpu", RuntimeOptions(precision="fp32"), SIZE)
    ort_rt = ort_runtime(tiny_model(), "cpu", RuntimeOptions(precision="fp32"), SIZE, cache=cache)
    return torch_rt, ort_rt


@pytest.mark.parametrize("count", [0, 1, 3, 8])
def test_fp32_parity_with_torch_at_any_instance_count(runtimes, count):
    torch_rt, ort_rt = runtimes
    full, crops, box_info = inputs(count)
    with torch.inference_mode():
        if count == 0:
            want, got = torch_rt.run_full(torch_rt.cast(full)), ort_rt.run_full(ort_rt.cast(full))
        else:
            want = torch_rt.run_fusion(torch_rt.cast(full), torch_rt.cast(crops), box_info)
            got = ort_rt.run_fusion(ort_rt.cast(full), ort_rt.cast(crops), box_info)
    assert got.shape == (1, 2, SIZE, SIZE)
    assert float((got - want.float()).abs().max()) <= 1e-4


def test_export_writes_graphs_and_a_model_card(tmp_path):
    card = export_onnx(tiny_model(), tmp_path, SIZE, metadata={"name": "tiny"})
    assert {p.name for p in tmp_path.iterdir()} == {"full.onnx", "fusion.onnx", "model_card.json", "MODEL_CARD.md"}
    stored = json.loads((tmp_path / "model_card.json").read_text())
    assert stored == card and stored["opset"] == 17 and stored["weights"] == {"name": "tiny"}
    import onnx

    graph = onnx.load(str(tmp_path / "fusion.onnx")).graph
    names = [i.name for i in graph.input]
    assert names == [i["name"] for i in card["graphs"]["fusion.onnx"]["inputs"]]
    crops = next(i for i in graph.input if i.name == "crops")
    assert crops.type.tensor_type.shape.dim[0].dim_param == "instances"  # dynamic instance count
    assert "opset 17" in (tmp_path / "MODEL_CARD.md").read_text()


def test_confined_rule_plugs_in_as_log_support_inputs():
    model = tiny_model().eval()
    full, crops, box_info = inputs(2)
    placements = placement_inputs(box_info, SIZE)
    tensors = []
    for stride in (1, 2, 4, 8):
        tensors += [torch.from_numpy(placements[f"{k}_s{stride}"]) for k in ("taps", "tap_weights", "inside")]
    with torch.no_grad():
        reference = model(full, crops, box_info)
        plain = FusionGraph(model)(full, crops, *tensors)
        zeros = []
        for i, stride in enumerate((1, 2, 4, 8)):
            g = SIZE // stride
            zeros += tensors[3 * i : 3 * i + 3] + [torch.zeros(2, 1, g, g)]
        supported = FusionGraph(model, supports=True)(full, crops, *zeros)
    assert float((plain - reference).abs().max()) < 1e-5
    assert float((supported - reference).abs().max()) < 1e-5  # log(1) = 0 everywhere: the reference rule


def test_ort_int8_runs_close_to_fp32(runtimes, tmp_path):
    torch_rt, _ = runtimes
    int8 = ort_runtime(tiny_model(), "cpu", RuntimeOptions(precision="int8"), SIZE, cache=tmp_path)
    assert int8.folder.name == "int8" and "quantization" in json.loads((int8.folder / "model_card.json").read_text())
    full, crops, box_info = inputs(2)
    with torch.inference_mode():
        want = torch_rt.run_fusion(torch_rt.cast(full), torch_rt.cast(crops), box_info)
        got = int8.run_fusion(int8.cast(full), int8.cast(crops), box_info)
    assert 0 < float((got - want).abs().mean()) * 110 < 5.0  # quantized (not identical), still close


def test_auto_backend_takes_the_faster_and_caches_it(tmp_path):
    calls = []

    def fake(model, device, options, size):
        calls.append(options.precision)
        return [BackendTrial("torch", 2.0, 0.0), BackendTrial("onnxruntime", 1.0, 1e-6)]

    options = RuntimeOptions(precision="fp32")
    cache = tmp_path / "backend.json"
    assert choose_backend(tiny_model(), "cpu", options, SIZE, cache_path=cache, measure=fake) == "onnxruntime"
    assert choose_backend(tiny_model(), "cpu", options, SIZE, cache_path=cache, measure=fake) == "onnxruntime"
    assert calls == ["fp32"]
    bf16 = RuntimeOptions(precision="bf16")  # onnxruntime does not run it: torch, without measuring
    assert choose_backend(tiny_model(), "cpu", bf16, SIZE, cache_path=cache, measure=fake) == "torch"


def test_colorizer_on_onnxruntime_matches_torch(tmp_path, monkeypatch):
    from instcolor.inference.pipeline import Colorizer

    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path))
    image, boxes = gradient_image(), [[4, 4, 40, 30], [20, 10, 60, 44]]
    on_torch = Colorizer(tiny_model(), device="cpu", size=SIZE)(image, boxes=boxes)
    colorizer = Colorizer(tiny_model(), device="cpu", size=SIZE, backend="onnxruntime")
    assert colorizer.backend == "onnxruntime"
    on_ort = colorizer(image, boxes=boxes)
    assert on_ort.mode == "fusion" and np.abs(on_ort.ab - on_torch.ab).max() <= 110 * 1e-4
    auto = Colorizer(tiny_model(), device="cpu", size=SIZE, backend="auto")
    assert auto.backend in ("torch", "onnxruntime") and (tmp_path / "backend.json").is_file()
    assert np.abs(auto(image, boxes=boxes).ab - on_torch.ab).max() <= 110 * 1e-4


def test_confined_weights_stay_on_torch():
    import torch

    from instcolor.inference.backends import check_fusion_rule, choose_backend
    from instcolor.inference.runtime import FAST_FP32
    from tests.support.helpers import tiny_model

    model = tiny_model().set_fusion_rule("confined")
    with pytest.raises(ValueError, match="reference fusion rule only"):
        check_fusion_rule(model)
    assert choose_backend(model, torch.device("cpu"), FAST_FP32, 64, measure=lambda *a: pytest.fail("measured")) == "torch"
