"""The InstColorization model: full-image, instance and fusion networks, and their input.

Module names differ from the reference (``weight_layer8_1`` -> ``fusers.conv8_up`` ...);
:mod:`instcolor.models.weights.reference` maps reference checkpoints onto them explicitly.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from instcolor.models.backbone import ColorizationBackbone
from instcolor.models.config import ModelConfig
from instcolor.models.fusion import FUSION_STRATEGIES, INSTANCE_CHUNK, FusionNet


def check_crop_classes(crop_classes: torch.Tensor | None, count: int) -> None:
    """Raise ValueError unless ``crop_classes`` is None or one class id per crop, ``(count,)``."""
    if crop_classes is not None and tuple(crop_classes.shape) != (count,):
        raise ValueError(f"expected {count} crop classes, got shape {tuple(crop_classes.shape)}")


class InstColorModel(nn.Module):
    """The three networks of InstColorization.

    * ``full``: full-image colorization net (reference ``GComp``), used alone when there is no box;
    * ``instance``: instance colorization net (reference ``G``), run on every crop;
    * ``fusion``: fusion net (reference ``GF``) with its own full-image backbone.
    """

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        self.full = ColorizationBackbone(config)
        self.instance = ColorizationBackbone(config, num_classes=config.instance_classes)
        self.fusion = FusionNet(config)
        self.fusion_strategy = "reference"

    def class_state_keys(self) -> set[str]:
        """The state-dict keys of the class embeddings (empty for a class-blind model)."""
        return {key for key in self.state_dict() if is_class_key(key)}

    def set_fusion_rule(self, rule: str) -> InstColorModel:
        """Use another fusion rule than the weights were trained with (see :class:`ModelConfig`).

        ``"confined"`` on the paper's weights removes the dilution by other instances; the
        reference rule is what reproduces the paper.
        """
        self.config = replace(self.config, fusion_rule=rule)
        self.fusion.config = self.full.config = self.instance.config = self.config
        self.fusion.backbone.config = self.config
        return self

    def set_fusion_strategy(self, strategy: str) -> InstColorModel:
        """Choose how :meth:`forward` runs the fusion path; all give the same output (to ~1e-6).

        * ``"reference"``: the instance net runs to the end on all crops, its 13 feature maps are
          kept, and each fusion layer pastes every instance in turn onto a zero-padded full grid;
        * ``"streamed"``: the instance net runs in step with the fusion net, one feature map at a
          time (its unused ab head is skipped), and each fusion layer works only inside the boxes:
          memory no longer holds ``13 x N`` full feature maps nor ``N x C x s x s`` pastes (CPUs);
        * ``"batched"``: streamed, and each fusion layer pastes all instances at once with
          bilinear gathers, a fixed number of kernels whatever the number of boxes (GPUs).
        """
        if strategy not in FUSION_STRATEGIES:
            raise ValueError(f"fusion strategy must be one of {tuple(FUSION_STRATEGIES)}, got {strategy!r}")
        self.fusion_strategy = strategy
        for layer in self.fusion.fusers.values():
            layer.paste = FUSION_STRATEGIES[strategy][1]
        return self

    def forward(
        self,
        full_input: torch.Tensor,
        crop_inputs: torch.Tensor | None,
        box_info: dict[int, torch.Tensor] | None,
        crop_masks: torch.Tensor | None = None,
        crop_classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ab ``(1, 2, S, S)`` in ``[-1, 1]`` for one image and its N crops (``(N, 4, S, S)``).

        ``crop_masks`` (``(N, 1, S, S)`` in ``[0, 1]``, each instance's mask cropped to its box;
        all ones where an instance has none) confine instances to their silhouettes under the
        ``"confined"`` fusion rule; the reference rule ignores them.

        ``crop_classes`` (``(N,)`` int64, 0 = unknown; see :attr:`ModelConfig.num_classes`) feed
        each instance's class to a class-aware model; a class-blind model ignores them, and None
        leaves the class embeddings out.
        """
        if crop_inputs is None or len(crop_inputs) == 0:
            return self.full(full_input)[0]
        check_crop_classes(crop_classes, len(crop_inputs))
        # a class-blind model calls its networks exactly as before class awareness existed
        classes = {"classes": crop_classes} if self.config.class_aware and crop_classes is not None else {}
        supports = self.fusion.supports(crop_masks, len(crop_inputs), crop_inputs.shape[-1], full_input)
        if FUSION_STRATEGIES[self.fusion_strategy][0]:
            chunk = INSTANCE_CHUNK if crop_inputs.device.type == "cpu" else None
            stream = self.instance.stages(crop_inputs, chunk=chunk, **classes)
            return self.fusion(full_input, stream, box_info, supports, **classes)
        _, instance_features = self.instance(crop_inputs, **classes)
        return self.fusion(full_input, instance_features, box_info, supports, **classes)


#: Names of the class-embedding modules (:class:`ColorizationBackbone`, :class:`FusionLayer`).
CLASS_MODULES = frozenset({"class_embedding", "class_logit"})


def is_class_key(key: str) -> bool:
    """Whether a state-dict key belongs to a class embedding of a class-aware model."""
    return not CLASS_MODULES.isdisjoint(key.split("."))


def network_input(
    lightness: torch.Tensor, hint_ab: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``(B, 1, H, W)`` normalised lightness ``(L - 50) / 100`` -> ``(B, 4, H, W)`` network input.

    Channels: the lightness, the hint ab (ab / 110 where a colour is given, 0 elsewhere) and the hint
    mask minus 0.5 (the reference's convention).

    Args:
        hint_ab: ``(B, 2, H, W)`` hint colours in network units (ab / 110), zero outside the mask;
            None: no hint (zeros), as the paper always feeds.
        hint_mask: ``(B, 1, H, W)`` in ``{0, 1}``, 1 where a hint is given; needed with ``hint_ab``.
    """
    b, _, h, w = lightness.shape
    if hint_ab is None:
        hints = lightness.new_zeros((b, 2, h, w))
        mask = lightness.new_full((b, 1, h, w), -0.5)
    else:
        if hint_mask is None:
            raise ValueError("hint_ab needs its hint_mask")
        hints = (hint_ab * hint_mask).to(lightness.dtype)
        mask = hint_mask.to(lightness.dtype) - 0.5
    return torch.cat([lightness, hints, mask], dim=1)


def hinted_input(lightness: torch.Tensor, planes: torch.Tensor | None) -> torch.Tensor:
    """:func:`network_input` with hint planes ``(B, 3, H, W)`` (ab / 110, mask in ``{0, 1}``;
    :func:`instcolor.color.hints.hint_planes`), or None for no hint."""
    if planes is None:
        return network_input(lightness)
    return network_input(lightness, planes[:, :2], planes[:, 2:3])
