"""Instances followed from frame to frame of a film: greedy box-IoU matching of detections to tracks.

:class:`BoxTracker` keeps one id per object through a shot, smooths its box, carries it along the
camera's motion (given as a function of the boxes, e.g. :func:`instcolor.motion.move_boxes`) and
says which previous box each continuing track came from, so that
:class:`instcolor.apps.video.FilmColorizer` can smooth an instance's colour in its own box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from instcolor.instances import Instances


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, 4)`` x ``(M, 4)`` boxes -> ``(N, M)`` intersection over union."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class Track:
    id: int
    box: np.ndarray
    label: str
    score: float
    missing: int = 0


class BoxTracker:
    """Greedy IoU matching of detections to tracks.

    A track the detector missed survives ``max_missing`` frames, so that it keeps its id when it is
    found again, but it is not an instance while missed: the detector looked and did not see it,
    and the temporal smoothing carries its colour meanwhile (holding the box as an instance flickered
    no less and lost 0.04 dB on the citrus pan of ``benchmarks/video_flicker.py``). Between
    detections (``detect_every``) every seen track holds its box, moved by the camera.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missing: int = 2, box_smoothing: float = 0.3):
        self.iou_threshold = iou_threshold
        self.max_missing = max_missing
        self.box_smoothing = box_smoothing
        self.tracks: list[Track] = []
        self.next_id = 0

    def reset(self) -> None:
        self.tracks = []

    def update(
        self, detections: Instances | None, carry: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> tuple[Instances, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """Match ``detections`` (None: detection did not run this frame; the tracks hold).

        ``carry`` maps ``(N, 4)`` boxes of the previous frame to where the camera's motion took
        them: tracks are moved by it first, so matching, box smoothing and held boxes follow a pan.
        Returns the instances to use this frame and, per continuing track id, ``(previous box, box)``
        (the previous box in the previous frame's pixels).
        """
        moved: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        before = {t.id: t.box for t in self.tracks}
        if carry is not None and self.tracks:
            for track, box in zip(self.tracks, carry(np.array([t.box for t in self.tracks]))):
                track.box = box
        if detections is not None:
            previous = self.tracks
            iou = box_iou(np.array([t.box for t in previous]).reshape(-1, 4), detections.boxes)
            matched_tracks, matched_dets = set(), set()
            for flat in np.argsort(-iou, axis=None):
                ti, di = np.unravel_index(flat, iou.shape)
                if iou[ti, di] < self.iou_threshold:
                    break
                if ti in matched_tracks or di in matched_dets:
                    continue
                matched_tracks.add(ti)
                matched_dets.add(di)
                track = previous[ti]
                track.box = self.box_smoothing * track.box + (1 - self.box_smoothing) * detections.boxes[di].astype(np.float64)
                track.score, track.label, track.missing = float(detections.scores[di]), detections.labels[di], 0
                moved[track.id] = (before[track.id], track.box)
            kept = []
            for ti, track in enumerate(previous):
                if ti not in matched_tracks:
                    track.missing += 1
                    if track.missing > self.max_missing:
                        continue
                kept.append(track)
            for di in range(len(detections)):
                if di not in matched_dets:
                    kept.append(Track(self.next_id, detections.boxes[di].astype(np.float64), detections.labels[di], float(detections.scores[di])))
                    self.next_id += 1
            self.tracks = kept
        else:
            moved = {t.id: (before[t.id], t.box) for t in self.tracks if t.missing == 0}
        seen = [t for t in self.tracks if t.missing == 0]
        instances = Instances(
            boxes=np.array([t.box for t in seen], np.float32).reshape(-1, 4),
            scores=np.array([t.score for t in seen], np.float32),
            labels=[t.label for t in seen],
        )
        return instances, moved
