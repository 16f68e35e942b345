import numpy as np
import pytest

from instcolor.inference.pipeline import Colorizer
from tests.support.helpers import gradient_image, tiny_model

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
