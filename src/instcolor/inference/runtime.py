"""Turn an :class:`InstColorModel` into the form that runs fastest at a given precision.

>>> prepared = prepare_model(model, "cpu", precision="bf16")    # doctest: +SKIP
>>> ab = prepared.model(prepared.cast(full_input), prepared.cast(crops), box_info)  # doctest: +SKIP

The options, all within the tolerances of ``tests/inference/test_runtime.py`` against the plain path:

* ``fusion`` strategy (:meth:`InstColorModel.set_fusion_strategy`): instance and fusion nets in
  step, the instance net's unused ab head skipped, and instances fused inside their boxes only
  (``"streamed"``, CPUs) or all at once by bilinear gathers (``"batched"``, GPUs);
* ``channels_last`` memory format (oneDNN / cuDNN pick their fastest convolutions for NHWC);
* ``precision``: ``fp32``; ``bf16`` / ``fp16``: weights and activations in that dtype (the
  fusion softmax stays float32); ``int8``: CPU static quantization (:mod:`.quantization`);
* ``compile``: :func:`torch.compile` on each block (static shapes per block, no graph breaks);
* ``cuda_graphs``: replay CUDA graphs captured per input shape (:mod:`.cudagraphs`).

:data:`EAGER_FP32` is the plain reference-style path every fast path is compared with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn

from instcolor.inference.cudagraphs import GraphedNetworks
from instcolor.inference.timing import release_free_memory
from instcolor.models.model import InstColorModel, hinted_input

#: Precisions a model can run at; ``"auto"`` (see :func:`instcolor.inference.precision.choose_precision`)
#: resolves to one of them.
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


@dataclass(frozen=True)
class RuntimeOptions:
    """How the networks run.

    Attributes:
        precision: one of :data:`PRECISIONS`.
        channels_last: NHWC memory format for weights and activations.
        fusion: a strategy of :meth:`InstColorModel.set_fusion_strategy`, or ``"auto"``:
            ``"batched"`` on CUDA, ``"streamed"`` elsewhere.
        compile: compile each block with :func:`torch.compile`.
        cuda_graphs: run the networks as CUDA graphs (CUDA, ``"batched"`` fusion).
    """

    precision: str = "fp32"
    channels_last: bool = True
    fusion: str = "auto"
    compile: bool = False
    cuda_graphs: bool = False

    def fusion_strategy(self, device: torch.device) -> str:
        if self.fusion != "auto":
            return self.fusion
        return "batched" if device.type == "cuda" else "streamed"

    def describe(self) -> str:
        parts = [self.precision, "channels_last" if self.channels_last else "nchw", f"fusion {self.fusion}"]
        return "+".join(parts + (["compiled"] if self.compile else []) + (["cuda graphs"] if self.cuda_graphs else []))


#: The plain eager float32 path: the reference's fusion, contiguous memory, nothing compiled.
EAGER_FP32 = RuntimeOptions(precision="fp32", channels_last=False, fusion="reference", compile=False)
#: The float32 fast path.
FAST_FP32 = RuntimeOptions(precision="fp32", channels_last=True, fusion="auto", compile=False)


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError when ``precision`` cannot run on ``device`` (with what to use instead)."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS + ('auto',)}, got {precision!r}")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 runs on CUDA only; on CPU use bf16, int8 or auto")
    if device.type == "cuda" and precision == "int8":
        raise ValueError("int8 runs on CPU only; on CUDA use fp16, bf16 or auto")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("this CUDA device has no bf16 support; use fp16")
    if precision == "int8":
        from instcolor.inference.quantization import int8_engine

        if int8_engine() is None:
            raise ValueError("this PyTorch build has no quantized CPU engine; use fp32 or bf16")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device type {device.type!r}")


@dataclass
class PreparedModel:
    """A model ready to run, and how to feed it.

    Attributes:
        model: the networks (the caller's model converted in place, or an int8 copy).
        options: what was applied.
        device: where it runs.
    """

    model: InstColorModel
    options: RuntimeOptions
    device: torch.device
    graphs: GraphedNetworks | None = None

    def run_full(self, full_input: torch.Tensor) -> torch.Tensor:
        """ab of the full-image network for prepared inputs (:meth:`cast`)."""
        return self.graphs.full(full_input) if self.graphs is not None else self.model.full(full_input)[0]

    def run_fusion(
        self,
        full_input: torch.Tensor,
        crops: torch.Tensor,
        box_info: dict[int, torch.Tensor],
        crop_masks: torch.Tensor | None = None,
        crop_classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ab of the fusion path for prepared inputs (:meth:`cast`); ``crop_masks`` stay float32,
        ``crop_classes`` (``(N,)`` int64, see :meth:`InstColorModel.forward`) int64."""
        if crop_masks is not None:
            crop_masks = crop_masks.to(self.device, torch.float32)
        if crop_classes is not None:
            crop_classes = crop_classes.to(self.device, torch.int64)
        if self.graphs is not None:
            return self.graphs.fusion(full_input, crops, box_info, crop_masks, crop_classes)
        return self.model(full_input, crops, box_info, crop_masks, crop_classes)

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the network inputs."""
        return DTYPES[self.options.precision]

    def context(self) -> contextlib.AbstractContextManager:
        """Where the networks run: on CUDA fast paths, cuDNN picks its fastest kernels per shape."""
        if self.device.type != "cuda" or self.options == EAGER_FP32:
            return contextlib.nullcontext()
        return _cudnn_benchmark()

    def network_inputs(self, lightness: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """Network inputs for normalised lightness ``(B, 1, S, S)`` and hint planes ``(B, 3, S, S)``
        (:func:`instcolor.models.model.hinted_input`; None: no hint), ready for this model (:meth:`cast`)."""
        return self.cast(hinted_input(lightness, hints))

    def cast(self, x: torch.Tensor) -> torch.Tensor:
        """A network input on the model's device, dtype and memory format."""
        memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
        return x.to(self.device, self.dtype).contiguous(memory_format=memory_format)


@contextlib.contextmanager
def _cudnn_benchmark() -> Iterator[None]:
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def prepare_model(
    model: InstColorModel,
    device: torch.device | str = "cpu",
    options: RuntimeOptions = FAST_FP32,
    size: int = 256,
) -> PreparedModel:
    """Apply ``options`` to ``model``, in place (int8 swaps modules: use the returned model).

    Args:
        model: float32 networks.
        device: where they run.
        options: see :class:`RuntimeOptions`.
        size: network input side (for int8 calibration).

    Raises:
        ValueError: for a precision the device cannot run, or ``compile`` with int8.
    """
    device = torch.device(device)
    check_precision(options.precision, device)
    if options.compile and options.precision == "int8":
        raise ValueError("compile is not available with int8; use one or the other")
    graphable = device.type == "cuda" and not options.compile and options.fusion_strategy(device) == "batched"
    if options.cuda_graphs and not graphable:
        raise ValueError("CUDA graphs need a CUDA device and the 'batched' fusion, without compile")
    model = model.to(device).eval()
    model.set_fusion_strategy(options.fusion_strategy(device))
    if options.precision == "int8":
        from instcolor.inference.quantization import quantize_int8

        model = quantize_int8(model, size=size, inplace=True)
    elif options.precision in ("bf16", "fp16"):
        model = model.to(DTYPES[options.precision])
    model = model.to(memory_format=torch.channels_last if options.channels_last else torch.contiguous_format)
    if options.compile:
        compile_blocks(model)
    release_free_memory()  # weights just replaced by converted ones
    graphs = GraphedNetworks(model) if options.cuda_graphs else None
    return PreparedModel(model=model, options=options, device=device, graphs=graphs)


def compile_blocks(model: InstColorModel) -> None:
    """:func:`torch.compile` each block of the three networks and the fusion weight CNNs, in place.

    Blocks see fixed shapes per batch size, and the Python around them (streamed fusion, ragged
    box pasting) stays eager, so there are no graph breaks.
    """
    blocks: list[nn.Module] = []
    for net in (model.full, model.instance, model.fusion.backbone):
        blocks += net.blocks()
    for layer in model.fusion.fusers.values():
        blocks += [layer.instance_net, layer.background_net]
    for block in blocks:
        block.compile()


def with_precision(options: RuntimeOptions, precision: str) -> RuntimeOptions:
    return replace(options, precision=precision)
