"""Colour rebalancing of the loss: rare colours weigh more (Zhang et al. ECCV 2016, section 2.2).

A colorization loss averaged over pixels is ruled by the common, desaturated colours of the
training set, so a network learns a safe brownish-grey ("the sepia look"). Zhang et al. weight each
pixel by the rarity of its ground-truth colour:

    w(q) ∝ ((1 - λ) p̃(q) + λ / Q)^-1,   normalised so that E_p[w] = 1,

where ``p̃`` is the empirical distribution of ab over the training set, quantised into bins of
:data:`AB_BIN` Lab units and smoothed with a Gaussian of :data:`PRIOR_SIGMA` units, ``Q`` the number
of bins in which colours occur and ``λ = 1 - strength`` (``strength`` 0.5 is their setting; 0 turns
rebalancing off). Here the weights multiply the per-pixel smooth-L1 loss of our regression, and are
normalised over the counted pixels themselves rather than the smoothed distribution.

Tables are ``(G, G)`` float64 arrays over the a (rows) and b (columns) bins of
``[-AB_LIMIT, AB_LIMIT)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from instcolor.color import AB_SCALE

#: Side of an ab bin in Lab units, and the ab range the bins cover.
AB_BIN = 10.0
AB_LIMIT = 120.0
GRID = int(2 * AB_LIMIT / AB_BIN)

#: Smoothing of the empirical distribution in Lab units (Zhang et al.: 5).
PRIOR_SIGMA = 5.0


def ab_bins(ab: torch.Tensor) -> torch.Tensor:
    """Bin index ``a_bin * GRID + b_bin`` of every pixel: ``(..., 2, H, W)`` ab / 110 -> ``(..., H, W)`` long."""
    lab_units = ab.float() * AB_SCALE
    index = ((lab_units + AB_LIMIT) / AB_BIN).floor().long().clamp_(0, GRID - 1)
    return index[..., 0, :, :] * GRID + index[..., 1, :, :]


def ab_histogram(targets: Iterable[torch.Tensor]) -> np.ndarray:
    """Pixel counts per ab bin ``(GRID, GRID)`` of ``(2, H, W)`` (or batched) ab / 110 targets."""
    counts = torch.zeros(GRID * GRID, dtype=torch.float64)
    for target in targets:
        counts += torch.bincount(ab_bins(target).flatten(), minlength=GRID * GRID).double()
    return counts.reshape(GRID, GRID).numpy()


def rebalancing_table(histogram: np.ndarray, strength: float = 0.5, sigma: float = PRIOR_SIGMA) -> np.ndarray:
    """Per-bin loss weights ``(GRID, GRID)`` from pixel counts; their mean over the counted pixels is 1
    (so the loss keeps its scale and the learning rate its meaning).

    Bins where no colour occurs (after smoothing) get weight 0: no target falls there.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"rebalancing strength must be in [0, 1), got {strength}")
    total = histogram.sum()
    if total <= 0:
        raise ValueError("no pixels to estimate the colour distribution from")
    empirical = _gaussian_blur(histogram / total, sigma / AB_BIN)
    occurring = empirical > 1e-5 * empirical.max()
    prior = np.where(occurring, empirical, 0.0)
    prior /= prior.sum()
    uniform_share = 1.0 - strength  # the paper's λ
    mixed = strength * prior + uniform_share / occurring.sum()
    weights = np.where(occurring, 1.0 / mixed, 0.0)
    return weights / (weights * histogram / total).sum()


def pixel_weights(target: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Loss weight of every pixel: ``(B, 2, H, W)`` ab / 110 and a ``(GRID, GRID)`` table -> ``(B, H, W)``."""
    return table.flatten().to(target.device)[ab_bins(target)]


def save_table(path: str | os.PathLike, table: np.ndarray, strength: float, pixels: float) -> None:
    """Write a table as JSON (kept in the run folder so that a resumed run uses the same one)."""
    data = {"ab_bin": AB_BIN, "ab_limit": AB_LIMIT, "strength": strength, "pixels": pixels, "table": table.tolist()}
    Path(path).write_text(json.dumps(data))


def load_table(path: str | os.PathLike) -> np.ndarray:
    data = json.loads(Path(path).read_text())
    if data.get("ab_bin") != AB_BIN or data.get("ab_limit") != AB_LIMIT:
        raise ValueError(f"{path}: a rebalancing table for another ab grid")
    return np.asarray(data["table"], dtype=np.float64)


def _gaussian_blur(values: np.ndarray, sigma_bins: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma_bins)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_bins) ** 2)
    taps /= taps.sum()
    padded = np.pad(values, radius)
    rows = np.apply_along_axis(lambda r: np.convolve(r, taps, mode="valid"), 0, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, taps, mode="valid"), 1, rows)
