"""Colorize film: decode every frame with PyAV, colorize it, and encode the result.

Audio is copied over untouched. The output is written to a temporary file beside the target and
renamed when complete, so an interrupted run never leaves a broken video behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from instcolor.color.compose import image_lightness, lab_to_image
from instcolor.io import atomic_path, decode_image
from instcolor.inference.pipeline import Colorizer


def _require_av():
    try:
        import av
    except ImportError as err:  # optional dependency
        raise RuntimeError("video needs PyAV: pip install 'instcolor[video]'") from err
    return av


def colorize_video(
    source: str | os.PathLike,
    target: str | os.PathLike,
    colorizer: Colorizer,
    smoothing: float = 0.0,
    codec: str = "libx264",
    crf: int = 18,
    max_frames: int | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> int:
    """Colorize a video file.

    Args:
        source: input video (any container/codec FFmpeg reads).
        target: output video; its ending picks the container (``.mp4``, ``.mkv``, ``.mov`` ...).
        colorizer: the colorizer used on every frame (detection runs per frame).
        smoothing: temporal smoothing of chroma in ``[0, 1)``: each frame's ab is blended with the
            previous frame's as ``(1 - s) * ab_t + s * ab_{t-1}``, which damps flicker.
        codec: video encoder; ``crf`` its quality (lower is better) for x264/x265.
        max_frames: stop after this many frames (None: all).
        on_frame: called as ``on_frame(frames_done, total_frames_or_None)`` after each frame.

    Returns:
        The number of frames written.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    av = _require_av()
    target = Path(target)
    try:
        reader = av.open(os.fspath(source))
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot read video {os.fspath(source)!r}: {err}") from err
    with reader:
        if not reader.streams.video:
            raise ValueError(f"{source}: no video stream")
        in_video = reader.streams.video[0]
        in_audio = reader.streams.audio[0] if reader.streams.audio else None
        total = in_video.frames or None
        rate = in_video.average_rate or Fraction(25)
        with atomic_path(target) as tmp:
            with av.open(os.fspath(tmp), mode="w", format=_container_format(target)) as writer:
                out_video = writer.add_stream(codec, rate=rate)
                out_video.width = in_video.codec_context.width // 2 * 2
                out_video.height = in_video.codec_context.height // 2 * 2
                out_video.pix_fmt = "yuv420p"
                if codec in ("libx264", "libx265"):
                    out_video.options = {"crf": str(crf)}
                out_audio = writer.add_stream_from_template(in_audio) if in_audio is not None else None
                streams = [in_video] + ([in_audio] if in_audio is not None else [])
                done = 0
                previous_ab: torch.Tensor | None = None
                for packet in reader.demux(streams):
                    if packet.stream is in_audio:
                        if packet.dts is not None:
                            packet.stream = out_audio
                            writer.mux(packet)
                        continue
                    for frame in packet.decode():
                        if max_frames is not None and done >= max_frames:
                            break
                        rgb, previous_ab = _colorize_frame(colorizer, frame.to_ndarray(format="rgb24"), previous_ab, smoothing)
                        rgb = rgb[: out_video.height, : out_video.width]
                        out_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                        out_frame.pts = None
                        for out_packet in out_video.encode(out_frame):
                            writer.mux(out_packet)
                        done += 1
                        if on_frame is not None:
                            on_frame(done, total)
                for out_packet in out_video.encode():
                    writer.mux(out_packet)
    return done


def _colorize_frame(
    colorizer: Colorizer, rgb: np.ndarray, previous_ab: torch.Tensor | None, smoothing: float
) -> tuple[np.ndarray, torch.Tensor]:
    """The frame's colour image and its (smoothed) ab ``(1, 2, H, W)``.

    Without smoothing the pipeline's own result image is used as it is; with smoothing only the
    blended ab is joined again with the frame's lightness (the pipeline's banded conversion).
    """
    decoded = decode_image(rgb)
    result = colorizer(decoded)
    ab = torch.from_numpy(result.ab)[None]
    if previous_ab is None or smoothing <= 0:
        return np.asarray(result.image), ab
    ab = (1.0 - smoothing) * ab + smoothing * previous_ab
    return np.asarray(lab_to_image(image_lightness(decoded), ab)), ab


def _container_format(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi"}.get(
        path.suffix.lower()
    )
