"""ONNX export of the networks: the full-image network and the instance + fusion path.

``instcolor export onnx OUT/`` writes

* ``full.onnx``: ``input (B, 4, S, S) -> ab (B, 2, S, S)`` (tanh units);
* ``fusion.onnx``: the instance network on N crops and the fusion network in one graph, N dynamic;
* ``model_card.json`` and ``MODEL_CARD.md``: opset, input/output names, shapes and dtypes, how
  the placement inputs are computed, the weights' metadata.

Design of the fusion graph. The reference fusion pastes each crop's features into its box with
data-dependent slicing (``out[..., top:top+h, left:left+w] = resize(...)``), which ONNX cannot
express for a dynamic number of boxes. The graph uses the "gathered" paste instead
(:func:`instcolor.models.fusion.paste_instances_batched`): every box's bilinear resize-and-paste
onto a fusion grid is two ``GatherElements`` per axis with precomputed taps. The taps depend only
on the boxes, so they are graph *inputs*, computed on the host by :func:`placement_inputs` (numpy
out of :class:`~instcolor.models.fusion.GridPlacement`), one set per fusion grid (strides 1, 2, 4,
8 of the network side S):

* ``taps_s{k}``: int64 ``(4, N, S/k)``: source rows ``i0, i1`` then source columns ``i0, i1``;
* ``tap_weights_s{k}``: float32 ``(4, N, S/k)``: their bilinear weights (0 outside the box);
* ``inside_s{k}``: float32 ``(1, 1, S/k, S/k)``: 1 inside the union of the boxes.

Adding the "confined" fusion rule later (each instance's logit ``+ log(support)``, ``-inf``
outside its box or mask) is one more optional input per grid, ``log_support_s{k}`` float32
``(N, 1, S/k, S/k)``, added to the pasted instance logits before the softmax:
:class:`FusionGraph` already takes it (``supports=True``) and adds it in the fused layer; the
reference rule is exported now (no such input), which equals ``log_support = 0``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from instcolor.models.backbone import FEATURE_NAMES, FEATURE_STRIDE, RECTIFIED_INSTANCE_FEATURES
from instcolor.models.fusion import BACKGROUND_OUTSIDE_BOXES, GridPlacement, paste_instances_batched
from instcolor.models.model import InstColorModel

OPSET = 17
STRIDES = (1, 2, 4, 8)
FULL_FILE = "full.onnx"
FUSION_FILE = "fusion.onnx"
CARD_FILE = "model_card.json"


class FullGraph(nn.Module):
    """The full-image network: ``(B, 4, S, S) -> (B, 2, S, S)``."""

    def __init__(self, model: InstColorModel) -> None:
        super().__init__()
        self.net = model.full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


class FusionGraph(nn.Module):
    """Instance network on N crops + fusion network, with box placements as inputs (see module doc).

    Args:
        model: the float model.
        supports: take ``log_support_s{k}`` inputs (the "confined" rule) and add them to the
            pasted instance logits.
    """

    def __init__(self, model: InstColorModel, supports: bool = False) -> None:
        super().__init__()
        self.instance = model.instance
        self.fusion = model.fusion
        self.supports = supports

    def forward(self, full_input: torch.Tensor, crops: torch.Tensor, *placements: torch.Tensor) -> torch.Tensor:
        per_grid = 4 if self.supports else 3
        grids = {}
        for i, stride in enumerate(STRIDES):
            taps, weights, inside = placements[per_grid * i : per_grid * i + 3]
            support = placements[per_grid * i + 3] if self.supports else None
            grids[stride] = (GridPlacement((taps[0], taps[1], weights[0], weights[1]), (taps[2], taps[3], weights[2], weights[3]), inside), support)
        _, features = self.instance(crops)

        def fuse(name: str, value: torch.Tensor) -> torch.Tensor:
            instances = features[name]
            if name in RECTIFIED_INSTANCE_FEATURES:  # the next block rectified them in place in eager torch
                instances = torch.relu(instances)
            placement, support = grids[FEATURE_STRIDE[name]]
            layer = self.fusion.fusers[name]
            logits = layer.instance_net(instances)
            weights, pasted = paste_instances_batched(logits, instances, None, value.shape[-2:], placement)
            if support is not None:
                weights = weights + support
            outside = (1.0 - placement.inside) * BACKGROUND_OUTSIDE_BOXES
            bg_logit = layer.background_net(value) + outside
            probs = torch.softmax(torch.cat([weights.transpose(0, 1), bg_logit], dim=1), dim=1)
            fused = (probs[:, :-1].transpose(0, 1) * pasted).sum(dim=0, keepdim=True)
            return fused + probs[:, -1:] * value

        ab, _ = self.fusion.backbone(full_input, fuse=fuse)
        return ab


def placement_input_names(supports: bool = False) -> list[str]:
    names = []
    for stride in STRIDES:
        names += [f"taps_s{stride}", f"tap_weights_s{stride}", f"inside_s{stride}"]
        if supports:
            names.append(f"log_support_s{stride}")
    return names


def placement_inputs(box_info: dict[int, torch.Tensor], size: int) -> dict[str, np.ndarray]:
    """The placement inputs of ``fusion.onnx`` for boxes placed by :func:`instcolor.geometry.box_infos`.

    Args:
        box_info: ``{grid: (N, 6)}`` as :func:`instcolor.inference.preprocess.prepare` gives it.
        size: network side S.
    """
    out: dict[str, np.ndarray] = {}
    for stride in STRIDES:
        grid = size // stride
        p = GridPlacement.of(box_info[grid].cpu(), (grid, grid), (grid, grid), torch.device("cpu"))
        out[f"taps_s{stride}"] = torch.stack([p.rows[0], p.rows[1], p.cols[0], p.cols[1]]).numpy().astype(np.int64)
        out[f"tap_weights_s{stride}"] = torch.stack([p.rows[2], p.rows[3], p.cols[2], p.cols[3]]).float().numpy()
        out[f"inside_s{stride}"] = p.inside.float().numpy()
    return out


def _example(size: int, count: int = 2) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    from instcolor.inference.quantization import calibration_samples

    sample = calibration_samples(size)[0]
    box_info = {g: info[:count] for g, info in sample.box_info.items()}
    return sample.full, sample.crops[:count], placement_inputs(box_info, size)


def export_onnx(
    model: InstColorModel, out_dir: str | Path, size: int | None = None, metadata: dict | None = None,
    opset: int = OPSET,
) -> dict:
    """Write ``full.onnx``, ``fusion.onnx`` and the model card into ``out_dir``; returns the card.

    Raises:
        ValueError: for class-aware weights (the graphs take no instance classes).
    """
    if model.config.class_aware:
        raise ValueError("ONNX export covers class-blind weights only; these weights are class-aware")
    size = size or model.config.input_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    full, crops, placements = _example(size)
    names = placement_input_names()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes (shapes are fixed but N)
        torch.onnx.export(
            FullGraph(model), (full,), str(out / FULL_FILE), input_names=["input"], output_names=["ab"],
            dynamic_axes={"input": {0: "batch"}, "ab": {0: "batch"}}, opset_version=opset, dynamo=False,
        )  # fmt: skip
        dynamic = {"crops": {0: "instances"}}
        for stride in STRIDES:
            dynamic[f"taps_s{stride}"] = {1: "instances"}
            dynamic[f"tap_weights_s{stride}"] = {1: "instances"}
        tensors = tuple(torch.from_numpy(placements[n]) for n in names)
        torch.onnx.export(
            FusionGraph(model), (full, crops, *tensors), str(out / FUSION_FILE),
            input_names=["full_input", "crops", *names], output_names=["ab"], dynamic_axes=dynamic,
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    card = model_card(size, opset, metadata)
    (out / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    (out / "MODEL_CARD.md").write_text(card_markdown(card))
    return card


def model_card(size: int, opset: int = OPSET, metadata: dict | None = None) -> dict:
    """What ``export_onnx`` writes beside the graphs: names, shapes, dtypes and meaning of each tensor."""
    fusion_inputs = [
        {"name": "full_input", "dtype": "float32", "shape": [1, 4, size, size], "meaning": "network input of the whole image"},
        {"name": "crops", "dtype": "float32", "shape": ["instances", 4, size, size], "meaning": "network inputs of the N box crops"},
    ]  # fmt: skip
    for stride in STRIDES:
        g = size // stride
        fusion_inputs += [
            {"name": f"taps_s{stride}", "dtype": "int64", "shape": [4, "instances", g],
             "meaning": f"bilinear source rows i0, i1 and columns i0, i1 of each box on the {g}x{g} grid"},
            {"name": f"tap_weights_s{stride}", "dtype": "float32", "shape": [4, "instances", g],
             "meaning": "weights of those taps (0 outside the box)"},
            {"name": f"inside_s{stride}", "dtype": "float32", "shape": [1, 1, g, g],
             "meaning": "1 inside the union of the boxes"},
        ]  # fmt: skip
    return {
        "format": "instcolor-onnx",
        "opset": opset,
        "network_size": size,
        "fusion_rule": "reference",
        "input_encoding": "(L - 50) / 100, two zero hint channels, one -0.5 mask channel (NCHW)",
        "output_encoding": "ab / 110 (tanh units); multiply by 110 for Lab a*, b*",
        "graphs": {
            FULL_FILE: {
                "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 4, size, size]}],
                "outputs": [{"name": "ab", "dtype": "float32", "shape": ["batch", 2, size, size]}],
            },
            FUSION_FILE: {
                "inputs": fusion_inputs,
                "outputs": [{"name": "ab", "dtype": "float32", "shape": [1, 2, size, size]}],
                "placements": "instcolor.inference.onnx_export.placement_inputs(box_info, size)",
                "confined_rule": "add inputs log_support_s{k} (N, 1, S/k, S/k), added to the pasted instance logits",
            },
        },
        "weights": dict(metadata or {}),
    }


def card_markdown(card: dict) -> str:
    lines = [f"# instcolor ONNX export (opset {card['opset']}, network side {card['network_size']})", ""]
    lines += [f"Input: {card['input_encoding']}. Output: {card['output_encoding']}. Fusion rule: {card['fusion_rule']}.", ""]
    for name, graph in card["graphs"].items():
        lines += [f"## {name}", "", "| tensor | name | dtype | shape | meaning |", "|---|---|---|---|---|"]
        for kind in ("inputs", "outputs"):
            for t in graph[kind]:
                lines.append(f"| {kind[:-1]} | `{t['name']}` | {t['dtype']} | {t['shape']} | {t.get('meaning', '')} |")
        lines.append("")
    return "\n".join(lines)


def model_fingerprint(model: InstColorModel, size: int) -> str:
    """A short hash of the weights and the network side, naming cached exports."""
    digest = hashlib.sha256(f"{size}|{model.config}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
