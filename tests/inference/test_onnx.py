"""ONNX export and the ONNX Runtime backend: parity with torch, the model card, int8, auto."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from instcolor.inference.backends import BackendTrial, choose_backend, ort_runtime
from instcolor.inference.onnx_export import (
    FusionGraph,
    export_onnx,
    model_fingerprint,
    placement_input_names,
    placement_inputs,
)
from instcolor.inference.preprocess import prepare
from instcolor.inference.quantization import calibration_samples
from instcolor.inference.runtime import RuntimeOptions, prepare_model
from instcolor.models.fusion import paste_instances_batched
from instcolor.models.model import network_input
from tests.support.helpers import gradient_image, tiny_class_aware_model, tiny_model

SIZE = 32


def inputs(count):
    sample = calibration_samples(SIZE)[0]
    if count == 0:
        return sample.full, None, None
    repeat = (count + 1) // 2
    crops = torch.cat([sample.crops] * repeat)[:count]
    box_info = {g: torch.cat([i] * repeat)[:count] for g, i in sample.box_info.items()}
    return sample.full, crops, box_info


def fp32_runtimes(make_model, cache):
    """torch fp32 and ONNX Runtime fp32 runtimes of the same weights."""
    torch_rt = prepare_model(make_model(), "cpu", RuntimeOptions(precision="fp32"), SIZE)
    return torch_rt, ort_runtime(make_model(), "cpu", RuntimeOptions(precision="fp32"), SIZE, cache=cache)


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    return fp32_runtimes(tiny_model, tmp_path_factory.mktemp("onnx"))


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


def test_log_support_of_zero_is_the_reference_rule():
    model = tiny_model().eval()
    full, crops, box_info = inputs(2)
    placements = placement_inputs(box_info, SIZE)
    tensors = [torch.from_numpy(placements[name]) for name in placement_input_names()]
    zeros = []
    for i, stride in enumerate((1, 2, 4, 8)):
        g = SIZE // stride
        zeros += tensors[3 * i : 3 * i + 3] + [torch.zeros(2, 1, g, g)]
    with torch.no_grad():
        reference = model(full, crops, box_info)
        plain = FusionGraph(model)(full, crops, *tensors)
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
    model = tiny_model()
    colorizer = Colorizer(model, device="cpu", size=SIZE, backend="onnxruntime")
    assert colorizer.backend == "onnxruntime"
    # the graphs hold the weights: the colorizer keeps only the configuration, not a torch copy
    assert colorizer.model.config == model.config and not hasattr(colorizer.model, "parameters")
    on_ort = colorizer(image, boxes=boxes)
    assert on_ort.mode == "fusion" and np.abs(on_ort.ab - on_torch.ab).max() <= 110 * 1e-4
    auto = Colorizer(tiny_model(), device="cpu", size=SIZE, backend="auto")
    assert auto.backend in ("torch", "onnxruntime") and (tmp_path / "backend.json").is_file()
    assert np.abs(auto(image, boxes=boxes).ab - on_torch.ab).max() <= 110 * 1e-4


# ----------------------------------------------------------------------------- the confined rule

GREY = torch.from_numpy(gradient_image(96, 80, seed=3)[..., 0].astype(np.float32) / 255.0 - 0.5)[None, None]
BOXES = {
    "boxes": np.array([[4, 4, 40, 30], [50, 40, 79, 95], [30, 60, 45, 90]], np.float32),
    "overlapping boxes": np.array([[4, 4, 40, 30], [12, 10, 60, 44], [20, 20, 70, 80]], np.float32),
    "whole-image and tiny boxes": np.array([[0, 0, 80, 96], [77, 93, 80, 96], [0, 50, 3, 53]], np.float32),
}


def masks_for(boxes):
    masks = np.zeros((len(boxes), 96, 80), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        mask[y1 : (y1 + y2) // 2 + 1, x1 : max(x2 - 3, x1 + 1)] = True  # the upper part of each box
    return masks


def confined_model():
    return tiny_model().set_fusion_rule("confined")


@pytest.fixture(scope="module")
def confined_runtimes(tmp_path_factory):
    return fp32_runtimes(confined_model, tmp_path_factory.mktemp("onnx-confined"))


def fuse(runtime, boxes, masks=None):
    prepared = prepare(GREY, boxes, SIZE, masks=masks)
    full, crops = network_input(prepared.full), network_input(prepared.crops)
    with torch.inference_mode():
        return runtime.run_fusion(runtime.cast(full), runtime.cast(crops), prepared.box_info, prepared.crop_masks)


@pytest.mark.parametrize("with_masks", [False, True], ids=["box supports", "mask supports"])
@pytest.mark.parametrize("layout", list(BOXES))
def test_confined_rule_parity_with_torch(confined_runtimes, runtimes, layout, with_masks):
    torch_rt, ort_rt = confined_runtimes
    boxes = BOXES[layout]
    masks = masks_for(boxes) if with_masks else None
    want, got = fuse(torch_rt, boxes, masks), fuse(ort_rt, boxes, masks)
    assert float((got - want).abs().max()) <= 1e-4
    other = fuse(runtimes[1], boxes, masks)  # the reference rule's graph: a different result
    assert float((other - want).abs().max()) > 1e-3
    if with_masks:  # and the masks made a difference
        assert float((fuse(ort_rt, boxes) - got).abs().max()) > 1e-3


def test_confined_graph_takes_log_supports_with_minus_infinity(confined_runtimes, tmp_path):
    _, ort_rt = confined_runtimes
    card = json.loads((ort_rt.folder / "model_card.json").read_text())
    assert card["fusion_rule"] == "confined" and card["support_feather"] == 0.125
    names = [i.name for i in ort_rt.fusion_session.get_inputs()]
    assert names == ["full_input", "crops", *placement_input_names(supports=True)]
    assert [t["name"] for t in card["graphs"]["fusion.onnx"]["inputs"]] == names
    boxes = BOXES["boxes"]
    prepared = prepare(GREY, boxes, SIZE, masks=masks_for(boxes))
    supports = ort_rt.model.supports(prepared.crop_masks, len(boxes), SIZE, prepared.full)
    feeds = placement_inputs(prepared.box_info, SIZE, supports)
    log_support = feeds["log_support_s1"]
    assert log_support.shape == (3, 1, SIZE, SIZE) and np.isneginf(log_support).any() and (log_support == 0).any()
    assert np.isfinite(fuse(ort_rt, boxes, masks_for(boxes)).numpy()).all()


def test_exports_of_the_two_rules_do_not_share_a_cache_folder(confined_runtimes, runtimes):
    assert confined_runtimes[1].folder.parent.name != runtimes[1].folder.parent.name
    assert model_fingerprint(confined_model(), SIZE) != model_fingerprint(tiny_model(), SIZE)


def test_ort_int8_runs_confined_weights(confined_runtimes, tmp_path):
    torch_rt, _ = confined_runtimes
    int8 = ort_runtime(confined_model(), "cpu", RuntimeOptions(precision="int8"), SIZE, cache=tmp_path)
    assert json.loads((int8.folder / "model_card.json").read_text())["fusion_rule"] == "confined"
    boxes = BOXES["overlapping boxes"]
    want, got = fuse(torch_rt, boxes, masks_for(boxes)), fuse(int8, boxes, masks_for(boxes))
    assert 0 < float((got - want).abs().mean()) * 110 < 5.0


def test_auto_may_choose_onnxruntime_for_confined_weights(tmp_path):
    def fake(model, device, options, size):
        assert model.config.fusion_rule == "confined"
        return [BackendTrial("torch", 2.0, 0.0), BackendTrial("onnxruntime", 1.0, 1e-6)]

    options = RuntimeOptions(precision="fp32")
    chosen = choose_backend(confined_model(), "cpu", options, SIZE, cache_path=tmp_path / "b.json", measure=fake)
    assert chosen == "onnxruntime"


def test_colorizer_runs_confined_weights_with_masks_on_onnxruntime(tmp_path, monkeypatch):
    from instcolor.inference.pipeline import Colorizer

    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path))
    image = gradient_image()
    boxes = np.array([[4, 4, 40, 30], [20, 10, 60, 44]], np.float32)
    masks = np.zeros((2, *image.shape[:2]), bool)
    masks[0, 6:20, 8:30], masks[1, 14:40, 25:50] = True, True
    on_torch = Colorizer(confined_model(), device="cpu", size=SIZE)(image, boxes=boxes, masks=masks)
    colorizer = Colorizer(confined_model(), device="cpu", size=SIZE, backend="onnxruntime")
    on_ort = colorizer(image, boxes=boxes, masks=masks)
    assert on_ort.mode == "fusion" and np.abs(on_ort.ab - on_torch.ab).max() <= 110 * 1e-4


# ----------------------------------------------------------------------------- class-aware


CLASS_AWARE_VARIANTS = {  # (class inputs, fusion rule): the starter's is ("instance", "confined")
    "both, reference rule": ("both", "reference"),
    "instance, confined rule": ("instance", "confined"),
    "fusion, confined rule": ("fusion", "confined"),
}


def class_aware_model(variant: str):
    class_inputs, rule = CLASS_AWARE_VARIANTS[variant]
    return tiny_class_aware_model(0, class_inputs=class_inputs, fusion_rule=rule)


@pytest.fixture(scope="module", params=list(CLASS_AWARE_VARIANTS))
def class_aware_runtimes(request, tmp_path_factory):
    runtimes = fp32_runtimes(lambda: class_aware_model(request.param), tmp_path_factory.mktemp("onnx-ca"))
    return (*runtimes, request.param)


@pytest.mark.parametrize("classes", [[1, 3, 0], [80, 80, 2], None], ids=["labels", "other labels", "no classes"])
def test_class_aware_parity_with_torch(class_aware_runtimes, classes):
    torch_rt, ort_rt, _ = class_aware_runtimes
    full, crops, box_info = inputs(3)
    ids = None if classes is None else torch.tensor(classes)
    with torch.inference_mode():
        want = torch_rt.run_fusion(torch_rt.cast(full), torch_rt.cast(crops), box_info, None, ids)
        got = ort_rt.run_fusion(ort_rt.cast(full), ort_rt.cast(crops), box_info, None, ids)
        unknown = ort_rt.run_fusion(ort_rt.cast(full), ort_rt.cast(crops), box_info, None, torch.tensor([0, 0, 0]))
    assert float((got - want.float()).abs().max()) <= 1e-4
    assert float((got - unknown).abs().max()) > 1e-3  # the classes reached the graph (the embeddings are not 0)


def test_class_aware_graph_names_its_classes_input(class_aware_runtimes):
    _, ort_rt, _ = class_aware_runtimes
    card = json.loads((ort_rt.folder / "model_card.json").read_text())
    names = [i.name for i in ort_rt.fusion_session.get_inputs()]
    assert card["class_aware"] is True and names[:3] == ["full_input", "crops", "classes"]
    assert [t["name"] for t in card["graphs"]["fusion.onnx"]["inputs"]] == names


def test_ort_int8_runs_class_aware_weights(class_aware_runtimes, tmp_path):
    torch_rt, _, variant = class_aware_runtimes
    int8 = ort_runtime(class_aware_model(variant), "cpu", RuntimeOptions(precision="int8"), SIZE, cache=tmp_path)
    full, crops, box_info = inputs(2)
    ids = torch.tensor([1, 5])
    with torch.inference_mode():
        want = torch_rt.run_fusion(torch_rt.cast(full), torch_rt.cast(crops), box_info, None, ids)
        got = int8.run_fusion(int8.cast(full), int8.cast(crops), box_info, None, ids)
    assert 0 < float((got - want).abs().mean()) * 110 < 5.0


def test_colorizer_feeds_labels_to_class_aware_weights_on_onnxruntime(tmp_path, monkeypatch):
    from instcolor.inference.pipeline import Colorizer
    from instcolor.instances import Instances

    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path))
    image = gradient_image()
    boxes = np.array([[4, 4, 40, 30], [20, 10, 60, 44]], np.float32)
    results = {}
    for backend in ("torch", "onnxruntime"):
        colorizer = Colorizer(tiny_class_aware_model(0), device="cpu", size=SIZE, backend=backend)
        results[backend] = [
            colorizer(image, Instances(boxes=boxes, scores=[0.9, 0.8], labels=labels)).ab
            for labels in (["person", "car"], ["dog", "dog"])
        ]
    for on_torch, on_ort in zip(results["torch"], results["onnxruntime"]):
        assert np.abs(on_ort - on_torch).max() <= 110 * 1e-4
    assert np.abs(results["onnxruntime"][0] - results["onnxruntime"][1]).max() > 0.1  # the labels matter


def test_onnxruntime_refuses_a_wrong_number_of_classes_as_torch_does(class_aware_runtimes):
    torch_rt, ort_rt, _ = class_aware_runtimes
    full, crops, box_info = inputs(3)
    for runtime in (torch_rt, ort_rt):
        with pytest.raises(ValueError, match="expected 3 crop classes"):
            runtime.run_fusion(runtime.cast(full), runtime.cast(crops), box_info, None, torch.tensor([1]))


def test_auto_backend_keeps_class_aware_weights_apart_in_its_cache(tmp_path):
    seen = []

    def fake(model, device, options, size):
        seen.append(model.config.class_inputs if model.config.class_aware else "blind")
        faster = "onnxruntime" if model.config.class_aware else "torch"
        return [BackendTrial("torch", 1.0 if faster == "torch" else 2.0, 0.0), BackendTrial("onnxruntime", 1.5, 1e-6)]

    options, cache = RuntimeOptions(precision="fp32"), tmp_path / "b.json"
    assert choose_backend(tiny_model(), "cpu", options, SIZE, cache_path=cache, measure=fake) == "torch"
    for variant in ("instance, confined rule", "fusion, confined rule"):
        chosen = choose_backend(class_aware_model(variant), "cpu", options, SIZE, cache_path=cache, measure=fake)
        assert chosen == "onnxruntime"
    assert seen == ["blind", "instance", "fusion"]  # each measured once, none taken from another's entry


# ----------------------------------------------------------------------------- memory


def test_fusion_graph_pastes_only_logits_for_all_instances_at_once(monkeypatch):
    from instcolor.inference import onnx_export

    pasted = []

    def recording(logits, features, *args, **kwargs):
        pasted.append((logits.shape[1], features))
        return paste_instances_batched(logits, features, *args, **kwargs)

    monkeypatch.setattr(onnx_export, "paste_instances_batched", recording)
    model = tiny_model().eval()
    full, crops, box_info = inputs(3)
    placements = placement_inputs(box_info, SIZE)
    with torch.no_grad():
        got = FusionGraph(model)(full, crops, *(torch.from_numpy(placements[n]) for n in placement_input_names()))
        want = model(full, crops, box_info)
    assert float((got - want).abs().max()) < 1e-5
    assert pasted == [(1, None)] * 13  # features are pasted one instance at a time (fuse_instances)


def test_fusion_graph_runs_the_instance_net_in_step_with_fusion(runtimes):
    import onnx

    graph = onnx.load(str(runtimes[1].folder / "fusion.onnx")).graph
    loops = [n for n in graph.node if n.op_type == "Loop"]
    assert len(loops) == 13  # one per fusion layer: fuse_instances
    loop_counts = {n.output[1] for n in loops}
    producers = {out: n for n in graph.node for out in n.output}

    def depends_on_a_loop(name, seen=()):
        node = producers.get(name)
        if node is None or name in seen:
            return False
        return any(i in loop_counts or depends_on_a_loop(i, (*seen, name)) for i in node.input)

    waiting = [n for n in graph.node if n.op_type == "Reshape" and depends_on_a_loop(n.input[1])]
    assert len(waiting) == 12  # every instance stage after the first waits for the previous fusion layer
