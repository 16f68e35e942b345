"""Instance detection in-process: Mask R-CNN (torchvision, COCO) or the embedded CenterNet.

>>> detector = load_detector("auto")              # doctest: +SKIP
>>> instances = detector(detection_image("photo.jpg"))  # doctest: +SKIP

``"auto"`` picks Mask R-CNN when its weights are on this machine (the paper's detector family),
else the embedded CenterNet, which needs no download. See :mod:`instcolor.detection.base` for
the filtering (score threshold, classes, NMS, top-k) and the grey detection image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from instcolor.detection.base import (
    DEFAULT_IOU_THRESHOLD,
    DEFAULT_MAX_INSTANCES,
    NMS_MODES,
    DetectionFilter,
    Detector,
    FilteredDetector,
    NmsMode,
    check_class_names,
    detection_image,
)
from instcolor.detection.maskrcnn import DetectorWeightsError, MaskRCNNDetector, maskrcnn_available
from instcolor.devices import resolve_device

__all__ = [
    "DETECTOR_NAMES",
    "DetectionFilter",
    "Detector",
    "DetectorWeightsError",
    "FilteredDetector",
    "MaskRCNNDetector",
    "NMS_MODES",
    "NmsMode",
    "check_class_names",
    "choose_detector",
    "detection_image",
    "load_detector",
    "maskrcnn_available",
]

#: Accepted values of ``load_detector(name=...)``.
DETECTOR_NAMES: tuple[str, ...] = ("auto", "maskrcnn", "centernet", "none")


def choose_detector(name: str = "auto", weights: str | os.PathLike | None = None) -> str | None:
    """Resolve ``"auto"``: ``"maskrcnn"`` when its weights are present, else ``"centernet"``.

    Returns None for ``"none"``; never touches the network.
    """
    if name not in DETECTOR_NAMES:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    if name == "none":
        return None
    if name == "auto":
        return "maskrcnn" if maskrcnn_available(weights) else "centernet"
    return name


def load_detector(
    name: str = "auto",
    device: str | torch.device = "cpu",
    score_threshold: float | None = None,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    classes: Iterable[str] | None = None,
    nms: NmsMode = "class",
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    weights: str | os.PathLike | None = None,
    **detector_options,
) -> FilteredDetector | None:
    """A ready detector, ``detector(detection_image(image)) -> Instances``, or None for ``"none"``.

    Args:
        name: ``"auto"``, ``"maskrcnn"``, ``"centernet"`` or ``"none"``. ``detector.name`` says
            which one ``"auto"`` picked.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available).
        score_threshold: keep ``score >= score_threshold``; None uses the detector's default
            (0.7 for Mask R-CNN, as the paper).
        max_instances: at most this many instances per image, highest scores first (0: no cap).
        classes: COCO class names to keep; None keeps all.
        nms: ``"class"`` (per class, default), ``"agnostic"`` or ``"none"``.
        iou_threshold: NMS IoU threshold.
        weights: the detector's weights file; None uses its default source.
        detector_options: passed to the detector's constructor (e.g. Mask R-CNN's ``min_size``).
    """
    resolved = choose_detector(name, weights if name in ("auto", "maskrcnn") else None)
    if resolved is None:
        return None
    if str(device) == "auto":
        device = resolve_device(device)
    filter_options = dict(
        score_threshold=score_threshold,
        max_instances=max_instances,
        classes=None if classes is None else check_class_names(classes),
        nms=nms,
        iou_threshold=iou_threshold,
    )
    # Check the filter settings before spending time on loading a model.
    DetectionFilter(**{**filter_options, "score_threshold": score_threshold or 0.0})
    if resolved == "maskrcnn":
        candidate_threshold = MaskRCNNDetector.default_score_threshold if score_threshold is None else score_threshold
        detector: Detector = MaskRCNNDetector(
            weights=weights, device=device, candidate_threshold=candidate_threshold, **detector_options
        )
    else:
        from instcolor.detection.centernet import CenterNetDetector

        detector = CenterNetDetector(weights=weights, device=device, **detector_options)
    return FilteredDetector(detector, **filter_options)
