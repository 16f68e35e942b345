"""Global motion between two frames (camera pan, zoom, small rotation) and warping by it.

:func:`estimate_motion` fits one affine map from the current frame's pixel positions to the
previous frame's, on the frames' lightness:

1. both frames are shrunk so the long side is at most ``max_side`` pixels (global motion needs no
   detail, and the fit then costs 10-50 ms on one CPU core at any film size);
2. the translation is found first by **phase correlation** (the peak of the normalised
   cross-power spectrum), which catches pans of any length up to half the frame;
3. it is refined to a full affine map by **Gauss-Newton image alignment** (Lucas-Kanade, forward
   additive) over a 3-level pyramid, with Tukey weights so that a moving object or new content at
   the borders does not drag the camera's fit;
4. the fit is kept only if it explains the current frame better than no motion at all (capped
   lightness error, so a large moving object cannot pass for a camera move).

The map is a ``(1, 2, 3)`` ``theta`` in the normalised coordinates of
:func:`torch.nn.functional.affine_grid` (``align_corners=False``): the same ``theta`` holds at any
resolution, and :func:`warp` samples the previous frame's chroma (or anything else) at the positions
it gives, so that it lines up with the current frame; :func:`move_boxes` carries boxes of the
previous frame forward by it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IDENTITY = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])


def warp(image: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``image`` ``(1, C, H, W)`` at ``theta``'s positions (bilinear).

    Returns the warped image ``(1, C, H, W)`` and where it is defined, ``(1, 1, H, W)`` in ``[0, 1]``
    (0 where the position falls outside the image: content that came into view).
    """
    grid = F.affine_grid(theta.to(image.dtype), list(image.shape), align_corners=False)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = ((grid.abs() <= 1.0).all(-1)).to(image.dtype)[:, None]
    return warped, inside


def _shrink(image: torch.Tensor, max_side: int) -> torch.Tensor:
    height, width = image.shape[-2:]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(8, round(height * scale)), max(8, round(width * scale)))
    return F.interpolate(image, size=size, mode="area")


def phase_correlation(previous: torch.Tensor, current: torch.Tensor) -> tuple[float, float]:
    """The shift ``(dx, dy)`` in pixels with ``current(x) ~ previous(x - d)``; images ``(1, 1, H, W)``."""
    height, width = current.shape[-2:]
    window = torch.outer(torch.hann_window(height, periodic=False), torch.hann_window(width, periodic=False))
    spectra = [torch.fft.rfft2((image[0, 0] - image[0, 0].mean()) * window) for image in (previous, current)]
    cross = spectra[1] * spectra[0].conj()
    surface = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-9), s=(height, width))
    peak = int(torch.argmax(surface))
    dy, dx = divmod(peak, width)
    dy = dy - height if dy > height // 2 else dy
    dx = dx - width if dx > width // 2 else dx
    return float(dx), float(dy)


def _gradients(image: torch.Tensor) -> torch.Tensor:
    """Central differences ``(1, 2, H, W)`` (d/dx, d/dy in pixels), one-sided at the borders."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2.0
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2.0
    return torch.cat([gx, gy], 1)


def _misfit(previous: torch.Tensor, current: torch.Tensor, theta: torch.Tensor, cap: float) -> float:
    """Mean of ``min(|warped previous - current|, cap)`` over the current frame (outside counts ``cap``).

    Capped, so that a moving object costs the same however badly it fits: the camera's motion is
    the one that explains the most pixels, not the one that halves the object's error.
    """
    warped, inside = warp(previous, theta)
    error = (warped - current).abs().clamp(max=cap)
    return float(torch.where(inside > 0.5, error, torch.full_like(error, cap)).mean())


def _refine(previous: torch.Tensor, current: torch.Tensor, theta: torch.Tensor, iterations: int) -> torch.Tensor:
    """Gauss-Newton steps on the 6 affine parameters at one pyramid level (Tukey-weighted)."""
    height, width = current.shape[-2:]
    gradients = _gradients(previous)
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) / width * 2 - 1
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    u, v = u.flatten(), v.flatten()
    theta = theta.double()
    for _ in range(iterations):
        warped, inside = warp(previous.double(), theta)
        sampled, _ = warp(gradients.double(), theta)
        # d(sample position, normalised)/d(pixel) is 2/size: the gradients per normalised unit
        gx = sampled[0, 0].flatten() * (width / 2.0)
        gy = sampled[0, 1].flatten() * (height / 2.0)
        residual = (warped - current.double())[0, 0].flatten()
        keep = inside[0, 0].flatten() > 0.999
        if int(keep.sum()) < 16:
            break
        jacobian = torch.stack([gx * u, gx * v, gx, gy * u, gy * v, gy], 1)[keep]
        r = residual[keep]
        scale = 1.4826 * float(r.abs().median()) + 1e-6
        tukey = (1.0 - (r / (4.685 * scale)).pow(2)).clamp(min=0.0).pow(2)
        weighted = jacobian * tukey[:, None]
        hessian = jacobian.T @ weighted
        hessian = hessian + 1e-6 * torch.eye(6, dtype=hessian.dtype) * hessian.diagonal().mean().clamp_min(1e-12)
        step = torch.linalg.solve(hessian, -(weighted.T @ r))
        theta = theta + step.reshape(1, 2, 3)
        if float(step.abs().max()) < 1e-5:
            break
    return theta.float()


def estimate_motion(
    previous: torch.Tensor,
    current: torch.Tensor,
    max_side: int = 160,
    levels: int = 3,
    iterations: int = 10,
    outlier: float = 5.0,
) -> torch.Tensor:
    """The affine ``theta`` ``(1, 2, 3)`` that maps ``current``'s positions into ``previous``.

    Args:
        previous, current: lightness ``(1, 1, H, W)`` of two frames of one size (any range, e.g.
            Lab L in ``[0, 100]``).
        max_side: the long side the frames are shrunk to for the fit.
        levels: pyramid levels (each halves the size).
        iterations: Gauss-Newton steps per level at most.
        outlier: a lightness difference (in the frames' units) beyond which a pixel counts as not
            explained by the motion, when candidate motions are compared.

    Returns:
        ``theta`` for :func:`warp`; the identity when no motion explains the frames better.
    """
    previous = _shrink(previous.float(), max_side)
    current = _shrink(current.float(), max_side)
    height, width = current.shape[-2:]
    dx, dy = phase_correlation(previous, current)
    theta = IDENTITY.clone()
    shifted = IDENTITY.clone()
    shifted[0, 0, 2], shifted[0, 1, 2] = -2.0 * dx / width, -2.0 * dy / height
    if _misfit(previous, current, shifted, outlier) < _misfit(previous, current, theta, outlier):
        theta = shifted
    pyramid = [(previous, current)]
    for _ in range(levels - 1):
        if min(pyramid[-1][1].shape[-2:]) < 32:
            break
        pyramid.append(tuple(F.avg_pool2d(image, 2) for image in pyramid[-1]))
    for level_previous, level_current in reversed(pyramid):
        theta = _refine(level_previous, level_current, theta, iterations)
    if not torch.isfinite(theta).all() or _misfit(previous, current, theta, outlier) >= _misfit(previous, current, IDENTITY, outlier):
        return IDENTITY.clone()
    return theta


def move_boxes(boxes: np.ndarray, theta: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Where the previous frame's boxes ``(N, 4)`` (x1, y1, x2, y2 in pixels) are in the current frame.

    ``theta`` maps current positions into the previous frame (:func:`estimate_motion`); its
    inverse carries each box's corners forward, and the result is their bounding box. ``size`` is
    the frames' ``(height, width)``.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return boxes
    height, width = size
    forward = np.linalg.inv(np.vstack([theta[0].double().numpy(), [0.0, 0.0, 1.0]]))
    corners = boxes[:, [[0, 1], [2, 1], [0, 3], [2, 3]]]  # (N, 4 corners, xy)
    normalised = corners / np.array([width, height]) * 2.0 - 1.0
    moved = normalised @ forward[:2, :2].T + forward[:2, 2]
    pixels = (moved + 1.0) / 2.0 * np.array([width, height])
    return np.concatenate([pixels.min(1), pixels.max(1)], 1)
