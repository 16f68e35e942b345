from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instcolor.instances import Instances
from instcolor.inference.overlap import Job, colorize_files, output_target
from instcolor.inference.pipeline import Colorizer
from tests.support.helpers import gradient_image, tiny_model


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer(tiny_model(), size=32)


def grey_photos(folder: Path, count: int) -> list[Path]:
    """``count`` small grey PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(gradient_image(seed=k, channels=1)).save(folder / f"{k}.png")
    return [folder / f"{k}.png" for k in range(count)]


@pytest.fixture()
def jobs(tmp_path):
    sources = grey_photos(tmp_path / "in", 4)
    (tmp_path / "in" / "bad.png").write_bytes(b"not an image")
    sources.insert(2, tmp_path / "in" / "bad.png")
    given = Instances(boxes=[[2, 2, 30, 30]])
    return [Job(s, tmp_path / "out" / s.name, given if i % 2 else None) for i, s in enumerate(sources)]


WAYS = {"overlapped": {"overlap": True, "in_flight": 1}, "in turn": {"overlap": False, "in_flight": 1},
        "two at once": {"in_flight": 2}, "three at once": {"in_flight": 3}}


@pytest.mark.parametrize("way", list(WAYS))
def test_every_job_reported_in_order_and_errors_do_not_stop_the_rest(colorizer, jobs, way):
    done = list(colorize_files(colorizer, jobs, **WAYS[way]))
    assert [d.job.source.name for d in done] == [j.source.name for j in jobs]
    failed = [d for d in done if d.error is not None]
    assert [d.job.source.name for d in failed] == ["bad.png"]
    for d in done:
        if d.error is None:
            assert d.target.is_file() and Image.open(d.target).size == (64, 48)
    assert not (jobs[2].target).exists()


def test_every_way_writes_the_same_pixels(colorizer, jobs, tmp_path):
    good = [j for j in jobs if j.source.name != "bad.png"]
    written = {}
    for way, options in WAYS.items():
        moved = [Job(j.source, tmp_path / way / j.target.name, j.instances) for j in good]
        assert all(d.error is None for d in colorize_files(colorizer, moved, **options))
        written[way] = [np.asarray(Image.open(j.target)) for j in moved]
    for way in WAYS:
        for a, b in zip(written["in turn"], written[way]):
            np.testing.assert_array_equal(a, b)


class RecordingColorizer:
    """Wraps a colorizer; records the torch threads and the worker thread of each call."""

    def __init__(self, colorizer):
        import threading

        self.colorizer, self.calls, self.lock = colorizer, [], threading.Lock()
        self.device, self.backend = colorizer.device, colorizer.backend

    def __call__(self, *args, **kwargs):
        import threading
        import time

        import torch

        with self.lock:
            self.calls.append((torch.get_num_threads(), threading.current_thread().name))
        time.sleep(0.05)  # long enough for the two workers to overlap
        return self.colorizer(*args, **kwargs)


def test_two_at_once_shares_torch_threads_out_and_leaves_the_callers_alone(colorizer, jobs):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        recording = RecordingColorizer(colorizer)
        done = list(colorize_files(recording, jobs, in_flight=2))
        assert len(done) == len(jobs) and torch.get_num_threads() == 2
        assert {threads for threads, _ in recording.calls} == {1}
        assert len({name for _, name in recording.calls}) == 2  # two workers
        for _ in colorize_files(recording, jobs, in_flight=2):  # the consumer stops early
            assert torch.get_num_threads() == 2  # and runs with its own threads meanwhile
            break
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="in_flight"):
        list(colorize_files(colorizer, jobs, in_flight=0))


class HoldFirstColorizer:
    """Wraps a colorizer; the first call waits until a third one has started (or 10 s)."""

    def __init__(self, colorizer):
        import threading

        self.colorizer, self.device, self.backend = colorizer, colorizer.device, colorizer.backend
        self.lock, self.calls, self.third_started = threading.Lock(), 0, threading.Event()
        self.first_saw_third = None

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
            call = self.calls
        if call == 3:
            self.third_started.set()
        if call == 1:
            self.first_saw_third = self.third_started.wait(timeout=10)
        return self.colorizer(*args, **kwargs)


def test_a_slow_image_does_not_hold_the_other_worker(colorizer, jobs):
    slow_first = HoldFirstColorizer(colorizer)
    done = list(colorize_files(slow_first, jobs, in_flight=2))
    assert [d.job.source.name for d in done] == [j.source.name for j in jobs]  # still in order
    assert slow_first.first_saw_third  # jobs 2 and 3 ran on the other worker while job 1 was held


def test_stopping_early_cancels_the_queued_images(colorizer, tmp_path):
    sources = grey_photos(tmp_path / "many", 30)
    recording = RecordingColorizer(colorizer)
    for _ in colorize_files(recording, [Job(s, tmp_path / "out" / s.name) for s in sources], in_flight=2):
        break
    # the first two and at most one more started by each worker before the stop; not the queue
    assert len(recording.calls) <= 4
    assert len(list((tmp_path / "out").glob("*.png"))) == len(recording.calls)


def test_two_at_once_is_refused_where_a_colorizer_cannot_be_shared(colorizer, jobs):
    from types import SimpleNamespace

    import torch

    from instcolor.inference.overlap import images_in_flight, side_by_side_refusal

    assert side_by_side_refusal(colorizer) is None
    cases = {
        "cuda": SimpleNamespace(device=torch.device("cuda"), backend="torch"),
        "onnxruntime": SimpleNamespace(device=torch.device("cpu"), backend="onnxruntime"),
        "compile": SimpleNamespace(device=torch.device("cpu"), backend="torch", options=SimpleNamespace(compile=True)),
        "timer": SimpleNamespace(device=torch.device("cpu"), backend="torch", timer=object()),
    }
    for word, shared in cases.items():
        why = side_by_side_refusal(shared)
        assert why is not None and word in why.lower().replace("--", "").replace(" ", ""), (word, why)
        assert images_in_flight(shared, jobs=5) == 1
        with pytest.raises(ValueError, match="in_flight 2"):
            list(colorize_files(shared, jobs, in_flight=2))


def test_two_images_in_flight_by_default_only_on_a_cpu_with_cores_to_share(monkeypatch):
    import torch

    from instcolor.inference import overlap

    on_cpu = type("C", (), {"device": torch.device("cpu"), "backend": "torch"})()
    monkeypatch.setattr(overlap, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert overlap.images_in_flight(on_cpu, jobs=5) == 2
    assert overlap.images_in_flight(on_cpu, jobs=1) == 1  # one file: all threads on it
    on_gpu = type("C", (), {"device": torch.device("cuda"), "backend": "torch"})()
    assert overlap.images_in_flight(on_gpu, jobs=5) == 1
    on_ort = type("C", (), {"device": torch.device("cpu"), "backend": "onnxruntime"})()
    assert overlap.images_in_flight(on_ort, jobs=5) == 1  # its sessions have their own thread pools
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert overlap.images_in_flight(on_cpu, jobs=5) == 1  # one thread: nothing to share out


def test_rgba_results_go_to_png_where_the_format_has_no_alpha():
    assert output_target(Path("x/a.jpg"), "RGBA") == Path("x/a.png")
    assert output_target(Path("x/a.jpg"), "RGB") == Path("x/a.jpg")
    assert output_target(Path("x/a.webp"), "RGBA") == Path("x/a.webp")


def test_overlap_only_with_a_spare_core(monkeypatch):
    import torch

    from instcolor.inference import overlap

    monkeypatch.setattr(overlap, "usable_cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not overlap.spare_core("cpu")
    assert overlap.spare_core("cuda")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert overlap.spare_core("cpu")


def _grey16(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth 16-bit grey ramp with far more than 256 levels."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.round((xx + yy * width) / (height * width - 1) * 60000 + 2000).astype(np.uint16)


def _png16_levels(path: Path) -> tuple[int, int, np.ndarray]:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    return info["bitdepth"], info["planes"], pixels


@pytest.mark.parametrize("source_kind", ["grey-I;16", "rgb16"])
def test_16_bit_inputs_are_written_with_16_bits_per_channel(colorizer, tmp_path, source_kind):
    import png
    import tifffile

    grey = _grey16()
    source = tmp_path / "in" / "photo16.png"
    source.parent.mkdir()
    if source_kind == "grey-I;16":
        Image.fromarray(grey).save(source)  # uint16 -> mode I;16
    else:  # Pillow cannot write 16-bit RGB
        rgb = np.repeat(grey[..., None], 3, axis=2)
        png.from_array(rgb.reshape(grey.shape[0], -1), "RGB;16").save(str(source))
    jobs = [Job(source, tmp_path / "out" / f"photo16{suffix}") for suffix in (".png", ".tif", ".jpg")]
    done = list(colorize_files(colorizer, jobs, overlap=False))
    assert [d.error for d in done] == [None, None, None]
    bitdepth, planes, pixels = _png16_levels(done[0].target)
    assert (bitdepth, planes) == (16, 3)
    assert len(np.unique(pixels)) > 256
    tiff = tifffile.imread(done[1].target)
    assert tiff.dtype == np.uint16 and tiff.shape == (48, 64, 3)
    np.testing.assert_array_equal(tiff, pixels)
    with Image.open(done[2].target) as jpeg:  # JPEG stays 8-bit
        assert jpeg.mode == "RGB"
    # the 8-bit API image is the 16-bit one rounded
    result = colorizer(source)
    assert result.image16 is not None and result.image16.dtype == np.uint16
    assert np.abs(np.asarray(result.image).astype(int) - np.round(result.image16 / 257.0)).max() <= 1


def test_8_bit_inputs_have_no_16_bit_result(colorizer):
    assert colorizer(gradient_image(channels=1)).image16 is None
