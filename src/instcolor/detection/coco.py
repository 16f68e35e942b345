"""COCO object categories: the 80 detection classes and the ids other detectors use for them.

Three numberings are in use:

* the contiguous 0-based index ``0..79`` (YOLO, CenterNet and most TF/TFJS models);
* the official COCO ``category_id`` ``1..90`` with 10 unused ids (the annotation files);
* torchvision's 91-entry label index, which *is* the official id (0 = background, unused ids
  are ``"N/A"``).

Class-aware models (:attr:`instcolor.models.config.ModelConfig.num_classes`) number classes
their own way, :func:`coco_class_ids`: ``1 + `` the contiguous index, and 0 for a label that is
unknown (empty, or not a COCO name): :data:`COCO_CLASS_COUNT` ids in all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "COCO_CLASSES",
    "COCO_CATEGORY_IDS",
    "TORCHVISION_COCO_NAMES",
    "coco_name_from_index",
    "coco_name_from_torchvision_id",
    "coco_index_from_torchvision_id",
    "COCO_CLASS_COUNT",
    "UNKNOWN_CLASS_ID",
    "coco_class_ids",
]

#: The 80 COCO detection categories in the standard (contiguous 0-based) order.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: Official COCO ``category_id`` of each entry of :data:`COCO_CLASSES` (ids 12, 26, 29, 30,
#: 45, 66, 68, 69, 71 and 83 were never used).
COCO_CATEGORY_IDS: tuple[int, ...] = tuple(
    category_id for category_id in range(1, 91) if category_id not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
)

#: torchvision's detection label names, indexed by label (= official COCO id): 91 entries.
_INDEX_FROM_ID = {category_id: index for index, category_id in enumerate(COCO_CATEGORY_IDS)}

#: torchvision's detection label names, indexed by label (= official COCO id): 91 entries.
TORCHVISION_COCO_NAMES: tuple[str, ...] = ("__background__",) + tuple(
    COCO_CLASSES[_INDEX_FROM_ID[category_id]] if category_id in _INDEX_FROM_ID else "N/A"
    for category_id in range(1, 91)
)


def coco_name_from_index(index: int) -> str:
    """Name of the contiguous 0-based class ``index`` (``0..79``); IndexError outside that range."""
    if not 0 <= index < len(COCO_CLASSES):
        raise IndexError(f"COCO class index {index} is outside 0..{len(COCO_CLASSES) - 1}")
    return COCO_CLASSES[index]


def coco_index_from_torchvision_id(label: int) -> int:
    """Contiguous 0-based index of a torchvision label (official COCO id); KeyError for background
    (0) and the ten unused ids."""
    try:
        return _INDEX_FROM_ID[int(label)]
    except KeyError:
        raise KeyError(f"torchvision label {label} is not a COCO object category") from None


def coco_name_from_torchvision_id(label: int) -> str:
    """Category name of a torchvision label (official COCO id); KeyError for background/unused ids."""
    return COCO_CLASSES[coco_index_from_torchvision_id(label)]


#: A class-aware model's id for an instance whose label is unknown.
UNKNOWN_CLASS_ID = 0

#: Class ids of a class-aware model: the unknown id and one per COCO category.
COCO_CLASS_COUNT = len(COCO_CLASSES) + 1

_CLASS_ID_OF_NAME = {name: index + 1 for index, name in enumerate(COCO_CLASSES)}


def coco_class_ids(labels: Sequence[str], num_classes: int = COCO_CLASS_COUNT) -> np.ndarray:
    """``(N,)`` int64 class ids of instance labels for a class-aware model.

    A COCO name (any case, surrounding spaces ignored) gets ``1 +`` its contiguous index; an empty
    or unknown label, and an id a model with ``num_classes`` ids does not have, get
    :data:`UNKNOWN_CLASS_ID`.
    """
    ids = [_CLASS_ID_OF_NAME.get(str(label).strip().lower(), UNKNOWN_CLASS_ID) for label in labels]
    return np.array([i if i < num_classes else UNKNOWN_CLASS_ID for i in ids], np.int64)
