"""int8 inference on CPU: static quantization of the 3x3 convolutions (``torch.ao``).

Each run of ``conv (+ ReLU)`` inside a block of the three backbones, each shortcut, and each
fusion weight CNN becomes one quantized island: the input is quantized once (uint8, calibrated
scale), the convolutions run fused with their ReLU in int8 with per-channel int8 weights (oneDNN /
FBGEMM kernels: VNNI or AMX where the CPU has them), and the output is dequantized before the
block's float BatchNorm. Transposed convolutions (4x4 up-sampling) and the 1x1 ab heads stay in
float: quantizing the transposed ones (per-tensor weights only in ``torch.ao``) costs about 1 Lab
unit on average.

Activation ranges come from a calibration run of the whole model (full-image net, instance net
on crops, fusion) on a few photos bundled with scikit-image, at the network size in use.

The eager ``torch.ao.quantization`` API is deprecated upstream in favour of ``torchao``; it still
works in torch 2.x, and :func:`int8_engine` reports None where the quantized kernels are missing.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from instcolor.inference.timing import release_free_memory
from instcolor.models.backbone import ColorizationBackbone
from instcolor.models.model import InstColorModel

#: scikit-image sample photos used for calibration (bundled with the package, no download).
CALIBRATION_IMAGES = ("astronaut", "coffee")


def int8_engine() -> str | None:
    """The quantized engine to use on this machine: ``"onednn"`` or ``"x86"``/``"fbgemm"``; None if absent."""
    engines = set(torch.backends.quantized.supported_engines)
    for engine in ("onednn", "x86", "fbgemm"):
        if engine in engines:
            return engine
    return None


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
        warnings.filterwarnings("ignore", message=".*deprecated.*quantiz.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
        yield


class Int8AccuracyWarning(UserWarning):
    """int8 on this CPU may be less accurate (no VNNI for the oneDNN engine)."""


#: Our one line for torch's "may have accuracy issues on CPU without Vector Neural Network
#: Instruction support" warning.
NO_VNNI_MESSAGE = (
    "int8 on this CPU has no VNNI: oneDNN's int8 kernels may lose some accuracy here "
    "(--precision fp32 or bf16 if colours look off)"
)


def default_qconfig(engine: str):
    """torch's default static qconfig for ``engine``, with its CPU warnings replaced by our one line.

    torch warns (with its own wording) when the oneDNN engine runs on a CPU without VNNI; that
    warning is caught here and :data:`NO_VNNI_MESSAGE` is issued instead (:class:`Int8AccuracyWarning`).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qconfig = torch.ao.quantization.get_default_qconfig(engine)
    for warning in caught:
        text = str(warning.message)
        if "Vector Neural Network" in text or "VNNI" in text:
            warnings.warn(NO_VNNI_MESSAGE, Int8AccuracyWarning, stacklevel=3)
        elif not ("quantiz" in text.lower() and "deprecat" in text.lower()):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return qconfig


class QuantizedIsland(nn.Module):
    """``quantize -> int8 modules -> dequantize``: float in, float out."""

    def __init__(self, body: Iterable[nn.Module]) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.body = nn.Sequential(*body)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.body(self.quant(x)))


def _islands(block: nn.Sequential, qconfig) -> nn.Sequential:
    """Rebuild a block so that each maximal run of ``Conv2d`` / ``ReLU`` becomes one quantized island."""
    out: list[nn.Module] = []
    run: list[nn.Module] = []

    def close_run() -> None:
        while run and isinstance(run[0], nn.ReLU):  # a leading ReLU rectifies in place: keep it float
            out.append(run.pop(0))
        if not run:
            return
        body = nn.Sequential(*run)
        pairs = [
            [str(i), str(i + 1)]
            for i in range(len(body) - 1)
            if type(body[i]) is nn.Conv2d and type(body[i + 1]) is nn.ReLU
        ]
        if pairs:
            torch.ao.quantization.fuse_modules(body, pairs, inplace=True)
        island = QuantizedIsland(list(body))
        island.qconfig = qconfig
        out.append(island)
        run.clear()

    for module in block:
        if type(module) in (nn.Conv2d, nn.ReLU):
            run.append(module)
        else:
            close_run()
            out.append(module)
    close_run()
    return nn.Sequential(*out)


def _quantizable_backbone(net: ColorizationBackbone, qconfig) -> None:
    for name in ColorizationBackbone.CONV_BLOCK_NAMES:
        setattr(net, name, _islands(getattr(net, name), qconfig))
    for name in ("shortcut3_8", "shortcut2_9", "shortcut1_10"):
        island = QuantizedIsland([getattr(net, name)])
        island.qconfig = qconfig
        setattr(net, name, island)


@dataclass
class CalibrationSample:
    """Network inputs of one calibration image: ``full`` ``(1, 4, S, S)``, ``crops`` ``(N, 4, S, S)``."""

    full: torch.Tensor
    crops: torch.Tensor
    box_info: dict[int, torch.Tensor]


def calibration_samples(size: int = 256, names: Iterable[str] = CALIBRATION_IMAGES) -> list[CalibrationSample]:
    """Network inputs of bundled photos with two boxes each (the central and a lower-left region).

    Falls back to smooth synthetic images if scikit-image's sample data cannot be read.
    """
    from instcolor.color import lightness, normalize_l
    from instcolor.inference.preprocess import prepare
    from instcolor.models.model import network_input

    images = []
    try:
        import skimage.data

        for name in names:
            image = getattr(skimage.data, name)()
            images.append(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3])
    except Exception:  # sample data missing: any smooth images will calibrate ranges reasonably
        yy, xx = np.mgrid[0:size, 0:size] / size
        for k in range(3):
            plane = 0.5 + 0.5 * np.sin(xx * (3 + k) * np.pi) * np.cos(yy * (2 + k) * np.pi)
            images.append(np.round(np.repeat(plane[..., None], 3, axis=2) * 255).astype(np.uint8))
    samples = []
    for image in images:
        height, width = image.shape[:2]
        rgb = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        boxes = np.array([[0.25, 0.2, 0.75, 0.9], [0.0, 0.5, 0.4, 1.0]]) * [width, height, width, height]
        inputs = prepare(normalize_l(lightness(rgb)), boxes, size)
        samples.append(CalibrationSample(network_input(inputs.full), network_input(inputs.crops), inputs.box_info))
    return samples


def quantize_int8(
    model: InstColorModel,
    samples: Iterable[CalibrationSample] | None = None,
    size: int = 256,
    engine: str | None = None,
    inplace: bool = False,
) -> InstColorModel:
    """``model`` with its 3x3 convolutions in int8, on the CPU.

    Args:
        model: the float model.
        samples: calibration inputs; default :func:`calibration_samples` at ``size``.
        size: network input side, for the default calibration samples.
        engine: quantized engine (default :func:`int8_engine`); it is made the process's engine.
        inplace: convert ``model`` itself (no second copy of the weights in memory); by default
            a quantized copy is returned and ``model`` is left as it is.

    Raises:
        RuntimeError: when this PyTorch build has no quantized CPU engine.
    """
    engine = engine or int8_engine()
    if engine is None:
        raise RuntimeError("this PyTorch build has no quantized CPU engine (x86, onednn or fbgemm)")
    torch.backends.quantized.engine = engine
    qconfig = default_qconfig(engine)
    quantized = model if inplace else copy.deepcopy(model)
    quantized = quantized.cpu().float().to(memory_format=torch.contiguous_format).eval()
    for net in (quantized.full, quantized.instance, quantized.fusion.backbone):
        _quantizable_backbone(net, qconfig)
    for layer in quantized.fusion.fusers.values():
        layer.instance_net = _islands(layer.instance_net, qconfig)
        layer.background_net = _islands(layer.background_net, qconfig)
    with _quiet_deprecation():
        torch.ao.quantization.prepare(quantized, inplace=True)
        with torch.no_grad():
            for sample in samples if samples is not None else calibration_samples(size):
                quantized.full(sample.full)
                if len(sample.crops):
                    quantized(sample.full, sample.crops, sample.box_info)
        torch.ao.quantization.convert(quantized, inplace=True)
    quantized.set_fusion_strategy(model.fusion_strategy)
    release_free_memory()  # calibration activations and the float weights just replaced
    return quantized


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(module, QuantizedIsland) for module in model.modules())
