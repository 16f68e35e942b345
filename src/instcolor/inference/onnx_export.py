"""ONNX export of the networks: the full-image network and the instance + fusion path.

``instcolor export onnx OUT/`` writes

* ``full.onnx``: ``input (B, 4, S, S) -> ab (B, 2, S, S)`` (tanh units);
* ``fusion.onnx``: the instance network on N crops and the fusion network in one graph, N dynamic
  (class-aware weights: also the instances' ``classes``, ``(N,)`` int64 COCO ids, 0 unknown, -1 no
  class at all, as torch's ``crop_classes=None``);
* ``model_card.json`` and ``MODEL_CARD.md``: opset, input/output names, shapes and dtypes, how
  the placement inputs are computed, the weights' metadata.

Design of the fusion graph. The reference fusion pastes each crop's features into its box with
data-dependent slicing (``out[..., top:top+h, left:left+w] = resize(...)``), which ONNX cannot
express for a dynamic number of boxes. The graph uses the "gathered" paste instead
(:func:`instcolor.models.fusion.paste_instances_batched`): every box's bilinear resize-and-paste
onto a fusion grid is two gathers per axis with precomputed taps. The taps depend only on the
boxes, so they are graph *inputs*, computed on the host by :func:`placement_inputs` (numpy out of
:class:`~instcolor.models.fusion.GridPlacement`), one set per fusion grid (strides 1, 2, 4, 8 of
the network side S):

* ``taps_s{k}``: int64 ``(4, N, S/k)``: source rows ``i0, i1`` then source columns ``i0, i1``;
* ``tap_weights_s{k}``: float32 ``(4, N, S/k)``: their bilinear weights (0 outside the box);
* ``inside_s{k}``: float32 ``(1, 1, S/k, S/k)``: 1 inside the union of the boxes;
* ``log_support_s{k}`` (weights with the "confined" fusion rule only): float32
  ``(N, 1, S/k, S/k)``, ``log`` of each instance's support pasted onto the grid, ``-inf``
  outside its box or mask; added to the pasted instance logits before the softmax, as
  :func:`~instcolor.models.fusion.confine` does (``-inf`` takes no part in it).

Memory. Only the 1-channel logits are pasted for all N instances at once (the softmax needs
them together); each instance's ``C``-channel features are pasted and added to the fused map one
instance at a time, in an ONNX ``Loop`` (:func:`fuse_instances`), so a layer holds one
``(C, s, s)`` paste, not ``N`` of them (the old batched paste, with its expanded int64 indices,
took several ``(N, C, s, s)`` tensors per layer). The instance network runs in step with the
fusion network (:meth:`~instcolor.models.backbone.ColorizationBackbone.stages`), and each of its
stages *waits* for the previous fusion layer (:func:`_after`: a no-copy reshape whose shape comes
from that layer's loop): left to itself, ONNX Runtime ran the whole instance network first and
kept all 13 layers' ``(N, C, s, s)`` instance features alive.

Measured at 256x256 with 8 instances (``benchmarks/ort_memory.py``: peak RSS of a process that
loads the model and runs the fusion graph once; one thread): width 1.0 4.35 GiB with the batched
paste (2.47 GiB of it during the run), 2.44 GiB now (0.75 GiB during the run); width 0.25 (the
starter) 1.49 -> 1.05 GiB.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from instcolor.models.backbone import FEATURE_STRIDE, RECTIFIED_INSTANCE_FEATURES
from instcolor.models.fusion import (
    BACKGROUND_OUTSIDE_BOXES,
    GridPlacement,
    confine,
    paste_instances_batched,
    support_at,
)
from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel

OPSET = 17
#: Version of the graphs' layout (inputs, loop): part of the cache key of exported graphs.
GRAPH_FORMAT = 3
STRIDES = (1, 2, 4, 8)
FULL_FILE = "full.onnx"
FUSION_FILE = "fusion.onnx"
CARD_FILE = "model_card.json"


class OptionalClassEmbedding(nn.Module):
    """A class embedding that reads id -1 as "no class": zero, as torch's ``classes=None`` adds
    nothing. One exported graph then serves both: ids from the labels, or -1 for every instance."""

    def __init__(self, table: nn.Embedding) -> None:
        super().__init__()
        self.table = table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids.clamp_min(0)) * (ids >= 0).unsqueeze(-1).to(self.table.weight.dtype)


def with_optional_classes(model: InstColorModel) -> InstColorModel:
    """``model`` (changed in place) with its class embeddings made :class:`OptionalClassEmbedding`."""
    if model.instance.class_embedding is not None:
        model.instance.class_embedding = OptionalClassEmbedding(model.instance.class_embedding)
    for layer in model.fusion.fusers.values():
        if layer.class_logit is not None:
            layer.class_logit = OptionalClassEmbedding(layer.class_logit)
    return model


def no_classes(count: int) -> torch.Tensor:
    """The ``classes`` input meaning "no class information" for ``count`` instances."""
    return torch.full((count,), -1, dtype=torch.int64)


class FullGraph(nn.Module):
    """The full-image network: ``(B, 4, S, S) -> (B, 2, S, S)``."""

    def __init__(self, model: InstColorModel) -> None:
        super().__init__()
        self.net = model.full

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def fuse_instances(
    fused: torch.Tensor, probs: torch.Tensor, features: torch.Tensor, taps: torch.Tensor, tap_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``fused + sum_i probs[i] * paste(features[i])``, one instance at a time (an ONNX ``Loop``).

    The same bilinear taps and arithmetic as :func:`~instcolor.models.fusion.paste_instances_batched`
    (rows, then columns), with per-instance index gathers instead of expanded ones, inside the
    instance's box only (zero-padded to the grid when added): one ``(C, s, s)`` paste alive at a
    time, work in proportion to the box. Grids are *transposed* here (``(C, columns, rows)``), so
    that both gathers pick whole rows of memory (a last-axis gather copies one float at a time).

    Args:
        fused: ``(C, s, s)`` what to add to, transposed.
        probs: ``(N, 1, s, s)`` each instance's softmax weight on the grid, transposed.
        features: ``(N, C, h, w)`` the instance features at crop resolution (not transposed).
        taps, tap_weights: ``(4, N, s)`` as :func:`placement_inputs` gives them.

    Returns:
        The sum ``(C, s, s)``, transposed, and N as an int64 tensor counted by the loop (what
        :class:`FusionGraph` makes the instance network's next stage wait for).
    """
    count = torch.zeros((), dtype=torch.long)
    grid_rows, grid_cols = fused.shape[2], fused.shape[1]
    for i in range(features.shape[0]):
        # the box on this grid: where the taps have weight (both are 0 outside it, sum to 1 inside)
        in_rows = (tap_weights[0, i] + tap_weights[1, i]) > 0
        in_cols = (tap_weights[2, i] + tap_weights[3, i]) > 0
        top, height = int(torch.argmax(in_rows.to(torch.int32))), int(in_rows.to(torch.int32).sum())
        left, width = int(torch.argmax(in_cols.to(torch.int32))), int(in_cols.to(torch.int32).sum())
        r0, r1 = taps[0, i, top : top + height], taps[1, i, top : top + height]
        u0, u1 = tap_weights[0, i, top : top + height], tap_weights[1, i, top : top + height]
        c0, c1 = taps[2, i, left : left + width], taps[3, i, left : left + width]
        v0, v1 = tap_weights[2, i, left : left + width], tap_weights[3, i, left : left + width]
        feature = features[i]
        rows = (feature.index_select(1, r0) * u0[:, None] + feature.index_select(1, r1) * u1[:, None]).transpose(1, 2)
        pasted = rows.index_select(1, c0) * v0[:, None] + rows.index_select(1, c1) * v1[:, None]
        weighted = probs[i][:, left : left + width, top : top + height] * pasted
        pads = [top, grid_rows - top - height, left, grid_cols - left - width]
        fused = fused + torch.nn.functional.pad(weighted, pads)
        count = count + 1
    return fused, count


def _after(value: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``value`` reshaped to its own shape with its first dimension ``count``: the same tensor (no
    copy in ONNX Runtime), which now depends on whatever computed ``count``."""
    shape = torch.cat([count.reshape(1), torch._shape_as_tensor(value)[1:]])
    return torch._reshape_from_tensor(value, shape)


@functools.cache
def _scripted_fuse_instances():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation note: the legacy exporter needs it for loops
        return torch.jit.script(fuse_instances)


class FusionGraph(nn.Module):
    """Instance network on N crops + fusion network, with box placements as inputs (see module doc).

    Args:
        model: the float model; class-aware weights with :func:`with_optional_classes` applied.
        supports: take ``log_support_s{k}`` inputs (the "confined" rule) and add them to the
            pasted instance logits.

    Inputs: ``full_input``, ``crops``, then for class-aware weights ``classes`` ``(N,)`` int64,
    then the placements (:func:`placement_input_names`).
    """

    def __init__(self, model: InstColorModel, supports: bool = False) -> None:
        super().__init__()
        self.instance = model.instance
        self.fusion = model.fusion
        self.supports = supports
        self.class_aware = model.config.class_aware
        self.fuse_instances = _scripted_fuse_instances()

    def forward(self, full_input: torch.Tensor, crops: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        classes, placements = (inputs[0], inputs[1:]) if self.class_aware else (None, inputs)
        per_grid = 4 if self.supports else 3
        grids = {}
        for i, stride in enumerate(STRIDES):
            taps, weights, inside = placements[per_grid * i : per_grid * i + 3]
            support = placements[per_grid * i + 3] if self.supports else None
            rows, cols = (taps[0], taps[1], weights[0], weights[1]), (taps[2], taps[3], weights[2], weights[3])
            grids[stride] = (GridPlacement(rows, cols, inside), taps, weights, support)
        stream = self.instance.stages(crops) if classes is None else self.instance.stages(crops, classes=classes)
        # ONNX Runtime runs a node as soon as its inputs are ready and would run the instance network
        # ahead of fusion, keeping every layer's instance features alive: each stage of it waits for
        # the previous fusion layer, whose loop hands its instance count to the stage's input.
        resume: list[torch.Tensor | None] = [None]

        def fuse(name: str, value: torch.Tensor) -> torch.Tensor:
            got, raw = stream.send(resume[0])
            assert got == name
            # the next block rectifies them in place in eager torch
            instances = torch.relu(raw) if name in RECTIFIED_INSTANCE_FEATURES else raw
            placement, taps, tap_weights, support = grids[FEATURE_STRIDE[name]]
            layer = self.fusion.fusers[name]
            logits, _ = paste_instances_batched(layer.instance_logits(instances, classes), None, None, value.shape[-2:], placement)
            if support is not None:
                logits = logits + support
            outside = (1.0 - placement.inside) * BACKGROUND_OUTSIDE_BOXES
            bg_logit = layer.background_net(value) + outside
            probs = torch.softmax(torch.cat([logits.transpose(0, 1), bg_logit], dim=1), dim=1)
            background = (probs[:, -1:] * value)[0].transpose(1, 2)
            instance_probs = probs[0, :-1, None].transpose(2, 3)
            fused, count = self.fuse_instances(background, instance_probs, instances, taps, tap_weights)
            resume[0] = _after(raw, count)
            return fused.transpose(1, 2)[None]

        try:
            ab, _ = self.fusion.backbone(full_input, fuse=fuse)
        finally:
            stream.close()
        return ab


def placement_input_names(supports: bool = False) -> list[str]:
    names = []
    for stride in STRIDES:
        names += [f"taps_s{stride}", f"tap_weights_s{stride}", f"inside_s{stride}"]
        if supports:
            names.append(f"log_support_s{stride}")
    return names


def placement_inputs(
    box_info: dict[int, torch.Tensor], size: int, supports: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """The placement inputs of ``fusion.onnx`` for boxes placed by :func:`instcolor.geometry.box_infos`.

    Args:
        box_info: ``{grid: (N, 6)}`` as :func:`instcolor.inference.preprocess.prepare` gives it.
        size: network side S.
        supports: ``(N, 1, S, S)`` instance supports at crop resolution
            (:meth:`~instcolor.models.fusion.FusionNet.supports`) for weights with the confined
            rule: adds ``log_support_s{k}``, the log of each support area-pooled to the grid's crop
            resolution and pasted like the logits (``-inf`` where it is 0), as torch's fusion does.
    """
    out: dict[str, np.ndarray] = {}
    for stride in STRIDES:
        grid = size // stride
        p = GridPlacement.of(box_info[grid].cpu(), (grid, grid), (grid, grid), torch.device("cpu"))
        out[f"taps_s{stride}"] = torch.stack([p.rows[0], p.rows[1], p.cols[0], p.cols[1]]).numpy().astype(np.int64)
        out[f"tap_weights_s{stride}"] = torch.stack([p.rows[2], p.rows[3], p.cols[2], p.cols[3]]).float().numpy()
        out[f"inside_s{stride}"] = p.inside.float().numpy()
        if supports is not None:
            pasted, _ = paste_instances_batched(support_at(supports.cpu().float(), (grid, grid)), None, None, (grid, grid), p)
            out[f"log_support_s{stride}"] = confine(torch.zeros_like(pasted), pasted).numpy()
    return out


def fusion_feeds(
    full_input: torch.Tensor, crops: torch.Tensor, box_info: dict[int, torch.Tensor], size: int,
    supports: torch.Tensor | None = None, classes: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """All inputs of ``fusion.onnx``: the network inputs, the instances' ``classes`` (the graphs of
    class-aware weights only: give :func:`no_classes` for none) and :func:`placement_inputs`."""
    feeds = {"full_input": full_input.numpy(), "crops": crops.numpy()}
    if classes is not None:
        feeds["classes"] = classes.cpu().to(torch.int64).numpy()
    return {**feeds, **placement_inputs(box_info, size, supports)}


def _example(model: InstColorModel, size: int, count: int = 2) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    from instcolor.inference.quantization import calibration_samples

    sample = calibration_samples(size)[0]
    box_info = {g: info[:count] for g, info in sample.box_info.items()}
    supports = model.fusion.supports(None, count, size, sample.full)
    return sample.full, sample.crops[:count], placement_inputs(box_info, size, supports)


def export_onnx(
    model: InstColorModel, out_dir: str | Path, size: int | None = None, metadata: dict | None = None,
    opset: int = OPSET,
) -> dict:
    """Write ``full.onnx``, ``fusion.onnx`` and the model card into ``out_dir``; returns the card.

    The fusion graph fuses by the weights' rule (:attr:`ModelConfig.fusion_rule`): with
    ``"confined"`` it takes the ``log_support_s{k}`` inputs too.

    For class-aware weights the fusion graph takes ``classes`` too (see the module docstring).
    """
    size = size or model.config.input_size
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    with_optional_classes(model)
    supports = model.config.fusion_rule == "confined"
    full, crops, placements = _example(model, size)
    names = placement_input_names(supports)
    class_inputs = ["classes"] if model.config.class_aware else []
    classes = (torch.tensor([1, -1], dtype=torch.int64)[: len(crops)],) if class_inputs else ()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes (shapes are fixed but N)
        torch.onnx.export(
            FullGraph(model), (full,), str(out / FULL_FILE), input_names=["input"], output_names=["ab"],
            dynamic_axes={"input": {0: "batch"}, "ab": {0: "batch"}}, opset_version=opset, dynamo=False,
        )  # fmt: skip
        dynamic = {"crops": {0: "instances"}, **{name: {0: "instances"} for name in class_inputs}}
        for stride in STRIDES:
            dynamic[f"taps_s{stride}"] = {1: "instances"}
            dynamic[f"tap_weights_s{stride}"] = {1: "instances"}
            if supports:
                dynamic[f"log_support_s{stride}"] = {0: "instances"}
        tensors = tuple(torch.from_numpy(placements[n]) for n in names)
        torch.onnx.export(
            FusionGraph(model, supports=supports), (full, crops, *classes, *tensors), str(out / FUSION_FILE),
            input_names=["full_input", "crops", *class_inputs, *names], output_names=["ab"], dynamic_axes=dynamic,
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    card = model_card(size, opset, metadata, model.config)
    (out / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    (out / "MODEL_CARD.md").write_text(card_markdown(card))
    return card


def model_card(size: int, opset: int = OPSET, metadata: dict | None = None, config: ModelConfig | None = None) -> dict:
    """What ``export_onnx`` writes beside the graphs: names, shapes, dtypes and meaning of each tensor.

    ``config``: the weights' architecture; its ``fusion_rule`` says whether ``fusion.onnx`` takes
    ``log_support_s{k}`` inputs (``"confined"``), with the ``support_feather`` they are made with.
    """
    config = config or ModelConfig()
    confined = config.fusion_rule == "confined"
    fusion_inputs = [
        {"name": "full_input", "dtype": "float32", "shape": [1, 4, size, size], "meaning": "network input of the whole image"},
        {"name": "crops", "dtype": "float32", "shape": ["instances", 4, size, size], "meaning": "network inputs of the N box crops"},
    ]  # fmt: skip
    if config.class_aware:
        fusion_inputs.append(
            {"name": "classes", "dtype": "int64", "shape": ["instances"],
             "meaning": f"each instance's COCO class id (instcolor.detection.coco.coco_class_ids; 0 unknown, "
                        f"{config.num_classes - 1} the last), or -1: no class information"}
        )  # fmt: skip
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
        if confined:
            fusion_inputs.append(
                {"name": f"log_support_s{stride}", "dtype": "float32", "shape": ["instances", 1, g, g],
                 "meaning": "log of each instance's support (feathered box times softened mask) pasted on "
                            "the grid, -inf outside it; added to the instance's logit"}
            )  # fmt: skip
    card = {
        "format": "instcolor-onnx",
        "graph_format": GRAPH_FORMAT,
        "opset": opset,
        "network_size": size,
        "fusion_rule": config.fusion_rule,
        "class_aware": config.class_aware,
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
                "placements": "instcolor.inference.onnx_export.placement_inputs(box_info, size"
                + (", supports)" if confined else ")"),
            },
        },
        "weights": dict(metadata or {}),
    }
    if confined:
        card["support_feather"] = config.support_feather
        card["graphs"][FUSION_FILE]["supports"] = (
            "instcolor.models.fusion.instance_supports(crop_masks, N, size, support_feather, like): "
            "crop_masks (N, 1, S, S) are the instances' masks cropped to their boxes (None: boxes only)"
        )
    return card


def card_markdown(card: dict) -> str:
    lines = [f"# instcolor ONNX export (opset {card['opset']}, network side {card['network_size']})", ""]
    lines += [f"Input: {card['input_encoding']}. Output: {card['output_encoding']}. Fusion rule: {card['fusion_rule']}.", ""]
    if "support_feather" in card:
        lines += [f"Supports (confined rule, support_feather {card['support_feather']}): {card['graphs'][FUSION_FILE]['supports']}.", ""]
    for name, graph in card["graphs"].items():
        lines += [f"## {name}", "", "| tensor | name | dtype | shape | meaning |", "|---|---|---|---|---|"]
        for kind in ("inputs", "outputs"):
            for t in graph[kind]:
                lines.append(f"| {kind[:-1]} | `{t['name']}` | {t['dtype']} | {t['shape']} | {t.get('meaning', '')} |")
        lines.append("")
    return "\n".join(lines)


def model_fingerprint(model: InstColorModel, size: int) -> str:
    """A short hash of the weights, their config (fusion rule included), the network side and the
    graph format, naming cached exports: a reference and a confined export never share a folder."""
    digest = hashlib.sha256(f"{size}|{model.config}|graph format {GRAPH_FORMAT}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
