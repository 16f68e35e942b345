"""Mask R-CNN: loading a local state dict end to end, availability without network, errors."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, maskrcnn_resnet50_fpn_v2

from instcolor.detection import DetectorWeightsError, MaskRCNNDetector, choose_detector, load_detector
from instcolor.detection import maskrcnn as maskrcnn_module
from instcolor.detection.coco import COCO_CLASSES, TORCHVISION_COCO_NAMES
from instcolor.detection.maskrcnn import WEIGHTS_ENV, maskrcnn_available, torch_hub_checkpoint

#: Small working size and few proposals keep a ResNet-50 Mask R-CNN fast on a CPU.
SMALL = dict(min_size=64, max_size=96, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_detections_per_img=10)
PERSON = TORCHVISION_COCO_NAMES.index("person")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """Random Mask R-CNN weights whose classifier prefers "person", so every image has detections."""
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():
        classifier = model.roi_heads.box_predictor.cls_score
        classifier.weight *= 0.01  # keep a little variation between boxes
        classifier.bias.zero_()
        classifier.bias[PERSON] = 6.0  # softmax gives "person" about 0.8
    path = tmp_path_factory.mktemp("maskrcnn") / "maskrcnn.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def detector(weights_file):
    return MaskRCNNDetector(weights_file, **SMALL)


def grey_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    grey = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def assert_valid(instances, height: int, width: int) -> None:
    assert len(instances) > 0
    assert set(instances.labels) <= set(COCO_CLASSES)
    assert instances.labels[int(np.argmax(instances.scores))] == "person"
    assert instances.masks.shape == (len(instances), height, width) and instances.masks.dtype == bool
    boxes = instances.boxes
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    for box, mask in zip(boxes, instances.masks):
        x1, y1, x2, y2 = box
        ys, xs = np.nonzero(mask)
        # torchvision pastes a mask into its box grown by 2/28 (+1 px of resampling): no further.
        mx, my = (x2 - x1) / 28 + 1, (y2 - y1) / 28 + 1
        if len(xs):
            assert xs.min() >= x1 - mx and xs.max() <= x2 + mx and ys.min() >= y1 - my and ys.max() <= y2 + my


def test_local_weights_give_boxes_labels_and_masks(detector):
    found = detector.raw(grey_image(48, 64))
    assert_valid(found, 48, 64)
    assert (found.scores >= 0.05).all() and (found.scores <= 1).all()
    assert found.masks.any()


def test_large_images_come_back_at_their_own_resolution(detector):
    assert detector._working_size(150, 260) == (55, 96)
    assert_valid(detector.raw(grey_image(150, 260, seed=1)), 150, 260)


def test_a_grey_view_gives_what_its_copy_gives(detector):
    grey = grey_image(150, 260, seed=2)
    view = np.broadcast_to(grey[..., :1], grey.shape)  # as detection_image returns it: one plane
    expected, got = detector.raw(grey), detector.raw(view)
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    np.testing.assert_array_equal(got.masks, expected.masks)


def test_raw_refuses_other_arrays(detector):
    with pytest.raises(ValueError):
        detector.raw(np.zeros((8, 8), np.uint8))


def test_auto_loads_mask_rcnn_from_the_environment_with_the_paper_threshold(weights_file, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(weights_file))
    detector = load_detector("auto", max_instances=3, **SMALL)
    assert detector.name == "maskrcnn"
    assert detector.filter.score_threshold == 0.7
    assert detector.detector.model.roi_heads.score_thresh == 0.7
    found = detector(grey_image(48, 64))
    assert len(found) == 3 and found.labels == ["person"] * 3
    assert (found.scores >= 0.7).all() and (np.diff(found.scores) <= 0).all()


def test_auto_choice_follows_the_weights_present(weights_file, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert not maskrcnn_available()
    assert choose_detector("auto") == "centernet"
    monkeypatch.setenv(WEIGHTS_ENV, str(weights_file))
    assert maskrcnn_available()
    assert choose_detector("auto") == "maskrcnn"
    assert choose_detector("auto", weights=tmp_path / "missing.pth") == "centernet"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    assert not maskrcnn_available()
    assert choose_detector("none") is None and load_detector("none") is None


def test_availability_sees_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert torch_hub_checkpoint() == tmp_path / "checkpoints" / "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"
    assert not maskrcnn_available()
    torch_hub_checkpoint().parent.mkdir()
    torch_hub_checkpoint().write_bytes(b"")
    assert maskrcnn_available()


def test_mismatched_or_missing_weights_are_errors(weights_file, tmp_path):
    state = torch.load(weights_file, weights_only=True)
    del state["roi_heads.mask_predictor.mask_fcn_logits.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(DetectorWeightsError, match="mask_fcn_logits"):
        MaskRCNNDetector(tmp_path / "partial.pth", **SMALL)
    with pytest.raises(DetectorWeightsError, match="not found"):
        MaskRCNNDetector(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DetectorWeightsError, match="cannot read"):
        MaskRCNNDetector(tmp_path / "junk.pth")


def test_failed_download_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(MaskRCNN_ResNet50_FPN_V2_Weights, "get_state_dict", offline)
    with pytest.raises(DetectorWeightsError, match=WEIGHTS_ENV):
        maskrcnn_module._read_state_dict(None)
