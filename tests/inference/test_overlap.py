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
