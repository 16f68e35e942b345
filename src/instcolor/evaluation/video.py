"""Film metrics: flicker (chroma changes between frames where lightness did not change) and PSNR.

Flicker of a clip is the mean, over consecutive frame pairs within a shot and over the pixels whose
Lab lightness changed by less than ``l_tolerance`` between the two frames, of the Euclidean change
of (a*, b*) in Lab units. A still scene that keeps its colour scores 0; a colorizer that repaints a
static wall differently on every frame scores high. Pairs across a scene cut are not counted.

The comparison follows the camera: the previous frame is first warped by the global motion
between the two frames (:func:`instcolor.motion.estimate_motion`; the identity for a still camera,
where nothing changes). Without that, a pan counts only the flat areas whose lightness happens to
match at the same pixel, and a colour that rightly moves with the picture reads as flicker (the
colour frames of a pan over a colour photo score about 4 there: twice their motion-compensated
figure, two to four times a per-frame colorization's). ``follow_motion=False`` gives the same-pixel
figure.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from instcolor.color import rgb_to_lab
from instcolor.motion import IDENTITY, estimate_motion, warp


def frame_lab(rgb: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 sRGB -> ``(3, H, W)`` float32 Lab."""
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0)[0]


class FlickerMeter:
    """Accumulates the flicker of a sequence of frames, given as Lab or as uint8 RGB."""

    def __init__(self, l_tolerance: float = 1.0, follow_motion: bool = True):
        self.l_tolerance = l_tolerance
        self.follow_motion = follow_motion
        self.total = 0.0
        self.pixels = 0
        self.pairs = 0
        self._previous: torch.Tensor | None = None

    def update(
        self,
        frame: np.ndarray | torch.Tensor,
        cut: bool = False,
        lightness: torch.Tensor | None = None,
        motion: torch.Tensor | None = None,
    ) -> None:
        """Add one frame. ``cut``: it starts a new shot (no pair with the previous frame).

        ``lightness``: the ``(H, W)`` L to decide which pixels are static (default: the frame's own),
        so that a colorized frame is judged on the input's lightness. ``motion``: the ``(1, 2, 3)``
        global motion from this frame to the previous one when already known (default: estimated
        from the two lightness channels).
        """
        lab = frame_lab(frame) if isinstance(frame, np.ndarray) else frame.float()
        if lightness is not None:
            lab = torch.cat([lightness.reshape(1, *lab.shape[-2:]).float(), lab[1:]])
        previous, self._previous = self._previous, lab
        if previous is None or cut or previous.shape != lab.shape:
            return
        inside = torch.ones_like(lab[0], dtype=torch.bool)
        if self.follow_motion:
            theta = estimate_motion(previous[None, :1], lab[None, :1]) if motion is None else motion
            if not torch.equal(theta, IDENTITY):
                warped, covered = warp(previous[None], theta)
                previous, inside = warped[0], covered[0, 0] > 0.999
        static = ((lab[0] - previous[0]).abs() < self.l_tolerance) & inside
        change = (lab[1:] - previous[1:]).pow(2).sum(0).sqrt()
        self.total += float(change[static].sum())
        self.pixels += int(static.sum())
        self.pairs += 1

    @property
    def value(self) -> float:
        """Mean |Δab| on static pixels (``nan`` before two frames of one shot)."""
        return self.total / self.pixels if self.pixels else math.nan


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of one size (``inf`` when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def lightness_histogram(l_channel: torch.Tensor, bins: int = 64, blur: float = 2.0) -> torch.Tensor:
    """Normalised histogram of L in ``[0, 100]``, blurred by a Gaussian of ``blur`` bins.

    The blur keeps a flat area whose grey level wobbles by a unit or two (film grain, coding noise)
    from looking like a different shot.
    """
    hist = torch.histc(l_channel.float().flatten(), bins=bins, min=0.0, max=100.0)
    if blur > 0:
        radius = int(3 * blur)
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (x / blur) ** 2)
        hist = torch.nn.functional.conv1d(hist[None, None], (kernel / kernel.sum())[None, None], padding=radius)[0, 0]
    return hist / hist.sum().clamp_min(1.0)


def histogram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total-variation distance of two normalised histograms, in ``[0, 1]``."""
    return 0.5 * float((a - b).abs().sum())
