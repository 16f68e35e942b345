"""The parts of ``instcolor bench`` beyond the per-path tables: backends and folder sizes.

Run in this process after :func:`instcolor.bench.benchmark.run_benchmark`, on the same random
(or given) model, and added to its report under ``"backends"`` and ``"folder_sizes"``.
"""

from __future__ import annotations

import torch

from instcolor.bench.backends import measure_backend_rows, render_backend_rows
from instcolor.bench.folder import measure_folder, render_folder
from instcolor.inference.hardware import device_description


def _model(settings):
    from instcolor.bench.benchmark import random_model

    if settings.weights:
        from instcolor.models.weights.registry import resolve_weights_path
        from instcolor.models.weights.store import load_weights

        return load_weights(resolve_weights_path(settings.weights)).model.eval()
    return random_model(settings.width, input_size=settings.input_size)


def bare_report(settings) -> dict:
    """A report without the per-path measurements (``--skip-paths``), with the device described."""
    from instcolor.devices import resolve_device

    if settings.threads:
        torch.set_num_threads(settings.threads)
    return {"device": device_description(resolve_device(settings.device)), "paths": {}}


def run_extra(
    report: dict, settings, backends: bool, folder_sizes: list[str], console, log, instances=(0, 1, 8)
) -> None:
    from instcolor.devices import resolve_device

    device = resolve_device(settings.device)
    if device.type != "cpu":
        log("backends and folder sizes are measured on CPU only here; benchmarks/gpu_check.sh covers CUDA")
        return
    dev = report.get("device") or device_description(device)
    console.print(f"[bold]CPU[/]: {dev['model_name']}, flags: {', '.join(dev['flags'])}", highlight=False)
    size = settings.input_size
    pick = "torch fp32"
    if backends:
        result = measure_backend_rows(_model(settings), size, instances, repeats=settings.repeats, log=log)
        report["backends"] = result
        render_backend_rows(result, console)
        pick = result["pick"]
    if folder_sizes:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # a fresh process: what the backends step left behind (quantized engine, allocator, thread
        # pools) changed these ratios by up to 0.3x
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows, detector = pool.submit(folder_rows, settings, pick, folder_sizes).result()
        report["folder_sizes"] = {"runtime": pick, "detector": detector, "rows": rows}
        render_folder(rows, pick, console, detector)


def folder_rows(settings, pick: str, folder_sizes: list[str]) -> tuple[list[dict], str | None]:
    """:func:`measure_folder` with the colorizer a folder run would use: the rows, and the detector."""
    from instcolor.inference.pipeline import Colorizer

    if settings.threads:
        torch.set_num_threads(settings.threads)
    backend, precision = pick.split()
    if settings.weights:  # as ``instcolor colorize`` loads them: own network side, person masks
        colorizer = Colorizer.from_pretrained(settings.weights, device="cpu", detector=None, precision=precision, backend=backend)
    else:
        colorizer = Colorizer(_model(settings), device="cpu", size=settings.input_size, precision=precision, backend=backend)
    colorizer.detector = _detector(settings, print)
    rows = measure_folder(colorizer, folder_sizes, images=settings.folder_images or 6, log=print)
    return rows, getattr(colorizer.detector, "name", None)


def _detector(settings, log):
    """The detector a folder run would use (None: given boxes), as ``colorize`` picks it."""
    if not settings.detector or settings.detector == "none":
        return None
    try:
        from instcolor.detection import load_detector

        return load_detector(settings.detector, device="cpu")
    except Exception as err:  # the folder is then timed on given boxes
        log(f"folder sizes: no detector ({type(err).__name__}: {err}); one given box per photo")
        return None
