"""The colorizer feeds instance labels to class-aware weights (``class_aware="auto"``) or not (``"off"``)."""

from __future__ import annotations

import numpy as np
import pytest

from instcolor.inference.pipeline import Colorizer
from instcolor.instances import Instances
from tests.support.helpers import gradient_image, tiny_class_aware_model, tiny_model

IMAGE = gradient_image(height=64, width=64, channels=1)
BOXES = [[5, 5, 40, 40], [30, 20, 60, 60]]


def instances(*labels: str) -> Instances:
    return Instances(boxes=BOXES, labels=list(labels))


class LabellingDetector:
    name = "labelling"

    def __init__(self, labels):
        self.labels = labels

    def __call__(self, image):
        return Instances(boxes=BOXES, scores=[0.9, 0.8], labels=self.labels)


@pytest.mark.parametrize("fast", [True, False])
def test_labels_steer_class_aware_weights_unless_off(fast):
    aware = Colorizer(tiny_class_aware_model(0), size=32, fast=fast)
    person = aware(IMAGE, instances("person", "car")).ab
    dog = aware(IMAGE, instances("dog", "car")).ab
    unknown = aware(IMAGE, instances("", "unicorn")).ab
    assert np.abs(person - dog).max() > 0.1 and np.abs(person - unknown).max() > 0.1

    off = Colorizer(tiny_class_aware_model(0), size=32, fast=fast, class_aware="off")
    assert not off.uses_classes and aware.uses_classes
    np.testing.assert_array_equal(off(IMAGE, instances("person", "car")).ab, unknown)
    np.testing.assert_array_equal(off(IMAGE, instances("dog", "bus")).ab, unknown)


def test_detected_labels_reach_the_networks():
    aware = Colorizer(tiny_class_aware_model(0), detector=LabellingDetector(["person", "car"]), size=32)
    detected = aware(IMAGE)
    assert detected.labels == ["person", "car"]
    np.testing.assert_array_equal(detected.ab, aware(IMAGE, instances("person", "car")).ab)


def test_class_blind_weights_run_the_same_whatever_the_labels_and_setting():
    blind = Colorizer(tiny_model(0), size=32)
    assert blind.crop_classes(["person"], 1) is None and not blind.uses_classes
    reference = blind(IMAGE, instances("", "")).ab
    np.testing.assert_array_equal(blind(IMAGE, instances("person", "car")).ab, reference)
    off = Colorizer(tiny_model(0), size=32, class_aware="off")
    np.testing.assert_array_equal(off(IMAGE, instances("person", "car")).ab, reference)


def test_bad_setting_and_label_count_are_errors():
    with pytest.raises(ValueError, match="class_aware"):
        Colorizer(tiny_model(0), size=32, class_aware="on")
    aware = Colorizer(tiny_class_aware_model(0), size=32)
    assert aware.crop_classes(None, 2).tolist() == [0, 0]
    assert aware.crop_classes(["person", "toothbrush"], 2).tolist() == [1, 80]
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        aware.crop_classes(["person"], 2)
