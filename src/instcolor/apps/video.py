"""Colorize film: decode every frame with PyAV, colorize it, smooth chroma over time, encode.

Per frame (:class:`FilmColorizer`):

1. **scene cuts**: the distance between consecutive lightness histograms; above ``cut_threshold``
   a new shot starts and every temporal state (smoothing, tracks) is dropped, so smoothing never
   blends two shots;
2. **camera motion**: the global affine motion from this frame to the previous one
   (:func:`instcolor.motion.estimate_motion`: phase correlation, then a robust affine fit on the
   lightness; the identity for a still camera or when no motion explains the frames better);
3. **instances tracked** across frames by box IoU (:class:`~instcolor.tracking.BoxTracker`): tracks
   first ride the camera motion; detection runs every ``detect_every`` frames (and on the first
   frame of each shot) and the seen boxes (smoothed) hold in between; a track the detector missed
   keeps its id for two more detections but is not used as an instance meanwhile;
4. **motion-compensated, gated smoothing** (:mod:`instcolor.temporal`): a neighbouring frame's
   chroma is lined up with this frame by the camera's motion between them (a tracked instance that
   moved against the camera takes its own box in that frame, resized onto its box here: one person
   keeps one colour), and counts at each pixel by ``exp(-|L_t - L_ref| / motion_tolerance)`` (L
   blurred 3x3, the difference averaged 5x5): fully where the lined-up picture matches, not where
   something moved against the camera or came into view. By default (``window``, :data:`WINDOW`)
   each frame's chroma is the mean of its own and its neighbours' within ``window`` frames before
   and after it in its shot (:class:`~instcolor.temporal.ShotWindow`): frames come back ``window``
   frames late. ``window=0`` blends each frame with the previous output instead, by ``smoothing``;
   no frame is held back, but where the network's colour drifts along a shot the output lags
   behind it (-1.0 dB on a dark forest pan in ``benchmarks/video_flicker.py``, +0.3 to +0.5 dB
   with the window).

The run is **resumable**: frames are encoded in chunks into ``<target>.partial/`` with the temporal
state saved after each chunk; a killed run started again continues from the last finished chunk.
When all frames are done the chunks and the source's audio are muxed into the target (renamed into
place when complete), and the partial folder is removed. Bad inputs (not a video, no video stream,
no frames, a file cut short) raise :class:`VideoError` with one line and leave no output.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from instcolor.color import lightness, rgb_to_grey
from instcolor.color.compose import lab_to_image
from instcolor.evaluation.video import FlickerMeter, frame_lab, histogram_distance, lightness_histogram, psnr
from instcolor.inference.pipeline import Colorizer
from instcolor.instances import Instances
from instcolor.io import atomic_path, decode_image
from instcolor.motion import IDENTITY, estimate_motion, move_boxes
from instcolor.temporal import ShotWindow, agreement, reference
from instcolor.tracking import BoxTracker, Track


#: Frames on each side of the two-sided temporal mean (:class:`instcolor.temporal.ShotWindow`), half
#: a second at 24 frames/s. Chosen offline on 12 pan clips (6 frames left the flicker at 15-31 % of
#: per-frame, 12 at 9-17 %, 24 at 3-9 % but gained less where the colour drifts); measured on 26 clips
#: in ``benchmarks/results-video-flicker-window12.json`` (README, "Film and the web page").
WINDOW = 12


class VideoError(ValueError):
    """A video that cannot be colorized; the message is one line."""


def _require_av():
    try:
        import av
    except ImportError as err:  # optional dependency
        raise RuntimeError("video needs PyAV: pip install 'instcolor[video]'") from err
    return av


@dataclass
class FrameResult:
    rgb: np.ndarray  # (H, W, 3) uint8 colour output
    l_full: torch.Tensor  # (1, 1, H, W) lightness of the input
    ab_frame: torch.Tensor  # (1, 2, H, W) this frame's own prediction
    ab: torch.Tensor  # (1, 2, H, W) after temporal smoothing
    cut: bool
    instances: Instances = field(default_factory=Instances)
    motion: torch.Tensor | None = None  # (1, 2, 3) global motion into the previous frame (None: not estimated)
    tracks: dict[int, np.ndarray] = field(default_factory=dict)  # tracked instances used: id -> box
    resume_state: dict | None = field(default=None, repr=False)  # FilmColorizer's state right after this frame


class FilmColorizer:
    """The temporal part of film colorization: cuts, tracks, smoothing (see the module docstring).

    Calling it on a frame gives that frame with the running blend (``window=0``, by ``smoothing``)
    or, with a ``window``, its own prediction; :meth:`run` gives frames back finished either way
    (:func:`colorize_video` uses it with ``window`` :data:`WINDOW`).
    """

    def __init__(
        self,
        colorizer: Colorizer,
        smoothing: float = 0.95,
        motion_tolerance: float = 8.0,
        cut_threshold: float = 0.3,
        detect_every: int = 1,
        track: bool = True,
        follow_motion: bool = True,
        camera_iou: float = 0.9,
        window: int = 0,
    ):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if window < 0:
            raise ValueError(f"window must be >= 0 frames, got {window}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.colorizer = colorizer
        self.smoothing = smoothing
        self.motion_tolerance = motion_tolerance
        self.cut_threshold = cut_threshold
        self.detect_every = detect_every
        self.track = track
        self.follow_motion = follow_motion
        self.camera_iou = camera_iou
        self.window = ShotWindow(window, motion_tolerance, camera_iou) if window else None
        self.tracker = BoxTracker()
        self.frames_in_shot = 0
        self.cuts = 0
        self._hist: torch.Tensor | None = None
        self._l: torch.Tensor | None = None
        self._ab: torch.Tensor | None = None

    def state(self) -> dict:
        """Everything needed to continue after this frame (for resuming)."""
        return {
            "tracks": [(t.id, t.box.tolist(), t.label, t.score, t.missing) for t in self.tracker.tracks],
            "next_id": self.tracker.next_id,
            "frames_in_shot": self.frames_in_shot,
            "cuts": self.cuts,
            "hist": self._hist,
            "l": self._l,
            "ab": self._ab if self.window is None else None,  # only the running blend reads it
        }

    def checkpoint(self, last: FrameResult) -> dict:
        """What a resumed run needs to go on after ``last``, the latest frame :meth:`run` gave back."""
        return {**last.resume_state, "window": self.window.state() if self.window else None}

    def load_state(self, state: dict) -> None:
        self.tracker.tracks = [Track(i, np.array(b), lab, s, m) for i, b, lab, s, m in state["tracks"]]
        self.tracker.next_id = state["next_id"]
        self.frames_in_shot, self.cuts = state["frames_in_shot"], state["cuts"]
        self._hist, self._l, self._ab = state["hist"], state["l"], state["ab"]
        if self.window is not None:
            self.window.load_state(state.get("window") or [])

    @property
    def tracking(self) -> bool:
        return self.track and self.colorizer.detector is not None

    def _instances(self, rgb: np.ndarray, cut: bool, motion: torch.Tensor | None) -> tuple[Instances | None, dict]:
        if not self.tracking:
            return None, {}  # no detector, or the colorizer detects on its own, every frame
        detect = cut or self.frames_in_shot % self.detect_every == 0
        detections = self.colorizer.detect(decode_image(rgb)) if detect else None
        size = tuple(rgb.shape[:2])
        carry = None if motion is None else (lambda boxes: move_boxes(boxes, motion, size))
        return self.tracker.update(detections, carry)

    def _blend(self, l_full: torch.Tensor, ab_frame: torch.Tensor, motion: torch.Tensor, moved: dict) -> torch.Tensor:
        """The running blend: this frame's ab blended with the previous output's, lined up by
        :func:`instcolor.temporal.reference` (``moved``: the tracked instances' ``(previous box, box)``)."""
        ref_l, ref_ab, inside = reference(l_full, self._l, self._ab, motion, list(moved.values()), self.camera_iou)
        weight = self.smoothing * agreement(l_full, ref_l, inside, self.motion_tolerance)
        return (1.0 - weight) * ab_frame + weight * ref_ab

    def __call__(self, rgb: np.ndarray) -> FrameResult:
        l_full = lightness(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0)
        hist = lightness_histogram(l_full)
        cut = self._hist is None or histogram_distance(hist, self._hist) > self.cut_threshold
        if self._l is not None and self._l.shape != l_full.shape:
            cut = True
        self._hist = hist
        if cut:
            self.cuts += self._l is not None
            self.frames_in_shot = 0
            self.tracker.reset()
            self._l = self._ab = None
        motion = None
        smoothing = self.window is not None or self.smoothing > 0
        if self._l is not None and self.follow_motion and (smoothing or self.tracking):
            motion = estimate_motion(self._l, l_full)
        instances, moved = self._instances(rgb, cut, motion)
        tracks = {t.id: t.box.copy() for t in self.tracker.tracks if t.missing == 0} if self.tracking else {}
        result = self.colorizer(rgb, instances)
        ab_frame = torch.from_numpy(result.ab)[None].float()
        ab = ab_frame
        if self._ab is not None and self.window is None and self.smoothing > 0:
            ab = self._blend(l_full, ab_frame, IDENTITY if motion is None else motion, moved)
        self._l, self._ab = l_full, ab
        self.frames_in_shot += 1
        if ab is ab_frame:  # nothing blended: the pipeline's own result image
            out = np.asarray(result.image.convert("RGB"))
        else:  # the pipeline's banded full-resolution composition, with the blended chroma
            out = np.asarray(lab_to_image(l_full, ab).convert("RGB"))
        return FrameResult(out, l_full, ab_frame, ab, cut, result.instances, motion, tracks, self.state())

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
        """Colorize ``frames`` (``(H, W, 3)`` uint8 each) in order and give back each one finished.

        With a two-sided ``window`` a frame comes back once ``window`` later frames of its shot
        were seen (or its shot ended), its ``ab`` and ``rgb`` the window's; otherwise at once, as
        :meth:`__call__` gave it.
        """
        for rgb in frames:
            result = self(rgb)
            if self.window is None:
                yield result
            else:
                yield from (self._smoothed(*done) for done in self.window.push(result))
        if self.window is not None:
            yield from (self._smoothed(*done) for done in self.window.flush())

    @staticmethod
    def _smoothed(result: FrameResult, ab: torch.Tensor) -> FrameResult:
        result.ab = ab
        result.rgb = np.asarray(lab_to_image(result.l_full, ab).convert("RGB"))
        return result


@dataclass
class VideoReport:
    """What a run did: frames, speed, flicker of the per-frame prediction and of the output."""

    frames: int
    seconds: float
    cuts: int
    flicker_per_frame: float
    flicker: float
    resumed_from: int = 0

    @property
    def fps(self) -> float:
        done = self.frames - self.resumed_from
        return done / self.seconds if self.seconds > 0 else math.nan

    def summary(self) -> str:
        ratio = self.flicker / self.flicker_per_frame if self.flicker_per_frame > 0 else math.nan
        return (
            f"{self.frames} frames, {self.cuts} scene cut(s), {self.fps:.2f} frames/s; flicker (mean |Δab| on "
            f"unchanged pixels): per-frame {self.flicker_per_frame:.3f}, smoothed {self.flicker:.3f} ({ratio:.0%})"
        )


def _lab(l_full: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    return torch.cat([l_full, ab], 1)[0]


def _frames(reader, in_video, source) -> Iterator[np.ndarray]:
    av = _require_av()
    try:
        for frame in reader.decode(in_video):
            yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise VideoError(f"{source}: the file is damaged or cut short ({err})") from None


def _open(source):
    av = _require_av()
    if not Path(source).is_file():
        raise VideoError(f"{os.fspath(source)}: no such file")
    try:
        reader = av.open(os.fspath(source))
    except av.error.FFmpegError as err:
        raise VideoError(f"cannot read video {os.fspath(source)!r}: not a video or damaged ({err})") from None
    if not reader.streams.video:
        reader.close()
        raise VideoError(f"{os.fspath(source)}: no video stream (audio only or not a film)")
    return reader


def colorize_video(
    source: str | os.PathLike,
    target: str | os.PathLike,
    colorizer: Colorizer,
    smoothing: float = 0.95,
    codec: str = "libx264",
    crf: int = 18,
    max_frames: int | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
    detect_every: int = 1,
    cut_threshold: float = 0.3,
    chunk_frames: int = 100,
    resume: bool = True,
    window: int = WINDOW,
) -> VideoReport:
    """Colorize a video file (resumable; see the module docstring).

    Args:
        source: input video (any container/codec FFmpeg reads).
        target: output video; its ending picks the container (``.mp4``, ``.mkv``, ``.mov`` ...).
        colorizer: the colorizer (its detector, tracked across frames).
        smoothing: with ``window=0``, the running blend's weight of the previous output in
            ``[0, 1)`` (0: no temporal smoothing at all).
        codec: video encoder; ``crf`` its quality (lower is better) for x264/x265.
        max_frames: stop after this many frames (None: all).
        on_frame: called as ``on_frame(frames_done, total_frames_or_None)`` after each frame written.
        detect_every: run the detector every N frames of a shot (tracks hold the boxes between).
        cut_threshold: lightness-histogram distance that starts a new shot.
        chunk_frames: frames per resumable chunk.
        resume: continue a killed run found in ``<target>.partial/`` (False: start over).
        window: frames on each side of the two-sided temporal mean (:class:`instcolor.temporal.ShotWindow`);
            0: the running blend (``smoothing``).

    Returns:
        A :class:`VideoReport`.
    """
    av = _require_av()
    target = Path(target)
    film = FilmColorizer(colorizer, smoothing=smoothing, cut_threshold=cut_threshold, detect_every=detect_every, window=window)
    partial = target.with_name(target.name + ".partial")
    reader = _open(source)
    with reader:
        in_video = reader.streams.video[0]
        total = in_video.frames or None
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        rate = in_video.average_rate or Fraction(25)
        width = in_video.codec_context.width // 2 * 2
        height = in_video.codec_context.height // 2 * 2
        if width < 2 or height < 2:
            raise VideoError(f"{source}: the video stream has no picture size")
        signature = {"source": os.path.abspath(source), "size": os.path.getsize(source), "smoothing": smoothing,
                     "detect_every": detect_every, "cut_threshold": cut_threshold, "chunk_frames": chunk_frames,
                     "codec": codec, "crf": crf, "max_frames": max_frames, "window": window,
                     "temporal": "motion-compensated"}
        state_file = partial / "state.json"
        done, chunks, meters = 0, [], {"per_frame": [0.0, 0], "ours": [0.0, 0]}
        flicker_frame, flicker_ours = FlickerMeter(), FlickerMeter()
        if resume and state_file.exists():
            saved = json.loads(state_file.read_text())
            if saved.get("signature") == signature:
                done, chunks, meters = saved["done"], saved["chunks"], saved["meters"]
                state = torch.load(partial / "state.pt", weights_only=False)
                film.load_state(state["film"])
                flicker_frame._previous, flicker_ours._previous = state["meters"]
        if partial.exists() and done == 0:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        resumed_from = done
        flicker_frame.total, flicker_frame.pixels = meters["per_frame"]
        flicker_ours.total, flicker_ours.pixels = meters["ours"]
        start = time.perf_counter()
        index = done
        writer = out_stream = None
        chunk_path = None

        def close_chunk(last: FrameResult):
            nonlocal writer, out_stream
            for packet in out_stream.encode():
                writer.mux(packet)
            writer.close()
            writer = out_stream = None
            chunks.append(chunk_path.name)
            state = {"film": film.checkpoint(last), "meters": (flicker_frame._previous, flicker_ours._previous)}
            torch.save(state, partial / "state.pt.tmp")
            os.replace(partial / "state.pt.tmp", partial / "state.pt")
            state = {"signature": signature, "done": index, "chunks": chunks,
                     "meters": {"per_frame": [flicker_frame.total, flicker_frame.pixels],
                                "ours": [flicker_ours.total, flicker_ours.pixels]}}
            (partial / "state.json.tmp").write_text(json.dumps(state))
            os.replace(partial / "state.json.tmp", state_file)

        def unfinished() -> Iterator[np.ndarray]:
            for read, rgb in enumerate(_frames(reader, in_video, source)):
                if max_frames is not None and read >= max_frames:
                    break
                if read >= done:  # the earlier ones were finished in an earlier run
                    yield rgb

        frame = None
        for frame in film.run(unfinished()):
            flicker_frame.update(_lab(frame.l_full, frame.ab_frame), cut=frame.cut, motion=frame.motion)
            flicker_ours.update(_lab(frame.l_full, frame.ab), cut=frame.cut, motion=frame.motion)
            if writer is None:
                chunk_path = partial / f"chunk-{index:08d}.mp4"
                writer = av.open(os.fspath(chunk_path), mode="w", format="mp4")
                out_stream = writer.add_stream(codec, rate=rate)
                out_stream.width, out_stream.height, out_stream.pix_fmt = width, height, "yuv420p"
                out_stream.codec_context.time_base = Fraction(1) / rate
                if codec in ("libx264", "libx265"):
                    out_stream.options = {"crf": str(crf)}
            out_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame.rgb[:height, :width]), format="rgb24")
            out_frame.pts = index
            out_frame.time_base = Fraction(1) / rate
            for packet in out_stream.encode(out_frame):
                writer.mux(packet)
            index += 1
            if on_frame is not None:
                on_frame(index, total)
            if index % chunk_frames == 0:
                close_chunk(frame)
        if writer is not None:
            close_chunk(frame)
        if index == 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise VideoError(f"{source}: the video has no frames")
        expected = in_video.frames or (round(reader.duration / 1e6 * float(rate)) if reader.duration else 0)
        if max_frames is None and expected and index < expected * 0.9 - 1:
            shutil.rmtree(partial, ignore_errors=True)
            raise VideoError(f"{source}: the file is cut short ({index} of {expected} frames decoded)")
        seconds = time.perf_counter() - start
        until = None
        if max_frames is not None:  # stopped early: the audio stops with the last frame
            start_at = float(in_video.start_time * in_video.time_base) if in_video.start_time is not None else 0.0
            until = start_at + index / float(rate)
        _join(partial, chunks, source, target, rate, until)
    shutil.rmtree(partial, ignore_errors=True)
    return VideoReport(index, seconds, film.cuts, flicker_frame.value, flicker_ours.value, resumed_from)


def _join(partial: Path, chunks: list[str], source, target: Path, rate: Fraction, until: float | None = None) -> None:
    """Mux the chunks' video and the source's audio into ``target`` (atomic).

    ``until``: seconds (source timeline) after which no audio packet starts, so a run cut short by
    ``max_frames`` does not carry the whole track (the last packet may end one audio frame later).
    """
    av = _require_av()
    with atomic_path(target) as tmp, av.open(os.fspath(tmp), mode="w", format=_container_format(target)) as writer:
        readers = [av.open(os.fspath(partial / name)) for name in chunks]
        try:
            out_video = writer.add_stream_from_template(readers[0].streams.video[0])
            out_video.time_base = Fraction(1) / rate
            streams = [(r, r.streams.video[0], out_video) for r in readers]
            with av.open(os.fspath(source)) as original:
                in_audio = original.streams.audio[0] if original.streams.audio else None
                out_audio = writer.add_stream_from_template(in_audio) if in_audio is not None else None
                audio = (
                    (
                        p for p in original.demux(in_audio)
                        if p.dts is not None and (until is None or float((p.dts if p.pts is None else p.pts) * p.time_base) < until)
                    )
                    if in_audio is not None
                    else iter(())
                )  # fmt: skip
                video = (p for r, s, _ in streams for p in r.demux(s) if p.dts is not None)
                pending_audio = next(audio, None)
                for packet in video:
                    t = float(packet.dts * packet.time_base)
                    while pending_audio is not None and float(pending_audio.dts * pending_audio.time_base) <= t:
                        pending_audio.stream = out_audio
                        writer.mux(pending_audio)
                        pending_audio = next(audio, None)
                    packet.stream = out_video
                    writer.mux(packet)
                while pending_audio is not None:
                    pending_audio.stream = out_audio
                    writer.mux(pending_audio)
                    pending_audio = next(audio, None)
        finally:
            for r in readers:
                r.close()


def grey_frame(rgb: np.ndarray) -> np.ndarray:
    """A colour frame made grey exactly as training does (:func:`instcolor.color.rgb_to_grey`)."""
    grey = rgb_to_grey(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0)
    return np.round(grey[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def evaluate_video(
    source: str | os.PathLike,
    colorizer: Colorizer,
    smoothing: float = 0.95,
    detect_every: int = 1,
    cut_threshold: float = 0.3,
    max_frames: int | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
    window: int = WINDOW,
) -> dict:
    """Colorize a colour clip's grey version twice (per frame, and ours) and measure both against it.

    Returns a dict: for ``"per_frame"`` (every frame alone: detection per frame, no smoothing),
    ``"ours"`` and ``"ground_truth"``: ``flicker`` (following the camera, see
    :class:`~instcolor.evaluation.video.FlickerMeter`) and ``flicker_same_pixel`` (without: a pan
    then counts colour moving with the picture); for the first two ``psnr`` (mean over frames, dB,
    against the colour frames) and ``fps``; plus ``frames``, ``cuts``, ``flicker_ratio`` (ours /
    per-frame) and ``cut_leak`` (mean |Δab|, on the first frame of each shot after a cut, between ours
    over the whole clip and ours over that shot alone: 0 means no colour carried across a cut).
    """
    reader = _open(source)
    with reader:
        in_video = reader.streams.video[0]
        total = in_video.frames or None
        frames = []
        for rgb in _frames(reader, in_video, source):
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(rgb)
    if not frames:
        raise VideoError(f"{source}: the video has no frames")
    total = len(frames)

    def ours() -> FilmColorizer:
        return FilmColorizer(colorizer, smoothing=smoothing, cut_threshold=cut_threshold, detect_every=detect_every, window=window)

    runs = {"per_frame": FilmColorizer(colorizer, smoothing=0.0, cut_threshold=cut_threshold, track=False), "ours": ours()}
    report: dict = {"frames": total}
    truth, truth_same_pixel = FlickerMeter(), FlickerMeter(follow_motion=False)
    outputs: dict[str, list] = {}
    for name, film in runs.items():
        meter, same_pixel, scores, abs_ = FlickerMeter(), FlickerMeter(follow_motion=False), [], []
        results, seconds = film.run(grey_frame(rgb) for rgb in frames), 0.0
        for i, rgb in enumerate(frames):
            start = time.perf_counter()
            out = next(results)
            seconds += time.perf_counter() - start
            lab = _lab(out.l_full, out.ab)
            meter.update(lab, cut=out.cut, motion=out.motion)
            same_pixel.update(lab, cut=out.cut)
            scores.append(psnr(out.rgb, rgb))
            abs_.append((out.ab, out.cut))
            if name == "ours":
                truth_lab = frame_lab(rgb)
                truth.update(truth_lab, cut=out.cut, motion=out.motion)
                truth_same_pixel.update(truth_lab, cut=out.cut)
            if on_frame is not None:
                on_frame(i + 1 + (total if name == "ours" else 0), 2 * total)
        report[name] = {"flicker": meter.value, "flicker_same_pixel": same_pixel.value, "psnr": float(np.mean(scores)),
                        "fps": total / seconds}
        outputs[name] = abs_
        report["cuts"] = film.cuts
    report["ground_truth"] = {"flicker": truth.value, "flicker_same_pixel": truth_same_pixel.value}
    starts = [i for i, (_, cut) in enumerate(outputs["ours"]) if cut] + [total]
    leaks = []
    for start, end in zip(starts[1:-1], starts[2:]):  # the first frame of each later shot, from that shot alone
        first = next(ours().run(grey_frame(rgb) for rgb in frames[start : min(end, start + window + 1)]))
        leaks.append(float((outputs["ours"][start][0] - first.ab).abs().mean()))
    report["cut_leak"] = float(np.mean(leaks)) if leaks else 0.0
    report["flicker_ratio"] = report["ours"]["flicker"] / report["per_frame"]["flicker"] if report["per_frame"]["flicker"] > 0 else math.nan
    return report


def _container_format(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi"}.get(
        path.suffix.lower()
    )
