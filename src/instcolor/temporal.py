"""Chroma smoothed over time within a shot, following the camera and the tracked instances.

Two smoothers share one way of lining a neighbouring frame up with the current one
(:func:`reference`: the neighbour warped by the camera's motion between them, with each tracked
instance that moved against the camera taken from its own box) and one gate (:func:`agreement`:
a neighbour's pixel counts as far as its lightness matches the current frame's; nothing where
something moved or came into view):

- :class:`ShotWindow`, the default for film: a **two-sided window**. Each frame's chroma becomes
  the gated mean of its own prediction and of its neighbours' up to ``radius`` frames before and
  after it in the same shot. For a scene point that the window sees unchanged, the mean of the
  predictions has no larger squared error than the predictions have on average (Jensen; exactly so
  on the working grid below, where the mean is taken), so the output does not lag however the
  network's colour drifts along the shot. The frames are given back ``radius`` frames late.
- the running blend (:meth:`instcolor.apps.video.FilmColorizer`'s ``window=0``): each frame blended
  with the previous *output*. Nothing is held back, but where the per-frame colour drifts
  one way (a bright sky leaving the frame changes how the network paints the trees) the output
  lags behind it.

The window works on a grid whose long side is at most :data:`WORK_SIDE` (the networks' chroma is
256 px): the change it makes there is upsampled and added to the frame's own full-resolution
prediction.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from instcolor.motion import move_boxes, warp
from instcolor.tracking import box_iou

#: The window's working grid: long side at most this many pixels.
WORK_SIDE = 320


def agreement(lightness: torch.Tensor, ref_lightness: torch.Tensor, inside: torch.Tensor, tolerance: float) -> torch.Tensor:
    """How much a lined-up neighbour's chroma may count at each pixel: ``(1, 1, H, W)`` in ``[0, 1]``.

    ``exp(-change / tolerance)``, ``change`` the lightness difference (both blurred 3x3, the
    difference averaged 5x5), and 0 where the neighbour did not cover the pixel (``inside < 1``).
    Lightness in ``[0, 100]``, ``(1, 1, H, W)`` each.
    """
    blurred = [F.avg_pool2d(l, 3, stride=1, padding=1, count_include_pad=False) for l in (lightness, ref_lightness)]
    change = F.avg_pool2d((blurred[0] - blurred[1]).abs(), 5, stride=1, padding=2, count_include_pad=False)
    return torch.exp(-change / tolerance) * (inside > 0.999)


def _int_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    x1, y1 = int(max(0, math.floor(box[0]))), int(max(0, math.floor(box[1])))
    x2, y2 = int(min(width, math.ceil(box[2]))), int(min(height, math.ceil(box[3])))
    return (x1, y1, x2, y2) if x2 - x1 >= 2 and y2 - y1 >= 2 else None


def reference(
    lightness: torch.Tensor,
    other_lightness: torch.Tensor,
    other_ab: torch.Tensor,
    motion: torch.Tensor,
    box_pairs: list[tuple[np.ndarray, np.ndarray]] = (),
    camera_iou: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Another frame of the shot lined up with this one: its lightness, its ab and where it is defined.

    Args:
        lightness: ``(1, 1, H, W)`` this frame's L.
        other_lightness, other_ab: ``(1, 1, H, W)`` and ``(1, 2, H, W)`` of the other frame.
        motion: ``(1, 2, 3)`` map of this frame's positions into the other frame
            (:func:`instcolor.motion.estimate_motion`'s convention).
        box_pairs: a tracked instance's ``(box in the other frame, box in this one)``, pixels of
            these tensors. An instance that moved against the camera (the camera's move of its box
            overlaps its box by less than ``camera_iou``) takes its other box resized onto this one,
            when that lines its lightness up better than the camera's warp does (a box that only
            jitters keeps the warp).

    Returns:
        ``(ref_l, ref_ab, inside)``, ``inside`` ``(1, 1, H, W)`` in ``[0, 1]``.
    """
    height, width = lightness.shape[-2:]
    ref_l, inside = warp(other_lightness, motion)
    ref_ab, _ = warp(other_ab, motion)
    camera_l, camera_inside = ref_l.clone(), inside.clone()  # each box judged against the warp alone
    for old, new in box_pairs:
        if box_iou(move_boxes(old, motion, (height, width)), new)[0, 0] >= camera_iou:
            continue  # it went along with the camera: the warp already lined it up
        src, dst = _int_box(old, width, height), _int_box(new, width, height)
        if src is None or dst is None:
            continue
        size = (dst[3] - dst[1], dst[2] - dst[0])
        region = (..., slice(dst[1], dst[3]), slice(dst[0], dst[2]))
        box_l, box_ab = (
            F.interpolate(other[..., src[1] : src[3], src[0] : src[2]], size=size, mode="bilinear", align_corners=False)
            for other in (other_lightness, other_ab)
        )
        covered = camera_inside[region]
        camera_misfit = float(((lightness[region] - camera_l[region]).abs() * covered + 100.0 * (1 - covered)).mean())
        if float((lightness[region] - box_l).abs().mean()) >= camera_misfit:
            continue
        ref_l[region], ref_ab[region], inside[region] = box_l, box_ab, 1.0
    return ref_l, ref_ab, inside


class FilmFrame(Protocol):
    """What :class:`ShotWindow` reads of a frame (:class:`instcolor.apps.video.FrameResult` has it)."""

    l_full: torch.Tensor  # (1, 1, H, W) L in [0, 100]
    ab_frame: torch.Tensor  # (1, 2, H, W) the frame's own prediction
    cut: bool  # the first frame of a shot
    motion: torch.Tensor | None  # (1, 2, 3) this frame's positions into the previous frame's; None: identity
    tracks: dict[int, np.ndarray]  # tracked instances used this frame: id -> box (x1, y1, x2, y2) in pixels


def _matrix(theta: torch.Tensor | None) -> torch.Tensor:
    top = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64) if theta is None else theta[0].double()
    return torch.cat([top, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])


@dataclass
class _Kept:
    """A frame as the window keeps it: on the working grid."""

    lightness: torch.Tensor  # (1, 1, h, w)
    ab: torch.Tensor  # (1, 2, h, w), its own prediction
    motion: torch.Tensor  # (3, 3) float64: its positions into the previous frame's (identity first in a shot)
    tracks: dict[int, np.ndarray]  # boxes in working-grid pixels
    frame: object = field(default=None, repr=False)  # the caller's frame, until it is given back


class ShotWindow:
    """Two-sided, motion-compensated mean of chroma over ``radius`` frames each side, within a shot.

    Feed frames in order with :meth:`push`; each call yields the frames that are finished, as
    ``(frame, ab)`` with ``ab`` ``(1, 2, H, W)`` the smoothed chroma at the frame's resolution.
    A frame is finished when ``radius`` later frames of its shot have arrived, or when its shot ends
    (a cut, or :meth:`flush` at the end of the film). :meth:`state` and :meth:`load_state` carry
    the finished frames still in reach across a resumed run.
    """

    def __init__(self, radius: int = 12, motion_tolerance: float = 8.0, camera_iou: float = 0.9, work_side: int = WORK_SIDE):
        if radius < 1:
            raise ValueError(f"the window's radius must be at least 1 frame, got {radius}")
        self.radius = radius
        self.motion_tolerance = motion_tolerance
        self.camera_iou = camera_iou
        self.work_side = work_side
        self._done: deque[_Kept] = deque(maxlen=radius)  # finished frames, still in reach
        self._waiting: deque[_Kept] = deque()  # frames not given back yet

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        scale = min(1.0, self.work_side / max(height, width))
        return max(round(height * scale), 8), max(round(width * scale), 8)

    def push(self, frame: FilmFrame) -> Iterator[tuple[FilmFrame, torch.Tensor]]:
        """Add the next frame and yield the frames it finishes, in order (iterate it to the end).

        Lazily, one at a time: while the caller holds a finished frame, :meth:`state` is the state
        right after it.
        """
        if frame.cut:
            yield from self.flush()
        height, width = frame.l_full.shape[-2:]
        grid = self._grid(height, width)
        scale = np.array([grid[1] / width, grid[0] / height] * 2)
        first_in_shot = not (self._waiting or self._done)
        self._waiting.append(
            _Kept(
                F.interpolate(frame.l_full.float(), size=grid, mode="area"),
                F.interpolate(frame.ab_frame.float(), size=grid, mode="area"),
                _matrix(None if first_in_shot else frame.motion),
                {i: np.asarray(box, np.float64) * scale for i, box in frame.tracks.items()},
                frame,
            )
        )
        while len(self._waiting) > self.radius:
            yield self._finish()

    def flush(self) -> Iterator[tuple[FilmFrame, torch.Tensor]]:
        """Yield the frames still held, finished with the neighbours there are; the shot ends."""
        while self._waiting:
            yield self._finish()
        self._done.clear()

    def _finish(self) -> tuple[FilmFrame, torch.Tensor]:
        current = self._waiting.popleft()
        total, weight = current.ab.clone(), torch.ones_like(current.lightness)
        for other, into_other in self._neighbours(current):
            motion = into_other[:2].float()[None]
            pairs = [(other.tracks[i], box) for i, box in current.tracks.items() if i in other.tracks]
            ref_l, ref_ab, inside = reference(current.lightness, other.lightness, other.ab, motion, pairs, self.camera_iou)
            share = agreement(current.lightness, ref_l, inside, self.motion_tolerance)
            total += share * ref_ab
            weight += share
        frame, current.frame = current.frame, None
        self._done.append(current)
        change = total / weight - current.ab
        full = frame.ab_frame
        if change.shape[-2:] != full.shape[-2:]:
            change = F.interpolate(change, size=full.shape[-2:], mode="bilinear", align_corners=False)
        return frame, full + change.to(full.dtype)

    def _neighbours(self, current: _Kept) -> Iterator[tuple[_Kept, torch.Tensor]]:
        """Each kept frame with the ``(3, 3)`` map of ``current``'s positions into its own, chained
        through the frames between them (only the window's own motions: nothing builds up over a
        long shot)."""
        into = torch.eye(3, dtype=torch.float64)
        step = current
        for other in reversed(self._done):
            into = step.motion @ into
            step = other
            yield other, into
        back = torch.eye(3, dtype=torch.float64)  # a later frame's positions into current's
        for other in self._waiting:
            back = back @ other.motion
            yield other, torch.linalg.inv(back)

    def state(self) -> list[dict]:
        """The finished frames still in reach (what a resumed run needs; frames still held are not kept)."""
        return [{"lightness": k.lightness, "ab": k.ab, "motion": k.motion, "tracks": k.tracks} for k in self._done]

    def load_state(self, state: list[dict]) -> None:
        self._waiting.clear()
        self._done.clear()
        self._done.extend(_Kept(**kept) for kept in state)
