"""Box geometry: from boxes in original-image pixels to the per-grid placement the fusion uses.

The reference (``image_util.get_box_info``) maps each box corner to a grid of ``S x S`` cells by
``int(x / W * S)``, forces at least one cell of width and height, and describes the box by the
zero padding that places it on the grid. We reproduce it exactly, including its corner cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The four grids the fusion layers live on for a 256x256 network input.
FUSION_GRIDS: tuple[int, int, int, int] = (256, 128, 64, 32)


def edge_ramp(length: int, feather: float) -> np.ndarray:
    """``(length,)`` float32 weights across one side of a box, at pixel centres: rising from near 0 at
    either edge to 1 at ``feather * length`` (at least one pixel) inside it. The outer product of two
    is the feathered box of the confined fusion rule, so a box edge leaves no seam."""
    centres = np.arange(length, dtype=np.float32) + 0.5
    return np.minimum(np.minimum(centres, length - centres) / max(feather * length, 1.0), 1.0).astype(np.float32)


def sanitize_boxes(boxes: np.ndarray | Sequence[Sequence[float]], image_size: tuple[int, int]) -> np.ndarray:
    """Clip boxes to the image and make every box at least one pixel wide and high.

    Args:
        boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in original pixels (floats allowed).
        image_size: ``(width, height)`` of the original image.

    Returns:
        ``(N, 4)`` int64 boxes with ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``. Coordinates are
        truncated towards zero like the reference's ``astype(int32)``.
    """
    width, height = image_size
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(arr)):
        raise ValueError("boxes must be finite numbers")
    out = np.trunc(arr).astype(np.int64)
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    x1 = np.minimum(out[:, 0], out[:, 2])
    x2 = np.maximum(out[:, 0], out[:, 2])
    y1 = np.minimum(out[:, 1], out[:, 3])
    y2 = np.maximum(out[:, 1], out[:, 3])
    for lo, hi, limit in ((x1, x2, width), (y1, y2, height)):
        empty = hi <= lo
        grow_right = empty & (lo + 1 <= limit)
        hi[grow_right] = lo[grow_right] + 1
        shrink_left = empty & ~grow_right
        lo[shrink_left] = hi[shrink_left] - 1
    return np.stack([x1, y1, x2, y2], axis=1)


def box_info(box: Sequence[float], image_size: tuple[int, int], grid: int) -> list[int]:
    """Placement of one box on an ``grid x grid`` feature grid, exactly as the reference computes it.

    Args:
        box: ``x1, y1, x2, y2`` in original pixels.
        image_size: ``(width, height)`` of the original image.
        grid: side of the square grid (256, 128, 64 or 32 for a 256x256 input).

    Returns:
        ``[left_pad, right_pad, top_pad, bottom_pad, width, height]`` in grid cells.
    """
    image_w, image_h = image_size
    start_x = int(box[0] / image_w * grid)
    start_y = int(box[1] / image_h * grid)
    end_x = int(box[2] / image_w * grid)
    end_y = int(box[3] / image_h * grid)
    width = end_x - start_x
    height = end_y - start_y
    if width < 1:
        if grid - end_x > 1:
            end_x += 1
        else:
            start_x -= 1
        width = 1
    if height < 1:
        if grid - end_y > 1:
            end_y += 1
        else:
            start_y -= 1
        height = 1
    return [start_x, grid - end_x, start_y, grid - end_y, width, height]


def box_infos(
    boxes: np.ndarray, image_size: tuple[int, int], grids: Sequence[int] = FUSION_GRIDS
) -> dict[int, np.ndarray]:
    """:func:`box_info` for every box on every grid: ``{grid: (N, 6) int64}``."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return {
        grid: np.array([box_info(b, image_size, grid) for b in boxes], dtype=np.int64).reshape(-1, 6)
        for grid in grids
    }


def fusion_grids(size: int) -> tuple[int, int, int, int]:
    """The four fusion grids for a square network input of side ``size`` (divisible by 8)."""
    if size % 8:
        raise ValueError(f"network input size must be divisible by 8, got {size}")
    return (size, size // 2, size // 4, size // 8)
