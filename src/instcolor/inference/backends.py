"""Where the networks run: PyTorch, or ONNX Runtime on the graphs of :mod:`.onnx_export`.

>>> runtime = backend_runtime(model, "cpu", RuntimeOptions(precision="int8"), 256, "auto")  # doctest: +SKIP

``backend="onnxruntime"`` exports the model once (cached under ``$INSTCOLOR_HOME/onnx/<hash>/``,
keyed by the weights and the network side), for ``int8`` quantizes it statically with ONNX
Runtime's own tools on the same calibration photos as torch int8
(:data:`~instcolor.inference.quantization.CALIBRATION_IMAGES`: QDQ, per-channel int8 weights,
uint8 activations, 3x3 and 1x1 convolutions only, like torch's), and runs it with the CPU
execution provider (the CUDA provider on a CUDA device when this onnxruntime has it).
:class:`OrtRuntime` has the methods of :class:`~instcolor.inference.runtime.PreparedModel` that
the colorizer calls, so either plugs in.

``backend="auto"`` times both backends at the chosen precision (full-image network plus the
one-instance fusion path, interleaved) once per machine and caches the faster one in
``$INSTCOLOR_HOME/backend.json``, as ``precision="auto"`` does.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from instcolor.inference.runtime import PreparedModel, RuntimeOptions, prepare_model
from instcolor.models.config import ModelConfig
from instcolor.models.fusion import rule_supports
from instcolor.models.model import InstColorModel, check_crop_classes, hinted_input

BACKENDS = ("torch", "onnxruntime")
#: Precisions the ONNX Runtime backend runs.
ORT_PRECISIONS = ("fp32", "int8")
BACKEND_CACHE = "backend.json"


def ort_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def check_backend(backend: str, precision: str, device: torch.device | str) -> None:
    """Raise ValueError when ``backend`` cannot run ``precision`` here (what to do instead)."""
    if backend not in BACKENDS + ("auto",):
        raise ValueError(f"backend must be one of {BACKENDS + ('auto',)}, got {backend!r}")
    if backend == "onnxruntime":
        if not ort_available():
            raise ValueError("the onnxruntime backend needs `pip install instcolor[onnx]` (onnx, onnxruntime)")
        if precision not in ORT_PRECISIONS + ("auto",):
            raise ValueError(f"the onnxruntime backend runs {ORT_PRECISIONS}; use --backend torch for {precision}")
        if precision == "int8" and torch.device(device).type == "cuda":
            raise ValueError("int8 runs on CPU only")


def ort_providers(device: torch.device | str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_home() -> Path:
    from instcolor.models.weights.store import weights_home

    return weights_home().parent / "onnx"


def exported_graphs(model: InstColorModel, size: int, precision: str = "fp32", cache: Path | None = None) -> Path:
    """The folder holding ``full.onnx`` / ``fusion.onnx`` for ``model`` at ``precision`` (exported once)."""
    from instcolor.inference.onnx_export import CARD_FILE, export_onnx, model_fingerprint

    folder = (cache or onnx_home()) / model_fingerprint(model, size)
    fp32 = folder / "fp32"
    if not (fp32 / CARD_FILE).is_file():
        export_onnx(model, fp32, size)
    if precision == "fp32":
        return fp32
    int8 = folder / "int8"
    if not (int8 / CARD_FILE).is_file():
        quantize_graphs(fp32, int8, size)
    return int8


def quantize_graphs(src: Path, dst: Path, size: int) -> None:
    """ONNX Runtime static int8 quantization of both graphs, calibrated on :func:`calibration_samples`."""
    import shutil

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from instcolor.inference.onnx_export import CARD_FILE, FULL_FILE, FUSION_FILE, fusion_feeds, no_classes
    from instcolor.inference.quantization import calibration_samples
    from instcolor.models.fusion import instance_supports

    samples = calibration_samples(size)

    class Reader(CalibrationDataReader):
        def __init__(self, feeds: list[dict]) -> None:
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    card = json.loads((src / CARD_FILE).read_text())
    full_feeds = [{"input": s.full.numpy()} for s in samples]
    fusion_inputs = []
    for s in samples:
        supports = None
        if card.get("fusion_rule") == "confined":  # boxes only, as torch int8 calibrates
            supports = instance_supports(None, len(s.crops), size, card["support_feather"], s.full)
        classes = no_classes(len(s.crops)) if card.get("class_aware") else None  # as torch int8 calibrates
        fusion_inputs.append(fusion_feeds(s.full, s.crops, s.box_info, size, supports, classes))
    dst.mkdir(parents=True, exist_ok=True)
    for name, feeds in ((FULL_FILE, full_feeds), (FUSION_FILE, fusion_inputs)):
        quantize_static(
            str(src / name), str(dst / name), Reader(feeds), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"], per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )  # fmt: skip
    card["quantization"] = "onnxruntime static QDQ: per-channel int8 Conv weights, uint8 activations"
    (dst / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    shutil.copy(src / "MODEL_CARD.md", dst / "MODEL_CARD.md")


@dataclass(frozen=True)
class ExportedModel:
    """The host's side of a model whose weights live in exported graphs: its configuration, and
    the instance supports its fusion rule needs (computed on the host, fed to the graph)."""

    config: ModelConfig

    def supports(self, crop_masks: torch.Tensor | None, count: int, size: int, like: torch.Tensor) -> torch.Tensor | None:
        """As :meth:`instcolor.models.fusion.FusionNet.supports` (:func:`~instcolor.models.fusion.rule_supports`)."""
        return rule_supports(self.config, crop_masks, count, size, like)


@dataclass
class OrtRuntime:
    """ONNX Runtime sessions of an exported model, called like a :class:`PreparedModel`.

    Attributes:
        model: the model's configuration (the graphs hold the weights: the torch model is not
            kept; at width 1.0 the process's RSS after loading fell from 1.85 to 1.29 GiB).
        folder: where ``full.onnx`` and ``fusion.onnx`` are.
    """

    model: ExportedModel
    options: RuntimeOptions
    device: torch.device
    folder: Path
    size: int
    providers: list[str] = field(default_factory=list)
    backend: str = "onnxruntime"

    def __post_init__(self) -> None:
        import onnxruntime as ort

        from instcolor.inference.onnx_export import FULL_FILE, FUSION_FILE

        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = torch.get_num_threads()
        session_options.log_severity_level = 3
        # without the arena, large activations (the instances' full-resolution maps) are freed at once
        session_options.enable_cpu_mem_arena = False
        self.providers = self.providers or ort_providers(self.device)
        self.full_session = ort.InferenceSession(str(self.folder / FULL_FILE), session_options, providers=self.providers)
        self.fusion_session = ort.InferenceSession(
            str(self.folder / FUSION_FILE), session_options, providers=self.providers
        )

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def network_inputs(self, lightness: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        return self.cast(hinted_input(lightness, hints))

    def cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach().to("cpu", torch.float32).contiguous()

    def run_full(self, full_input: torch.Tensor) -> torch.Tensor:
        (ab,) = self.full_session.run(None, {"input": full_input.numpy()})
        return torch.from_numpy(ab).to(self.device)

    def run_fusion(
        self,
        full_input: torch.Tensor,
        crops: torch.Tensor,
        box_info: dict[int, torch.Tensor],
        crop_masks: torch.Tensor | None = None,
        crop_classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The fused ab ``(1, 2, S, S)``; ``crop_masks`` ``(N, 1, S, S)`` confine instances as in torch;
        ``crop_classes`` ``(N,)`` int64 reach class-aware weights as in torch (None: no class
        information, :func:`~instcolor.inference.onnx_export.no_classes`); class-blind weights ignore them.

        For weights with the confined rule the instance supports are computed here, on the host,
        by :meth:`ExportedModel.supports` (as torch's :meth:`~instcolor.models.fusion.FusionNet.supports`), and enter the
        graph as ``log_support_s{k}``; the reference rule ignores ``crop_masks``, as torch does.
        """
        from instcolor.inference.onnx_export import fusion_feeds, no_classes

        check_crop_classes(crop_classes, len(crops))
        supports = self.model.supports(crop_masks, len(crops), crops.shape[-1], full_input)
        classes = None
        if self.model.config.class_aware:
            classes = no_classes(len(crops)) if crop_classes is None else crop_classes
        feeds = fusion_feeds(full_input, crops, box_info, self.size, supports, classes)
        (ab,) = self.fusion_session.run(None, feeds)
        return torch.from_numpy(ab).to(self.device)


def ort_runtime(
    model: InstColorModel, device: torch.device | str, options: RuntimeOptions, size: int, cache: Path | None = None
) -> OrtRuntime:
    device = torch.device(device)
    check_backend("onnxruntime", options.precision, device)
    folder = exported_graphs(model, size, options.precision, cache)
    return OrtRuntime(model=ExportedModel(model.config), options=options, device=device, folder=folder, size=size)


def backend_runtime(
    model: InstColorModel, device: torch.device | str, options: RuntimeOptions, size: int, backend: str = "torch"
) -> PreparedModel | OrtRuntime:
    """``model`` ready to run on ``backend`` (``"auto"``: the faster one here, measured once and cached)."""
    device = torch.device(device)
    check_backend(backend, options.precision, device)
    if backend == "auto":
        backend = choose_backend(model, device, options, size)
    if backend == "onnxruntime":
        return ort_runtime(model, device, options, size)
    return prepare_model(model, device, options, size)


# ----------------------------------------------------------------------------- auto


@dataclass
class BackendTrial:
    backend: str
    seconds: float
    max_delta: float


def time_runtimes(runtimes: dict, size: int, repeats: int = 2, instances: int = 1, clock=time.perf_counter) -> dict:
    """Seconds (best of ``repeats``, interleaved) of full + ``instances``-instance fusion per runtime, and outputs."""
    from instcolor.inference.quantization import calibration_samples

    sample = calibration_samples(size, names=("chelsea",))[0]
    repeat = max(1, (instances + 1) // 2)  # the sample has two boxes: repeated for more
    crops = torch.cat([sample.crops] * repeat)[:instances]
    box_info = {g: torch.cat([i] * repeat)[:instances] for g, i in sample.box_info.items()}

    def run(rt):
        full = rt.cast(sample.full)
        if instances == 0:
            return rt.run_full(full).float()
        return rt.run_fusion(full, rt.cast(crops), box_info).float()

    seconds = {name: float("inf") for name in runtimes}
    outputs = {}
    with torch.inference_mode():
        for name, rt in runtimes.items():
            outputs[name] = run(rt)
        for _ in range(repeats):
            for name, rt in runtimes.items():
                start = clock()
                run(rt)
                seconds[name] = min(seconds[name], clock() - start)
    return {"seconds": seconds, "outputs": outputs}


def measure_backends(model: InstColorModel, device: torch.device, options: RuntimeOptions, size: int) -> list[BackendTrial]:
    runtimes = {
        "torch": prepare_model(copy.deepcopy(model), device, options, size),
        "onnxruntime": ort_runtime(copy.deepcopy(model), device, options, size),
    }
    total = {name: 0.0 for name in runtimes}
    deltas = {name: 0.0 for name in runtimes}
    for instances in (0, 1):
        measured = time_runtimes(runtimes, size, instances=instances)
        for name in runtimes:
            total[name] += measured["seconds"][name]
            diff = (measured["outputs"][name] - measured["outputs"]["torch"]).abs().max()
            deltas[name] = max(deltas[name], float(diff))
    return [BackendTrial(name, total[name], deltas[name]) for name in runtimes]


def choose_backend(
    model: InstColorModel, device: torch.device | str, options: RuntimeOptions, size: int,
    cache_path: Path | None = None, measure=None,
) -> str:  # fmt: skip
    """``"auto"`` resolved: torch where ONNX Runtime cannot run this precision, else the faster, cached."""
    device = torch.device(device)
    if options.precision not in ORT_PRECISIONS or not ort_available() or options.compile or options.cuda_graphs:
        return "torch"
    import onnxruntime as ort

    from instcolor.inference.precision import device_signature, read_cache, write_cache

    path = cache_path or onnx_home().parent / BACKEND_CACHE
    key = (
        f"{device_signature(device)}|torch {torch.__version__}|onnxruntime {ort.__version__}|"
        f"width {model.config.width}|{model.config.fusion_rule} rule|size {size}|{options.precision}"
        + (f"|classes {model.config.num_classes} in {model.config.class_inputs}" if model.config.class_aware else "")
    )
    cache = read_cache(path)
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("backend") in BACKENDS:
        return entry["backend"]
    trials = (measure or measure_backends)(model, device, options, size)
    best = min(trials, key=lambda t: t.seconds)
    cache[key] = {
        "backend": best.backend,
        "trials": [t.__dict__ for t in trials],
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_cache(path, cache)
    return best.backend

