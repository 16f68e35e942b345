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


@pytest.fixture()
def jobs(tmp_path):
    sources = []
    for k in range(4):
        path = tmp_path / "in" / f"{k}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(gradient_image(seed=k, channels=1)).save(path)
        sources.append(path)
    (tmp_path / "in" / "bad.png").write_bytes(b"not an image")
    sources.insert(2, tmp_path / "in" / "bad.png")
    given = Instances(boxes=[[2, 2, 30, 30]])
    return [Job(s, tmp_path / "out" / s.name, given if i % 2 else None) for i, s in enumerate(sources)]


@pytest.mark.parametrize("overlap", [True, False])
def test_every_job_reported_in_order_and_errors_do_not_stop_the_rest(colorizer, jobs, overlap):
    done = list(colorize_files(colorizer, jobs, overlap=overlap))
    assert [d.job.source.name for d in done] == [j.source.name for j in jobs]
    failed = [d for d in done if d.error is not None]
    assert [d.job.source.name for d in failed] == ["bad.png"]
    for d in done:
        if d.error is None:
            assert d.target.is_file() and Image.open(d.target).size == (64, 48)
    assert not (jobs[2].target).exists()


def test_overlapped_and_sequential_write_the_same_pixels(colorizer, jobs, tmp_path):
    good = [j for j in jobs if j.source.name != "bad.png"]
    seq = [Job(j.source, tmp_path / "seq" / j.target.name, j.instances) for j in good]
    list(colorize_files(colorizer, good, overlap=True))
    list(colorize_files(colorizer, seq, overlap=False))
    for a, b in zip(good, seq):
        np.testing.assert_array_equal(np.asarray(Image.open(a.target)), np.asarray(Image.open(b.target)))


def test_rgba_results_go_to_png_where_the_format_has_no_alpha():
    assert output_target(Path("x/a.jpg"), "RGBA") == Path("x/a.png")
    assert output_target(Path("x/a.jpg"), "RGB") == Path("x/a.jpg")
    assert output_target(Path("x/a.webp"), "RGBA") == Path("x/a.webp")


def test_overlap_only_with_a_spare_core(monkeypatch):
    import torch

    from instcolor.inference import overlap

    monkeypatch.setattr(overlap.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
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
