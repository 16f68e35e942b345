"""Fusion of instance and full-image features: weight generators, pasting, the fusion network.

A fusion layer turns each instance feature map (pasted into its box on the full-image grid) and
the full-image feature map into per-pixel weights, and blends them (:class:`FusionLayer`); the
fusion network (:class:`FusionNet`) is a full-image backbone with one fusion layer per feature map
(:data:`~instcolor.models.backbone.FEATURE_NAMES`). :data:`FUSION_STRATEGIES` names the ways of
running it (reference, streamed, batched), all with the same output.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from instcolor.geometry import edge_ramp
from instcolor.models.backbone import FEATURE_STRIDE, RECTIFIED_INSTANCE_FEATURES, ColorizationBackbone, zero_embedding
from instcolor.models.backbone import conv3x3 as _conv  # the weight CNNs use the backbone's 3x3 convolution
from instcolor.models.config import ModelConfig

BACKGROUND_OUTSIDE_BOXES = 1e5


def _weight_cnn(c_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(c_in, hidden), nn.ReLU(inplace=True),
        _conv(hidden, hidden), nn.ReLU(inplace=True),
        _conv(hidden, 1), nn.ReLU(inplace=True),
    )  # fmt: skip


#: How a :class:`FusionLayer` places the instances on its grid (see :class:`FusionLayer`).
PASTE_METHODS = ("padded", "gathered", "regions")


class FusionLayer(nn.Module):
    """One fusion module: per-pixel softmax weights for background and each instance feature.

    The instance CNN runs on each crop's feature map at crop resolution; logits and features are
    bilinearly resized to the box on this grid and zero-padded; the background logit gets ``+1e5``
    outside the union of boxes. With a ``support`` (the ``"confined"`` fusion rule, see
    :class:`ModelConfig`) each instance's logit becomes ``logit + log(support)``, pasted the same
    way: ``-inf`` outside its box or mask, so it takes no part in the softmax there.

    Three implementations give the same result (to float rounding), chosen by ``paste``:

    * ``"padded"`` (the reference's way): each instance in turn is resized and pasted onto a
      zero-padded full grid, ``(N, C, s, s)`` memory;
    * ``"gathered"``: the same full-grid pastes for all instances at once, by bilinear gathers
      (a fixed number of kernels whatever N: the choice for GPUs);
    * ``"regions"``: only the ``(N, 1, s, s)`` logits live on the full grid; each instance's resized
      feature is weighted and added inside its own box, so work and memory follow the box areas
      (the choice for CPUs).

    Logits and the softmax are computed in float32 whatever the feature dtype (``1e5`` overflows
    float16).

    With ``num_classes`` (a class-aware model, :attr:`ModelConfig.class_inputs` ``"fusion"`` or
    ``"both"``) each instance's logit gets a learned bias of its class (:attr:`class_logit`, zero
    at first), so the layer can trust instances of some classes more than others.
    """

    def __init__(self, channels: int, hidden: int = 16, num_classes: int = 0) -> None:
        super().__init__()
        self.instance_net = _weight_cnn(channels, hidden)
        self.background_net = _weight_cnn(channels, hidden)
        self.class_logit = zero_embedding(num_classes, 1) if num_classes else None
        self.paste = "padded"

    def instance_logits(self, instances: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, 1, h, w)`` weight logits of the instance features, plus their class bias when the
        layer has one and ``classes`` (``(N,)`` int64) are given."""
        logits = self.instance_net(instances)
        if classes is None or self.class_logit is None:
            return logits
        return logits + self.class_logit(classes.to(logits.device)).to(logits.dtype)[:, :, None, None]

    def forward(
        self,
        background: torch.Tensor,
        instances: torch.Tensor,
        box_info: torch.Tensor,
        placement: GridPlacement | None = None,
        support: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fuse.

        Args:
            background: ``(1, C, s, s)`` full-image feature map.
            instances: ``(N, C, h, w)`` the instance net's feature maps of the N crops.
            box_info: ``(N, 6)`` int placement of each box on this grid (:func:`geometry.box_info`);
                ``"regions"`` reads it on the host: keep it on the CPU there.
            placement: the boxes' :class:`GridPlacement` for ``"gathered"`` (computed if None).
            support: ``(N, 1, h, w)`` float in ``[0, 1]``, each instance's support at crop
                resolution (``"confined"`` rule), or None for the reference rule.
            classes: ``(N,)`` int64 class ids of the instances (see :meth:`instance_logits`), or None.

        Returns:
            ``(1, C, s, s)`` fused feature map.
        """
        if self.paste == "regions":
            return self._fuse_by_regions(background, instances, box_info, support, classes)
        grid = background.shape[-2:]
        logits = self.instance_logits(instances, classes)
        if support is not None:
            logits = torch.cat([logits, support.to(logits.dtype)], dim=1)
        if self.paste == "gathered":
            if placement is None:
                placement = GridPlacement.of(box_info, grid, instances.shape[-2:], background.device)
            weights, features = paste_instances_batched(logits, instances, box_info, grid, placement)
            inside = placement.inside
        else:
            weights, features = paste_instances(logits, instances, box_info, grid)
            inside = weights.new_zeros(()) if len(box_info) == 0 else box_masks(box_info, grid, weights)
        weights = weights.float() if support is None else confine(weights[:, :1], weights[:, 1:])
        bg_logit = self.background_net(background).float() + (1.0 - inside.float()) * BACKGROUND_OUTSIDE_BOXES
        probs = torch.softmax(torch.cat([weights.transpose(0, 1), bg_logit], dim=1), dim=1).to(features.dtype)
        fused = (probs[:, :-1].transpose(0, 1) * features).sum(dim=0, keepdim=True)
        return fused + probs[:, -1:] * background

    def _fuse_by_regions(
        self,
        background: torch.Tensor,
        instances: torch.Tensor,
        box_info: torch.Tensor,
        support: torch.Tensor | None,
        classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        grid_h, grid_w = background.shape[-2:]
        boxes = box_info.tolist()
        logits = self.instance_logits(instances, classes).float() if boxes else None
        if support is not None and boxes:
            logits = torch.cat([logits, support.float()], dim=1)
        outside = 0.0 if support is None else -torch.inf  # an instance's logit where it is not
        all_logits = background.new_full((1, len(boxes) + 1, grid_h, grid_w), outside, dtype=torch.float32)
        for i, (left, _, top, _, width, height) in enumerate(boxes):
            resized = _resize(logits[i : i + 1], height, width)
            logit = resized[:, 0] if support is None else confine(resized[:, :1], resized[:, 1:])[:, 0]
            all_logits[:, i, top : top + height, left : left + width] = logit
        inside = union_mask(box_info, (grid_h, grid_w), background.device)
        bg_logit = self.background_net(background).float()
        all_logits[:, -1:] = torch.where(inside, bg_logit, bg_logit + BACKGROUND_OUTSIDE_BOXES)
        probs = torch.softmax(all_logits, dim=1).to(background.dtype)
        fused = probs[:, -1:] * background
        for i, (left, _, top, _, width, height) in enumerate(boxes):
            region = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
            fused[region] += probs[:, i : i + 1][region] * _resize(instances[i : i + 1], height, width)
        return fused


def confine(logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """``logits + log(support)`` in float32: ``-inf`` where the support is 0 (no softmax weight there).

    Multiplying an instance's softmax numerator by its support: where the support ramps down at a
    box border the instance's weight fades out with it.
    """
    support = support.float()
    return torch.where(support > 0, logits.float() + support.clamp_min(1e-30).log(), -torch.inf)


def instance_supports(
    crop_masks: torch.Tensor | None, count: int, size: int, feather: float, like: torch.Tensor
) -> torch.Tensor:
    """Where each instance may take part in fusion, at crop resolution: ``(N, 1, S, S)`` in ``[0, 1]``.

    The box support ramps linearly from near 0 at the crop border to 1 at ``feather * S`` inside it
    (a feathered box); a mask is softened over the same width and multiplied by it, so neither a box
    edge nor a silhouette edge leaves a seam.

    Args:
        crop_masks: ``(N, 1, S, S)`` each instance's mask cropped to its box and resized, in
            ``[0, 1]`` (an all-ones mask for an instance without one), or None (boxes only).
        count: N, the number of instances.
        size: S, the crop side.
        feather: :attr:`ModelConfig.support_feather`.
        like: a tensor whose device the supports go to (float32).
    """
    ramp_width = max(feather * size, 1.0)
    ramp = torch.from_numpy(edge_ramp(size, feather)).to(like.device)
    box = (ramp[:, None] * ramp[None, :])[None, None]
    if crop_masks is None:
        return box.expand(count, 1, size, size)
    radius = max(int(round(ramp_width / 2)), 1)
    soft = F.avg_pool2d(crop_masks.to(like.device, torch.float32), 2 * radius + 1, stride=1, padding=radius,
                        count_include_pad=False)  # fmt: skip
    return soft * box


def support_at(supports: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Supports ``(N, 1, S, S)`` averaged down to a feature map's crop resolution ``(h, w)``."""
    if tuple(supports.shape[-2:]) == tuple(size):
        return supports
    return F.interpolate(supports, size=tuple(size), mode="area")


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def _source_taps(
    grid: int, starts: torch.Tensor, lengths: torch.Tensor, source: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps (``align_corners=False``) along one axis for every box: ``(N, grid)`` each.

    Cell ``p`` of the grid lies in box ``i`` when ``starts[i] <= p < starts[i] + lengths[i]``; it
    reads source rows ``i0, i1`` with weights ``w0, w1`` (both 0 outside the box), as
    ``F.interpolate`` computes them for a resize from ``source`` to ``lengths[i]``.
    """
    position = torch.arange(grid, device=starts.device)[None, :] - starts[:, None]
    inside = (position >= 0) & (position < lengths[:, None])
    scale = source / lengths.to(torch.float32)[:, None]
    real = ((position.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = real.floor().to(torch.int64).clamp(max=source - 1)
    w1 = (real - i0).clamp(0.0, 1.0)
    i1 = torch.where(i0 < source - 1, i0 + 1, i0)
    w1 = torch.where(inside, w1, torch.zeros_like(w1))
    w0 = torch.where(inside, 1.0 - w1, torch.zeros_like(w1))
    return torch.where(inside, i0, 0), torch.where(inside, i1, 0), w0, w1


@dataclass
class GridPlacement:
    """Where every box reads its crop from, on one grid: bilinear taps along rows and columns.

    Layers on the same grid share it (computed once per image and grid by :class:`FusionNet`).
    """

    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    cols: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    inside: torch.Tensor  # (1, 1, H, W) bool, the union of the boxes

    @classmethod
    def of(
        cls, box_info: torch.Tensor, grid_hw: Sequence[int], source_hw: Sequence[int], device: torch.device
    ) -> GridPlacement:
        info = box_info.to(device)
        grid_h, grid_w = int(grid_hw[0]), int(grid_hw[1])
        return cls(
            rows=_source_taps(grid_h, info[:, 2], info[:, 5], int(source_hw[0])),
            cols=_source_taps(grid_w, info[:, 0], info[:, 4], int(source_hw[1])),
            inside=union_mask(info, grid_hw, device),
        )


def paste_instances_batched(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    box_info: torch.Tensor | None,
    grid_hw: Sequence[int],
    placement: GridPlacement | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`paste_instances` for all instances at once: bilinear gathers, no loop over boxes.

    ``features=None`` pastes the logits alone (the features returned are None then); ``box_info``
    may be None when ``placement`` is given.
    """
    k = logits.shape[1]
    both = logits if features is None else torch.cat([logits.to(features.dtype), features], dim=1)
    n, channels, height, width = both.shape
    grid_h, grid_w = int(grid_hw[0]), int(grid_hw[1])
    if placement is None:
        placement = GridPlacement.of(box_info, grid_hw, (height, width), both.device)
    r0, r1, u0, u1 = placement.rows
    c0, c1, v0, v1 = placement.cols
    dtype = both.dtype
    expand_rows = (n, channels, grid_h, width)
    rows = both.gather(2, r0[:, None, :, None].expand(expand_rows)) * u0[:, None, :, None].to(dtype)
    rows += both.gather(2, r1[:, None, :, None].expand(expand_rows)) * u1[:, None, :, None].to(dtype)
    expand_cols = (n, channels, grid_h, grid_w)
    pasted = rows.gather(3, c0[:, None, None, :].expand(expand_cols)) * v0[:, None, None, :].to(dtype)
    pasted += rows.gather(3, c1[:, None, None, :].expand(expand_cols)) * v1[:, None, None, :].to(dtype)
    if features is None:
        return pasted, None
    return pasted[:, :k].to(logits.dtype), pasted[:, k:]


def paste_instances(
    logits: torch.Tensor, features: torch.Tensor, box_info: torch.Tensor, grid_hw: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize each crop's logit and feature map to its box and zero-pad it onto the grid.

    Returns ``(N, K, H, W)`` logits (K channels: the logit, and the support when given) and
    ``(N, C, H, W)`` features on the ``grid_hw`` grid.
    """
    n, k = features.shape[0], logits.shape[1]
    grid_h, grid_w = int(grid_hw[0]), int(grid_hw[1])
    out_logits = logits.new_zeros((n, k, grid_h, grid_w))
    out_feats = features.new_zeros((n, features.shape[1], grid_h, grid_w))
    for i, (left, _, top, _, width, height) in enumerate(box_info.tolist()):
        both = torch.cat([logits[i : i + 1], features[i : i + 1]], dim=1)
        resized = F.interpolate(both, size=(height, width), mode="bilinear", align_corners=False)
        out_logits[i, :, top : top + height, left : left + width] = resized[0, :k]
        out_feats[i, :, top : top + height, left : left + width] = resized[0, k:]
    return out_logits, out_feats


def box_masks(box_info: torch.Tensor, grid_hw: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """``(1, 1, H, W)`` float mask of the union of the boxes on the grid."""
    mask = like.new_zeros((1, 1, int(grid_hw[0]), int(grid_hw[1])))
    for left, _, top, _, width, height in box_info.tolist():
        mask[..., top : top + height, left : left + width] = 1.0
    return mask


def union_mask(box_info: torch.Tensor, grid_hw: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """``(1, 1, H, W)`` bool mask of the union of the boxes on the grid, without a loop over boxes."""
    grid_h, grid_w = int(grid_hw[0]), int(grid_hw[1])
    info = box_info.to(device)
    rows = torch.arange(grid_h, device=device)[None, :]
    cols = torch.arange(grid_w, device=device)[None, :]
    in_rows = (rows >= info[:, 2:3]) & (rows < info[:, 2:3] + info[:, 5:6])  # (N, H)
    in_cols = (cols >= info[:, 0:1]) & (cols < info[:, 0:1] + info[:, 4:5])  # (N, W)
    return (in_rows[:, :, None] & in_cols[:, None, :]).any(dim=0)[None, None]


class FusionNet(nn.Module):
    """The fusion generator: its own full-image backbone plus one :class:`FusionLayer` per feature."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        self.backbone = ColorizationBackbone(config)
        channels = {
            "conv1_2": 64, "conv2_2": 128, "conv3_3": 256, "conv4_3": 512, "conv5_3": 512,
            "conv6_3": 512, "conv7_3": 512, "conv8_up": 256, "conv8_3": 256, "conv9_up": 128,
            "conv9_3": 128, "conv10_up": 128, "conv10_2": 128,
        }  # fmt: skip
        self.fusers = nn.ModuleDict({
            name: FusionLayer(config.channels(c), config.fusion_hidden, config.fusion_classes)
            for name, c in channels.items()
        })  # fmt: skip

    def forward(
        self,
        full_input: torch.Tensor,
        instance_features: Mapping[str, torch.Tensor] | Iterator[tuple[str, torch.Tensor]],
        box_info: dict[int, torch.Tensor],
        supports: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused ab ``(1, 2, S, S)`` for one image.

        Args:
            full_input: ``(1, 4, S, S)`` network input of the whole image.
            instance_features: the instance net's 13 feature maps for the N crops, either all at
                once (a mapping) or one at a time in network order
                (:meth:`ColorizationBackbone.stages` of the crops), which keeps only one
                layer's instance features alive; such a stream is closed when done.
            box_info: ``{grid: (N, 6)}`` box placements for the grids ``S, S/2, S/4, S/8``.
            supports: ``(N, 1, S, S)`` instance supports (:func:`instance_supports`) for the
                ``"confined"`` rule, or None (the reference rule).
            classes: ``(N,)`` int64 class ids of the instances for a class-aware fusion net
                (:attr:`ModelConfig.fusion_classes`), or None (no class bias).
        """
        size = full_input.shape[-1]
        if isinstance(instance_features, Mapping):
            instance_feature = instance_features.__getitem__
        else:
            stream = instance_features

            def instance_feature(name: str) -> torch.Tensor:
                got, value = next(stream)
                if got != name:
                    raise RuntimeError(f"instance feature stream out of step: expected {name}, got {got}")
                return torch.relu_(value) if name in RECTIFIED_INSTANCE_FEATURES else value

        placements: dict[tuple, GridPlacement] = {}  # shared by the layers of one grid
        pooled_supports: dict[tuple, torch.Tensor] = {}  # likewise, per crop resolution

        def support(instances: torch.Tensor) -> torch.Tensor | None:
            if supports is None:
                return None
            key = tuple(instances.shape[-2:])
            if key not in pooled_supports:
                pooled_supports[key] = support_at(supports, key)
            return pooled_supports[key]

        def fuse(name: str, value: torch.Tensor) -> torch.Tensor:
            grid = size // FEATURE_STRIDE[name]
            layer, instances = self.fusers[name], instance_feature(name)
            if layer.paste != "gathered":
                return layer(value, instances, box_info[grid], support=support(instances), classes=classes)
            key = (grid, tuple(instances.shape[-2:]))
            if key not in placements:
                placements[key] = GridPlacement.of(box_info[grid], value.shape[-2:], instances.shape[-2:], value.device)
            return layer(value, instances, box_info[grid], placements[key], support(instances), classes)

        try:
            ab, _ = self.backbone(full_input, fuse=fuse)
        finally:
            if not isinstance(instance_features, Mapping):
                instance_features.close()
        return ab

    def supports(self, crop_masks: torch.Tensor | None, count: int, size: int, like: torch.Tensor) -> torch.Tensor | None:
        """The instance supports this network's fusion rule uses (:func:`rule_supports`)."""
        return rule_supports(self.config, crop_masks, count, size, like)


def rule_supports(
    config: ModelConfig, crop_masks: torch.Tensor | None, count: int, size: int, like: torch.Tensor
) -> torch.Tensor | None:
    """The instance supports ``config``'s fusion rule uses: :func:`instance_supports` for the
    ``"confined"`` rule, None for the reference rule.

    Args:
        crop_masks: ``(N, 1, S, S)`` masks cropped to each box, or None (boxes only).
        count, size: N and S.
        like: a tensor on the device the supports go to.
    """
    if config.fusion_rule == "reference":
        return None
    return instance_supports(crop_masks, count, size, config.support_feather, like)


#: Crops per chunk at the full-resolution end of the streamed instance net on CPUs: less memory at
#: the same speed (on GPUs the extra kernel launches would cost time, and memory is rarely short).
INSTANCE_CHUNK = 2


#: How :class:`InstColorModel` runs the fusion path (see :meth:`InstColorModel.set_fusion_strategy`):
#: whether the instance net runs in step with the fusion net, and how fusion layers paste.
FUSION_STRATEGIES = {"reference": (False, "padded"), "streamed": (True, "regions"), "batched": (True, "gathered")}
