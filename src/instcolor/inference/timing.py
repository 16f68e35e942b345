"""Per-stage wall-clock timing and peak memory, for ``Colorizer`` and the benchmarks.

>>> timer = StageTimer()
>>> with timer.stage("decode"):
...     pass
>>> sorted(timer.seconds)
['decode']
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import resource
import sys
import time
from collections.abc import Iterator

import torch

#: The stages a colorization is split into, in order.
STAGES = ("decode", "detect", "networks", "upsample_convert", "encode")


class StageTimer:
    """Accumulates seconds per named stage.

    Args:
        synchronize: a CUDA device to synchronise at each stage boundary, so that asynchronous
            kernels are charged to the stage that launched them (None: no synchronisation).
    """

    def __init__(self, synchronize: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.synchronize = synchronize if synchronize is not None and synchronize.type == "cuda" else None

    def _sync(self) -> None:
        if self.synchronize is not None:
            torch.cuda.synchronize(self.synchronize)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def reset(self) -> None:
        self.seconds.clear()


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since start or the last :func:`reset_peak_rss`."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    """Resident set size of this process now."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else peak_rss_bytes()


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count from the current size (Linux ``clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> bool:
    """Hand freed heap memory back to the operating system (glibc ``malloc_trim``).

    After large temporary allocations (a model converted to another dtype, int8 calibration)
    glibc keeps the freed pages mapped, so the resident size stays at its peak; trimming returns
    them (after a garbage collection, so that freed cycles count). False where there is no glibc.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
