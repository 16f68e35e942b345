"""Import of OpenMMLab mmagic's single-file InstColorization checkpoint.

mmagic (formerly mmediting) republished the paper's COCO weights as one mmengine checkpoint,
``inst-colorizatioon_full_official_cocostuff-256x256-5b9d4eee.pth``: a torch pickle
``{"meta": {...}, "state_dict": {...}}`` of its ``InstColorization`` model
(``mmagic/models/editors/inst_colorization``), which holds the three reference networks:

======================  ======================================  ===============
mmagic prefix           mmagic class (reference network)        ours
======================  ======================================  ===============
``image_model.``        ``ColorizationNet`` (``GComp``)         ``full.``
``instance_model.``     ``ColorizationNet`` (``G``)             ``instance.``
``fusion_model.``       ``FusionNet`` (``GF``)                  ``fusion.``
======================  ======================================  ===============

Below each prefix the module names are the reference's (``model1`` .. ``model10``,
``model8up``, ``model3short8`` ..., ``model_out``; the fusion net adds ``weight_layer`` ..
``weight_layer10_2``, each with ``simple_instance_conv`` and ``simple_bg_conv``), and the indices
inside each ``nn.Sequential`` are the same as ours, so the tail of every key (``0.weight``,
``4.running_mean`` ...) carries over unchanged. Unlike the reference, the up-convolutions
(``model8up``, ``model9up``, ``model10up``), the shortcuts (``model3short8``, ``model2short9``,
``model1short10``) and ``model_class`` are bare modules (``model8up.weight``) rather than
one-element ``nn.Sequential`` (``model8up.0.weight``), like ours; the reference spelling is
accepted for those modules too (:data:`MMAGIC_SEQUENTIAL_ALIASES`), a checkpoint holding both
is an error. No key has a ``module.`` prefix.

Dropped on purpose: every ``model_class`` (a 529-bin classification head the regression output
never uses) and ``fusion_model.weight_layerout`` (a weight generator that is never called), and the
data-preprocessor's constant ``mean`` / ``std`` buffers where a checkpoint carries them.

The file is read with ``torch.load(weights_only=True)`` only; every key is mapped explicitly by
:func:`map_mmagic_key` and anything unknown, missing or mis-shaped is a :class:`WeightsError`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel
from instcolor.models.weights.reference import load_refusal
from instcolor.models.weights.store import WeightsError, map_state_dict

#: mmagic's ``InstColorization`` sub-model -> our sub-module.
MMAGIC_NETWORKS: dict[str, str] = {"image_model": "full", "instance_model": "instance", "fusion_model": "fusion"}

#: Backbone modules of ``ColorizationNet`` / ``FusionNet`` -> ours (:class:`ColorizationBackbone`).
MMAGIC_BACKBONE_MODULES: dict[str, str] = {
    "model1": "conv1", "model2": "conv2", "model3": "conv3", "model4": "conv4", "model5": "conv5",
    "model6": "conv6", "model7": "conv7", "model8up": "conv8_up", "model3short8": "shortcut3_8",
    "model8": "conv8", "model9up": "conv9_up", "model2short9": "shortcut2_9", "model9": "conv9",
    "model10up": "conv10_up", "model1short10": "shortcut1_10", "model10": "conv10",
    "model_out": "ab_head",
}  # fmt: skip

#: ``FusionNet`` weight layers -> the feature map each fuses (our ``fusion.fusers`` names).
MMAGIC_WEIGHT_LAYERS: dict[str, str] = {
    "weight_layer": "conv1_2", "weight_layer2": "conv2_2", "weight_layer3": "conv3_3",
    "weight_layer4": "conv4_3", "weight_layer5": "conv5_3", "weight_layer6": "conv6_3",
    "weight_layer7": "conv7_3", "weight_layer8_1": "conv8_up", "weight_layer8_2": "conv8_3",
    "weight_layer9_1": "conv9_up", "weight_layer9_2": "conv9_3", "weight_layer10_1": "conv10_up",
    "weight_layer10_2": "conv10_2",
}  # fmt: skip

#: The two CNNs of a ``WeightLayer`` -> ours (:class:`FusionLayer`).
MMAGIC_WEIGHT_LAYER_PARTS: dict[str, str] = {"simple_instance_conv": "instance_net", "simple_bg_conv": "background_net"}

#: Bare modules in mmagic that the reference wraps in a one-element ``nn.Sequential``: for these,
#: ``MODULE.0.weight`` / ``MODULE.0.bias`` are read as ``MODULE.weight`` / ``MODULE.bias``.
MMAGIC_SEQUENTIAL_ALIASES: frozenset[str] = frozenset(
    {"model8up", "model9up", "model10up", "model3short8", "model2short9", "model1short10"}
)

#: Modules present in the checkpoint and unused at inference, with the reason they are dropped.
MMAGIC_DROPPED_MODULES: dict[str, str] = {
    "model_class": "classification head (529 ab bins); the regression output does not use it",
    "weight_layerout": "weight generator for the output layer; FusionNet.forward never calls it",
}
#: Whole keys dropped on purpose: the data preprocessor's constant normalisation buffers.
MMAGIC_DROPPED_KEYS: frozenset[str] = frozenset({"data_preprocessor.mean", "data_preprocessor.std"})

_OURS_TO_BACKBONE = {ours: theirs for theirs, ours in MMAGIC_BACKBONE_MODULES.items()}
_OURS_TO_WEIGHT_LAYER = {ours: theirs for theirs, ours in MMAGIC_WEIGHT_LAYERS.items()}
_OURS_TO_PART = {ours: theirs for theirs, ours in MMAGIC_WEIGHT_LAYER_PARTS.items()}
_OURS_TO_NETWORK = {ours: theirs for theirs, ours in MMAGIC_NETWORKS.items()}


def map_mmagic_key(key: str) -> str | None:
    """Map one mmagic state-dict key onto our :class:`InstColorModel` key.

    Args:
        key: e.g. ``"image_model.model1.0.weight"`` or
            ``"fusion_model.weight_layer8_1.simple_bg_conv.2.bias"``.

    Returns:
        Our key (``"full.conv1.0.weight"``, ``"fusion.fusers.conv8_up.background_net.2.bias"``), or
        None for a tensor dropped on purpose (:data:`MMAGIC_DROPPED_MODULES`, :data:`MMAGIC_DROPPED_KEYS`).

    Raises:
        WeightsError: for a key outside the mmagic InstColorization layout.
    """
    if key in MMAGIC_DROPPED_KEYS:
        return None
    parts = key.split(".")
    if len(parts) < 3 or parts[0] not in MMAGIC_NETWORKS:
        raise WeightsError(f"unexpected key in mmagic checkpoint: {key!r}")
    network, module, rest = parts[0], parts[1], ".".join(parts[2:])
    if module == "model_class" or (network == "fusion_model" and module == "weight_layerout"):
        return None
    target = MMAGIC_NETWORKS[network]
    if module in MMAGIC_SEQUENTIAL_ALIASES and rest in ("0.weight", "0.bias"):
        rest = rest.removeprefix("0.")
    if module in MMAGIC_BACKBONE_MODULES:
        backbone = "fusion.backbone" if network == "fusion_model" else target
        return f"{backbone}.{MMAGIC_BACKBONE_MODULES[module]}.{rest}"
    if network == "fusion_model" and module in MMAGIC_WEIGHT_LAYERS:
        part, _, tail = rest.partition(".")
        if part in MMAGIC_WEIGHT_LAYER_PARTS and tail:
            return f"fusion.fusers.{MMAGIC_WEIGHT_LAYERS[module]}.{MMAGIC_WEIGHT_LAYER_PARTS[part]}.{tail}"
    raise WeightsError(f"unexpected key in mmagic checkpoint: {key!r}")


def mmagic_key(our_key: str) -> str:
    """The inverse of :func:`map_mmagic_key`: our key -> the mmagic key that holds it.

    Raises:
        WeightsError: for a key that is not one of :class:`InstColorModel`'s.
    """
    parts = our_key.split(".")
    if len(parts) >= 3 and parts[0] in ("full", "instance") and parts[1] in _OURS_TO_BACKBONE:
        return ".".join([_OURS_TO_NETWORK[parts[0]], _OURS_TO_BACKBONE[parts[1]], *parts[2:]])
    if len(parts) >= 4 and parts[:2] == ["fusion", "backbone"] and parts[2] in _OURS_TO_BACKBONE:
        return ".".join(["fusion_model", _OURS_TO_BACKBONE[parts[2]], *parts[3:]])
    if (
        len(parts) >= 5
        and parts[:2] == ["fusion", "fusers"]
        and parts[2] in _OURS_TO_WEIGHT_LAYER
        and parts[3] in _OURS_TO_PART
    ):
        return ".".join(["fusion_model", _OURS_TO_WEIGHT_LAYER[parts[2]], _OURS_TO_PART[parts[3]], *parts[4:]])
    raise WeightsError(f"not a key of the instcolor model: {our_key!r}")


def infer_mmagic_config(state: dict[str, torch.Tensor]) -> ModelConfig:
    """The :class:`ModelConfig` whose shapes the checkpoint has (width from ``conv1``'s 64 channels)."""
    try:
        first = state["image_model.model1.0.weight"]
        hidden = state["fusion_model.weight_layer.simple_instance_conv.0.weight"]
    except KeyError as err:
        raise WeightsError(f"not an mmagic InstColorization checkpoint: no {err.args[0]!r}") from None
    return ModelConfig(width=first.shape[0] / 64, fusion_hidden=int(hidden.shape[0]))


def convert_mmagic_state_dict(
    state: dict[str, torch.Tensor], config: ModelConfig | None = None
) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """Map an mmagic InstColorization state dict onto a full :class:`InstColorModel` state dict.

    Args:
        state: the checkpoint's ``state_dict`` (keys as in :func:`map_mmagic_key`).
        config: the architecture expected; inferred from the tensor shapes when None.

    Returns:
        ``(our state dict, config)``. BatchNorm ``num_batches_tracked`` counters are optional.

    Raises:
        WeightsError: naming every unexpected, duplicated, missing or mis-shaped tensor.
    """
    config = config or infer_mmagic_config(state)
    expected = InstColorModel(config).state_dict()
    out, problems = map_state_dict(state, map_mmagic_key, expected)
    problems.extend(
        f"missing tensor {mmagic_key(k)!r} (for {k!r})"
        for k in expected
        if k not in out and not k.endswith("num_batches_tracked")
    )
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise WeightsError("mmagic checkpoint does not fit the architecture:\n  " + "\n  ".join(shown))
    return out, config


def read_mmagic_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an mmagic / mmengine checkpoint safely.

    Accepts ``{"state_dict": {...}, "meta": {...}, ...}`` or a bare state dict; a ``module.``
    prefix on every key (a checkpoint saved from a DistributedDataParallel wrapper) is removed.

    Returns:
        ``(state_dict, meta)``; ``meta`` is ``{}`` when the file has none.

    Raises:
        WeightsError: when the file cannot be loaded with ``weights_only=True`` or holds no state dict.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for our users
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an unpickling refusal or a corrupt file
        raise WeightsError(f"{path}: cannot be loaded safely as a torch checkpoint ({load_refusal(err)})") from None
    meta: dict = {}
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        meta = loaded["meta"] if isinstance(loaded.get("meta"), dict) else {}
        state = loaded["state_dict"]
    else:
        state = loaded
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path}: holds no state dict")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f"{path}: state dict entries that are not tensors: {not_tensors[:5]}")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, meta
