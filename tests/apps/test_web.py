import urllib.request

import pytest

from instcolor.inference.pipeline import Colorizer
from instcolor.apps.web import build_app, colorize_for_page
from tests.support.helpers import gradient_image, tiny_model

gr = pytest.importorskip("gradio")


class OneBoxDetector:
    name = "fake"

    def __call__(self, image):
        from instcolor.instances import Instances

        return Instances(boxes=[[4, 4, 40, 30]], scores=[0.8], labels=["cat"])


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer(tiny_model(), detector=OneBoxDetector(), size=32, metadata={"source": "tests"})


def test_page_action_colorizes_and_lists_instances(colorizer):
    image, rows, status = colorize_for_page(colorizer, gradient_image(), "fusion", show_boxes=True)
    assert image.size == (64, 48)
    assert rows == [["cat", 0.8, [4, 4, 40, 30]]]
    assert "fusion" in status and "fake" in status
    assert colorize_for_page(colorizer, None, "fusion", False)[2] == "upload a photo first"


def test_page_serves_on_loopback(colorizer):
    page = build_app(colorizer)
    page.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with urllib.request.urlopen(page.local_url, timeout=30) as response:
            body = response.read().decode()
        assert response.status == 200 and "instcolor" in body
    finally:
        page.close()
