"""``precision="auto"``: measure once which precision is fastest here at acceptable accuracy, and
remember the choice.

What is worth trying is measured, not assumed from the instruction set: on CPU, int8 wherever
this PyTorch build has a quantized engine (x86/FBGEMM or oneDNN: with VNNI or AMX it is fastest,
but even on plain AVX2 int8 beat fp32 by 2x in issue 14's measurements), bf16 only where the CPU
has bf16 instructions (AVX512-BF16, AMX; elsewhere oneDNN emulates it about 15x *slower* than
fp32, too slow even to try); on CUDA fp16 and, where supported, bf16.
Each candidate runs the full-image network and the fusion path with one instance on a sample
photo (int8 quantizes all three backbones and the fusion weight CNNs); one whose mean
``|delta ab|`` against fp32 exceeds :data:`MAX_MEAN_DELTA_AB` Lab units is refused, and a reduced
precision must beat fp32 by :data:`MIN_SPEEDUP` to be chosen. The choice is cached in
``$INSTCOLOR_HOME/precision.json`` (next to ``weights/``), keyed by device, torch version and
model width.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from instcolor.color import AB_SCALE
from instcolor.inference.hardware import cpu_info
from instcolor.inference.runtime import FAST_FP32, check_precision, prepare_model, with_precision
from instcolor.models.model import InstColorModel

MAX_MEAN_DELTA_AB = 1.0
MIN_SPEEDUP = 1.1
CACHE_NAME = "precision.json"


def precision_cache_path() -> Path:
    """``precision.json`` beside the weights folder (``$INSTCOLOR_HOME`` or the user cache dir)."""
    from instcolor.models.weights.store import weights_home

    return weights_home().parent / CACHE_NAME


def candidate_precisions(device: torch.device | str) -> list[str]:
    """Precisions worth measuring on ``device``, fp32 first.

    On CPU: bf16 only with native bf16 instructions; int8 wherever a quantized engine exists,
    whether or not the CPU has int8 dot products (VNNI/AMX): the measurement decides.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    info = cpu_info()
    candidates = ["fp32"]
    if info.native_bf16:
        candidates.append("bf16")
    try:
        check_precision("int8", device)
        candidates.append("int8")
    except ValueError:  # no quantized engine in this build
        pass
    return candidates


def device_signature(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device.index if device.index is not None else 0)
        return f"cuda|{props.name}|{props.major}.{props.minor}"
    return f"cpu|{cpu_info().signature()}"


def cache_key(device: torch.device | str, model: InstColorModel, size: int) -> str:
    return f"{device_signature(device)}|torch {torch.__version__}|width {model.config.width}|size {size}"


@dataclass
class PrecisionTrial:
    """One measured candidate: seconds per full-image pass plus one fusion pass with one instance,
    and the larger of the two errors against fp32 (Lab units)."""

    precision: str
    seconds: float
    mean_delta_ab: float
    max_delta_ab: float
    accepted: bool


def measure_precisions(
    model: InstColorModel,
    device: torch.device | str,
    size: int = 256,
    candidates: list[str] | None = None,
    repeats: int = 2,
    clock=time.perf_counter,
) -> list[PrecisionTrial]:
    """Time the full-image network and the one-instance fusion path at each candidate precision.

    Runs on copies of ``model``; ``clock`` is injectable (tests). Repeats are interleaved across
    the candidates (fp32, bf16, int8, fp32, ...) so that a noisy machine biases none of them.
    """
    from instcolor.inference.quantization import calibration_samples

    device = torch.device(device)
    candidates = candidates or candidate_precisions(device)
    sample = calibration_samples(size, names=("chelsea",))[0]
    order = ["fp32"] + [c for c in candidates if c != "fp32"]
    prepared = {p: prepare_model(copy.deepcopy(model), device, with_precision(FAST_FP32, p), size) for p in order}

    def run(precision: str) -> tuple[torch.Tensor, torch.Tensor]:
        runtime = prepared[precision]
        full = runtime.cast(sample.full)
        crops = runtime.cast(sample.crops[:1])
        box_info = {grid: info[:1] for grid, info in sample.box_info.items()}
        return runtime.run_full(full).float(), runtime.run_fusion(full, crops, box_info).float()

    seconds = {p: float("inf") for p in order}
    outputs = {}
    with torch.inference_mode():
        for p in order:
            outputs[p] = run(p)  # warm-up, and the outputs compared
        for _ in range(repeats):
            for p in order:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = clock()
                run(p)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds[p] = min(seconds[p], clock() - start)
    trials: list[PrecisionTrial] = []
    for p in order:
        deltas = [(got - want).abs() * AB_SCALE for got, want in zip(outputs[p], outputs["fp32"])]
        mean, peak = max(float(d.mean()) for d in deltas), max(float(d.max()) for d in deltas)
        trials.append(PrecisionTrial(p, seconds[p], mean, peak, bool(mean <= MAX_MEAN_DELTA_AB)))
    del prepared
    return trials


def pick(trials: list[PrecisionTrial]) -> str:
    """The fastest accepted trial; a reduced precision only when it beats fp32 by :data:`MIN_SPEEDUP`."""
    fp32 = next(t for t in trials if t.precision == "fp32")
    best = min((t for t in trials if t.accepted), key=lambda t: t.seconds)
    return best.precision if best.seconds * MIN_SPEEDUP <= fp32.seconds else "fp32"


def choose_precision(
    model: InstColorModel,
    device: torch.device | str,
    size: int = 256,
    cache_path: Path | None = None,
    remeasure: bool = False,
    allowed: tuple[str, ...] | None = None,
) -> str:
    """``"auto"`` resolved for this device and model: read from the cache, else measured and cached.

    ``allowed`` limits the candidates (e.g. to what a backend other than torch runs).
    """
    device = torch.device(device)
    candidates = [c for c in candidate_precisions(device) if allowed is None or c in allowed]
    if candidates == ["fp32"]:
        return "fp32"
    path = cache_path or precision_cache_path()
    key = cache_key(device, model, size) + ("" if allowed is None else f"|{','.join(candidates)}")
    cache = read_cache(path)
    entry = cache.get(key)
    if not remeasure and isinstance(entry, dict) and entry.get("precision") in candidates:
        return entry["precision"]
    trials = measure_precisions(model, device, size, candidates)
    choice = pick(trials)
    cache[key] = {
        "precision": choice,
        "trials": [asdict(t) for t in trials],
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_cache(path, cache)
    return choice


def read_cache(path: Path) -> dict:
    """A JSON cache of measured choices (empty when missing or corrupt)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(path: Path, cache: dict) -> None:
    """Write a JSON cache of measured choices atomically (a read-only home is not an error)."""
    from instcolor.io import atomic_write_bytes

    try:
        atomic_write_bytes(path, (json.dumps(cache, indent=1, sort_keys=True) + "\n").encode())
    except OSError:  # a read-only home only costs a re-measurement next time
        pass
