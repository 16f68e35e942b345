"""Colour hints: where a colour is known, in image pixels, and their planes on a network grid.

The SIGGRAPH 2017 backbone takes, besides the lightness, two hint planes (ab / 110 where a colour
is known, 0 elsewhere) and a mask plane (1 where known, 0 elsewhere, fed as ``mask - 0.5``;
:func:`instcolor.models.model.network_input`). Training, inference and evaluation share one
representation, :class:`Hints`: rectangles in pixels of the image, each with a Lab ab colour and
the instance it belongs to (``-1``: the whole image). :func:`hint_planes` draws them on any
``S x S`` grid laid over a region of the image: the whole image for the full-image network input,
a box for an instance crop, with the geometry of :func:`instcolor.inference.preprocess.crop_and_resize`
(the region's pixels stretched onto the grid). A rectangle marks every cell it overlaps, at least
one, so a hint never vanishes however small it is on a grid; image-wide hints appear in the
full-image input and in every crop they fall in, an instance's own hints only in its crop.

Training hints (:func:`draw_training_hints`) follow Zhang et al. 2017: the number of points from a
geometric distribution (``p = 1/8``), square patches of side 1 to 9 cells of the full-image grid
at a normally distributed place, each revealing the ground truth's mean colour over the patch,
plus a share of samples with no hint at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from instcolor.color.lab import AB_SCALE, rgb_to_lab
from instcolor.geometry import edge_ramp
from instcolor.instances import Colour, ImageEntriesError, parse_colour, read_image_entries

#: Side, in cells of the full-image network grid, of the patch a user's point hint covers.
POINT_SIDE = 3

#: Zhang et al.'s training draws: geometric ``p`` of the point count, the patch sides (cells).
GEOMETRIC_P = 1.0 / 8.0
PATCH_SIDES = tuple(range(1, 10))

#: Default share of training samples that get no hint at all (on top of the geometric's ``p``).
NO_HINT_SHARE = 0.25

#: Per-instance colour: hint patches on a lattice over the instance in its crop grid: lattice
#: points per crop side, and the patch side as a share of the lattice step (1: the patches tile the
#: silhouette). Measured on synthetic scenes (``benchmarks/hints_benefit.py``): tiling brought 88 %
#: of the objects within 20 degrees of the asked hue, patches covering 0.6 of the step 66-71 %.
INSTANCE_LATTICE = 16
INSTANCE_COVERAGE = 1.0

_EPS = 1e-6


@dataclass
class Hints:
    """Colour hints of one image.

    Attributes:
        rects: ``(K, 4)`` float64 ``x1, y1, x2, y2`` in image pixels (``x1 <= x2``, ``y1 <= y2``;
            a zero-size rectangle is a point).
        ab: ``(K, 2)`` float32 Lab a*, b* of each hint.
        instance: ``(K,)`` int64: ``-1`` for a hint of the whole image (full-image input and every
            crop it falls in), ``k`` for a hint of instance ``k`` only (its crop alone).
    """

    rects: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    ab: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    instance: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rects = np.asarray(self.rects, np.float64).reshape(-1, 4)
        self.ab = np.asarray(self.ab, np.float32).reshape(-1, 2)
        k = len(self.rects)
        self.instance = (
            np.full(k, -1, np.int64) if self.instance is None else np.asarray(self.instance, np.int64).reshape(-1)
        )
        if len(self.ab) != k or len(self.instance) != k:
            raise ValueError(f"{k} hint rectangles but {len(self.ab)} colours and {len(self.instance)} owners")

    def __len__(self) -> int:
        return len(self.rects)

    def __add__(self, other: Hints) -> Hints:
        return Hints(
            np.concatenate([self.rects, other.rects]),
            np.concatenate([self.ab, other.ab]),
            np.concatenate([self.instance, other.instance]),
        )

    def select(self, index) -> Hints:
        """The hints at ``index`` (indices, a slice or a bool array)."""
        return Hints(self.rects[index], self.ab[index], self.instance[index])


def span_cells(lo: float, hi: float, start: float, extent: float, size: int) -> tuple[int, int] | None:
    """Grid cells ``[first, last]`` that the pixel span ``[lo, hi]`` overlaps on a grid of ``size`` cells
    laid over ``[start, start + extent)``; None when it misses the grid."""
    scale = size / extent
    u1, u2 = (lo - start) * scale, (hi - start) * scale
    if u2 - u1 <= _EPS:  # a point: the cell it is in
        if u1 < -_EPS or u1 > size + _EPS:
            return None
        cell = min(max(int(np.floor(u1 + _EPS)), 0), size - 1)
        return cell, cell
    if u2 <= _EPS or u1 >= size - _EPS:
        return None
    first = max(int(np.floor(u1 + _EPS)), 0)
    last = min(max(int(np.ceil(u2 - _EPS)) - 1, first), size - 1)
    return first, last


def hint_planes(
    hints: Hints, region: Sequence[float], size: int, instance: int | None = None
) -> torch.Tensor | None:
    """The hints on an ``size x size`` grid stretched over ``region``: ``(1, 3, size, size)`` float32
    (ab / 110, then the mask in ``{0, 1}``), or None when no hint lands on it.

    Args:
        hints: the image's hints.
        region: ``x1, y1, x2, y2`` in image pixels: the whole image for the full-image input, the
            sanitized box (:func:`instcolor.geometry.sanitize_boxes`) for a crop.
        size: the grid side ``S``.
        instance: the crop's instance index: its own hints are drawn too; None for the full-image
            input (image-wide hints only).

    Later hints overwrite earlier ones where they overlap.
    """
    x1, y1, x2, y2 = (float(v) for v in region)
    planes = None
    wanted = (hints.instance == -1) | (hints.instance == (-1 if instance is None else instance))
    for k in np.flatnonzero(wanted):
        rx1, ry1, rx2, ry2 = hints.rects[k]
        cols = span_cells(rx1, rx2, x1, x2 - x1, size)
        rows = span_cells(ry1, ry2, y1, y2 - y1, size)
        if cols is None or rows is None:
            continue
        if planes is None:
            planes = torch.zeros((1, 3, size, size), dtype=torch.float32)
        a, b = (float(v) / AB_SCALE for v in hints.ab[k])
        window = planes[0, :, rows[0] : rows[1] + 1, cols[0] : cols[1] + 1]
        window[0], window[1], window[2] = a, b, 1.0
    return planes


def grid_hints(
    hints: Hints | None, image_size: tuple[int, int], boxes: np.ndarray, size: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Hint planes of the full-image input ``(1, 3, S, S)`` and of every crop ``(N, 3, S, S)``.

    Args:
        hints: the image's hints, or None.
        image_size: ``(width, height)``.
        boxes: ``(N, 4)`` sanitized int boxes (the crops' regions, index = instance).
        size: network side ``S``.

    Returns:
        ``(full, crops)``; each None when no hint lands on it (all crops: None when none of them gets one).
    """
    if hints is None or len(hints) == 0:
        return None, None
    width, height = image_size
    full = hint_planes(hints, (0, 0, width, height), size)
    per_crop = [hint_planes(hints, box, size, instance=i) for i, box in enumerate(np.asarray(boxes).tolist())]
    if all(p is None for p in per_crop):
        return full, None
    empty = torch.zeros((1, 3, size, size), dtype=torch.float32)
    return full, torch.cat([empty if p is None else p for p in per_crop])


# -- user hints


def colours_ab(colours: Sequence[Colour]) -> np.ndarray:
    """8-bit sRGB colours -> ``(K, 2)`` float32 Lab a*, b* (their lightness is the image's, not theirs)."""
    if not len(colours):
        return np.zeros((0, 2), np.float32)
    rgb = torch.tensor(colours, dtype=torch.float32).T.reshape(1, 3, -1, 1) / 255.0
    return rgb_to_lab(rgb)[0, 1:, :, 0].T.numpy().astype(np.float32)


def point_rect(x: float, y: float, image_size: tuple[int, int], size: int, side: int = POINT_SIDE) -> list[float]:
    """The pixel rectangle of a point hint: ``side x side`` cells of the full-image grid around it."""
    width, height = image_size
    rect = []
    for value, extent in ((x, width), (y, height)):
        cell = min(int(value / extent * size), size - 1)
        start = min(max(cell - (side - 1) // 2, 0), max(size - side, 0))
        rect.append((start * extent / size, min(start + side, size) * extent / size))
    (x1, x2), (y1, y2) = rect
    return [x1, y1, x2, y2]


def check_hint_items(items, image_size: tuple[int, int] | None = None) -> list[tuple[float, float, Colour]]:
    """Check user hints ``[{"xy": [x, y], "colour": "#rrggbb" or [r, g, b]}, ...]``: ``[(x, y, rgb)]``.

    ``"color"`` is accepted for ``"colour"``.

    Args:
        image_size: ``(width, height)``: points must lie in ``[0, width] x [0, height]``; None skips it.

    Raises:
        ValueError: not a list of such objects, a point outside the image, a bad colour; the
            message names the hint (1-based).
    """
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"hints must be a list of {{'xy': [x, y], 'colour': '#rrggbb'}}, got {items!r:.40}")
    checked = []
    for i, item in enumerate(items, start=1):
        where = f"hint {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: must be an object {{'xy': [x, y], 'colour': '#rrggbb'}}, got {item!r:.40}")
        unknown = sorted(set(item) - {"xy", "colour", "color"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
        xy = item.get("xy")
        if (
            not isinstance(xy, (list, tuple)) or len(xy) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xy)
        ):  # fmt: skip
            raise ValueError(f"{where}: 'xy' must be two numbers [x, y] in image pixels, got {xy!r:.40}")
        x, y = float(xy[0]), float(xy[1])
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"{where}: 'xy' must be finite numbers, got {xy!r:.40}")
        if image_size is not None and not (0 <= x <= image_size[0] and 0 <= y <= image_size[1]):
            raise ValueError(f"{where}: point [{x:g}, {y:g}] is outside the {image_size[0]}x{image_size[1]} image")
        colour = item.get("colour", item.get("color"))
        if colour is None:
            raise ValueError(f"{where}: no 'colour'")
        try:
            checked.append((x, y, parse_colour(colour)))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    return checked


def parse_hints(items, image_size: tuple[int, int], size: int = 256) -> Hints:
    """User hints (:func:`check_hint_items`) in pixels of a ``(width, height)`` image -> :class:`Hints`.

    Each point covers :data:`POINT_SIDE` cells of the ``size`` full-image grid; a :class:`Hints`
    passes through as it is.

    Raises:
        ValueError: see :func:`check_hint_items`.
    """
    if isinstance(items, Hints):
        return items
    checked = check_hint_items(items, image_size)
    rects = [point_rect(x, y, image_size, size) for x, y, _ in checked]
    return Hints(np.asarray(rects, np.float64).reshape(-1, 4), colours_ab([c for _, _, c in checked]))


class HintsFileError(ImageEntriesError):
    """A malformed hints file."""

    kind = "hints"


def read_hints_file(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Read and check a hints file ``{"photo.jpg": [{"xy": [x, y], "colour": "#rrggbb"}, ...], ...}``.

    Image names are looked up like the boxes file's (:func:`instcolor.instances.lookup_key`);
    points are checked against each image's size when it is colorized (:func:`parse_hints`).

    Raises:
        OSError: unreadable file.
        HintsFileError: not JSON, not a mapping, or an entry malformed (one line per image).
    """
    def checked(items: list) -> list[dict]:
        check_hint_items(items)
        return items

    return read_image_entries(path, checked, HintsFileError, "hints")


def instance_hints(
    boxes: np.ndarray,
    colours: Sequence[Colour | None],
    size: int,
    masks: np.ndarray | None = None,
    lattice: int = INSTANCE_LATTICE,
    coverage: float = INSTANCE_COVERAGE,
) -> Hints:
    """Hints that push instance ``k`` to ``colours[k]``: patches on a lattice over it, in its crop only.

    Args:
        boxes: ``(N, 4)`` sanitized int boxes in image pixels.
        colours: one 8-bit sRGB colour per box, None for no colour.
        size: network side ``S`` (the crop grid).
        masks: ``(N, H, W)`` bool instance masks: only lattice points on the silhouette are used
            (all of them when none is; the nearest to the box centre when the silhouette misses the
            lattice); None: the whole box.
        lattice: lattice points per crop side.
        coverage: patch side as a share of the lattice step (1: patches tile the instance).
    """
    rects, abs_, owners = [], [], []
    boxes = np.asarray(boxes).reshape(-1, 4)
    step = size / lattice
    patch = int(min(max(round(coverage * step), 1), size))
    centres = (np.arange(lattice) + 0.5) * step  # cell coordinates of the lattice points
    for k, colour in enumerate(colours):
        if colour is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        sx, sy = (x2 - x1) / size, (y2 - y1) / size
        grid_x, grid_y = np.meshgrid(centres, centres)
        points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        if masks is not None:
            px = np.clip((x1 + points[:, 0] * sx).astype(int), 0, masks.shape[2] - 1)
            py = np.clip((y1 + points[:, 1] * sy).astype(int), 0, masks.shape[1] - 1)
            on = masks[k][py, px]
            if on.any():
                points = points[on]
            else:
                points = points[[np.argmin(((points - size / 2) ** 2).sum(axis=1))]]
        ab = colours_ab([colour])[0]
        for cx, cy in points:
            c1 = np.clip(np.floor(cx - patch / 2), 0, size - patch)
            r1 = np.clip(np.floor(cy - patch / 2), 0, size - patch)
            rects.append([x1 + c1 * sx, y1 + r1 * sy, x1 + (c1 + patch) * sx, y1 + (r1 + patch) * sy])
            abs_.append(ab)
            owners.append(k)
    return Hints(np.asarray(rects, np.float64).reshape(-1, 4), np.asarray(abs_, np.float32).reshape(-1, 2), owners)


def instance_regions(
    boxes: np.ndarray, owners: Sequence[int], image_hw: tuple[int, int], masks: np.ndarray | None = None,
    feather: float = 0.125,
) -> torch.Tensor:
    """Where the instances ``owners`` are, as a ``(1, 1, H, W)`` float32 weight in ``[0, 1]``: their
    masks, or (without masks) their boxes with a border ramping from 0 to 1 over ``feather`` of the
    box side (the fusion's feathered box, so no seam); the maximum where they overlap.

    The colorizer joins the results with and without an instance's own hints by this weight, so
    that an instance colour leaves everything outside the instance as it was.
    """
    height, width = int(image_hw[0]), int(image_hw[1])
    weight = torch.zeros((1, 1, height, width), dtype=torch.float32)
    for k in sorted(set(int(o) for o in owners)):
        x1, y1, x2, y2 = (int(v) for v in np.asarray(boxes)[k])
        if masks is not None:
            region = torch.from_numpy(np.asarray(masks[k][y1:y2, x1:x2], np.float32))
        else:
            rows, cols = (torch.from_numpy(edge_ramp(length, feather)) for length in (y2 - y1, x2 - x1))
            region = rows[:, None] * cols[None, :]
        window = weight[0, 0, y1:y2, x1:x2]
        torch.maximum(window, region, out=window)
    return weight


# -- training hints


def draw_training_hints(
    target_ab: torch.Tensor,
    image_size: tuple[int, int],
    generator: torch.Generator,
    count: int | None = None,
    no_hint_share: float = NO_HINT_SHARE,
    p: float = GEOMETRIC_P,
    sides: Sequence[int] = PATCH_SIDES,
) -> Hints:
    """Random hints revealing the ground truth, as Zhang et al. 2017 trained with.

    Args:
        target_ab: ``(2, S, S)`` ground-truth ab / 110 of the whole image on the full-image grid.
        image_size: ``(width, height)`` of the image in pixels (the hints come back in its pixels).
        generator: the sample's random draws.
        count: exactly this many points (evaluation); None: none with probability
            ``no_hint_share``, else a geometric number (``P(n) = p (1 - p)^n``, n >= 0).
        sides: patch sides to draw from, in cells of the full-image grid.

    Each point: a ``side x side`` patch at a normally distributed place (mean the centre, standard
    deviation a quarter of the free range, clipped), coloured by the target's mean over it.
    """
    size_y, size_x = target_ab.shape[-2:]
    if count is None:
        if float(torch.rand((), generator=generator)) < no_hint_share:
            count = 0
        else:
            count = 0
            while float(torch.rand((), generator=generator)) >= p:
                count += 1
    width, height = image_size
    rects = np.zeros((count, 4), np.float64)
    ab = np.zeros((count, 2), np.float32)
    for i in range(count):
        side = int(sides[int(torch.randint(len(sides), (), generator=generator))])
        side_x, side_y = min(side, size_x), min(side, size_y)
        draws = torch.randn(2, generator=generator).tolist()
        top = int(np.clip((size_y - side_y + 1) / 2 + draws[0] * (size_y - side_y + 1) / 4, 0, size_y - side_y))
        left = int(np.clip((size_x - side_x + 1) / 2 + draws[1] * (size_x - side_x + 1) / 4, 0, size_x - side_x))
        patch = target_ab[:, top : top + side_y, left : left + side_x]
        ab[i] = (patch.float().mean(dim=(1, 2)) * AB_SCALE).numpy()
        rects[i] = (
            left * width / size_x, top * height / size_y,
            (left + side_x) * width / size_x, (top + side_y) * height / size_y,
        )  # fmt: skip
    return Hints(rects, ab)
