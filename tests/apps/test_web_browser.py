"""The web page in a real browser: Debian's chromium driven by Playwright (system browser, no download).

Steps: upload, colorize, remove an instance, add a box by typing and by dragging, add a colour hint by
clicking on the photo and picking its colour (then one typed in and removed), set an instance's colour,
rerun after each change (the result must change; an instance colour only inside that instance), a bad
file and an over-cap photo. Screenshots of each step (and each rerun's result) go to the test's tmp
folder (printed; ``pytest -s`` shows the paths), and to ``$INSTCOLOR_SCREENSHOTS`` when set. CI (``.ci/run``) installs chromium and sets
``INSTCOLOR_REQUIRE_BROWSER=1`` so that a missing browser fails there instead of skipping.
"""

import io
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from instcolor.apps.web import build_app, launch
from instcolor.apps.web_photos import PageLimits
from instcolor.inference.pipeline import Colorizer
from tests.support.helpers import gradient_image, hint_following_model

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)


def _need(condition, reason):
    if not condition:
        if os.environ.get("INSTCOLOR_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)


pytest.importorskip("gradio")


class TwoBoxDetector:
    name = "fake"

    def __call__(self, image):
        from instcolor.instances import Instances

        h, w = image.shape[:2]
        return Instances(boxes=[[8, 8, w // 2, h // 2], [w // 3, h // 3, w - 8, h - 8]], scores=[0.8, 0.7], labels=["cat", "dog"])


def _photo_point(page):
    """``(photo pixels -> screen point, screen pixels per photo pixel)`` of the overlay photo as it is shown now."""
    page.locator("#overlay img").scroll_into_view_if_needed()
    left, top, scale = page.eval_on_selector("#overlay img", PLACEMENT_JS)
    return (lambda x, y: (left + x * scale, top + y * scale)), scale


#: ``(left, top, scale)`` of the picture's pixels inside an ``<img>`` on screen (object-fit contain or scale-down).
PLACEMENT_JS = """img => {
  const r = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
  let s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  if (fit === "scale-down") s = Math.min(s, 1);
  return [r.left + (r.width - img.naturalWidth * s) / 2, r.top + (r.height - img.naturalHeight * s) / 2, s];
}"""


def colourfulness(image: Image.Image) -> float:
    rgb = np.asarray(image.convert("RGB"), float)
    return float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean())


@pytest.fixture
def browser_page(tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need(sync_playwright is not None, "playwright is not installed (pip install playwright)")
    _need(CHROMIUM is not None, "no system chromium (apt-get install chromium)")
    # weights trained with hints (no warning on the page) whose result visibly moves with them
    colorizer = Colorizer(hint_following_model(), detector=TwoBoxDetector(), size=32, metadata={"source": "tests"})
    app = build_app(colorizer, limits=PageLimits(max_bytes=2**20, max_megapixels=1.0))
    launch(app, port=None, prevent_thread_lock=True, quiet=True)
    requests = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.on("request", lambda r: requests.append(r.url))
        page.set_default_timeout(60_000)
        page.goto(app.local_url)
        try:
            yield page, requests
        finally:
            browser.close()
            app.close()


def test_page_in_browser(browser_page, tmp_path):
    page, requests = browser_page
    shots = Path(os.environ.get("INSTCOLOR_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)

    def shot(name):
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        print("screenshot:", shots / f"{name}.png")

    photo = tmp_path / "grey.png"
    Image.fromarray(gradient_image(240, 320, channels=1)).save(photo)
    page.wait_for_selector("#colorize")
    page.wait_for_load_state("load")
    shot("1-opened")

    def upload(files, shown: str) -> None:
        """Upload and wait until the box lists ``shown``; once more if the first drop was lost (a busy CI)."""
        for attempt in range(3):
            page.set_input_files("#uploads input[type=file]", files)
            try:
                page.wait_for_selector(f"#uploads >> text={shown}", timeout=20_000)
                return
            except Exception:
                if attempt == 2:
                    raise

    upload(str(photo), "grey.png")
    page.click("#colorize")
    page.wait_for_selector("#status >> text=instance(s)")
    page.wait_for_selector("#downloads a")
    shot("2-colorized")
    status = page.inner_text("#status")
    assert "grey.png: 320x240, 2 instance(s)" in status

    def fetch(src: str) -> Image.Image:
        return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")

    def after_image() -> Image.Image:
        srcs = page.eval_on_selector_all("#compare img", "els => els.map(e => e.src)")
        assert len(srcs) == 2, srcs
        return fetch(srcs[1])

    def rerun(instances: int, name: str, previous: Image.Image) -> Image.Image:
        """Rerun, wait for the status line, screenshot (and the result itself); the new result is full
        size and differs from ``previous``."""
        page.click("#rerun")
        page.wait_for_selector(f"#status >> text=rerun grey.png: 320x240, {instances} instance(s)")
        page.wait_for_function(f"() => document.querySelectorAll('#keep input[type=checkbox]').length === {instances}")
        shot(name)
        result = after_image()
        result.save(shots / f"{name}-result.png")
        assert result.size == (320, 240)
        assert np.abs(np.asarray(result, float) - np.asarray(previous, float)).mean() > 0.05, name
        return result

    first = after_image()
    assert first.size == (320, 240)  # full resolution
    assert colourfulness(first) > 1.0
    download = page.eval_on_selector_all("#downloads a", "els => els.map(e => e.href)")
    assert any("grey-colour.png" in href for href in download)

    # remove the first instance and rerun
    page.get_by_label("1: cat 0.80", exact=False).uncheck()
    second = rerun(1, "3-instance-removed", first)

    # add a box by its coordinates
    page.fill("#add-box textarea, #add-box input", "20, 20, 200, 180")
    third = rerun(2, "4-box-added", second)
    page.wait_for_selector("#keep >> text=added")

    # draw a box with the mouse on the instances photo: it joins the list, and the rerun uses it
    page.wait_for_function("() => { const i = document.querySelector('#overlay img'); return i && i.complete && i.naturalWidth === 320; }")
    photo_point, scale = _photo_point(page)
    (x1, y1), (x2, y2) = photo_point(210, 30), photo_point(305, 125)
    page.mouse.move(x1, y1)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(x1 + (x2 - x1) * step / 5, y1 + (y2 - y1) * step / 5)
    page.wait_for_selector("#draw-band")
    shot("5-drawing-a-box")
    page.mouse.up()
    page.wait_for_function("() => document.querySelectorAll('#keep input[type=checkbox]').length === 3")
    page.wait_for_selector("#keep >> text=drawn")
    assert page.query_selector("#draw-band") is None
    shot("6-box-drawn")
    drawn = page.inner_text("#keep").split("3: drawn 1.00 [", 1)[1].split("]", 1)[0]
    box = [float(v) for v in drawn.split(",")]
    assert np.allclose(box, [210, 30, 305, 125], atol=3 / min(scale, 1.0)), box
    assert page.is_checked("#keep input[type=checkbox] >> nth=2")
    fourth = rerun(3, "7-rerun-with-drawn-box", third)
    photo_point, _ = _photo_point(page)

    # a colour hint: the hint tool, a click on the photo, a colour in the picker that opens there
    assert page.query_selector("#hints-warning") is None  # these weights were trained with hints
    page.get_by_label("add a colour hint").check()
    overlay_before = page.get_attribute("#overlay img", "src")
    page.mouse.click(*photo_point(80, 160))
    page.wait_for_selector("#hint-popup")
    page.fill("#hint-popup input[type=color]", "#1e5aa8")
    shot("8-hint-picker")
    page.click("#hint-popup .hint-ok")
    page.wait_for_selector("#hint-list >> text=H1")
    assert page.query_selector("#hint-popup") is None
    row = page.inner_text("#hint-list tr[data-hint='1']")
    x, y = (float(v) for v in re.search(r"(\d+), (\d+)", row).groups())
    assert abs(x - 80) <= 2 and abs(y - 160) <= 2 and "#1e5aa8" in row, row
    swatch = page.eval_on_selector("#hint-list .hint-swatch", "e => getComputedStyle(e).backgroundColor")
    assert swatch == "rgb(30, 90, 168)", swatch
    page.wait_for_function("old => { const i = document.querySelector('#overlay img'); return i && i.src !== old; }", arg=overlay_before)
    marker = fetch(page.get_attribute("#overlay img", "src")).getpixel((round(x), round(y)))
    assert np.abs(np.subtract(marker, (30, 90, 168))).max() <= 2, marker  # the marker sits on the point
    shot("9-hint-added")

    # a second hint typed in, then removed from the list
    page.fill("#hint-text textarea, #hint-text input", "300, 20, #3c7a32")
    page.click("#hint-add")
    page.wait_for_selector("#hint-list >> text=H2")
    page.click("#hint-list [data-remove-hint='2']")
    page.wait_for_function("() => !document.querySelector('#hint-list tr[data-hint=\"2\"]')")
    assert page.query_selector("#hint-list tr[data-hint='1']") is not None
    fifth = rerun(3, "10-rerun-with-hint", fourth)
    assert "1 colour hint(s)" in page.inner_text("#status")

    # a colour for instance 2 ("added", [20, 20, 200, 180]): only that instance changes
    page.click("#colour-for input")
    page.click("[role=option] >> text=2: added")
    page.click("#instance-colour button.dialog-button")
    page.fill("#instance-colour input[type=text]", "#3c7a32")
    page.press("#instance-colour input[type=text]", "Enter")
    shot("11-instance-colour-picker")
    page.click("#set-colour")  # with the picker still open: one click closes it and sets the colour
    page.wait_for_selector("#keep >> text=colour #3c7a32")
    assert not page.is_visible("#instance-colour .color-picker")
    shot("12-instance-colour-set")
    sixth = rerun(3, "13-rerun-with-instance-colour", fifth)
    assert "2: added 1.00 [20, 20, 200, 180] colour #3c7a32" in page.inner_text("#keep")
    moved = np.abs(np.asarray(sixth, float) - np.asarray(fifth, float)).mean(axis=2)
    inside = np.zeros(moved.shape, bool)
    inside[20:180, 20:200] = True
    assert moved[inside].mean() > 0.5 and moved[~inside].max() <= 1, (moved[inside].mean(), moved[~inside].max())
    page.click("#clear-colour")
    page.wait_for_function("() => !document.querySelector('#keep').innerText.includes('colour #')")

    # a bad file and an over-cap photo: one line each, the page stays usable
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture at all")
    big = tmp_path / "big.png"
    Image.new("L", (1500, 1000), 128).save(big)
    upload([str(bad), str(big)], "broken.jpg")
    for attempt in range(2):  # once more if a busy CI lost the click (refusing is cheap: nothing runs twice)
        page.click("#colorize")
        try:
            page.wait_for_selector("#status >> text=refused", timeout=40_000)
            break
        except Exception:
            if attempt == 1:
                raise
    shot("14-bad-files")
    status = page.inner_text("#status")
    assert "refused: broken.jpg is not an image" in status
    assert "refused: big.png is 1500x1000 (1.5 megapixels); the limit is 1 megapixels" in status

    off_host = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).hostname != "127.0.0.1"]
    assert not off_host, f"the page requested off-machine resources: {off_host}"
    if os.environ.get("INSTCOLOR_SCREENSHOTS") is None:
        shutil.copytree(shots, tmp_path.parent / "web-screenshots", dirs_exist_ok=True)
