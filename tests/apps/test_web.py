import dataclasses
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from instcolor.apps.web import build_app, launch
from instcolor.apps.web_photos import (
    PageLimits,
    UploadError,
    add_drawn_box,
    add_hint,
    check_upload,
    colorize_batch,
    colorize_for_page,
    draw_instances,
    hint_list_html,
    instance_names,
    page_colour,
    parse_box,
    parse_hint,
    photo_status,
    remove_hint,
    rerun_photo,
    set_instance_colour,
)
from instcolor.inference.pipeline import HINTS_IGNORED, Colorizer
from tests.support.helpers import gradient_image, hint_following_model, tiny_model

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


class Recording:
    """A colorizer that records what the page asks of it."""

    def __init__(self, colorizer):
        self.colorizer, self.calls = colorizer, []

    def __call__(self, image, instances=None, **options):
        self.calls.append((instances, options))
        return self.colorizer(image, instances, **options)


def differs(a, b) -> np.ndarray:
    return np.abs(np.asarray(a.result.image, float) - np.asarray(b.result.image, float)).mean(axis=2)


def test_hints_are_checked_listed_and_drawn(colorizer, tmp_path):
    assert parse_hint("40, 30, #1e5aa8", 160, 120) == (40.0, 30.0, (30, 90, 168))
    assert parse_hint(" 160 120 #FFFFFF ", 160, 120) == (160.0, 120.0, (255, 255, 255))  # the far edge is inside
    for text, message in [
        ("200, 30, #1e5aa8", r"colour hint '200, 30, #1e5aa8': point \[200, 30\] is outside the 160x120 image"),
        ("40, -1, #1e5aa8", "outside the 160x120 image"),
        ("40, 30", "a colour hint is x, y, #rrggbb"),
        ("x, 30, #1e5aa8", "a colour hint is x, y, #rrggbb"),
        ("40, 30, blue", "a colour is #rrggbb, got 'blue'"),
        ("nan, 30, #1e5aa8", "finite"),
    ]:
        with pytest.raises(UploadError, match=message):
            parse_hint(text, 160, 120)
    assert page_colour("rgba(30, 90, 168, 1)") == (30, 90, 168) and page_colour("#abc") == (170, 187, 204)

    photo = colorize_batch(colorizer, [grey_photo(tmp_path / "a.png")])[0][0]
    hinted = add_hint(add_hint(photo, "40, 30, #1e5aa8"), "100, 90, #3c7a32")
    assert photo.hints == () and [h[:2] for h in hinted.hints] == [(40, 30), (100, 90)]
    html = hint_list_html(hinted.hints)
    assert 'data-remove-hint="2"' in html and "100, 90" in html and "background:#3c7a32" in html
    assert "no colour hints" in hint_list_html(())
    drawn = draw_instances(hinted.before, hinted.instances, hinted.hints)
    assert drawn.getpixel((40, 30)) == (30, 90, 168) and drawn.getpixel((100, 90)) == (60, 122, 50)
    assert remove_hint(hinted, "1").hints == hinted.hints[1:]
    for number in ("3", "0", "one"):
        with pytest.raises(UploadError, match="there is no hint"):
            remove_hint(hinted, number)


def test_rerun_passes_hints_and_instance_colours(tmp_path):
    recording = Recording(Colorizer(hint_following_model(), detector=TwoBoxDetector(), size=32))
    photo = colorize_batch(recording, [grey_photo(tmp_path / "a.png")])[0][0]
    assert recording.calls[-1][1]["hints"] is None

    hinted = rerun_photo(recording, add_hint(photo, "40, 30, #1e5aa8"), keep=[0, 1])
    assert recording.calls[-1][1]["hints"] == [{"xy": [40.0, 30.0], "colour": [30, 90, 168]}]
    assert differs(hinted, photo).mean() > 0.05 and hinted.hints == ((40.0, 30.0, (30, 90, 168)),)
    assert "1 colour hint(s)" in photo_status(hinted)

    coloured = set_instance_colour(hinted, 1, "#3c7a32")
    assert instance_names(coloured.instances)[1].endswith(" colour #3c7a32") and hinted.instances.colours is None
    again = rerun_photo(recording, coloured, keep=[0, 1])
    instances, options = recording.calls[-1]
    assert instances.colours == [None, (60, 122, 50)] and len(options["hints"]) == 1  # hints kept from run to run
    assert again.instances.colours == [None, (60, 122, 50)] and "1 with a colour" in photo_status(again)
    moved = differs(again, hinted)
    x1, y1, x2, y2 = (round(v) for v in again.instances.boxes[1])
    inside = np.zeros(moved.shape, bool)
    inside[y1:y2, x1:x2] = True
    assert moved[inside].mean() > 0.5 and moved[~inside].max() == 0  # only that instance changed
    assert rerun_photo(recording, again, keep=[1]).instances.colours == [(60, 122, 50)]  # follows its instance

    cleared = set_instance_colour(again, 1, None)
    assert cleared.instances.colours is None and rerun_photo(recording, cleared, [0, 1]).instances.colours is None
    with pytest.raises(UploadError, match="there is no instance 3"):
        set_instance_colour(again, 2, "#3c7a32")
    with pytest.raises(UploadError, match="a colour is #rrggbb"):
        set_instance_colour(again, 0, "red")
    full = rerun_photo(recording, again, keep=[0, 1], mode="full")
    assert "ignored in --mode full" in photo_status(full)
    outside = dataclasses.replace(photo, hints=((500.0, 5.0, (1, 2, 3)),))  # e.g. a stale page
    with pytest.raises(UploadError, match=r"a.png: hint 1: point \[500, 5\] is outside the 160x120 image"):
        rerun_photo(recording, outside, keep=[0])


def _warnings(page) -> list[str]:
    return [block.value for block in page.blocks.values() if getattr(block, "elem_id", None) == "hints-warning"]


def test_hint_tools_warn_when_hints_go_into_networks_trained_without_them(colorizer):
    assert not colorizer.model.config.hints and colorizer.hint_mode == "propagate"
    assert _warnings(build_app(colorizer)) == []  # spread and shifted: any weights
    fed = Colorizer(colorizer.model, size=32, hint_mode="network")
    assert _warnings(build_app(fed)) == [f"⚠ {HINTS_IGNORED}"]
    assert _warnings(build_app(Colorizer(hint_following_model(), size=32, hint_mode="network"))) == []


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
