"""Every fast path matches the plain eager fp32 path within the issue's tolerances.

* fp32 fast paths (streamed fusion, channels-last, banded colour work): ``max |delta ab| <= 1e-4``
  in network units (tanh outputs, as the reference-equivalence test);
* reduced precisions (bf16, fp16, int8): ``mean |delta ab| <= 1`` Lab unit.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from instcolor.color import AB_SCALE
from instcolor.models.model import network_input
from instcolor.inference.runtime import RuntimeOptions, prepare_model
from instcolor.inference.pipeline import Colorizer
from tests.support.helpers import gradient_image, tiny_model
from tests.support.reference_fixtures import official_cases, write_reference_checkpoints

FP32_MAX_DELTA = 1e-4  # network units
REDUCED_MEAN_DELTA_LAB = 1.0

BOXES = [[3, 4, 30, 40], [20, 10, 60, 47], [0, 0, 64, 48], [50, 30, 51, 31]]


def colorize_ab(model, image, boxes, **options) -> np.ndarray:
    colorizer = Colorizer(copy.deepcopy(model), size=32, **options)
    return colorizer(image, boxes=boxes).ab


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=4)


@pytest.fixture(scope="module")
def image():
    return gradient_image(seed=5)


@pytest.fixture(scope="module")
def eager_ab(model, image):
    return colorize_ab(model, image, BOXES, fast=False)


def test_fp32_fast_path_matches_eager(model, image, eager_ab):
    fast = colorize_ab(model, image, BOXES)
    assert np.abs(fast - eager_ab).max() / AB_SCALE <= FP32_MAX_DELTA
    assert np.abs(eager_ab).max() > 1.0  # the comparison is not between two near-zero outputs


def test_fp32_fast_path_without_channels_last_matches_eager(model, image, eager_ab):
    fast = colorize_ab(model, image, BOXES, channels_last=False)
    assert np.abs(fast - eager_ab).max() / AB_SCALE <= FP32_MAX_DELTA


def test_fast_path_output_image_matches_eager(model, image):
    eager = Colorizer(copy.deepcopy(model), size=32, fast=False)(image, boxes=BOXES)
    fast = Colorizer(copy.deepcopy(model), size=32)(image, boxes=BOXES)
    delta = np.abs(np.asarray(eager.image, dtype=int) - np.asarray(fast.image, dtype=int))
    assert delta.max() <= 1 and delta.mean() < 0.01  # the same pixels up to one rounding step


def test_fast_path_without_instances_matches_eager(model, image):
    eager = colorize_ab(model, image, np.zeros((0, 4)), fast=False)
    fast = colorize_ab(model, image, np.zeros((0, 4)))
    assert np.abs(fast - eager).max() / AB_SCALE <= FP32_MAX_DELTA


def test_streamed_fusion_with_many_and_degenerate_boxes(model, image):
    rng = np.random.default_rng(1)
    boxes = np.sort(rng.uniform(-5, 70, size=(20, 2, 2)), axis=1).reshape(20, 4)[:, [0, 2, 1, 3]]
    boxes = np.vstack([boxes, [[0, 0, 0, 0], [63, 47, 64, 48]]])
    eager = colorize_ab(model, image, boxes, fast=False)
    fast = colorize_ab(model, image, boxes)
    assert np.abs(fast - eager).max() / AB_SCALE <= FP32_MAX_DELTA


@pytest.mark.parametrize("strategy", ["streamed", "batched"])
def test_every_fusion_strategy_matches_the_reference(model, strategy):
    rng = np.random.default_rng(2)
    full = network_input(torch.from_numpy(rng.uniform(-0.5, 0.5, (1, 1, 32, 32)).astype(np.float32)))
    crops = network_input(torch.from_numpy(rng.uniform(-0.5, 0.5, (3, 1, 32, 32)).astype(np.float32)))
    info = {
        32: torch.tensor([[0, 0, 0, 0, 32, 32], [3, 19, 5, 20, 10, 7], [31, 0, 31, 0, 1, 1]]),
        16: torch.tensor([[0, 0, 0, 0, 16, 16], [1, 10, 2, 10, 5, 4], [15, 0, 15, 0, 1, 1]]),
        8: torch.tensor([[0, 0, 0, 0, 8, 8], [0, 5, 1, 5, 3, 2], [7, 0, 7, 0, 1, 1]]),
        4: torch.tensor([[0, 0, 0, 0, 4, 4], [0, 3, 0, 2, 1, 2], [3, 0, 3, 0, 1, 1]]),
    }
    net = copy.deepcopy(model)
    with torch.inference_mode():
        expected = net.set_fusion_strategy("reference")(full, crops, info)
        got = net.set_fusion_strategy(strategy)(full, crops, info)
    assert (got - expected).abs().max() <= FP32_MAX_DELTA


def test_batched_paste_matches_the_loop():
    from instcolor.geometry import box_infos, sanitize_boxes
    from instcolor.models.fusion import paste_instances, paste_instances_batched

    rng = np.random.default_rng(3)
    for _ in range(4):
        width, height = (int(v) for v in rng.integers(40, 700, size=2))
        boxes = np.sort(rng.uniform(-10, 710, size=(6, 2, 2)), axis=1).reshape(6, 4)[:, [0, 2, 1, 3]]
        corners = [[0, 0, 0, 0], [width - 1, height - 1, width, height]]
        boxes = sanitize_boxes(np.vstack([boxes, corners]), (width, height))
        for grid, info in box_infos(boxes, (width, height), (32, 16, 8, 4)).items():
            info = torch.from_numpy(info)
            features = torch.randn(len(info), 3, grid, grid)
            logits = torch.randn(len(info), 1, grid, grid)
            for a, b in zip(paste_instances(logits, features, info, (grid, grid)),
                            paste_instances_batched(logits, features, info, (grid, grid))):  # fmt: skip
                assert (a - b).abs().max() <= 1e-5


def test_streamed_strategy_keeps_memory_of_one_layer(model, monkeypatch):
    """The streamed run never materialises all 13 instance feature maps at once.

    Every feature map the instance net yields is watched through a weak reference; each time a
    new one appears, the watched maps still alive are counted. Streaming keeps only the current
    map, the previous one (until fusion lets go of it) and the shortcuts' sources (``conv1_2``,
    ``conv2_2``, ``conv3_3``); the reference strategy would hold all 13.
    """
    import weakref

    from instcolor.geometry import box_infos
    from instcolor.models.backbone import FEATURE_NAMES

    net = copy.deepcopy(model).set_fusion_strategy("streamed")
    reference = copy.deepcopy(model).set_fusion_strategy("reference")
    original = net.instance.stages
    watched, live_counts = [], []

    def watched_stages(x, chunk=None):
        stream = original(x, chunk=chunk)
        sent = None
        while True:
            try:
                name, feature = stream.send(sent)
            except StopIteration as stop:
                return stop.value
            watched.append(weakref.ref(feature))
            live_counts.append(sum(ref() is not None for ref in watched))
            try:
                sent = yield name, feature
            except GeneratorExit:
                stream.close()
                raise
            del feature

    monkeypatch.setattr(net.instance, "stages", watched_stages)
    full = network_input(torch.rand(1, 1, 32, 32) - 0.5)
    crops = network_input(torch.rand(3, 1, 32, 32) - 0.5)
    infos = {g: torch.from_numpy(i) for g, i in box_infos(np.array(BOXES[:3], float), (64, 48), (32, 16, 8, 4)).items()}
    with torch.no_grad():
        streamed = net(full, crops, infos)
        expected = reference(full, crops, infos)
    assert len(watched) == len(FEATURE_NAMES) == 13  # the fusion really ran on the stream
    assert max(live_counts) <= 5, live_counts
    torch.testing.assert_close(streamed, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_on_cpu_is_within_one_lab_unit(model, image, eager_ab, precision):
    if precision == "int8":
        from instcolor.inference.quantization import int8_engine

        if int8_engine() is None:
            pytest.skip("no quantized CPU engine in this PyTorch build")
    reduced = colorize_ab(model, image, BOXES, precision=precision)
    delta = np.abs(reduced - eager_ab)
    assert delta.mean() <= REDUCED_MEAN_DELTA_LAB
    assert delta.max() > 0  # it really ran at reduced precision


def test_bad_precision_device_combinations(model):
    with pytest.raises(ValueError, match="CUDA only"):
        Colorizer(copy.deepcopy(model), precision="fp16")
    with pytest.raises(ValueError, match="CUDA graphs"):
        Colorizer(copy.deepcopy(model), cuda_graphs=True)
    with pytest.raises(ValueError, match="precision must be one of"):
        Colorizer(copy.deepcopy(model), precision="fp8")
    with pytest.raises(ValueError, match="eager"):
        Colorizer(copy.deepcopy(model), precision="bf16", fast=False)


def test_timer_reports_every_stage(model, image):
    from instcolor.inference.timing import StageTimer

    colorizer = Colorizer(copy.deepcopy(model), size=32)
    colorizer.timer = StageTimer()
    result = colorizer(image, boxes=BOXES)
    assert set(result.timings) == {"decode", "networks", "upsample_convert"}
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert Colorizer(copy.deepcopy(model), size=32)(image, boxes=BOXES).timings == {}


@pytest.mark.slow
def test_compiled_fp32_matches_eager(model, image, eager_ab):
    compiled = colorize_ab(model, image, BOXES, compile=True)
    assert np.abs(compiled - eager_ab).max() / AB_SCALE <= FP32_MAX_DELTA


def test_compile_option_compiles_every_block(model, image, eager_ab, monkeypatch):
    """Fast twin of the slow test above: ``compile=True`` hands every block of the three networks
    and both CNNs of each of the 13 fusion layers to ``Module.compile`` (recorded, not compiled)."""
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    colorizer = Colorizer(copy.deepcopy(model), size=32, compile=True)
    blocks = [*colorizer.model.full.blocks(), *colorizer.model.instance.blocks(), *colorizer.model.fusion.backbone.blocks()]
    fusers = [net for layer in colorizer.model.fusion.fusers.values() for net in (layer.instance_net, layer.background_net)]
    assert len(fusers) == 26
    assert {id(m) for m in compiled} == {id(m) for m in blocks + fusers}
    assert np.abs(colorizer(image, boxes=BOXES).ab - eager_ab).max() / AB_SCALE <= FP32_MAX_DELTA


# --------------------------------------------------------------------- reference fixture (width 1)

CASES = official_cases()


@pytest.fixture(scope="module")
def reference_case(tmp_path_factory):
    if not CASES:
        pytest.skip("no reference fixture case")
    from instcolor.models.weights.reference import import_reference
    from instcolor.models.weights.store import load_weights

    case = CASES[0]
    folder = tmp_path_factory.mktemp("perf-" + case.name)
    write_reference_checkpoints(case, folder / "ckpt")
    model = load_weights(import_reference(folder / "ckpt", output=folder / "imported.safetensors")).model
    data = dict(np.load(case / "case.npz"))
    infos = {grid: torch.from_numpy(data[f"box_info_{grid}"]) for grid in (256, 128, 64, 32)}
    return model, data, infos


def run_prepared(prepared, data, infos) -> np.ndarray:
    full = prepared.cast(network_input(torch.from_numpy(data["full_L"])))
    crops = prepared.cast(network_input(torch.from_numpy(data["crops_L"])))
    with torch.inference_mode(), prepared.context():
        return prepared.model(full, crops, {g: i.cpu() for g, i in infos.items()}).float().cpu().numpy()


@pytest.mark.slow  # full-width networks on CPU: ~30 s on 2 cores
def test_fp32_fast_path_reproduces_the_reference_fixture(reference_case):
    model, data, infos = reference_case
    prepared = prepare_model(copy.deepcopy(model), "cpu", RuntimeOptions(precision="fp32"))
    np.testing.assert_allclose(run_prepared(prepared, data, infos), data["ab_fused"], atol=FP32_MAX_DELTA, rtol=0)


# --------------------------------------------------------------------- CUDA


@pytest.fixture()
def cuda_device() -> torch.device:
    """Listed first by CUDA tests, so that they skip before building the full-width fixture."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("fusion", ["batched", "streamed"])
def test_cuda_fp32_fast_path_reproduces_the_reference_fixture(cuda_device, reference_case, fusion):
    device = cuda_device
    model, data, infos = reference_case
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions are not float32 accurate
    try:
        prepared = prepare_model(copy.deepcopy(model), device, RuntimeOptions(precision="fp32", fusion=fusion))
        out = run_prepared(prepared, data, infos)
    finally:
        torch.backends.cudnn.allow_tf32 = previous
    np.testing.assert_allclose(out, data["ab_fused"], atol=FP32_MAX_DELTA, rtol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("fusion", ["batched", "streamed"])
def test_cuda_reduced_precision_is_within_one_lab_unit(cuda_device, reference_case, precision, fusion):
    device = cuda_device
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    model, data, infos = reference_case
    prepared = prepare_model(copy.deepcopy(model), device, RuntimeOptions(precision=precision, fusion=fusion))
    out = run_prepared(prepared, data, infos)
    assert np.isfinite(out).all()
    assert np.abs(out - data["ab_fused"]).mean() * AB_SCALE <= REDUCED_MEAN_DELTA_LAB


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_colorizer_matches_cpu_eager(cuda_device, model, image, eager_ab, precision):
    device = cuda_device
    colorizer = Colorizer(copy.deepcopy(model), device=device, size=32, precision=precision)
    result = colorizer(image, boxes=BOXES)
    delta = np.abs(result.ab - eager_ab)
    assert delta.mean() <= (0.05 if precision == "fp32" else REDUCED_MEAN_DELTA_LAB)  # TF32 convolutions on
    assert result.image.size == (image.shape[1], image.shape[0]) and result.mode == "fusion"


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graphs_replay_the_eager_result(cuda_device, model, image, precision):
    eager = Colorizer(copy.deepcopy(model), device=cuda_device, size=32, precision=precision)
    graphed = Colorizer(copy.deepcopy(model), device=cuda_device, size=32, precision=precision, cuda_graphs=True)
    for boxes in (BOXES, BOXES[:2], BOXES, np.zeros((0, 4))):  # new shapes are captured, known ones replayed
        expected = eager(image, boxes=boxes).ab
        got = graphed(image, boxes=boxes).ab
        np.testing.assert_allclose(got, expected, atol=1e-3 * AB_SCALE if precision == "fp16" else 1e-4, rtol=0)
    assert graphed._runtime.graphs is not None and len(graphed._runtime.graphs._graphs) == 3
