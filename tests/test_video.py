import numpy as np
import pytest

from instcolor.inference.pipeline import Colorizer
from helpers import gradient_image, tiny_model

av = pytest.importorskip("av")


def write_grey_clip(path, frames=6, with_audio=True):
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        for i in range(frames):
            grey = np.roll(gradient_image(channels=1), 3 * i, axis=1)
            frame = av.VideoFrame.from_ndarray(np.repeat(grey[..., None], 3, 2), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            samples = (np.sin(np.arange(16000) / 10) * 0.1).astype(np.float32)[None]
            for start in range(0, 16000, 1024):
                chunk = av.AudioFrame.from_ndarray(samples[:, start : start + 1024].copy(), format="fltp", layout="mono")
                chunk.sample_rate = 16000
                for packet in audio.encode(chunk):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)


def test_colorize_video_keeps_frames_size_and_audio(tmp_path):
    from instcolor.apps.video import colorize_video

    source, target = tmp_path / "clip.mp4", tmp_path / "out" / "clip-colour.mp4"
    write_grey_clip(source)
    seen = []
    frames = colorize_video(source, target, Colorizer(tiny_model(), size=32), smoothing=0.5, on_frame=lambda d, t: seen.append(d))
    assert frames == 6 and seen[-1] == 6
    with av.open(str(target)) as container:
        assert container.streams.audio, "audio was not carried over"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (48, 64, 3)
    assert np.abs(decoded[2].astype(int) - decoded[2].mean(axis=2, keepdims=True)).mean() > 1  # has colour
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip-colour.mp4"]


def test_unreadable_video_leaves_nothing(tmp_path):
    from instcolor.apps.video import colorize_video

    (tmp_path / "bad.mp4").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read video"):
        colorize_video(tmp_path / "bad.mp4", tmp_path / "out.mp4", Colorizer(tiny_model(), size=32))
    assert not (tmp_path / "out.mp4").exists()


class CountingDetector:
    """A detector that finds one box per frame and remembers every grey frame it was shown."""

    name = "counting"

    def __init__(self):
        self.frames = []

    def __call__(self, image):
        from instcolor.instances import Instances

        self.frames.append(np.asarray(image).copy())
        return Instances(boxes=[[8, 6, 40, 30]], scores=[0.9], labels=["person"])


def test_detection_runs_on_every_frame(tmp_path):
    from instcolor.apps.video import colorize_video

    source, target = tmp_path / "clip.mp4", tmp_path / "clip-colour.mp4"
    write_grey_clip(source, with_audio=False)
    detector = CountingDetector()
    colorizer = Colorizer(tiny_model(), detector=detector, size=32, masks="none")
    modes = []
    original = colorizer.__class__.__call__

    def spy(self, image, *args, **kwargs):
        result = original(self, image, *args, **kwargs)
        modes.append(result.mode)
        return result

    colorizer.__class__ = type("SpyColorizer", (Colorizer,), {"__call__": spy})
    assert colorize_video(source, target, colorizer) == 6
    assert len(detector.frames) == 6, "the detector must run once per frame"
    # the frames move (the clip scrolls 3 px a frame): each detection saw its own frame
    assert not np.array_equal(detector.frames[0], detector.frames[3])
    assert modes == ["fusion"] * 6, modes


class FlickeringColorizer:
    """Stands in for a colorizer: a constant chroma whose sign flips every frame (a = +-12, inside the gamut)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, rgb):
        from types import SimpleNamespace

        sign = 1.0 if self.calls % 2 == 0 else -1.0
        self.calls += 1
        ab = np.zeros((2, *rgb.shape[:2]), np.float32)
        ab[0] = 12.0 * sign
        return SimpleNamespace(ab=ab)


def mean_a_per_frame(path) -> list[float]:
    from instcolor.color.lab import rgb_to_lab
    import torch

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    means = []
    for frame in frames:
        lab = rgb_to_lab(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0)[0]
        mid = (lab[0] > 45) & (lab[0] < 85)  # where sRGB holds a* = +-12 without clipping
        means.append(float(lab[1][mid].mean()))
    return means


def test_smoothing_blends_each_frame_with_the_previous_chroma(tmp_path):
    from instcolor.apps.video import colorize_video

    source = tmp_path / "clip.mp4"
    write_grey_clip(source, with_audio=False)
    colorize_video(source, tmp_path / "raw.mp4", FlickeringColorizer(), smoothing=0.0, crf=0)
    colorize_video(source, tmp_path / "smooth.mp4", FlickeringColorizer(), smoothing=0.5, crf=0)
    raw, smooth = mean_a_per_frame(tmp_path / "raw.mp4"), mean_a_per_frame(tmp_path / "smooth.mp4")
    # Without smoothing a* flips between +12 and -12; with s = 0.5 each frame is
    # 0.5 * a_t + 0.5 * (previous output): 12, 0, 6, -3, 4.5, -3.75 (written out, not recomputed).
    np.testing.assert_allclose(raw, [12, -12, 12, -12, 12, -12], atol=2)
    np.testing.assert_allclose(smooth, [12, 0, 6, -3, 4.5, -3.75], atol=2)
