import numpy as np
import pytest
import torch

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


def check_colour_clip(path, coloured_frame: int) -> None:
    """``path`` is :func:`write_grey_clip`'s clip colorized: its audio kept, 6 frames of 64x48, and
    frame ``coloured_frame`` in colour."""
    with av.open(str(path)) as container:
        assert container.streams.audio, "audio was not carried over"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (48, 64, 3)
    frame = decoded[coloured_frame].astype(int)
    assert np.abs(frame - frame.mean(axis=2, keepdims=True)).mean() > 1  # has colour


def test_colorize_video_keeps_frames_size_and_audio(tmp_path):
    from instcolor.apps.video import colorize_video

    source, target = tmp_path / "clip.mp4", tmp_path / "out" / "clip-colour.mp4"
    write_grey_clip(source)
    seen = []
    report = colorize_video(source, target, Colorizer(tiny_model(), size=32), smoothing=0.5, on_frame=lambda d, t: seen.append(d))
    assert report.frames == 6 and seen[-1] == 6 and report.fps > 0
    assert report.flicker <= report.flicker_per_frame and "frames/s" in report.summary()
    check_colour_clip(target, coloured_frame=2)
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip-colour.mp4"]


def test_unreadable_video_leaves_nothing(tmp_path):
    from instcolor.apps.video import colorize_video

    (tmp_path / "bad.mp4").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read video .*not a video"):
        colorize_video(tmp_path / "bad.mp4", tmp_path / "out.mp4", Colorizer(tiny_model(), size=32))
    assert not (tmp_path / "out.mp4").exists()


def write_colour_clip(path, frames=10, cut_at=5, size=(48, 64)):
    """A moving coloured square over a textured background, with a cut to another scene at ``cut_at``."""
    h, w = size
    rng = np.random.default_rng(1)
    texture = (rng.uniform(60, 200, (h, w, 1)) * np.array([[[1.0, 0.8, 0.6]]])).astype(np.uint8)
    other = np.full((h, w, 3), (20, 40, 230), np.uint8)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=12)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"qscale": "2"}
        for i in range(frames):
            frame = (texture if i < cut_at else other).copy()
            x = 4 + 3 * i
            frame[10:26, x : x + 16] = (230, 30, 30)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)


def test_flicker_meter_counts_only_unchanged_pixels_within_a_shot():
    from instcolor.evaluation.video import FlickerMeter

    meter = FlickerMeter()
    a = np.full((8, 8, 3), 120, np.uint8)
    meter.update(a)
    meter.update(a)
    assert meter.value == 0.0
    b = a.copy()
    b[..., 0], b[..., 2] = 130, 110  # other chroma, nearly the same lightness
    meter.update(b, lightness=torch.full((8, 8), 50.0))
    meter.update(a, cut=True)  # not paired with the previous frame
    assert meter.pairs == 2 and meter.value > 0


class MovingBoxDetector:
    name = "fake"

    def __init__(self):
        self.calls = 0

    def __call__(self, image):
        from instcolor.instances import Instances

        self.calls += 1
        return Instances(boxes=[[4, 10, 40, 30]], scores=[0.9], labels=["person"])


def test_scene_cut_resets_smoothing_and_detect_every_skips_detection(tmp_path):
    from instcolor.apps.video import FilmColorizer

    detector = MovingBoxDetector()
    film = FilmColorizer(Colorizer(tiny_model(), detector=detector, size=32), smoothing=0.9, detect_every=3)
    shot_a = np.repeat(gradient_image(channels=1)[..., None], 3, 2)
    shot_b = (255 - shot_a) // 3
    results = [film(f) for f in [shot_a] * 4 + [shot_b] * 2]
    assert [r.cut for r in results] == [True, False, False, False, True, False] and film.cuts == 1
    assert detector.calls == 3  # frames 0 and 3 of the first shot, frame 0 of the second
    assert torch.equal(results[4].ab, results[4].ab_frame)  # nothing carried across the cut
    assert not torch.equal(results[5].ab, results[5].ab_frame)  # smoothing within the shot


def test_evaluate_video_reports_flicker_psnr_and_no_leak_across_the_cut(tmp_path):
    from instcolor.apps.video import evaluate_video

    write_colour_clip(tmp_path / "colour.mp4")
    report = evaluate_video(tmp_path / "colour.mp4", Colorizer(tiny_model(), detector=MovingBoxDetector(), size=32))
    assert report["frames"] == 10 and report["cuts"] == 1 and report["cut_leak"] == 0.0
    assert report["ours"]["flicker"] <= report["per_frame"]["flicker"]
    assert report["ours"]["psnr"] > 5 and report["ground_truth"]["flicker"] >= 0


@pytest.mark.parametrize("window", [{}, {"window": 2}, {"window": 0}], ids=["default", "window-2", "running-blend"])
def test_killed_run_resumes_from_the_last_chunk(tmp_path, window):
    """Resumed after frame 6, the output is the uninterrupted run's: the tracks, the flicker meters
    and the two-sided window's finished frames (fewer than the clip with ``window=2``) carry over."""
    from instcolor.apps.video import colorize_video

    source, target = tmp_path / "clip.mp4", tmp_path / "clip-colour.mp4"
    write_grey_clip(source, frames=10)
    colorizer = Colorizer(tiny_model(), size=32)

    def killed(done, total):
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video(source, target, colorizer, chunk_frames=3, on_frame=killed, **window)
    assert not target.exists() and (tmp_path / "clip-colour.mp4.partial" / "state.json").exists()
    report = colorize_video(source, target, colorizer, chunk_frames=3, **window)
    assert report.resumed_from == 6 and report.frames == 10
    whole = colorize_video(source, tmp_path / "whole.mp4", colorizer, chunk_frames=3, **window)
    assert report.flicker == pytest.approx(whole.flicker, rel=1e-6)
    assert report.flicker_per_frame == pytest.approx(whole.flicker_per_frame, rel=1e-6)
    with av.open(str(target)) as a, av.open(str(tmp_path / "whole.mp4")) as b:
        assert a.streams.audio
        fa = [f.to_ndarray(format="rgb24").astype(int) for f in a.decode(video=0)]
        fb = [f.to_ndarray(format="rgb24").astype(int) for f in b.decode(video=0)]
        assert len(fa) == len(fb) == 10 and float(a.duration) == pytest.approx(float(b.duration), abs=0.1)
    assert max(np.abs(x - y).mean() for x, y in zip(fa, fb)) < 1  # same frames (x264 threads may differ by a unit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip-colour.mp4", "clip.mp4", "whole.mp4"]
    assert whole.resumed_from == 0


def test_bad_videos_give_one_line_and_no_output(tmp_path):
    from instcolor.apps.video import VideoError, colorize_video

    colorizer = Colorizer(tiny_model(), size=32)
    with av.open(str(tmp_path / "audio.m4a"), mode="w") as container:  # no video stream
        audio = container.add_stream("aac", rate=16000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate = 16000
        for packet in list(audio.encode(chunk)) + list(audio.encode()):
            container.mux(packet)
    with av.open(str(tmp_path / "empty.mkv"), mode="w") as container:  # a video stream, no frames
        video = container.add_stream("mpeg4", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    write_grey_clip(tmp_path / "whole.mkv", frames=30, with_audio=False)
    data = (tmp_path / "whole.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 2 // 3])
    cases = {"audio.m4a": "no video stream", "empty.mkv": "no frames|cannot read", "cut.mkv": "cut short|damaged"}
    for name, message in cases.items():
        with pytest.raises(VideoError, match=message) as err:
            colorize_video(tmp_path / name, tmp_path / "out" / f"{name}.mp4", colorizer)
        assert "\n" not in str(err.value)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), name


def _stream_end(container, stream) -> float:
    """Seconds from the container's start to the end of the last packet of ``stream``."""
    ends = [
        float((p.pts + p.duration) * p.time_base) for p in container.demux(stream) if p.pts is not None and p.duration
    ]
    return max(ends) - (float(stream.start_time * stream.time_base) if stream.start_time else 0.0)


def test_max_frames_trims_the_audio_to_the_video(tmp_path):
    from instcolor.apps.video import colorize_video

    source, target = tmp_path / "clip.mp4", tmp_path / "out" / "clip-colour.mp4"
    write_grey_clip(source, frames=12)  # 1 s of video at 12 frames/s, 1 s of audio
    report = colorize_video(source, target, Colorizer(tiny_model(), size=32), max_frames=3)
    assert report.frames == 3
    with av.open(str(target)) as container:
        audio_end = _stream_end(container, container.streams.audio[0])
    video_seconds = 3 / 12
    one_audio_frame = 1024 / 16000
    assert 0 < audio_end <= video_seconds + one_audio_frame + 1e-3


class CountingDetector:
    """A detector that finds one box per frame and remembers every grey frame it was shown."""

    name = "counting"

    def __init__(self):
        self.frames = []

    def __call__(self, image):
        from instcolor.instances import Instances

        self.frames.append(np.asarray(image).copy())
        return Instances(boxes=[[8, 6, 40, 30]], scores=[0.9], labels=["person"])


def test_detection_runs_on_every_frame_by_default(tmp_path):
    from instcolor.apps.video import colorize_video

    source, target = tmp_path / "clip.mp4", tmp_path / "clip-colour.mp4"
    write_grey_clip(source, with_audio=False)
    detector = CountingDetector()
    modes = []

    class SpyColorizer(Colorizer):
        def __call__(self, *args, **kwargs):
            result = super().__call__(*args, **kwargs)
            modes.append(result.mode)
            return result

    colorizer = SpyColorizer(tiny_model(), detector=detector, size=32, masks="none")
    assert colorize_video(source, target, colorizer).frames == 6
    assert len(detector.frames) == 6, "the detector must run once per frame"
    # the clip scrolls 3 px a frame: each detection saw its own frame
    assert not np.array_equal(detector.frames[0], detector.frames[3])
    assert modes == ["fusion"] * 6, modes


class FlickeringColorizer:
    """Stands in for a colorizer: a flat chroma a* = +12 / -12, the sign flipping every frame."""

    detector = None

    def __init__(self):
        self.calls = 0

    def __call__(self, rgb, instances=None):
        from types import SimpleNamespace

        from PIL import Image

        sign = 1.0 if self.calls % 2 == 0 else -1.0
        self.calls += 1
        ab = np.zeros((2, *rgb.shape[:2]), np.float32)
        ab[0] = 12.0 * sign
        return SimpleNamespace(ab=ab, image=Image.fromarray(rgb), instances=None)


def test_smoothing_blends_each_frame_with_the_previous_output():
    """On a still shot (no motion: the gate is open) ``smoothing=0.5`` gives ``0.5 a_t + 0.5 a_out(t-1)``."""
    from instcolor.apps.video import FilmColorizer

    still = np.repeat(gradient_image(channels=1)[..., None], 3, 2)
    raw = [float(FilmColorizer(FlickeringColorizer(), smoothing=0.0)(still).ab[0, 0].mean())]
    film = FilmColorizer(FlickeringColorizer(), smoothing=0.5)
    smooth = [film(still) for _ in range(6)]
    assert [r.cut for r in smooth] == [True] + [False] * 5
    assert [float(r.ab_frame[0, 0].mean()) for r in smooth] == [12, -12, 12, -12, 12, -12]
    # written out, not recomputed: 12, 0.5*(-12)+0.5*12, 0.5*12+0.5*0, 0.5*(-12)+0.5*6, ...
    assert [float(r.ab[0, 0].mean()) for r in smooth] == pytest.approx([12, 0, 6, -3, 4.5, -3.75], abs=1e-4)
    assert raw == [12.0]
    # and the output frames carry the blended chroma, not the frame's own
    from instcolor.color import rgb_to_lab

    out_a = [float(rgb_to_lab(torch.from_numpy(r.rgb.copy()).permute(2, 0, 1)[None].float() / 255)[0, 1].mean()) for r in smooth]
    assert out_a[1] == pytest.approx(0, abs=1.5) and out_a[3] == pytest.approx(-3, abs=1.5)


def panning_world(height=48, width=160):
    """A textured colour strip with a red patch, to be seen through a window sliding 3 px a frame."""
    rng = np.random.default_rng(3)
    world = gradient_image(height, width, seed=2).astype(float) + rng.normal(0, 20, (height, width, 1))
    world[14:34, 70:90] = (220, 30, 30)
    return np.clip(world, 0, 255).astype(np.uint8)


class TruthPlusFlickerColorizer:
    """Stands in for a colorizer: each frame's true ab, with a* pushed +10 / -10 on alternate frames."""

    detector = None

    def __init__(self, frames):
        self.frames, self.calls = frames, 0

    def __call__(self, rgb, instances=None):
        from types import SimpleNamespace

        from PIL import Image

        from instcolor.evaluation.video import frame_lab

        ab = frame_lab(self.frames[self.calls])[1:].numpy().copy()
        ab[0] += 10.0 if self.calls % 2 == 0 else -10.0
        self.calls += 1
        return SimpleNamespace(ab=ab, image=Image.fromarray(rgb), instances=None)


@pytest.mark.parametrize("window", [0, 3])
def test_smoothing_follows_a_pan(window):
    """On a pan the previous output is warped onto the current frame before blending: the colours stay
    on their objects and the flicker is averaged out; blending in place (the camera ignored) cannot
    blend at all (every pixel's lightness changed), so the flicker stays."""
    from instcolor.apps.video import FilmColorizer, grey_frame
    from instcolor.evaluation.video import frame_lab

    world = panning_world()
    frames = [world[:, 3 * i : 3 * i + 64] for i in range(10)]
    truth = [frame_lab(f)[1:] for f in frames]
    errors = {}
    for follow in (True, False):
        film = FilmColorizer(TruthPlusFlickerColorizer(frames), smoothing=0.8, follow_motion=follow, window=window)
        out = list(film.run(grey_frame(f) for f in frames))
        errors[follow] = [float((o.ab[0] - t).norm(dim=0)[14:34].mean()) for o, t in zip(out[3:], truth[3:])]
        if follow:
            pan = torch.tensor([[[1.0, 0.0, 2 * 3 / 64], [0.0, 1.0, 0.0]]])
            assert all(torch.allclose(o.motion, pan, atol=2e-3) for o in out[1:])
    assert np.mean(errors[True]) < 0.5 * np.mean(errors[False]), errors
    assert np.mean(errors[False]) > 6  # the +-10 flicker barely touched


class TruthPlusFlickerWithBoxes(TruthPlusFlickerColorizer):
    """:class:`TruthPlusFlickerColorizer` with a detector that reports one box per frame."""

    detector = "fake"

    def __init__(self, frames, boxes):
        super().__init__(frames)
        self.boxes = boxes

    def detect(self, image):
        from instcolor.instances import Instances

        return Instances(boxes=[self.boxes[self.calls]], scores=[0.9], labels=["person"])


@pytest.mark.parametrize("window", [0, 3])
def test_a_tracked_instance_that_moves_on_its_own_is_smoothed_in_its_own_box(window):
    """Still camera, a red textured patch moving 4 px a frame: its pixels' lightness changed, so only
    the previous frame's box resized onto the new one lines the patch up (the flicker is averaged out
    inside it); a box that merely jitters around a still patch keeps the camera's warp."""
    from instcolor.apps.video import FilmColorizer, grey_frame
    from instcolor.evaluation.video import frame_lab

    rng = np.random.default_rng(5)
    background = gradient_image(64, 96, seed=4)
    patch = np.clip(np.array([200, 40, 40]) + rng.normal(0, 35, (20, 20, 1)), 0, 255).astype(np.uint8)
    frames, boxes = [], []
    for i in range(8):
        frame = background.copy()
        frame[20:40, 8 + 4 * i : 28 + 4 * i] = patch
        frames.append(frame)
        boxes.append([8 + 4 * i, 20, 28 + 4 * i, 40])
    truth = [frame_lab(f)[1:] for f in frames]
    errors = {}
    for track in (True, False):
        film = FilmColorizer(TruthPlusFlickerWithBoxes(frames, boxes), smoothing=0.8, track=track, window=window)
        out = list(film.run(grey_frame(f) for f in frames))
        errors[track] = [float((o.ab[0] - t).norm(dim=0)[22:38, 10 + 4 * i : 26 + 4 * i].mean()) for i, (o, t) in enumerate(zip(out, truth)) if i >= 3]
    assert np.mean(errors[True]) < 0.5 * np.mean(errors[False]), errors
    assert np.mean(errors[False]) > 6  # the patch's own pixels: the lightness gate shut, +-10 flicker stays

    still = [frames[0]] * 8
    jitter = [[8 + d, 20 - d, 28 + d, 40 + d] for d in (0, 2, -2, 2, -2, 2, -2, 2)]
    film = FilmColorizer(TruthPlusFlickerWithBoxes(still, jitter), smoothing=0.8, window=window)
    out = list(film.run(grey_frame(f) for f in still))
    jittered = [float((o.ab[0] - truth[0]).norm(dim=0)[20:40, 8:28].mean()) for o in out[3:]]
    assert np.mean(jittered) < 4, jittered  # the still patch smoothed in place, not by a shifted crop


def test_flicker_follows_the_camera():
    """A colour pan has no flicker of its own: the meter compares each pixel with where it was."""
    from instcolor.evaluation.video import FlickerMeter

    world = panning_world()
    followed, same_pixel = FlickerMeter(), FlickerMeter(follow_motion=False)
    for i in range(6):
        frame = world[:, 3 * i : 3 * i + 64]
        followed.update(frame)
        same_pixel.update(frame)
    assert followed.pairs == 5 and followed.pixels > 5 * 48 * 50
    assert followed.value < 0.5 and same_pixel.value > 2
