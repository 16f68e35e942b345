import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from instcolor.inference.pipeline import Colorizer
from instcolor.apps.web import (
    PageLimits,
    UploadError,
    add_drawn_box,
    build_app,
    check_upload,
    colorize_batch,
    colorize_for_page,
    instance_names,
    launch,
    parse_box,
    rerun_photo,
)
from tests.support.helpers import gradient_image, tiny_model

gr = pytest.importorskip("gradio")


class TwoBoxDetector:
    name = "fake"

    def __call__(self, image):
        from instcolor.instances import Instances

        h, w = image.shape[:2]
        return Instances(
            boxes=[[4, 4, w // 2, h // 2], [w // 3, h // 3, w - 4, h - 4]], scores=[0.8, 0.7], labels=["cat", "dog"]
        )


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer(tiny_model(), detector=TwoBoxDetector(), size=32, metadata={"source": "tests"})


def grey_photo(path, height=120, width=160):
    Image.fromarray(gradient_image(height, width, channels=1)).save(path)
    return path


def test_page_action_colorizes_and_lists_instances(colorizer):
    image, rows, status = colorize_for_page(colorizer, gradient_image(), "fusion", show_boxes=True)
    assert image.size == (64, 48)
    assert rows[0] == ["cat", 0.8, [4, 4, 32, 24]] and len(rows) == 2
    assert "fusion" in status and "fake" in status
    assert colorize_for_page(colorizer, None, "fusion", False)[2] == "upload a photo first"


def test_upload_caps_and_bad_files_give_one_line(tmp_path):
    photo = grey_photo(tmp_path / "a.png")
    assert check_upload(photo, PageLimits()) == (160, 120)
    with pytest.raises(UploadError, match=r"a.png is 160x120 \(0.0 megapixels\); the limit is 0.01 megapixels"):
        check_upload(photo, PageLimits(max_megapixels=0.01))
    with pytest.raises(UploadError, match="MB; the limit is"):
        check_upload(photo, PageLimits(max_bytes=10))
    (tmp_path / "bad.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(UploadError, match="bad.jpg is not an image"):
        check_upload(tmp_path / "bad.jpg", PageLimits())
    assert parse_box("10, 5, 1000, 50", 160, 120) == [10, 5, 160, 50]
    with pytest.raises(UploadError, match="four numbers"):
        parse_box("1, 2, 3", 160, 120)


def test_batch_keeps_format_and_resolution_zips_and_reruns(colorizer, tmp_path):
    a = grey_photo(tmp_path / "a.jpg")
    b = grey_photo(tmp_path / "b.png", 64, 96)
    (tmp_path / "c.png").write_bytes(b"junk")
    steps = []
    results, problems, archive = colorize_batch(colorizer, [a, b, tmp_path / "c.png"], on_photo=lambda i, n, name: steps.append(i))
    assert steps == [0, 1, 2] and len(results) == 2 and problems == ["c.png is not an image this page can read (JPEG, PNG, TIFF, WebP, BMP, ...)"]
    with Image.open(results[0].output) as out:
        assert out.format == "JPEG" and out.size == (160, 120)
    with Image.open(results[1].output) as out:
        assert out.format == "PNG" and out.size == (96, 64)
    assert sorted(zipfile.ZipFile(archive).namelist()) == ["a-colour.jpg", "b-colour.png"]
    before = np.asarray(results[0].result.image, float)
    fewer = rerun_photo(colorizer, results[0], keep=[1])
    assert len(fewer.instances) == 1 and fewer.instances.labels == ["dog"]
    assert np.abs(np.asarray(fewer.result.image, float) - before).mean() > 0.1
    added = rerun_photo(colorizer, results[0], keep=[], add_box="10,10,60,60")
    assert added.instances.labels == ["added"] and added.instances.boxes.tolist() == [[10, 10, 60, 60]]


def test_drawn_boxes_join_the_list_and_the_rerun(colorizer, tmp_path):
    results, _, _ = colorize_batch(colorizer, [grey_photo(tmp_path / "a.png")])
    photo = results[0]
    drawn = add_drawn_box(add_drawn_box(photo, "100, 20, 150, 90"), "0, 0, 999, 50")  # the second clipped to the photo
    assert len(photo.instances) == 2 and photo.drawn == ()  # the original is left alone
    assert instance_names(drawn.instances)[2:] == ["3: drawn 1.00 [100, 20, 150, 90]", "4: drawn 1.00 [0, 0, 160, 50]"]
    with pytest.raises(UploadError, match="empty inside"):
        add_drawn_box(photo, "5, 5, 6, 6")
    again = rerun_photo(colorizer, drawn, keep=[0, 2])
    assert again.instances.labels == ["cat", "drawn"] and again.instances.boxes.tolist()[1] == [100, 20, 150, 90]
    assert again.drawn == () and len(again.instances) == 2
    assert np.abs(np.asarray(again.result.image, float) - np.asarray(photo.result.image, float)).mean() > 0.05


def test_page_serves_on_loopback(colorizer):
    page = build_app(colorizer)
    launch(page, port=None, prevent_thread_lock=True, quiet=True)
    try:
        assert page.local_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(page.local_url, timeout=30) as response:
            body = response.read().decode()
        assert response.status == 200 and "instcolor" in body
        assert "fonts.googleapis" not in body and "googletagmanager" not in body
    finally:
        page.close()
