"""The three training stages: initial weights, what each stage trains, its loss and learning rate.

Stage 3 with ``fusion_head`` also trains the fusion backbone's
:attr:`~instcolor.models.backbone.ColorizationBackbone.HEAD_BLOCK_NAMES`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from instcolor.color import AB_SCALE
from instcolor.models.backbone import ColorizationBackbone
from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel, is_class_key
from instcolor.models.weights.reference import map_reference_key
from instcolor.models.weights.registry import resolve_weights_path
from instcolor.models.weights.store import WeightsError, load_weights
from instcolor.training.config import CHECKPOINT_FILE, WEIGHTS_FILE

HUBER_DELTA = 1.0 / AB_SCALE


LOSS_WEIGHT = 10.0


def colorization_loss_terms(
    pred: torch.Tensor, target: torch.Tensor, pixel_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample loss ``10 * mean_pixels(w * sum_ab huber)``: ``(B, 2, S, S)`` x2 -> ``(B,)`` float32.

    The reference's ``HuberLoss(delta=1/110)`` is ``0.5 d^2 / delta`` for ``|d| < delta`` else
    ``|d| - delta / 2``, which is smooth-L1 with ``beta = delta``. ``pixel_weights`` ``(B, S, S)``
    (colour rebalancing, :mod:`instcolor.training.rebalance`) default to 1.
    """
    dtype = torch.promote_types(pred.dtype, torch.float32)
    huber = F.smooth_l1_loss(pred.to(dtype), target.to(dtype), reduction="none", beta=HUBER_DELTA).sum(dim=1)
    if pixel_weights is not None:
        huber = huber * pixel_weights.to(dtype)
    return LOSS_WEIGHT * huber.mean(dim=(1, 2))


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """The reference's linear rule: 1 for ``epochs`` epochs, then down by ``1/(decay+1)`` per epoch."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(decay_epochs + 1)


def load_initial_state(init: str, config: ModelConfig) -> dict[str, torch.Tensor]:
    """A full :class:`InstColorModel` state dict (or a ``full.*`` one) from ``init``.

    ``init`` is a run folder (its ``weights.safetensors``, else its last checkpoint), one of our
    weights files or installed names, or a reference single-network ``.pth`` checkpoint
    (SIGGRAPH17 / ``GComp`` key names), which initialises the full-image net only.
    """
    path = Path(init)
    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file():
            path = path / WEIGHTS_FILE
        elif (path / CHECKPOINT_FILE).is_file():
            return torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=True)["model"]
        else:
            raise WeightsError(f"{init}: a run folder without {WEIGHTS_FILE} or {CHECKPOINT_FILE}")
    if path.suffix == ".pth":
        return _reference_single_network(path)
    loaded = load_weights(resolve_weights_path(path))
    theirs, ours = loaded.model.config, config
    if (theirs.width, theirs.fusion_hidden) != (ours.width, ours.fusion_hidden):
        raise WeightsError(f"{init}: weights of {theirs}, but the run's networks are {ours}")
    return loaded.model.state_dict()


def _reference_single_network(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path}: cannot be loaded safely ({err})") from err
    out = {}
    for key, value in state.items():
        ours = map_reference_key("GComp", key)
        if ours is not None:
            out[ours] = value
    return out


def apply_initial_state(model: InstColorModel, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict strictly, or a ``full.*``-only one into the full-image net strictly.

    A class-aware model may start from weights without (some of) its class embeddings (class-blind
    weights, or weights with classes at fewer places): those keep their zero start.
    """
    if all(k.startswith("full.") for k in state):
        sub = {k.removeprefix("full."): v for k, v in state.items()}
        expected = model.full.state_dict()
        bad = sorted(set(sub) ^ set(expected)) + [k for k in sub if k in expected and sub[k].shape != expected[k].shape]
        if bad:
            raise WeightsError(f"initial full-image net does not fit the architecture: {bad[:5]}")
        model.full.load_state_dict(sub)
        return
    own = model.state_dict()
    extra_classes = sorted(k for k in state if is_class_key(k) and k not in own)
    if extra_classes:
        raise WeightsError(
            f"initial weights are class-aware ({extra_classes[0]} ...) but this run's networks have no such "
            "class input: train with --class-aware (and the initial weights' class inputs)"
        )
    state = {**{k: own[k] for k in model.class_state_keys() - state.keys()}, **state}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"initial weights do not fit the architecture: {err}") from err


def copy_full_to_instance(model: InstColorModel) -> None:
    """Start the instance net from the full-image net (its class embedding, if any, is kept)."""
    instance = model.instance.state_dict()
    classes = {k: instance[k] for k in instance if is_class_key(k)}
    model.instance.load_state_dict({**model.full.state_dict(), **classes})


def sync_fusion_backbone(model: InstColorModel) -> None:
    """Copy the full-image net into the fusion net's backbone (the reference's GF backbone)."""
    model.fusion.backbone.load_state_dict(model.full.state_dict())


#: The background logit's starting bias under ``fusion_init="background"``: one instance starts
#: with ``1 / (1 + e^2)``, about 12 %, of the weight inside its box.
BACKGROUND_PRIOR = 2.0


def initialise_fusers(model: InstColorModel, background_prior: float = BACKGROUND_PRIOR) -> None:
    """Fresh fusion weight generators whose background logit starts ``background_prior`` higher
    (and class biases, in a class-aware fusion net, back at zero)."""
    for layer in model.fusion.fusers.values():
        for module in layer.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()
        if layer.class_logit is not None:
            nn.init.zeros_(layer.class_logit.weight)
        last_conv = [m for m in layer.background_net if isinstance(m, nn.Conv2d)][-1]
        nn.init.constant_(last_conv.bias, background_prior)


def trainable_parameters(model: InstColorModel, stage: str, fusion_head: bool = False) -> list[nn.Parameter]:
    """The parameters a stage trains (``fusion_head``: also conv10 and the ab head of the fusion
    backbone, as the reference's ``train_model.py`` does; off by default, as the paper says)."""
    if stage == "full":
        return list(model.full.parameters())
    if stage == "instance":
        return list(model.instance.parameters())
    params = list(model.fusion.fusers.parameters())
    if fusion_head:
        for block in model.fusion.backbone.blocks(ColorizationBackbone.HEAD_BLOCK_NAMES):
            params += list(block.parameters())
    return params


def set_stage_modes(model: InstColorModel, stage: str, params: list[nn.Parameter]) -> None:
    """Freeze everything but ``params``; batch norm trains in stages 1-2 only."""
    wanted = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    model.eval()
    if stage == "full":
        model.full.train()
    elif stage == "instance":
        model.instance.train()
