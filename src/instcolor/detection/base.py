"""The detector interface, the grey detection image, and the filtering every detector shares.

A detector (:class:`Detector`) proposes candidate instances of a grey ``(H, W, 3)`` uint8 image.
:class:`FilteredDetector` turns those candidates into the few instances the colorizer uses, in
this order:

1. ``score >= score_threshold`` (each detector's own default; 0.7 for Mask R-CNN, as the paper);
2. optionally only some COCO classes;
3. non-maximum suppression, class-aware by default (``torchvision.ops.batched_nms``, IoU 0.5).
   Class-aware NMS is what the paper's detector (detectron2's Mask R-CNN) applies, so it is a
   no-op on Mask R-CNN output and only removes duplicates from detectors without their own NMS;
   overlapping instances of different classes (a rider on a horse) both stay, and the fusion
   module blends overlaps anyway. ``"agnostic"`` keeps one box per place whatever its class;
4. the ``max_instances`` highest scores (8 as the paper; 0 keeps all).

The result is sorted by score, highest first.

Detection runs on the grey image, L (CIE Lab, D65) scaled to ``[0, 255]`` and replicated to three
channels, as the reference's box preparation does (OpenCV's 8-bit Lab L of the input). Training
boxes are made the same way, so they match what inference sees: use :func:`detection_image`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms

from instcolor.detection.coco import COCO_CLASSES
from instcolor.instances import Instances
from instcolor.io import DecodedImage, decode_image
from instcolor.color.compose import grey_levels, image_lightness

NmsMode = Literal["class", "agnostic", "none"]
NMS_MODES: tuple[str, ...] = ("class", "agnostic", "none")

#: Default number of instances kept per image (the paper's 8).
DEFAULT_MAX_INSTANCES = 8
#: Default IoU above which NMS drops the lower-scoring box.
DEFAULT_IOU_THRESHOLD = 0.5

ImageInput = str | os.PathLike | Image.Image | np.ndarray | DecodedImage


@runtime_checkable
class Detector(Protocol):
    """What every detector provides.

    Attributes:
        name: short name shown to users (``"maskrcnn"``, ``"centernet"``).
        default_score_threshold: the score threshold used when the user gives none.
    """

    name: str
    default_score_threshold: float

    def raw(self, image: np.ndarray) -> Instances:
        """All candidates of a grey ``(H, W, 3)`` uint8 image, unfiltered, in its pixels."""
        ...


def detection_image(image: ImageInput) -> np.ndarray:
    """The image detectors see: ``(H, W, 3)`` uint8, Lab L scaled to ``[0, 255]`` in all channels.

    The result is a read-only view of one grey plane (:func:`grey_image`); copy it to write to it.

    Args:
        image: a path, PIL image, ``HxW`` / ``HxWx3`` / ``HxWx4`` uint8 or uint16 array, or an
            already decoded :class:`~instcolor.io.DecodedImage`. EXIF orientation is applied and
            alpha is ignored.
    """
    decoded = image if isinstance(image, DecodedImage) else decode_image(image)
    return grey_image(grey_levels(image_lightness(decoded)))


def grey_image(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 grey as the ``(H, W, 3)`` image detectors take: a read-only view, no copy."""
    return np.broadcast_to(grey[..., None], (*grey.shape, 3))


@dataclass(frozen=True)
class DetectionFilter:
    """Score threshold, class filter, NMS and top-k on a detector's candidates.

    Attributes:
        score_threshold: keep candidates with ``score >= score_threshold``.
        max_instances: keep at most this many, highest scores first; 0 keeps all.
        classes: COCO class names to keep, or None for every class.
        nms: ``"class"`` (per class), ``"agnostic"`` (across classes) or ``"none"``.
        iou_threshold: NMS drops a box whose IoU with a higher-scoring kept box exceeds this.
    """

    score_threshold: float
    max_instances: int = DEFAULT_MAX_INSTANCES
    classes: frozenset[str] | None = None
    nms: NmsMode = "class"
    iou_threshold: float = DEFAULT_IOU_THRESHOLD

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.max_instances < 0:
            raise ValueError(f"max_instances must be >= 0 (0 = no cap), got {self.max_instances}")
        if self.nms not in NMS_MODES:
            raise ValueError(f"nms must be one of {', '.join(NMS_MODES)}, got {self.nms!r}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if self.classes is not None:
            object.__setattr__(self, "classes", check_class_names(self.classes))

    def __call__(self, candidates: Instances) -> Instances:
        keep = np.flatnonzero(candidates.scores >= self.score_threshold)
        if self.classes is not None:
            keep = keep[[candidates.labels[i] in self.classes for i in keep]].astype(np.int64)
        keep = self._suppress(candidates, keep)
        keep = keep[np.argsort(-candidates.scores[keep], kind="stable")]
        if self.max_instances > 0:
            keep = keep[: self.max_instances]
        return candidates.select(keep)

    def _suppress(self, candidates: Instances, keep: np.ndarray) -> np.ndarray:
        """Indices in ``keep`` that survive NMS, in ascending order."""
        if self.nms == "none" or len(keep) < 2:
            return keep
        if self.nms == "class":
            _, groups = np.unique([candidates.labels[i] for i in keep], return_inverse=True)
        else:
            groups = np.zeros(len(keep), np.int64)
        survivors = batched_nms(
            torch.from_numpy(candidates.boxes[keep]),
            torch.from_numpy(candidates.scores[keep]),
            torch.from_numpy(np.asarray(groups, np.int64)),
            self.iou_threshold,
        )
        return np.sort(keep[survivors.numpy()])


def check_class_names(names: Iterable[str]) -> frozenset[str]:
    """The given class names as a set; ValueError naming any that is not a COCO class."""
    names = frozenset(name.strip() for name in names if name.strip())
    unknown = sorted(names - frozenset(COCO_CLASSES))
    if unknown:
        raise ValueError(f"unknown COCO class name(s): {', '.join(unknown)}")
    return names


def is_grey_view(image: np.ndarray) -> bool:
    """True for an ``(H, W, 3)`` view of one grey plane (:func:`grey_image`): its channels share memory."""
    return image.ndim == 3 and image.strides[2] == 0


class FilteredDetector:
    """A detector with filtering: ``detector(detection_image(image)) -> Instances``.

    Args:
        detector: anything following :class:`Detector`.
        score_threshold: defaults to ``detector.default_score_threshold``.
        max_instances: at most this many instances (0 = no cap).
        classes: COCO class names to keep (None = all).
        nms: ``"class"``, ``"agnostic"`` or ``"none"``.
        iou_threshold: NMS IoU threshold.
    """

    def __init__(
        self,
        detector: Detector,
        score_threshold: float | None = None,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        classes: Iterable[str] | None = None,
        nms: NmsMode = "class",
        iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    ) -> None:
        self.detector = detector
        self.filter = DetectionFilter(
            score_threshold=detector.default_score_threshold if score_threshold is None else float(score_threshold),
            max_instances=int(max_instances),
            classes=None if classes is None else frozenset(classes),
            nms=nms,
            iou_threshold=float(iou_threshold),
        )

    @property
    def name(self) -> str:
        return self.detector.name

    def __call__(self, grey: np.ndarray) -> Instances:
        """Instances of a grey detection image, ``(H, W, 3)`` uint8 from :func:`detection_image`.

        Boxes and masks are in the image's pixels. A colour array is refused rather than silently
        detected on: the paper's boxes come from the grey image.
        """
        if grey.dtype != np.uint8 or grey.ndim != 3 or grey.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 grey image, got {grey.dtype} {grey.shape}")
        same = is_grey_view(grey) or (
            np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
        )
        if not same:
            raise ValueError("detectors run on the grey image: pass detection_image(image), not a colour image")
        return self.filter(self.detector.raw(grey))

    def detect(self, image: ImageInput) -> Instances:
        """Instances of any image (path, PIL, array, decoded): converted by :func:`detection_image`."""
        return self(detection_image(image))

    def __repr__(self) -> str:
        return f"FilteredDetector({self.detector.name}, {self.filter})"
