import subprocess
import sys
import time

import numpy as np

from instcolor.inference.timing import StageTimer


def test_stage_timer_accumulates_per_stage():
    timer = StageTimer()
    for _ in range(2):
        with timer.stage("networks"):
            time.sleep(0.01)
    with timer.stage("encode"):
        pass
    assert timer.seconds["networks"] >= 0.02 and timer.seconds["encode"] >= 0
    timer.reset()
    assert timer.seconds == {}


def test_stage_timer_records_even_when_the_stage_fails():
    timer = StageTimer()
    try:
        with timer.stage("decode"):
            raise ValueError("broken file")
    except ValueError:
        pass
    assert "decode" in timer.seconds


def test_peak_rss_follows_a_big_allocation():
    # In a fresh process: in the test process, earlier tests leave freed pages the allocator reuses.
    code = """
import numpy as np
from instcolor.inference.timing import current_rss_bytes, peak_rss_bytes, reset_peak_rss
reset_peak_rss()
before = peak_rss_bytes()
block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
assert peak_rss_bytes() >= before + 48 * 2**20, (before, peak_rss_bytes())
del block
assert current_rss_bytes() > 0
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_release_free_memory_returns_freed_heap():
    from instcolor.inference.timing import current_rss_bytes, release_free_memory

    chunks = [np.ones(2**17) for _ in range(200)]  # 200 MiB in heap-sized pieces
    del chunks
    before = current_rss_bytes()
    released = release_free_memory()
    assert isinstance(released, bool)
    assert current_rss_bytes() <= before
