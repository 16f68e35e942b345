"""Colorize many files, keeping the machine's cores busy.

Two ways to use the cores beyond the networks' own threads:

* **images in flight** (the default on a CPU with two or more cores and the torch backend, for two
  or more files; see :func:`side_by_side_refusal`): two images are colorized at once, each on its
  own thread with half of torch's threads. A small network on a few cores leaves much of each core
  idle between its parallel regions (and decoding, detection, colour conversion and encoding run on
  one core), so two images side by side finish sooner than two in turn (``instcolor bench
  --folder-sizes`` on a 2-core EPYC, starter weights in int8 with detection: 1.22-1.59x at 1 MP
  over six runs, median 1.44x; 1.36x at 12 MP). Memory then holds two images' work at a time
  (12 MP: peak RSS 1.15 -> 1.46 GiB).
* **overlapped I/O** (one image in flight): a small thread pool reads and decodes the next image
  while the current one runs through the networks, and writes each result while the next one
  runs. One image is decoded ahead, so memory holds at most three images at a time. It needs a core
  that the networks leave free: when torch's threads already take every core, an extra busy thread
  stalls their parallel regions (each waits for its slowest thread), which costs more than it
  saves, so ``overlap="auto"`` then works in turn (see :func:`spare_core`).

Results come back in the order of the jobs.

>>> for done in colorize_files(colorizer, jobs):    # doctest: +SKIP
...     print(done.job.source, done.error or done.target)
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import torch

from instcolor.instances import Instances
from instcolor.io import decode_image, save_image

#: Endings that cannot hold alpha: an RGBA result is written as PNG instead.
NO_ALPHA_SUFFIXES = (".jpg", ".jpeg", ".bmp")


@dataclass
class Job:
    """One file to colorize: where from, where to, and given instances (None: the detector's).

    ``instances`` may also be a callable returning them, called just before the file is colorized
    (so that masks from a boxes file are decoded one image at a time). ``hints``: colour hints
    ``[{"xy": [x, y], "colour": "#rrggbb"}, ...]`` for :meth:`Colorizer.__call__`, or None.
    """

    source: Path
    target: Path
    instances: Instances | Callable[[], Instances | None] | None = None
    hints: list[dict] | None = None

    def options(self) -> dict:
        """Keyword arguments of the colorizer call beyond the instances (only those given)."""
        return {} if self.hints is None else {"hints": self.hints}

    def given(self) -> Instances | None:
        """The given instances (calling :attr:`instances` when it is a callable)."""
        return self.instances() if callable(self.instances) else self.instances


@dataclass
class Done:
    """What happened to a :class:`Job`: the path written, or the error that stopped it."""

    job: Job
    target: Path | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    detector: str | None = None  # the detector that ran (None: boxes given, or detection off)
    instances: int | None = None  # how many instances the result used
    notes: list[str] = field(default_factory=list)


def output_target(target: Path, mode: str) -> Path:
    """``target``, or its PNG twin when an RGBA result would lose its alpha in that format."""
    return target.with_suffix(".png") if mode == "RGBA" and target.suffix.lower() in NO_ALPHA_SUFFIXES else target


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def spare_core(device: torch.device | str = "cpu") -> bool:
    """Whether decoding and encoding can run beside the networks without slowing them down."""
    if torch.device(device).type == "cuda":
        return True
    return usable_cores() > torch.get_num_threads()


def side_by_side_refusal(colorizer) -> str | None:
    """Why ``colorizer`` cannot colorize two images at once (None: it can).

    Two images at once share one colorizer between threads: that holds for the torch backend on a
    CPU (the networks keep no state while they run), not for CUDA graphs or cuDNN autotuning state,
    ONNX Runtime (its sessions already use every core), compiled blocks or an attached stage timer.
    """
    options = getattr(colorizer, "options", None)
    return side_by_side_refusal_for(
        getattr(colorizer, "device", "cpu"),
        getattr(colorizer, "backend", "torch"),
        compile=options is not None and options.compile,
        timer=getattr(colorizer, "timer", None) is not None,
    )


def side_by_side_refusal_for(device: torch.device | str, backend: str, compile: bool = False, timer: bool = False) -> str | None:
    """:func:`side_by_side_refusal` from the settings alone (before a colorizer is built)."""
    device = torch.device(device)
    if device.type != "cpu":
        return f"two images at once run on a CPU only; this colorizer runs on {device.type}"
    if backend == "onnxruntime":
        return "two images at once run on the torch backend only: ONNX Runtime's sessions use every core already"
    if compile:
        return "two images at once do not run compiled networks (--compile)"
    if timer:
        return "two images at once cannot share one stage timer"
    return None


def images_in_flight(colorizer, jobs: int) -> int:
    """How many images :func:`colorize_files` colorizes at once by default: two on a CPU with two
    or more cores and the torch backend (each image then gets half of torch's threads), else one
    (a GPU, ONNX Runtime's own thread pools, compiled networks, a single core or a single file)."""
    if jobs < 2 or side_by_side_refusal(colorizer) is not None:
        return 1
    return 2 if min(usable_cores(), torch.get_num_threads()) >= 2 else 1


def _write(image, target: Path, image16=None) -> Path:
    target = output_target(target, image.mode)
    save_image(image, target, rgb16=image16)  # 16 bits per channel for 16-bit inputs to PNG/TIFF
    return target


def colorize_files(
    colorizer,
    jobs: Sequence[Job],
    mode: str = "fusion",
    overlap: bool | str = "auto",
    in_flight: int | str = "auto",
) -> Iterator[Done]:
    """Colorize ``jobs``, yielding a :class:`Done` per job, in order, once its file is written.

    Args:
        colorizer: a :class:`instcolor.inference.pipeline.Colorizer`.
        jobs: the files.
        mode: ``"fusion"`` or ``"full"``.
        overlap: with one image in flight: False decodes, colorizes and writes each file in turn
            on this thread; ``"auto"`` overlaps when :func:`spare_core` says so.
        in_flight: how many images are colorized at once, each on its own thread with torch's
            threads shared out among them; ``"auto"``: :func:`images_in_flight`.

    A failing file (unreadable, failing network, failing write) yields its error; the others go on.
    """
    if in_flight == "auto":
        in_flight = images_in_flight(colorizer, len(jobs))
    if in_flight < 1:
        raise ValueError(f"in_flight must be at least 1, got {in_flight}")
    if in_flight > 1:
        if (why := side_by_side_refusal(colorizer)) is not None:
            raise ValueError(f"in_flight {in_flight}: {why}")
        yield from _side_by_side(colorizer, jobs, mode, in_flight)
        return
    if overlap == "auto":
        overlap = spare_core(getattr(colorizer, "device", "cpu"))
    if not overlap:
        for job in jobs:
            yield _colorize_one(colorizer, job, mode)
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="instcolor-io") as pool:
        reads: dict[int, Future] = {}
        if jobs:
            reads[0] = pool.submit(decode_image, jobs[0].source)
        writing: tuple[Job, Future, float, dict] | None = None
        for index, job in enumerate(jobs):
            start = time.perf_counter()
            if index + 1 < len(jobs):
                reads[index + 1] = pool.submit(decode_image, jobs[index + 1].source)
            done: Done | None = None
            try:
                decoded = reads.pop(index).result()
                result = colorizer(decoded, job.given(), mode=mode, **job.options())
            except Exception as err:
                done = Done(job, error=err, seconds=time.perf_counter() - start)
            if writing is not None:  # the previous write overlapped with this image's networks
                yield _finish(*writing)
                writing = None
            if done is not None:
                yield done
            else:
                writing = (job, pool.submit(_write, result.image, job.target, getattr(result, "image16", None)), start, _about(result))
                del result
        if writing is not None:
            yield _finish(*writing)


def _colorize_one(colorizer, job: Job, mode: str) -> Done:
    """Decode, colorize and write one file on this thread."""
    start = time.perf_counter()
    try:
        result = colorizer(job.source, job.given(), mode=mode, **job.options())
        target = _write(result.image, job.target, getattr(result, "image16", None))
        return Done(job, target, seconds=time.perf_counter() - start, **_about(result))
    except Exception as err:  # one bad file must not stop a folder run
        return Done(job, error=err, seconds=time.perf_counter() - start)


def _side_by_side(colorizer, jobs: Sequence[Job], mode: str, in_flight: int) -> Iterator[Done]:
    """``in_flight`` images at once, each whole (decode, networks, write) on a worker thread.

    Torch's intra-op thread count is set per thread (OpenMP): each worker takes its share when it
    starts, and the caller's own count is never touched. A few jobs are queued ahead of the one
    being waited for, so that a slow image does not leave the other workers idle (only running
    jobs hold an image; a finished one is a small record). When the caller stops early, the queued
    jobs are cancelled and the running ones finish.
    """
    threads = max(1, torch.get_num_threads() // in_flight)
    pool = ThreadPoolExecutor(
        max_workers=in_flight, thread_name_prefix="instcolor-image", initializer=torch.set_num_threads, initargs=(threads,)
    )
    try:
        pending = iter(jobs)
        queued: deque[Future] = deque(pool.submit(_colorize_one, colorizer, job, mode) for job in islice(pending, 4 * in_flight))
        while queued:
            done = queued.popleft().result()
            job = next(pending, None)
            if job is not None:
                queued.append(pool.submit(_colorize_one, colorizer, job, mode))
            yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _about(result) -> dict:
    instances = getattr(result, "instances", None)
    return {
        "detector": getattr(result, "detector", None),
        "instances": None if instances is None else len(instances),
        "notes": list(getattr(result, "notes", []) or []),
    }


def _finish(job: Job, write: Future, start: float, about: dict) -> Done:
    try:
        return Done(job, write.result(), seconds=time.perf_counter() - start, **about)
    except Exception as err:
        return Done(job, error=err, seconds=time.perf_counter() - start, notes=about["notes"])
