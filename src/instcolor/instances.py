"""Detected (or user-given) instances and the boxes file that carries them between commands.

Boxes file format (JSON), written by ``instcolor detect`` and read by ``colorize --boxes``,
``train`` and ``evaluate``::

    {"photo.jpg": [{"box": [x1, y1, x2, y2], "score": 0.9, "label": "person",
                    "mask": {"size": [H, W], "counts": [...]}}, ...]}

Boxes are in pixels of the original image (after EXIF orientation); ``label`` is a COCO category
name; ``mask`` is optional, as uncompressed COCO run-length encoding (column-major, starting with a
run of zeros).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instcolor.io import atomic_write_bytes


@dataclass
class Instances:
    """Instances of one image.

    Attributes:
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels.
        scores: ``(N,)`` float32 detector confidences (1.0 for user-given boxes).
        labels: N COCO category names (``""`` when unknown).
        masks: ``(N, H, W)`` bool instance masks at the original resolution, or None.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = (
            np.ones(n, np.float32) if self.scores is None else np.asarray(self.scores, np.float32).reshape(-1)
        )
        self.labels = list(self.labels) if self.labels else [""] * n
        if len(self.scores) != n or len(self.labels) != n:
            raise ValueError(f"{n} boxes but {len(self.scores)} scores and {len(self.labels)} labels")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != n:
                raise ValueError(f"masks must be (N, H, W) with N={n}, got {self.masks.shape}")

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: np.ndarray | list[int]) -> Instances:
        """A new :class:`Instances` with only the rows in ``index`` (indices or a bool array)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Instances(
            boxes=self.boxes[index],
            scores=self.scores[index],
            labels=[self.labels[i] for i in index],
            masks=None if self.masks is None else self.masks[index],
        )

    def top(self, max_instances: int) -> Instances:
        """The ``max_instances`` highest-scoring instances (all when ``max_instances <= 0``)."""
        if max_instances <= 0 or len(self) <= max_instances:
            return self
        order = np.argsort(-self.scores, kind="stable")[:max_instances]
        return self.select(np.sort(order))

    def to_json(self) -> list[dict]:
        items = []
        for i in range(len(self)):
            item = {
                "box": [round(float(v), 2) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 4),
                "label": self.labels[i],
            }
            if self.masks is not None:
                item["mask"] = mask_to_rle(self.masks[i])
            items.append(item)
        return items

    @classmethod
    def from_json(cls, items: list[dict]) -> Instances:
        if not isinstance(items, list):
            raise ValueError("each image's entry must be a list of instances")
        boxes, scores, labels, masks = [], [], [], []
        for item in items:
            if "box" not in item or len(item["box"]) != 4:
                raise ValueError(f"instance without a 4-number 'box': {item!r}")
            boxes.append([float(v) for v in item["box"]])
            scores.append(float(item.get("score", 1.0)))
            labels.append(str(item.get("label", "")))
            masks.append(item.get("mask"))
        has_masks = bool(masks) and all(m is not None for m in masks)
        return cls(
            boxes=np.array(boxes, np.float32).reshape(-1, 4),
            scores=np.array(scores, np.float32),
            labels=labels,
            masks=np.stack([rle_to_mask(m) for m in masks]) if has_masks else None,
        )


def mask_to_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a ``(H, W)`` bool mask: column-major runs, first run of zeros."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Inverse of :func:`mask_to_rle`: ``(H, W)`` bool."""
    height, width = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, str):
        raise ValueError("compressed RLE strings are not supported; write masks with 'counts' as a list")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    if flat.size != height * width:
        raise ValueError(f"mask RLE has {flat.size} pixels, expected {height}x{width}")
    return flat.reshape((height, width), order="F")


def load_boxes_file(path: str | os.PathLike) -> dict[str, Instances]:
    """Read a boxes file: ``{image file name: Instances}``."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a valid boxes file ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a boxes file maps image file names to lists of instances")
    return {name: Instances.from_json(items) for name, items in data.items()}


def save_boxes_file(path: str | os.PathLike, entries: dict[str, Instances]) -> None:
    """Write a boxes file atomically."""
    lines = [f"{json.dumps(name)}: {json.dumps(inst.to_json())}" for name, inst in entries.items()]
    atomic_write_bytes(path, ("{\n" + ",\n".join(lines) + "\n}\n").encode())  # one image a line


def lookup_instances(
    entries: dict[str, Instances], image_path: str | os.PathLike, relative: str | os.PathLike | None = None
) -> Instances | None:
    """Find an image's entry by its path relative to the input folder, as given, file name, or stem."""
    image_path = Path(image_path)
    keys = ([Path(relative).as_posix()] if relative is not None else []) + [
        str(image_path), image_path.name, image_path.stem
    ]
    for key in keys:
        if key in entries:
            return entries[key]
    return None
