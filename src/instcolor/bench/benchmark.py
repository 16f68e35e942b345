"""The benchmark behind ``instcolor bench``: every fast path against the plain eager fp32 path.

Paths: ``eager`` (the plain reference-style fp32 code), ``fp32`` (the float32 fast path),
``fp32-nchw`` (the same without channels-last), ``bf16``, ``fp16``, ``int8``, ``auto``, any of
them ``+compile`` or ``+graphs`` (CUDA graphs), or ``+streamed`` / ``+batched`` for a fusion
strategy other than the device's default. On one device it measures:

* **networks**: the three networks alone at 256x256 with 0, 1, 8, 16 instances, all paths in one
  process and interleaved run by run, so that changes of machine load hit every path alike;
* **end to end**: per-image latency split into decode, detect, networks, upsample/convert and
  encode, for 256x256, 0.25, 1 and 12 megapixel photos, with peak RSS and CUDA max allocated;
  rounds go over the paths, each path in a process of its own (its own peak memory);
* **folder**: throughput over a folder of photos: one at a time, with decode/encode overlapped, and
  two images at once (:func:`instcolor.inference.overlap.colorize_files`).

Then it compares each path with ``eager`` (speed ratios; ``max |delta ab|`` in network units and
``mean |delta ab|`` in Lab units; 8-bit output differences), judges them against the thresholds of
a targets file when given one (``benchmarks/targets.json``: the product ships no targets), prints
tables and writes everything as JSON. Without ``weights`` the model is the paper's architecture
at ``width`` with random weights whose activations keep a realistic scale, so that timings are
real and output differences indicative.

This module is longer than 600 lines because the benchmark's settings, workers and report still
live together; splitting them is left to a follow-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from instcolor.color import AB_SCALE
from instcolor.models.model import InstColorModel
from instcolor.models.config import ModelConfig

DEFAULT_INSTANCES = (0, 1, 8, 16)
DEFAULT_SIZES = ("256", "0.25MP", "1MP", "12MP")
EXTRA_PATHS = ("eager", "fp32-nchw", "auto")

#: The thresholds :func:`check_targets` reads from a targets file (``benchmarks/targets.json``).
TARGET_KEYS = (
    "fp32_speedup",
    "fp32_max_delta_ab_network_units",
    "reduced_speedup",
    "reduced_mean_delta_ab_lab",
    "large_image_megapixels",
    "large_image_peak_rss_gb",
    "large_image_time_ratio",
    "gpu_256_8_instances_seconds",
)


def load_targets(path: str | os.PathLike) -> dict[str, float]:
    """The thresholds of a targets file: a JSON object with a number for each of :data:`TARGET_KEYS`
    (other keys, such as a note on where the numbers come from, are ignored)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read targets file {os.fspath(path)}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"targets file {os.fspath(path)}: expected a JSON object")
    bad = [k for k in TARGET_KEYS if isinstance(data.get(k), bool) or not isinstance(data.get(k), (int, float))]
    if bad:
        raise ValueError(f"targets file {os.fspath(path)}: missing or not a number: {', '.join(bad)}")
    return {k: float(data[k]) for k in TARGET_KEYS}


# ----------------------------------------------------------------------------- inputs


def random_model(width: float = 1.0, seed: int = 0, input_size: int = 256) -> InstColorModel:
    """The architecture with random weights that keep activations at a realistic scale.

    Convolutions ``U(-1, 1) * 2 / sqrt(fan_in)``, batch-norm gammas ``1 +- 0.1``, variances in
    ``[1, 1.5]``, small biases and means (the recipe of the reference-equivalence fixtures).
    """
    generator = torch.Generator().manual_seed(seed)
    model = InstColorModel(ModelConfig(width=width, input_size=input_size))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            u = torch.rand(tensor.shape, generator=generator) * 2.0 - 1.0
            if name.endswith("weight") and tensor.dim() == 4:
                tensor.copy_(u * 2.0 / math.sqrt(tensor[0].numel()))
            elif name.endswith("weight"):
                tensor.copy_(1.0 + 0.1 * u)
            elif name.endswith("running_var"):
                tensor.copy_(1.0 + 0.25 * (u + 1.0))
            else:
                tensor.copy_(0.05 * u)
    return model.eval()


def size_dimensions(spec: str) -> tuple[int, int]:
    """``"256"`` -> 256 x 256; ``"12MP"`` -> 4000 x 3000 (4:3 landscape). Returns ``(width, height)``."""
    text = spec.strip().upper()
    if text.endswith("MP"):
        pixels = float(text[:-2]) * 1e6
        width = int(round(math.sqrt(pixels * 4 / 3)))
        return width, int(round(width * 3 / 4))
    if "X" in text:
        width, height = (int(v) for v in text.split("X"))
        return width, height
    side = int(text)
    return side, side


def megapixels(spec: str) -> float:
    width, height = size_dimensions(spec)
    return width * height / 1e6


def photo(width: int, height: int) -> np.ndarray:
    """A grey ``(height, width)`` uint8 photo (scikit-image's astronaut, resized; or a smooth pattern)."""
    from PIL import Image

    try:
        import skimage.data

        source = Image.fromarray(skimage.data.astronaut()).convert("L")
    except Exception:
        yy, xx = np.mgrid[0:512, 0:512] / 512.0
        source = Image.fromarray(np.uint8(127 + 120 * np.sin(9 * xx) * np.cos(7 * yy)))
    return np.asarray(source.resize((width, height), Image.Resampling.BICUBIC))


def random_boxes(count: int, width: int, height: int, seed: int = 0) -> list[list[float]]:
    """``count`` boxes of 15-45 % of the image side, anywhere inside it."""
    rng = np.random.default_rng(seed + 1000 * count)
    sizes = rng.uniform(0.15, 0.45, size=(count, 2)) * [width, height]
    corners = rng.uniform(0, 1, size=(count, 2)) * ([width, height] - sizes)
    return np.concatenate([corners, corners + sizes], axis=1).round(1).tolist()


# ----------------------------------------------------------------------------- worker


#: Path modifiers: ``+compile``, and a fusion strategy other than the device's default.
PATH_MODIFIERS = ("compile", "graphs", "streamed", "batched")


def path_options(path: str) -> dict:
    """``Colorizer`` keyword arguments of a path name (``fp16``, ``bf16+compile``, ``fp32+streamed``...)."""
    name, *modifiers = path.split("+")
    for modifier in modifiers:
        if modifier not in PATH_MODIFIERS:
            known = ", ".join(PATH_MODIFIERS)
            raise ValueError(f"unknown path modifier {modifier!r} in {path!r} (known: {known})")
    if name == "eager":
        if modifiers:
            raise ValueError("eager is the plain path; it takes no modifier")
        return {"fast": False}
    options: dict = {"compile": "compile" in modifiers}
    if "graphs" in modifiers:
        options["cuda_graphs"] = True
    fusion = [m for m in modifiers if m in ("streamed", "batched")]
    if len(fusion) > 1:
        raise ValueError(f"{path!r} names two fusion strategies")
    if fusion:
        options["fusion"] = fusion[0]
    if name == "fp32-nchw":
        return {"precision": "fp32", "channels_last": False, **options}
    if name in ("fp32", "bf16", "fp16", "int8", "auto"):
        return {"precision": name, **options}
    raise ValueError(f"unknown path {path!r}")


@dataclass
class WorkerSpec:
    """What one child process measures (written as JSON for it).

    ``task`` ``"networks"``: every path in ``paths``, interleaved run by run (so that a change of
    machine load hits all paths alike); ``"end_to_end"``: one path (``paths[0]``), one run per
    size and instance count (the parent runs rounds over the paths and keeps the best).
    """

    task: str
    paths: list[str]
    device: str
    weights_file: str
    network_image: str
    images: dict[str, str]
    boxes: dict[str, dict[str, list]]
    instances: list[int]
    sizes: list[str]
    repeats: int
    out_dir: str
    detector: str | None = None
    folder_files: list[str] = field(default_factory=list)
    folder_boxes: list = field(default_factory=list)
    folder_modes: list[str] = field(default_factory=list)
    threads: int | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "runs": len(values)}


def _colorizer(spec: WorkerSpec, path: str):
    from instcolor.inference.pipeline import Colorizer, resolve_device
    from instcolor.models.weights.store import load_weights

    start = time.perf_counter()
    model = load_weights(spec.weights_file).model
    colorizer = Colorizer(model, device=resolve_device(spec.device), **path_options(path))
    return colorizer, time.perf_counter() - start


def run_worker(spec: WorkerSpec) -> dict:
    """Run one task of the benchmark in this process (see :class:`WorkerSpec`)."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    # fp32 means IEEE float32 in the comparison: with TF32 convolutions (PyTorch's CUDA default)
    # eager and fast fp32 differ by ~5e-4 through cuDNN's choice of kernels alone.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    if spec.task == "networks":
        return measure_networks(spec)
    if spec.task == "end_to_end":
        return measure_end_to_end(spec)
    raise ValueError(f"unknown benchmark task {spec.task!r}")


def measure_networks(spec: WorkerSpec) -> dict:
    """The networks alone at the network size, all paths interleaved; outputs saved for comparison."""
    from instcolor.io import decode_image
    from instcolor.color.compose import image_lightness
    from instcolor.inference.timing import StageTimer

    out_dir = Path(spec.out_dir)
    decoded = decode_image(spec.network_image)
    colorizers, report = {}, {}
    for path in spec.paths:
        colorizer, setup = _colorizer(spec, path)
        colorizer.timer = StageTimer(synchronize=colorizer.device)
        l_small = image_lightness(decoded).to(colorizer.device)
        start = time.perf_counter()
        colorizer.predict_ab(l_small, np.asarray(spec.boxes["256"]["1"]))  # warm-up (compiles when asked)
        colorizers[path] = (colorizer, l_small)
        report[path] = {"path": path, "precision": colorizer.precision, "setup_seconds": setup,
                        "warmup_seconds": time.perf_counter() - start, "networks": []}  # fmt: skip
    for count in spec.instances:
        boxes = np.asarray(spec.boxes["256"][str(count)]).reshape(-1, 4) if count else None
        seconds: dict[str, list[float]] = {path: [] for path in spec.paths}
        outputs: dict[str, torch.Tensor] = {}
        for _ in range(spec.repeats + 1):  # the first round warms this instance count up
            for path, (colorizer, l_small) in colorizers.items():
                colorizer.timer.reset()
                outputs[path], _ = colorizer.predict_ab(l_small, boxes)
                seconds[path].append(colorizer.timer.seconds["networks"])
        for path in spec.paths:
            np.save(out_dir / f"net_{path}_{count}.npy", outputs[path][0].float().cpu().numpy())
            runs = seconds[path]
            report[path]["networks"].append({"instances": count, "seconds": _stats(runs[1:]), "first": runs[0]})
        timings = ", ".join(f"{p} {min(v[1:]):.3f} s" for p, v in seconds.items())
        print(f"  networks, {count} instances: {timings}", file=sys.stderr, flush=True)
    return report


def measure_end_to_end(spec: WorkerSpec) -> dict:
    """One run of every size and instance count for one path, split into stages, with peak memory."""
    from instcolor.io import decode_image, save_image
    from instcolor.color.compose import image_lightness
    from instcolor.inference.overlap import Job, colorize_files, side_by_side_refusal
    from instcolor.inference.timing import StageTimer, current_rss_bytes, peak_rss_bytes, reset_peak_rss

    (path,) = spec.paths
    out_dir = Path(spec.out_dir)
    colorizer, setup = _colorizer(spec, path)
    device = colorizer.device
    decoded = decode_image(spec.network_image)
    colorizer.predict_ab(image_lightness(decoded).to(device), np.asarray(spec.boxes["256"]["1"]))
    colorizer.timer = StageTimer(synchronize=device)
    report: dict = {"path": path, "precision": colorizer.precision, "setup_seconds": setup}
    report.update(end_to_end=[], folder=[])
    detector = None
    if spec.detector:
        try:
            from instcolor.detection import load_detector

            detector = load_detector(spec.detector, device=str(device))
            colorizer.detector = detector
        except Exception as err:  # the detector is optional for the benchmark
            report["detector_error"] = f"{type(err).__name__}: {err}"
    encoded = out_dir / "encoded.jpg"
    for size in spec.sizes:
        detect_seconds, detect_peak = 0.0, 0
        if detector is not None:  # timed apart, so that every instance count gets the same boxes
            decoded = decode_image(spec.images[size])
            l_full = image_lightness(decoded).to(device) if colorizer.fast else None  # as the colorizer has it
            colorizer.detect(decoded, l_full)  # warm-up at this size
            reset_peak_rss()
            _sync(device)
            start = time.perf_counter()
            colorizer.detect(decoded, l_full)
            _sync(device)
            detect_seconds = time.perf_counter() - start
            detect_peak = peak_rss_bytes()
            del decoded, l_full
        for count in spec.instances:
            boxes = np.asarray(spec.boxes[size][str(count)] if count else [], np.float32).reshape(-1, 4)
            reset_peak_rss()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rss_before = current_rss_bytes()
            result = colorizer(spec.images[size], boxes=boxes)  # decodes (and frees) the file itself
            start = time.perf_counter()
            save_image(result.image, encoded)
            stages = {**result.timings, "encode": time.perf_counter() - start, "detect": detect_seconds}
            entry = {
                "size": size, "width": result.image.size[0], "height": result.image.size[1], "instances": count,
                "stages": stages, "total": sum(stages.values()),
                "peak_rss_bytes": max(peak_rss_bytes(), detect_peak), "rss_before_bytes": rss_before,
            }  # fmt: skip
            if device.type == "cuda":
                entry["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
            np.save(out_dir / f"e2e_{path}_{size}_{count}.npy", np.asarray(result.image))
            del result
            report["end_to_end"].append(entry)
            peak_gib = entry["peak_rss_bytes"] / 2**30
            print(f"  [{path}] {size}, {count} instances: {entry['total']:.3f} s, peak RSS {peak_gib:.2f} GiB",
                  file=sys.stderr, flush=True)  # fmt: skip
    colorizer.detector = None
    colorizer.timer = None
    for mode in spec.folder_modes:
        if mode == "two at once" and side_by_side_refusal(colorizer) is not None:
            continue  # e.g. compiled networks: not shared between threads
        folder_out = out_dir / f"folder_{mode}"
        jobs = [
            Job(Path(source), folder_out / Path(source).name, _instances(boxes))
            for source, boxes in zip(spec.folder_files, spec.folder_boxes)
        ]
        start = time.perf_counter()
        in_flight = 2 if mode == "two at once" else 1
        failed = [d for d in colorize_files(colorizer, jobs, overlap=mode == "overlapped", in_flight=in_flight) if d.error]
        seconds = time.perf_counter() - start
        report["folder"].append({"mode": mode, "images": len(jobs), "failed": len(failed), "seconds": seconds,
                                 "images_per_second": len(jobs) / seconds})  # fmt: skip
        rate = len(jobs) / seconds
        print(f"  [{path}] folder of {len(jobs)}, {mode}: {rate:.2f} images/s", file=sys.stderr, flush=True)
    return report


def _instances(boxes):
    from instcolor.instances import Instances

    return Instances(boxes=np.asarray(boxes, np.float32).reshape(-1, 4))


def merge_rounds(rounds: list[dict]) -> dict:
    """One path's end-to-end rounds -> best total per configuration (its stages), worst peak memory."""
    merged = {key: rounds[0][key] for key in ("path", "precision", "setup_seconds")}
    merged["end_to_end"] = []
    for rows in zip(*(r["end_to_end"] for r in rounds)):
        best = min(rows, key=lambda row: row["total"])
        entry = {**best, "total": _stats([row["total"] for row in rows]),
                 "peak_rss_bytes": max(row["peak_rss_bytes"] for row in rows)}  # fmt: skip
        if "cuda_max_allocated_bytes" in best:
            entry["cuda_max_allocated_bytes"] = max(row["cuda_max_allocated_bytes"] for row in rows)
        merged["end_to_end"].append(entry)
    merged["folder"] = []
    for rows in zip(*(r["folder"] for r in rounds)):
        merged["folder"].append(max(rows, key=lambda row: row["images_per_second"]) | {"rounds": len(rows)})
    errors = [r["detector_error"] for r in rounds if "detector_error" in r]
    if errors:
        merged["detector_error"] = errors[0]
    return merged


# ----------------------------------------------------------------------------- parent


@dataclass
class BenchSettings:
    """What ``instcolor bench`` measures."""

    device: str = "auto"
    paths: list[str] | None = None
    instances: list[int] = field(default_factory=lambda: list(DEFAULT_INSTANCES))
    sizes: list[str] = field(default_factory=lambda: list(DEFAULT_SIZES))
    repeats: int = 2
    width: float = 1.0
    input_size: int = 256  # network side of the random model
    weights: str | None = None
    detector: str | None = "centernet"
    folder_images: int = 6
    folder_size: str = "1MP"
    folder_instances: int = 1
    networks_only: bool = False
    compile: bool = False
    threads: int | None = None
    isolate: bool = True  # end-to-end runs of each path in a process of its own: its own peak memory


def default_paths(device: torch.device, compile: bool = False) -> list[str]:
    """``eager``, ``fp32`` and the reduced precisions this device runs natively (+ compiled fp32)."""
    from instcolor.inference.precision import candidate_precisions

    paths = ["eager"] + candidate_precisions(device)
    if device.type == "cuda" and "bf16" not in paths and torch.cuda.is_bf16_supported():
        paths.append("bf16")
    if compile:
        paths.append("fp32+compile")
    return paths


def run_benchmark(settings: BenchSettings, log=print, targets: dict[str, float] | None = None) -> dict:
    """Measure every path and compare with ``eager``; returns the JSON-ready report.

    ``targets`` (thresholds, :func:`load_targets`) are judged in ``report["targets"]``; without
    them that is empty.

    The networks are timed in one process with the paths interleaved run by run; end-to-end runs
    go round the paths ``repeats`` times, each path in a process of its own (``isolate``), and
    keep each configuration's best run.
    """
    from PIL import Image

    from instcolor.inference.hardware import device_description
    from instcolor.inference.pipeline import resolve_device
    from instcolor.models.weights.registry import resolve_weights_path
    from instcolor.models.weights.store import save_model

    device = resolve_device(settings.device)
    paths = settings.paths or default_paths(device, settings.compile)
    paths = ["eager"] + [p for p in paths if p != "eager"]
    for path in paths:
        path_options(path)  # fail early on a bad name
    sizes = ["256"] + ([] if settings.networks_only else [s for s in settings.sizes if s != "256"])
    folder_count = 0 if settings.networks_only else settings.folder_images
    with tempfile.TemporaryDirectory(prefix="instcolor-bench-") as tmp:
        tmp = Path(tmp)
        if settings.weights:
            weights_file = str(resolve_weights_path(settings.weights))
            model_note = f"weights {settings.weights}"
        else:
            weights_file = str(tmp / "random.safetensors")
            model = random_model(settings.width, input_size=settings.input_size)
            save_model(weights_file, model, {"source": "instcolor bench (random)", "licence": "MIT"})
            model_note = f"random weights, width {settings.width}, network input {settings.input_size}"
            del model
        images, boxes = {}, {}
        for size in sizes:
            width, height = size_dimensions(size)
            images[size] = str(tmp / f"photo_{size}.jpg")
            Image.fromarray(photo(width, height)).save(images[size], quality=92)
            boxes[size] = {str(n): random_boxes(n, width, height) for n in sorted({1, *settings.instances})}
        folder_files, folder_boxes = [], []
        fw, fh = size_dimensions(settings.folder_size)
        for k in range(folder_count):
            path = tmp / "folder" / f"photo_{k:02d}.jpg"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(np.roll(photo(fw, fh), 37 * k, axis=1)).save(path, quality=92)
            folder_files.append(str(path))
            folder_boxes.append(random_boxes(settings.folder_instances, fw, fh, seed=k))
        out_dir = tmp / "out"

        def spec(task: str, task_paths: list[str], **extra) -> WorkerSpec:
            return WorkerSpec(
                task=task, paths=task_paths, device=str(device), weights_file=weights_file,
                network_image=images["256"], images=images, boxes=boxes, instances=list(settings.instances),
                sizes=sizes, repeats=settings.repeats, out_dir=str(out_dir), threads=settings.threads, **extra,
            )  # fmt: skip

        log(f"networks: {', '.join(paths)}, interleaved ...")
        networks = _run(spec("networks", paths), tmp, settings.isolate)
        results = {path: dict(networks.get(path, {"error": networks.get("error", "no result")})) for path in paths}
        if not settings.networks_only:
            rounds: dict[str, list[dict]] = {path: [] for path in paths}
            for round_index in range(settings.repeats):
                for path in paths:
                    log(f"end to end, round {round_index + 1} of {settings.repeats}: {path} ...")
                    modes = ["sequential"] if path == "eager" else ["sequential", "overlapped"]
                    modes += ["two at once"] if path != "eager" and device.type == "cpu" else []
                    modes = modes if folder_files else []
                    got = _run(spec("end_to_end", [path], detector=settings.detector, folder_files=folder_files,
                                    folder_boxes=folder_boxes, folder_modes=modes), tmp, settings.isolate)  # fmt: skip
                    if "error" in got:
                        results[path]["error"] = got["error"]
                    else:
                        rounds[path].append(got)
            for path, got in rounds.items():
                if got:
                    merged = merge_rounds(got)
                    results[path].update({k: merged[k] for k in ("end_to_end", "folder")})
                    if "detector_error" in merged:
                        results[path]["detector_error"] = merged["detector_error"]
        report = {
            "device": device_description(device),
            "model": model_note,
            "settings": asdict(settings) | {"paths": paths},
            "paths": results,
        }
        report["comparison"] = compare(results, out_dir, settings)
        report["targets"] = check_targets(report, device, targets) if targets else {}
    return report


def _run(spec: WorkerSpec, tmp: Path, isolate: bool) -> dict:
    if not isolate:
        return run_worker(spec)
    name = f"{spec.task}_{'_'.join(spec.paths)}".replace("+", "-")
    spec_file = tmp / f"spec_{name}.json"
    out_file = tmp / f"result_{name}.json"
    out_file.unlink(missing_ok=True)
    spec_file.write_text(json.dumps(asdict(spec)))
    command = [sys.executable, "-m", "instcolor.bench.benchmark", "--worker", str(spec_file), str(out_file)]
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    if completed.returncode != 0 or not out_file.is_file():
        what = f"{spec.task}, {', '.join(spec.paths)}"
        return {"error": f"benchmark worker ({what}) exited with status {completed.returncode}"}
    return json.loads(out_file.read_text())


def compare(results: dict, out_dir: Path, settings: BenchSettings) -> dict:
    """Speed ratios and output differences of every path against ``eager``."""
    eager = results.get("eager", {})
    comparison: dict = {}
    for path, result in results.items():
        if path == "eager" or "networks" not in result or "networks" not in eager:
            continue
        rows = []
        for base, mine in zip(eager["networks"], result["networks"]):
            a = np.load(out_dir / f"net_eager_{base['instances']}.npy")
            b = np.load(out_dir / f"net_{path}_{mine['instances']}.npy")
            delta = np.abs(a - b)
            rows.append({
                "instances": mine["instances"],
                "speedup": base["seconds"]["min"] / mine["seconds"]["min"],
                "max_delta_ab_network_units": float(delta.max() / AB_SCALE),
                "mean_delta_ab_lab": float(delta.mean()),
                "max_delta_ab_lab": float(delta.max()),
            })  # fmt: skip
        e2e = []
        for base, mine in zip(eager.get("end_to_end", []), result.get("end_to_end", [])):
            a = np.load(out_dir / f"e2e_eager_{base['size']}_{base['instances']}.npy").astype(np.int16)
            b = np.load(out_dir / f"e2e_{path}_{mine['size']}_{mine['instances']}.npy").astype(np.int16)
            delta = np.abs(a - b)
            e2e.append({
                "size": mine["size"],
                "instances": mine["instances"],
                "speedup": base["total"]["min"] / mine["total"]["min"],
                "max_delta_8bit": int(delta.max()),
                "mean_delta_8bit": float(delta.mean()),
            })  # fmt: skip
        comparison[path] = {"networks": rows, "end_to_end": e2e}
    return comparison


def _linear_fit(points: list[tuple[int, float]]) -> dict:
    """Least-squares ``t = a + b n`` over instance counts >= 1, with r^2."""
    points = [(n, t) for n, t in points if n >= 1]
    if len(points) < 2:
        return {}
    n = np.array([p[0] for p in points], float)
    t = np.array([p[1] for p in points], float)
    b, a = np.polyfit(n, t, 1)
    residual = t - (a + b * n)
    total = ((t - t.mean()) ** 2).sum()
    r2 = float(1 - (residual**2).sum() / total) if total else 1.0
    return {"intercept_s": float(a), "per_instance_s": float(b), "r2": r2}


def check_targets(report: dict, device: torch.device, targets: dict[str, float]) -> dict:
    """Each target of ``targets`` (thresholds, :func:`load_targets`) with the measured value and met / not met."""
    paths = report["paths"]
    comparison = report["comparison"]
    thresholds, targets = targets, {}

    fp32 = comparison.get("fp32", {}).get("networks", [])
    if fp32:
        worst_speedup = min(r["speedup"] for r in fp32)
        worst_delta = max(r["max_delta_ab_network_units"] for r in fp32)
        targets["fp32_fast_path"] = {
            "speedup_min_over_instances": worst_speedup,
            "speedups": {r["instances"]: r["speedup"] for r in fp32},
            "max_delta_ab_network_units": worst_delta,
            "met": bool(
                worst_speedup >= thresholds["fp32_speedup"]
                and worst_delta <= thresholds["fp32_max_delta_ab_network_units"]
            ),
        }

    reduced = []
    for path, rows in comparison.items():
        name = path.split("+")[0]
        if name in ("bf16", "fp16", "int8") and rows["networks"]:
            speedup = min(r["speedup"] for r in rows["networks"])
            mean_delta = max(r["mean_delta_ab_lab"] for r in rows["networks"])
            ok = mean_delta <= thresholds["reduced_mean_delta_ab_lab"]
            speedups = {r["instances"]: r["speedup"] for r in rows["networks"]}
            reduced.append({"path": path, "speedup_min_over_instances": speedup, "speedups": speedups,
                            "mean_delta_ab_lab": mean_delta, "accurate": ok})  # fmt: skip
    if reduced:
        accurate = [r for r in reduced if r["accurate"]] or reduced
        winner = max(accurate, key=lambda r: r["speedup_min_over_instances"])
        targets["reduced_precision"] = {
            "winner": winner["path"],
            "candidates": reduced,
            "met": winner["accurate"] and winner["speedup_min_over_instances"] >= thresholds["reduced_speedup"],
        }

    linear = {}
    for path, result in paths.items():
        if "networks" in result:
            linear[path] = _linear_fit([(r["instances"], r["seconds"]["min"]) for r in result["networks"]])
    measured = [f for f in linear.values() if f]
    if measured:
        targets["linear_in_instances"] = {"fits": linear, "met": all(f["r2"] >= 0.98 for f in measured)}
    else:  # no path timed two instance counts >= 1: nothing to judge
        targets["linear_in_instances"] = {
            "fits": linear, "met": None, "note": "not measured: needs timings at two or more instance counts >= 1",
        }  # fmt: skip

    large = []
    for path, result in paths.items():
        rows = {(r["size"], r["instances"]): r for r in result.get("end_to_end", [])}
        for (size, count), row in rows.items():
            if megapixels(size) < thresholds["large_image_megapixels"] * 0.9 or ("256", count) not in rows:
                continue
            small = rows[("256", count)]["total"]["min"]
            ratio = row["total"]["min"] / small
            rss_gb = row["peak_rss_bytes"] / 1e9
            met = ratio <= thresholds["large_image_time_ratio"] and rss_gb <= thresholds["large_image_peak_rss_gb"]
            large.append({"path": path, "size": size, "instances": count, "time_ratio_vs_256": ratio,
                          "peak_rss_gb": rss_gb, "met": met})  # fmt: skip
    if large:
        fast_met = all(r["met"] for r in large if r["path"] != "eager")
        targets["large_image"] = {"rows": large, "met_by_fast_paths": fast_met}

    if device.type == "cuda":
        best = None
        for path, result in paths.items():
            for row in result.get("networks", []):
                if row["instances"] == 8 and (best is None or row["seconds"]["min"] < best[1]):
                    best = (path, row["seconds"]["min"])
        e2e_best = None
        for path, result in paths.items():
            for row in result.get("end_to_end", []):
                if row["size"] == "256" and row["instances"] == 8:
                    seconds = row["total"]["min"] - row["stages"].get("detect", 0.0)
                    if e2e_best is None or seconds < e2e_best[1]:
                        e2e_best = (path, seconds)
        if best:
            targets["gpu_256_8_instances"] = {
                "networks": {"path": best[0], "seconds": best[1]},
                "end_to_end_without_detector": {"path": e2e_best[0], "seconds": e2e_best[1]} if e2e_best else None,
                "met": best[1] < thresholds["gpu_256_8_instances_seconds"],
            }
    return targets


# ----------------------------------------------------------------------------- tables


def render(report: dict, console) -> None:
    """Readable tables of a report on a rich console (at least 160 columns wide)."""
    from rich.console import Console
    from rich.table import Table

    if console.width < 160:
        console = Console(file=console.file, width=160, soft_wrap=True, force_terminal=console.is_terminal)

    dev = report["device"]
    if dev["type"] == "cpu":
        flags = ", ".join(dev["flags"]) or "-"
        console.print(f"[bold]CPU[/]: {dev['model_name']}, {dev['cores']} cores, torch threads {dev['threads']}, "
                      f"capability {dev['capability']}, flags: {flags}", highlight=False)  # fmt: skip
    else:
        gpu = f"{dev['name']} ({dev['memory_gib']} GiB, sm {dev['capability']}), torch {dev['torch']}"
        console.print(f"[bold]GPU[/]: {gpu}", highlight=False)
    console.print(f"model: {report['model']}", highlight=False)
    comparison = report["comparison"]

    table = Table(title="networks at 256x256: seconds (min of runs), speedup and |delta ab| vs eager fp32")
    for column in ("path", "precision", "instances", "seconds", "speedup", "max |dab| (net)", "mean |dab| (Lab)"):
        table.add_column(column, justify="right" if column not in ("path", "precision") else "left")
    for path, result in report["paths"].items():
        if "error" in result:
            table.add_row(path, "-", "-", result["error"], "", "", "")
            continue
        rows = {r["instances"]: r for r in comparison.get(path, {}).get("networks", [])}
        for row in result["networks"]:
            cmp_row = rows.get(row["instances"])
            table.add_row(
                path, result["precision"], str(row["instances"]), f"{row['seconds']['min']:.4f}",
                f"{cmp_row['speedup']:.2f}x" if cmp_row else "1.00x",
                f"{cmp_row['max_delta_ab_network_units']:.2e}" if cmp_row else "-",
                f"{cmp_row['mean_delta_ab_lab']:.3f}" if cmp_row else "-",
            )  # fmt: skip
    console.print(table)

    if any(r.get("end_to_end") for r in report["paths"].values()):
        table = Table(title="end to end per image: seconds per stage (best run), peak memory, speedup vs eager")
        columns = ("path", "size", "inst", "decode", "detect", "networks", "upsample/convert", "encode", "total",
                   "peak RSS GiB", "CUDA max GiB", "speedup", "max d8bit")  # fmt: skip
        for column in columns:
            table.add_column(column, justify="left" if column in ("path", "size") else "right")
        for path, result in report["paths"].items():
            rows = {(r["size"], r["instances"]): r for r in comparison.get(path, {}).get("end_to_end", [])}
            for row in result.get("end_to_end", []):
                s = row["stages"]
                cmp_row = rows.get((row["size"], row["instances"]))
                cuda = row.get("cuda_max_allocated_bytes")
                table.add_row(
                    path, f"{row['size']} {row['width']}x{row['height']}", str(row["instances"]),
                    *(f"{s.get(k, 0.0):.3f}" for k in ("decode", "detect", "networks", "upsample_convert", "encode")),
                    f"{row['total']['min']:.3f}", f"{row['peak_rss_bytes'] / 2**30:.2f}",
                    f"{cuda / 2**30:.2f}" if cuda is not None else "-",
                    f"{cmp_row['speedup']:.2f}x" if cmp_row else "1.00x",
                    str(cmp_row["max_delta_8bit"]) if cmp_row else "-",
                )  # fmt: skip
        console.print(table)

    if any(r.get("folder") for r in report["paths"].values()):
        table = Table(title="folder throughput")
        for column in ("path", "mode", "images", "seconds", "images/s"):
            table.add_column(column)
        for path, result in report["paths"].items():
            for row in result.get("folder", []):
                rate = f"{row['images_per_second']:.2f}"
                table.add_row(path, row["mode"], str(row["images"]), f"{row['seconds']:.2f}", rate)
        console.print(table)

    for name, target in report.get("targets", {}).items():
        met = target.get("met", target.get("met_by_fast_paths"))
        mark = "[yellow]not measured[/]" if met is None else "[green]met[/]" if met else "[red]not met[/]"
        details = {k: v for k, v in target.items() if k not in ("met", "met_by_fast_paths")}
        console.print(f"target {name}: {mark}  {json.dumps(details, default=_short)}", highlight=False)


def _short(value):
    return round(value, 4) if isinstance(value, float) else str(value)


def _round_floats(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round_floats(v) for v in value]
    return value


def write_report(report: dict, path: str | os.PathLike) -> None:
    from instcolor.io import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(_round_floats(report), indent=1) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    """``python -m instcolor.bench.benchmark --worker SPEC OUT`` (the child side)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("SPEC", "OUT"), required=True)
    args = parser.parse_args(argv)
    spec = WorkerSpec(**json.loads(Path(args.worker[0]).read_text()))
    result = run_worker(spec)
    Path(args.worker[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
