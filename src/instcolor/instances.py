"""Detected (or user-given) instances and the boxes file that carries them between commands.

Boxes file format (JSON), written by ``instcolor detect`` and read by ``colorize --boxes``,
``train`` and ``evaluate``::

    {"photo.jpg": [{"box": [x1, y1, x2, y2], "score": 0.9, "label": "person",
                    "mask": {"size": [H, W], "counts": [...]}, "colour": "#b22222"}, ...]}

Boxes are in pixels of the original image (after EXIF orientation); ``label`` is a COCO category
name; ``mask`` is optional, as uncompressed COCO run-length encoding (column-major, starting with a
run of zeros); ``colour`` is optional (``"#rrggbb"`` or ``[r, g, b]``, ``"color"`` also read): the
colour the user wants that instance to have (a hint, :func:`instcolor.color.hints.instance_hints`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instcolor.io import atomic_write_bytes

#: An instance's wanted colour: 8-bit sRGB.
Colour = tuple[int, int, int]


@dataclass
class Instances:
    """Instances of one image.

    Attributes:
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels.
        scores: ``(N,)`` float32 detector confidences (1.0 for user-given boxes).
        labels: N COCO category names (``""`` when unknown).
        masks: ``(N, H, W)`` bool instance masks at the original resolution, or None.
        colours: N wanted colours (8-bit sRGB, None for an instance without one), or None when no
            instance has one.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)
    masks: np.ndarray | None = None
    colours: list[Colour | None] | None = None

    def __post_init__(self) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # a huge coordinate becomes inf, dropped by check_boxes
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
        if self.colours is not None:
            self.colours = [None if c is None else parse_colour(c) for c in self.colours]
            if len(self.colours) != n:
                raise ValueError(f"{n} boxes but {len(self.colours)} colours")
            if all(c is None for c in self.colours):
                self.colours = None

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
            colours=None if self.colours is None else [self.colours[i] for i in index],
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
            if self.colours is not None and self.colours[i] is not None:
                item["colour"] = "#{:02x}{:02x}{:02x}".format(*self.colours[i])
            items.append(item)
        return items

    @classmethod
    def from_json(cls, items: list[dict]) -> Instances:
        if not isinstance(items, list):
            raise ValueError("each image's entry must be a list of instances")
        return BoxesFile({"": [_parse_item(item) for item in items]}).instances("")[0]


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
    height, width = check_rle(rle)
    counts = rle["counts"]
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    if flat.size != height * width:
        raise ValueError(f"mask RLE has {flat.size} pixels, expected {height}x{width}")
    return flat.reshape((height, width), order="F")


#: The most pixels a mask in a boxes file may declare (Pillow's decompression-bomb limit).
MAX_MASK_PIXELS = 2 * 89_478_485

#: The default cap on instances per image, everywhere (the paper's 8).
DEFAULT_MAX_INSTANCES = 8


class ImageEntriesError(ValueError):
    """A malformed per-image JSON file (:func:`read_image_entries`); :attr:`problems` holds one line
    per image entry that is wrong."""

    #: What the file is, in messages.
    kind = "per-image"

    def __init__(self, path: str | os.PathLike, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        super().__init__(f"{os.fspath(path)}: malformed {self.kind} file:\n  " + "\n  ".join(shown))


class BoxesFileError(ImageEntriesError):
    """A malformed boxes file."""

    kind = "boxes"


def read_image_entries(path: str | os.PathLike, parse: Callable, error: type[ImageEntriesError], items: str) -> dict:
    """Read a JSON file mapping image file names to lists (the boxes file, the hints file), checked.

    Args:
        parse: an image's list -> its parsed entry; raises ValueError naming what is wrong.
        error: the error raised with one line per bad entry (or for a file that is not such a mapping).
        items: what the lists hold, in messages ("instances", "hints").

    Raises:
        OSError: unreadable file.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(path, [f"not a valid {error.kind} file ({err})"]) from err
    if not isinstance(data, dict):
        raise error(path, [f"a {error.kind} file maps image file names to lists of {items}"])
    entries: dict = {}
    problems: list[str] = []
    for name, value in data.items():
        if not isinstance(value, list):
            problems.append(f"{name}: each image's entry must be a list of {items}")
            continue
        try:
            entries[name] = parse(value)
        except ValueError as err:
            problems.append(f"{name}: {err}")
    if problems:
        raise error(path, problems)
    return entries


_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def parse_colour(value) -> tuple[int, int, int]:
    """``"#rrggbb"`` or ``[r, g, b]`` (integers 0-255) -> ``(r, g, b)``; ValueError naming what is wrong."""
    if isinstance(value, str):
        match = _HEX.fullmatch(value.strip())
        if not match:
            raise ValueError(f"a colour must be '#rrggbb' or [r, g, b], got {value!r:.40}")
        digits = match.group(1)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    if (
        isinstance(value, (list, tuple)) and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):  # fmt: skip
        return int(value[0]), int(value[1]), int(value[2])
    raise ValueError(f"a colour must be '#rrggbb' or [r, g, b] with integers 0-255, got {value!r:.40}")


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r:.40}")
    return float(value)


def check_rle(rle, image_size: tuple[int, int] | None = None, max_pixels: int = MAX_MASK_PIXELS) -> tuple[int, int]:
    """Check a mask's declared ``size`` (and its run lengths) without decoding it: ``(H, W)``.

    Raises:
        ValueError: a malformed mask, one larger than ``max_pixels``, whose runs do not add up to its
            size, or (with ``image_size`` as ``(width, height)``) whose size is not the image's.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("a mask must be {'size': [H, W], 'counts': [...]}")
    size = rle["size"]
    if (
        not isinstance(size, list) or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):  # fmt: skip
        raise ValueError(f"a mask's 'size' must be two positive integers [H, W], got {size!r:.60}")
    height, width = size
    if height * width > max_pixels:
        raise ValueError(f"a mask declares {height}x{width} pixels, more than the limit of {max_pixels}")
    if image_size is not None and (width, height) != tuple(image_size):
        raise ValueError(f"a mask is {height}x{width} but the image is {image_size[1]}x{image_size[0]}")
    counts = rle["counts"]
    if isinstance(counts, str):
        raise ValueError("compressed RLE strings are not supported; write masks with 'counts' as a list")
    if not isinstance(counts, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
    ):
        raise ValueError("a mask's 'counts' must be a list of non-negative integers")
    if sum(counts) != height * width:
        raise ValueError(f"mask RLE has {sum(counts)} pixels, expected {height}x{width}")
    return height, width


def _parse_item(item) -> tuple[list[float], float, str, dict | None, Colour | None]:
    if not isinstance(item, dict):
        raise ValueError(f"an instance must be an object with a 'box', got {item!r:.40}")
    box = item.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise ValueError(f"instance without a 4-number 'box': {item!r:.60}")
    coords = [_number(v, "a box coordinate") for v in box]
    score = _number(item.get("score", 1.0), "a score")
    if score != score:
        raise ValueError("a score is NaN")
    label = item.get("label", "")
    if not isinstance(label, str):
        raise ValueError(f"a label must be a string, got {label!r:.40}")
    mask = item.get("mask")
    if mask is not None:
        check_rle(mask)
    colour = item.get("colour", item.get("color"))
    return coords, score, label, mask, None if colour is None else parse_colour(colour)


class BoxesFile(Mapping):
    """A checked boxes file, ``{image file name: Instances}``; masks are decoded only when asked for.

    Every entry was checked when the file was read (structure, numbers, each mask's declared size
    and run lengths), so looking one up decodes at most that image's masks.
    """

    def __init__(self, entries: dict[str, list[tuple[list[float], float, str, dict | None, Colour | None]]]) -> None:
        self._entries = entries

    def __getitem__(self, key: str) -> Instances:
        return self.instances(key)[0]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def has_colours(self) -> bool:
        """Whether any instance in the file asks for a colour."""
        return any(item[4] is not None for items in self._entries.values() for item in items)

    def instances(
        self, key: str, image_size: tuple[int, int] | None = None, max_instances: int = 0
    ) -> tuple[Instances, list[str]]:
        """One image's instances and a note per box dropped, clipped or left out by the cap.

        Args:
            key: the image's key in the file.
            image_size: ``(width, height)`` of the image: boxes are clipped to it and each mask's
                declared size is checked against it before it is decoded; None skips both.
            max_instances: keep the highest-scored (then largest) this many (0: all).
        """
        items = self._entries[key]
        boxes = np.array([item[0] for item in items], np.float64).reshape(-1, 4)
        scores = np.array([item[1] for item in items], np.float64)
        keep, notes, fixed = check_boxes(boxes, scores, image_size, max_instances)
        kept = [items[i] for i in keep]
        rles = [item[3] for item in kept]
        masks = None
        if kept and all(m is not None for m in rles):
            for i, rle in zip(keep, rles):
                try:
                    check_rle(rle, image_size)
                except ValueError as err:
                    raise ValueError(f"box {i + 1}: {err}") from None
            masks = np.stack([rle_to_mask(m) for m in rles])
        return (
            Instances(
                boxes=fixed[keep].astype(np.float32),
                scores=np.array([item[1] for item in kept], np.float32),
                labels=[item[2] for item in kept],
                masks=masks,
                colours=[item[4] for item in kept],
            ),
            notes,
        )


def _clip(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    width, height = image_size
    out = np.array(boxes, np.float64).reshape(-1, 4)
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    return out


def check_boxes(
    boxes: np.ndarray, scores: np.ndarray | None, image_size: tuple[int, int] | None, max_instances: int = 0
) -> tuple[list[int], list[str], np.ndarray]:
    """Which boxes to keep, one note per box changed or dropped and for the cap, and the boxes fixed.

    An inverted box (``x2 < x1`` or ``y2 < y1``) has its corners swapped; a box with a NaN or
    infinite coordinate, a box of zero area and (given ``image_size``) a box wholly outside the image
    are dropped; a box reaching outside the image is clipped to it. Then at most ``max_instances`` are kept (0: all), highest
    score first, then largest area. Indices are returned in their original order.
    """
    boxes = np.array(boxes, np.float64).reshape(-1, 4)  # a copy: inverted boxes are swapped in it
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    keep: list[int] = []
    notes: list[str] = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        shown = f"box {i + 1} {[x1, y1, x2, y2]}"
        if (x2 < x1 or y2 < y1) and all(np.isfinite([x1, y1, x2, y2])):
            notes.append(f"{shown} is inverted (x2 < x1 or y2 < y1): corners swapped")
            x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
            boxes[i] = (x1, y1, x2, y2)
        if not all(np.isfinite([x1, y1, x2, y2])):
            notes.append(f"{shown} dropped: not a finite number")
        elif x2 == x1 or y2 == y1:
            notes.append(f"{shown} dropped: zero area")
        elif image_size is not None and (x2 <= 0 or y2 <= 0 or x1 >= image_size[0] or y1 >= image_size[1]):
            notes.append(f"{shown} dropped: outside the {image_size[0]}x{image_size[1]} image")
        else:
            if image_size is not None and (x1 < 0 or y1 < 0 or x2 > image_size[0] or y2 > image_size[1]):
                clipped = [round(v, 2) for v in _clip(boxes[i], image_size)[0].tolist()]
                notes.append(f"{shown} clipped to the image: {clipped}")
            keep.append(i)
    if 0 < max_instances < len(keep):
        area = [(boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]) for i in keep]
        order = sorted(range(len(keep)), key=lambda j: (-scores[keep[j]], -area[j]))[:max_instances]
        notes.append(
            f"kept the {max_instances} highest-scored (then largest) of {len(keep)} boxes "
            "(--max-instances, 0: no cap)"
        )
        keep = sorted(keep[j] for j in order)
    if image_size is not None:
        boxes = _clip(boxes, image_size)
    return keep, notes, boxes


def read_boxes_file(path: str | os.PathLike) -> BoxesFile:
    """Read and check a boxes file; masks stay encoded until an image's entry is looked up.

    Raises:
        OSError: unreadable file.
        BoxesFileError: not JSON, not a mapping, or any entry malformed (one line per image).
    """
    return BoxesFile(read_image_entries(path, lambda items: [_parse_item(i) for i in items], BoxesFileError, "instances"))


def load_boxes_file(path: str | os.PathLike, max_instances: int = 0) -> BoxesFile:
    """Read a boxes file: ``{image file name: Instances}`` (checked; masks decoded on lookup).

    Args:
        max_instances: when positive, each lookup keeps at most this many instances (highest score,
            then largest), before any mask is decoded.
    """
    entries = read_boxes_file(path)
    if max_instances > 0:
        entries = _CappedBoxesFile(entries._entries, max_instances)
    return entries


class _CappedBoxesFile(BoxesFile):
    def __init__(self, entries, max_instances: int) -> None:
        super().__init__(entries)
        self.max_instances = max_instances

    def instances(self, key, image_size=None, max_instances=0):
        return super().instances(key, image_size, max_instances or self.max_instances)


def save_boxes_file(path: str | os.PathLike, entries: dict[str, Instances]) -> None:
    """Write a boxes file atomically."""
    lines = [f"{json.dumps(name)}: {json.dumps(inst.to_json())}" for name, inst in entries.items()]
    atomic_write_bytes(path, ("{\n" + ",\n".join(lines) + "\n}\n").encode())  # one image a line


def lookup_key(
    entries: Mapping[str, object], image_path: str | os.PathLike, relative: str | os.PathLike | None = None
) -> str | None:
    """An image's key in a boxes file: its path relative to the input folder, as given, file name, or stem."""
    image_path = Path(image_path)
    keys = ([Path(relative).as_posix()] if relative is not None else []) + [
        str(image_path), image_path.name, image_path.stem
    ]
    return next((key for key in keys if key in entries), None)


def lookup_instances(
    entries: Mapping[str, Instances], image_path: str | os.PathLike, relative: str | os.PathLike | None = None
) -> Instances | None:
    """Find an image's entry by its path relative to the input folder, as given, file name, or stem."""
    key = lookup_key(entries, image_path, relative)
    return None if key is None else entries[key]
