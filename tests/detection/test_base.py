"""Filtering shared by every detector, and the grey detection image."""

from __future__ import annotations

import numpy as np
import torch
import pytest
from PIL import Image
from skimage.color import rgb2lab

from instcolor.detection import DetectionFilter, Detector, FilteredDetector, check_class_names, detection_image
from instcolor.instances import Instances


class FakeDetector:
    """Returns fixed candidates and remembers the image it was given."""

    name = "fake"
    default_score_threshold = 0.5

    def __init__(self, candidates: Instances) -> None:
        self.candidates = candidates
        self.seen: list[np.ndarray] = []

    def raw(self, image: np.ndarray) -> Instances:
        self.seen.append(image)
        return self.candidates


def candidates(boxes, scores, labels, with_masks: bool = False) -> Instances:
    masks = None
    if with_masks:
        masks = np.zeros((len(boxes), 40, 60), bool)
        for i in range(len(boxes)):
            masks[i, i, i] = True  # a mark that says which candidate a mask belongs to
    return Instances(boxes=np.array(boxes, np.float32), scores=np.array(scores, np.float32), labels=labels, masks=masks)


def spread_boxes(n: int) -> list[list[float]]:
    """``n`` boxes that do not overlap."""
    return [[10.0 * i, 0.0, 10.0 * i + 8.0, 8.0] for i in range(n)]


def test_score_threshold_keeps_scores_at_or_above_it():
    found = candidates(spread_boxes(4), [0.9, 0.69, 0.7, 0.71], ["person"] * 4)
    kept = DetectionFilter(score_threshold=0.7)(found)
    assert sorted(kept.scores.tolist()) == pytest.approx([0.7, 0.71, 0.9])


def test_result_is_sorted_by_score_and_masks_follow_their_boxes():
    found = candidates(spread_boxes(3), [0.6, 0.9, 0.8], ["cat", "dog", "cup"], with_masks=True)
    kept = DetectionFilter(score_threshold=0.0)(found)
    assert kept.labels == ["dog", "cup", "cat"]
    np.testing.assert_array_equal(kept.boxes, found.boxes[[1, 2, 0]])
    assert [int(np.argwhere(mask)[0, 0]) for mask in kept.masks] == [1, 2, 0]


def test_max_instances_keeps_the_highest_scores_and_zero_keeps_all():
    scores = [0.91, 0.95, 0.72, 0.99, 0.8, 0.85]
    found = candidates(spread_boxes(6), scores, ["person"] * 6)
    top3 = DetectionFilter(score_threshold=0.0, max_instances=3)(found)
    assert top3.scores.tolist() == pytest.approx([0.99, 0.95, 0.91])
    assert len(DetectionFilter(score_threshold=0.0, max_instances=0)(found)) == 6


def test_class_filter_keeps_only_named_classes():
    found = candidates(spread_boxes(4), [0.9, 0.9, 0.9, 0.9], ["person", "cup", "dog", "person"])
    kept = DetectionFilter(score_threshold=0.0, classes=frozenset({"person", "cup"}))(found)
    assert sorted(kept.labels) == ["cup", "person", "person"]


def test_unknown_class_names_are_refused():
    with pytest.raises(ValueError, match="persn"):
        check_class_names(["person", "persn"])
    with pytest.raises(ValueError, match="unicorn"):
        DetectionFilter(score_threshold=0.5, classes=frozenset({"unicorn"}))
    assert check_class_names([" person", "cup ", ""]) == {"person", "cup"}


@pytest.mark.parametrize(
    ("nms", "same_class_kept", "other_class_kept"),
    [("class", 1, 2), ("agnostic", 1, 1), ("none", 2, 2)],
)
def test_nms_modes(nms, same_class_kept, other_class_kept):
    overlapping = [[0, 0, 20, 20], [1, 1, 21, 21]]  # IoU about 0.82
    same = candidates(overlapping, [0.9, 0.8], ["dog", "dog"])
    other = candidates(overlapping, [0.9, 0.8], ["dog", "cat"])
    keep_all = dict(score_threshold=0.0, max_instances=0, nms=nms)
    assert len(DetectionFilter(**keep_all)(same)) == same_class_kept
    assert len(DetectionFilter(**keep_all)(other)) == other_class_kept
    assert DetectionFilter(**keep_all)(same).scores[0] == pytest.approx(0.9)


def test_nms_respects_the_iou_threshold():
    found = candidates([[0, 0, 20, 20], [10, 0, 30, 20]], [0.9, 0.8], ["dog", "dog"])  # IoU 1/3
    assert len(DetectionFilter(score_threshold=0.0, iou_threshold=0.5)(found)) == 2
    assert len(DetectionFilter(score_threshold=0.0, iou_threshold=0.3)(found)) == 1


def test_filter_order_threshold_then_nms_then_cap():
    # The 0.95 box is below no threshold but suppresses its 0.9 neighbour; the cap then takes 2.
    found = candidates(
        [[0, 0, 20, 20], [1, 1, 21, 21], [40, 0, 60, 20], [80, 0, 100, 20], [120, 0, 140, 20]],
        [0.95, 0.9, 0.5, 0.8, 0.3],
        ["dog"] * 5,
    )
    kept = DetectionFilter(score_threshold=0.4, max_instances=2)(found)
    assert kept.scores.tolist() == pytest.approx([0.95, 0.8])


def test_no_candidates_gives_no_instances():
    kept = DetectionFilter(score_threshold=0.5)(Instances())
    assert len(kept) == 0 and kept.boxes.shape == (0, 4)


@pytest.mark.parametrize(
    "settings",
    [dict(score_threshold=1.5), dict(score_threshold=0.5, max_instances=-1), dict(score_threshold=0.5, nms="soft")],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        DetectionFilter(**settings)


def test_detection_image_is_lab_lightness_scaled_to_bytes():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    grey = detection_image(rgb)
    assert grey.shape == (12, 16, 3) and grey.dtype == np.uint8
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    expected = rgb2lab(rgb)[..., 0] * 255.0 / 100.0  # independent implementation (scikit-image)
    assert np.abs(grey[..., 0].astype(float) - expected).max() <= 0.51
    corners = detection_image(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8))[0, :, 0]
    assert corners.tolist() == [0, 255]
    assert grey.strides[2] == 0 and not grey.flags.writeable  # one shared plane, no copies


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_detection_image_matches_the_float_lab_conversion(dtype):
    from instcolor.color import lightness

    top = np.iinfo(dtype).max
    rgb = np.random.default_rng(4).integers(0, top + 1, (40, 50, 3), dtype=dtype)
    float_rgb = torch.from_numpy(rgb / top).float().permute(2, 0, 1)[None]
    expected = np.clip(np.round(lightness(float_rgb)[0, 0].numpy() * 2.55), 0, 255)
    assert np.abs(detection_image(rgb)[..., 0].astype(float) - expected).max() <= 1


def test_detection_image_accepts_paths_pil_and_grey_arrays(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    from_path = detection_image(tmp_path / "x.png")
    np.testing.assert_array_equal(from_path, detection_image(Image.fromarray(rgb)))
    np.testing.assert_array_equal(from_path, detection_image(rgb))
    assert detection_image(rgb[..., 0]).shape == (10, 14, 3)


def test_filtered_detector_runs_on_the_grey_image_with_the_detector_default():
    found = candidates(spread_boxes(3), [0.4, 0.6, 0.9], ["person", "cup", "dog"])
    fake = FakeDetector(found)
    assert isinstance(fake, Detector)
    detector = FilteredDetector(fake, max_instances=8)
    assert detector.name == "fake"
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    kept = detector.detect(rgb)
    np.testing.assert_array_equal(fake.seen[-1], detection_image(rgb))
    assert kept.labels == ["dog", "cup"]  # default threshold 0.5
    assert FilteredDetector(fake, score_threshold=0.3)(detection_image(rgb)).labels == ["dog", "cup", "person"]


def test_filtered_detector_refuses_colour_arrays():
    detector = FilteredDetector(FakeDetector(Instances()))
    rgb = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="grey"):
        detector(rgb)
    with pytest.raises(ValueError, match="uint8"):
        detector(rgb.astype(np.float32))
