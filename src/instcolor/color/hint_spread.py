"""Colour hints spread over a colorized result, edge-aware: what a user's click does by default.

A hint says "this spot is this colour". The networks can take hints as inputs
(:mod:`instcolor.color.hints`), but only weights trained with them follow them, and the small
starter networks follow them weakly. :func:`spread_hints` works with any weights: it measures
each hint's **residual** (its colour minus the result's mean colour under it) and adds a blend of
the residuals to the result, each weighted at every pixel by a joint bilateral kernel: near the
hint in the image, in lightness and in the result's own colour (pixels the networks already
coloured like the hinted spot are likely the same surface). Where no hint is near, a prior weight
keeps the result as it was. Without hints the result is untouched.

An instance colour (:func:`shift_to_colour`) moves the result inside the instance (its mask, or for a
box alone the object a random walk finds in it, :func:`box_foreground`) so that its mean is the
asked colour, and nothing outside it.

The kernel's widths were chosen on the starter's validation photos and measured on held-out
photos (``instcolor evaluate --hints``; the README's colour hints section has the numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from instcolor.color.hints import Hints, colours_ab, instance_regions, span_cells

#: Spatial width of a hint's kernel, as a share of the image diagonal.
SPATIAL_SIGMA = 0.2
#: Lightness width (L units): pixels this much lighter or darker than the hinted spot get e^-1/2.
LIGHTNESS_SIGMA = 10.0
#: Colour width (ab units) against the result's own colour at the hinted spot.
CHROMA_SIGMA = 10.0
#: Weight of "keep the result" at every pixel: a pixel right on a hint takes 1 / (1 + PRIOR) of it.
PRIOR = 0.1
#: The residuals are blended on a grid whose long side is at most this (then upsampled, like the
#: networks' chroma); the kernels are smooth at that scale.
WORK_SIDE = 512


def _cells(lo: float, hi: float, extent: float, cells: int) -> slice:
    """The grid cells a span ``[lo, hi]`` inside ``[0, extent]`` overlaps, at least one
    (:func:`instcolor.color.hints.span_cells`, the hint planes' own mapping), as a slice."""
    first, last = span_cells(lo, hi, 0.0, extent, cells)
    return slice(first, last + 1)


def spread_hints(
    lightness: torch.Tensor,
    ab: torch.Tensor,
    hints: Hints,
    *,
    spatial_sigma: float = SPATIAL_SIGMA,
    lightness_sigma: float = LIGHTNESS_SIGMA,
    chroma_sigma: float = CHROMA_SIGMA,
    prior: float = PRIOR,
    work_side: int = WORK_SIDE,
) -> torch.Tensor:
    """``ab`` moved towards each hint's colour around it, edge-aware.

    Args:
        lightness: ``(1, 1, H, W)`` Lab L in ``[0, 100]``.
        ab: ``(1, 2, H, W)`` Lab a*, b* of the result (Lab units).
        hints: colour hints in pixels of the ``W x H`` image (every hint is used, whoever owns it).
        spatial_sigma, lightness_sigma, chroma_sigma, prior, work_side: the kernel (module constants).

    Returns:
        ``(1, 2, H, W)`` float32 ab: ``ab`` plus the blended residuals. ``ab`` itself when there is no hint.
    """
    if not len(hints):
        return ab
    height, width = ab.shape[-2:]
    scale = min(1.0, work_side / max(height, width))
    grid = (max(round(height * scale), 1), max(round(width * scale), 1))
    small_l = F.interpolate(lightness.float(), size=grid, mode="area")[0, 0]
    small_ab = F.interpolate(ab.float(), size=grid, mode="area")[0]
    rows = (torch.arange(grid[0], device=ab.device, dtype=torch.float32) + 0.5) * (height / grid[0])
    cols = (torch.arange(grid[1], device=ab.device, dtype=torch.float32) + 0.5) * (width / grid[1])
    reach = spatial_sigma * math.hypot(height, width)
    blend = torch.zeros((2, *grid), device=ab.device)
    total = torch.full(grid, float(prior), device=ab.device)
    colours = torch.as_tensor(hints.ab, dtype=torch.float32, device=ab.device)
    for (x1, y1, x2, y2), colour in zip(hints.rects.tolist(), colours):
        spot = (_cells(y1, y2, height, grid[0]), _cells(x1, x2, width, grid[1]))
        spot_ab = small_ab[:, spot[0], spot[1]].mean(dim=(1, 2))
        spot_l = small_l[spot].mean()
        distance = ((rows - (y1 + y2) / 2)[:, None] ** 2 + (cols - (x1 + x2) / 2)[None, :] ** 2) / reach**2
        energy = (
            distance
            + ((small_l - spot_l) / lightness_sigma) ** 2
            + ((small_ab - spot_ab[:, None, None]) ** 2).sum(dim=0) / chroma_sigma**2
        )
        weight = torch.exp(-0.5 * energy)
        blend += weight * (colour - spot_ab)[:, None, None]
        total += weight
    correction = (blend / total)[None]
    if grid != (height, width):
        correction = F.interpolate(correction, size=(height, width), mode="bilinear", align_corners=False)
    return ab + correction.to(ab.dtype)


def shift_to_colour(ab: torch.Tensor, weight: torch.Tensor, colour: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """``ab`` shifted, in proportion to ``weight``, so that its mean where ``weight > 0.5`` is ``colour``.

    What an instance colour does by default: the instance's core takes the asked mean colour and
    keeps its own variation (the result's texture) around it, its soft border takes part of the
    step (one step, scaled by the weight: at most twice the core's mean move, when all of the core
    is at 0.5), and pixels of weight 0 do not move.

    Args:
        ab: ``(1, 2, H, W)`` Lab a*, b*.
        weight: ``(1, 1, H, W)`` in ``[0, 1]``: where the instance is (its mask, or its feathered box;
            :func:`instcolor.color.hints.instance_regions`).
        colour: the asked a*, b*.

    Returns:
        ``(1, 2, H, W)`` ab; ``ab`` itself when no weight is above 0.5.
    """
    weight = weight.to(ab.device, ab.dtype)
    core = weight > 0.5
    if not core.any() or not torch.isfinite(weight).all():
        return ab
    mean = ab[:, :, core[0, 0]].mean(dim=(0, 2))
    asked = torch.as_tensor(colour, dtype=ab.dtype, device=ab.device)
    step = (asked - mean) / weight[core].mean()  # the core's own soft pixels (0.5 to 1) take part of it
    return ab + weight * step[None, :, None, None]


#: Seeds of :func:`box_foreground`: the central patch of the box (this share of its sides) is the
#: object; a ring around the box, this share of its sides wide, is the background (a detector's box
#: is tight: the object touches its edges).
BOX_CENTRE_SHARE = 0.2
BOX_RING_SHARE = 0.15
#: :func:`box_foreground` works on the region resized so that its long side is at most this.
BOX_WORK_SIDE = 96
#: Edge sensitivity of the random walk (scikit-image's ``beta``; it divides it by ten times the
#: region's lightness deviation, so the edges count relative to the region's own contrast).
RANDOM_WALK_BETA = 2000.0
#: A region flatter than this (lightness deviation, L units) has no edge to follow: all object.
FLAT_REGION = 0.5


def box_foreground(lightness: torch.Tensor, box: Sequence[int]) -> torch.Tensor:
    """How likely each pixel of ``box`` belongs to the object in it: ``(y2 - y1, x2 - x1)`` in ``[0, 1]``.

    For an instance known only by its box: a random walk on the lightness (Grady 2006,
    :func:`skimage.segmentation.random_walker`) from two seeds, the box's centre
    (:data:`BOX_CENTRE_SHARE` of its sides: the object) and the edge of a ring around the box
    (:data:`BOX_RING_SHARE` of its sides: the background, on the sides where the image leaves at
    least half of it), gives each pixel the probability of reaching the centre first, which
    follows the object's edges. A box that fills the image has no ring, and a flat region no edge:
    all of it is the object then.

    Args:
        lightness: ``(1, 1, H, W)`` Lab L in ``[0, 100]``.
        box: ``x1, y1, x2, y2`` integer pixels inside the image, each side at least 1.
    """
    from skimage.segmentation import random_walker

    height, width = lightness.shape[-2:]
    x1, y1, x2, y2 = (int(v) for v in box)
    mx, my = round(BOX_RING_SHARE * (x2 - x1)), round(BOX_RING_SHARE * (y2 - y1))
    ox1, oy1, ox2, oy2 = max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, width), min(y2 + my, height)
    region = lightness[0, 0, oy1:oy2, ox1:ox2].float().cpu()
    scale = min(1.0, BOX_WORK_SIDE / max(region.shape))
    grid = (max(round(region.shape[0] * scale), 3), max(round(region.shape[1] * scale), 3))
    small = F.interpolate(region[None, None], size=grid, mode="area")[0, 0].numpy() / 100.0
    seeds = np.zeros(grid, np.int32)
    rings = ((np.s_[0, :], y1 - oy1, my), (np.s_[-1, :], oy2 - y2, my), (np.s_[:, 0], x1 - ox1, mx), (np.s_[:, -1], ox2 - x2, mx))
    for side, ring, wanted in rings:
        if ring >= max(wanted / 2, 1):  # a ring cut thin by the image's edge is still the object's
            seeds[side] = 2
    if not (seeds == 2).any() or small.std() * 100.0 < FLAT_REGION:
        return torch.ones((y2 - y1, x2 - x1))
    box_rows = _cells(y1 - oy1, y2 - oy1, oy2 - oy1, grid[0])
    box_cols = _cells(x1 - ox1, x2 - ox1, ox2 - ox1, grid[1])
    centre = [
        _cells(lo + (hi - lo) * (1 - BOX_CENTRE_SHARE) / 2, lo + (hi - lo) * (1 + BOX_CENTRE_SHARE) / 2, n, n)
        for lo, hi, n in ((box_rows.start, box_rows.stop, grid[0]), (box_cols.start, box_cols.stop, grid[1]))
    ]
    seeds[centre[0], centre[1]] = 1
    chance = random_walker(small, seeds, beta=RANDOM_WALK_BETA, mode="bf", return_full_prob=True)[0]
    chance = torch.from_numpy(np.ascontiguousarray(chance, dtype=np.float32))[None, None]
    chance = F.interpolate(chance, size=region.shape, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)
    return chance[y1 - oy1 : y2 - oy1, x1 - ox1 : x2 - ox1]


def instance_colour_weight(
    lightness: torch.Tensor, boxes: np.ndarray, index: int, masks: np.ndarray | None = None, feather: float = 0.125
) -> torch.Tensor:
    """Where instance ``index`` takes an asked colour: ``(1, 1, H, W)`` in ``[0, 1]``.

    Its feathered box (:func:`instcolor.color.hints.instance_regions`) times its silhouette where
    its mask is one (the box's ramp softens where the box cuts the silhouette), else times the
    object a random walk finds in the box (:func:`box_foreground`).

    Args:
        lightness: ``(1, 1, H, W)`` Lab L; boxes: ``(N, 4)`` sanitized int boxes in its pixels.
        masks: ``(N, H, W)`` bool instance masks (one that fills its box, or is empty in it, counts
            as none), or None.
    """
    height, width = lightness.shape[-2:]
    weight = instance_regions(boxes, [index], (height, width), None, feather)
    x1, y1, x2, y2 = (int(v) for v in boxes[index])
    silhouette = None if masks is None else masks[index][y1:y2, x1:x2]
    if silhouette is not None and silhouette.any() and not silhouette.all():
        return weight * instance_regions(boxes, [index], (height, width), masks, feather)
    weight[..., y1:y2, x1:x2] *= box_foreground(lightness, (x1, y1, x2, y2))
    return weight


def shift_instances(
    lightness: torch.Tensor,
    ab: torch.Tensor,
    boxes: np.ndarray,
    colours: Sequence,
    masks: np.ndarray | None = None,
    feather: float = 0.125,
) -> torch.Tensor:
    """Each instance with a colour shifted to it (:func:`shift_to_colour`) over
    :func:`instance_colour_weight`, in instance order: where coloured instances overlap, the later
    one's colour wins.

    Args:
        lightness: ``(1, 1, H, W)`` Lab L; ab: ``(1, 2, H, W)`` Lab a*, b*.
        boxes: ``(N, 4)`` sanitized int boxes; colours: N 8-bit sRGB colours, None for no colour.
        masks: ``(N, H, W)`` bool instance masks, or None.
    """
    for index, colour in enumerate(colours):
        if colour is not None:
            weight = instance_colour_weight(lightness, boxes, index, masks, feather)
            ab = shift_to_colour(ab, weight, colours_ab([colour])[0])
    return ab
