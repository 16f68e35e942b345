"""``instcolor serve``: started for real on a free loopback port, the page fetched, then stopped."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support.cli_process import instcolor_command, subprocess_env
from tests.support.helpers import tiny_weights_file

pytest.importorskip("gradio")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_with_the_page_on_loopback(tmp_path):
    weights = tiny_weights_file(tmp_path / "tiny.safetensors")
    port = free_port()
    (tmp_path / "home").mkdir()
    args = ["serve", "--weights", str(weights), "--detector", "none", "--device", "cpu", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(instcolor_command(*args), env=subprocess_env(tmp_path / "home"), stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    page = None
    try:
        deadline = time.monotonic() + 180  # importing gradio takes a while
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200
                    page = response.read().decode("utf-8", "replace")
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert page is not None, f"no page on port {port}:\n{output}"
    assert "gradio" in page.lower() and "instcolor" in page, page[:500]
    assert f"serving on http://127.0.0.1:{port}" in output
