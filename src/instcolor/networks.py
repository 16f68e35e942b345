"""The InstColorization networks: SIGGRAPH17 backbone, fusion weight generators, and the model.

Shapes for a network input of side ``S`` (divisible by 8) and width multiplier ``w``:

* input ``(B, 4, S, S)``: ``(L - 50) / 100``, two zero hint channels, one ``-0.5`` mask channel
  (:func:`network_input`);
* output ``(B, 2, S, S)`` ab in tanh units in ``[-1, 1]`` (times 110 gives Lab a*, b*);
* 13 feature maps (:data:`FEATURE_NAMES`) on grids ``S``, ``S/2``, ``S/4``, ``S/8``.

Module names differ from the reference (``model1`` -> ``conv1``, ``model3short8`` ->
``shortcut3_8``, ``weight_layer8_1`` -> ``fusers.conv8_up`` ...); :mod:`instcolor.weights` maps
reference checkpoints onto them explicitly.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: The 13 fused feature maps, in network order, and the grid divisor each lives on.
FEATURE_NAMES: tuple[str, ...] = (
    "conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "conv6_3", "conv7_3",
    "conv8_up", "conv8_3", "conv9_up", "conv9_3", "conv10_up", "conv10_2",
)  # fmt: skip
FEATURE_STRIDE: dict[str, int] = {
    "conv1_2": 1, "conv2_2": 2, "conv3_3": 4, "conv4_3": 8, "conv5_3": 8, "conv6_3": 8,
    "conv7_3": 8, "conv8_up": 4, "conv8_3": 4, "conv9_up": 2, "conv9_3": 2, "conv10_up": 1,
    "conv10_2": 1,
}  # fmt: skip

#: Feature maps that the next block starts with an in-place ReLU on. The reference runs the
#: instance net to the end before fusing, so the instance features it fuses for these names are
#: the rectified ones; a streamed run (:meth:`ColorizationBackbone.stages`) rectifies them itself.
RECTIFIED_INSTANCE_FEATURES = frozenset({"conv8_up", "conv9_up", "conv10_up"})

AB_SCALE = 110.0
BACKGROUND_OUTSIDE_BOXES = 1e5


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters stored with every weights file.

    Attributes:
        width: channel multiplier (1.0 = the paper's networks).
        fusion_hidden: hidden channels of the fusion weight CNNs (16 in the paper).
        input_size: the square network input side the weights were trained for (divisible by 8).
    """

    width: float = 1.0
    fusion_hidden: int = 16
    input_size: int = 256

    def channels(self, base: int) -> int:
        return max(1, int(round(base * self.width)))

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(c_in: int, c_out: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=dilation, dilation=dilation)


def _block(c_in: int, c_out: int, n_convs: int, dilation: int = 1, norm: bool = True) -> nn.Sequential:
    """``n_convs`` x (conv 3x3 + ReLU), then BatchNorm: indices match the reference Sequentials."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [_conv(c_in if i == 0 else c_out, c_out, dilation), nn.ReLU(inplace=True)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


def _up_block(c_in: int, c_out: int, n_convs: int, last_act: nn.Module | None = None) -> nn.Sequential:
    """ReLU, then ``n_convs`` x (conv + ReLU), then BatchNorm (conv8, conv9) or LeakyReLU (conv10)."""
    layers: list[nn.Module] = [nn.ReLU(inplace=True)]
    for i in range(n_convs):
        layers.append(_conv(c_in if i == 0 else c_out, c_out))
        if last_act is not None and i == n_convs - 1:
            layers.append(last_act)
        else:
            layers.append(nn.ReLU(inplace=True))
    if last_act is None:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


class ColorizationBackbone(nn.Module):
    """Zhang et al. SIGGRAPH 2017 colorization network without hints (full-image and instance net).

    Call with ``(B, 4, S, S)`` input; returns ``(ab, features)`` where ``ab`` is ``(B, 2, S, S)`` in
    ``[-1, 1]`` and ``features`` maps each of :data:`FEATURE_NAMES` to its ``(B, C, s, s)`` map.
    Fusion hooks (see :class:`FusionNet`) may replace each feature map as it is produced.
    """

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        c64, c128, c256, c512 = (config.channels(c) for c in (64, 128, 256, 512))
        self.conv1 = _block(4, c64, 2)
        self.conv2 = _block(c64, c128, 2)
        self.conv3 = _block(c128, c256, 3)
        self.conv4 = _block(c256, c512, 3)
        self.conv5 = _block(c512, c512, 3, dilation=2)
        self.conv6 = _block(c512, c512, 3, dilation=2)
        self.conv7 = _block(c512, c512, 3)
        self.conv8_up = nn.ConvTranspose2d(c512, c256, kernel_size=4, stride=2, padding=1)
        self.shortcut3_8 = _conv(c256, c256)
        self.conv8 = _up_block(c256, c256, 2)
        self.conv9_up = nn.ConvTranspose2d(c256, c128, kernel_size=4, stride=2, padding=1)
        self.shortcut2_9 = _conv(c128, c128)
        self.conv9 = _up_block(c128, c128, 1)
        self.conv10_up = nn.ConvTranspose2d(c128, c128, kernel_size=4, stride=2, padding=1)
        self.shortcut1_10 = _conv(c64, c128)
        self.conv10 = _up_block(c128, c128, 1, last_act=nn.LeakyReLU(0.2, inplace=True))
        self.ab_head = nn.Sequential(nn.Conv2d(c128, 2, kernel_size=1), nn.Tanh())

    def forward(self, x: torch.Tensor, fuse=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats: dict[str, torch.Tensor] = {}
        stages = self.stages(x)
        try:
            name, value = next(stages)
            while True:
                if fuse is not None:
                    value = fuse(name, value)
                feats[name] = value
                name, value = stages.send(value)
        except StopIteration as done:
            return done.value, feats

    def stages(
        self, x: torch.Tensor, chunk: int | None = None
    ) -> Generator[tuple[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
        """Run the network one feature map at a time.

        A generator over :data:`FEATURE_NAMES`: yields ``(name, feature)``; ``send`` a replacement
        (the fused map) to continue with it, or call ``next`` to keep the feature. Returns ``ab``
        (as ``StopIteration.value``). Closing it early skips the rest of the network (the ab head of
        the instance net, whose output fusion never uses). Only the maps later layers still need
        (the shortcuts' ``conv1_2``, ``conv2_2``, ``conv3_3``) stay alive between steps.

        Args:
            x: ``(B, 4, S, S)`` network input.
            chunk: without autograd, run the full-resolution end of the network (the last shortcut
                and ``conv10``) ``chunk`` samples at a time, ``conv10`` writing over the yielded
                ``conv10_up`` map: for a stream whose yielded maps nobody keeps (the instance net
                in step with fusion), about 17 MB less per 256x256 sample at the peak.
        """
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"input height and width must be divisible by 8, got {tuple(x.shape[-2:])}")
        # The shortcuts' sources are kept by name and popped when used, so that none stays alive longer.
        kept = {"conv1_2": (yield from _emit("conv1_2", self.conv1(x)))}
        kept["conv2_2"] = yield from _emit("conv2_2", self.conv2(kept["conv1_2"][:, :, ::2, ::2]))
        kept["conv3_3"] = yield from _emit("conv3_3", self.conv3(kept["conv2_2"][:, :, ::2, ::2]))
        h = yield from _emit("conv4_3", self.conv4(kept["conv3_3"][:, :, ::2, ::2]))
        h = yield from _emit("conv5_3", self.conv5(h))
        h = yield from _emit("conv6_3", self.conv6(h))
        h = yield from _emit("conv7_3", self.conv7(h))
        h = yield from _emit("conv8_up", _upsample(self.conv8_up, h, self.shortcut3_8, kept.pop("conv3_3")))
        h = yield from _emit("conv8_3", self.conv8(h))
        h = yield from _emit("conv9_up", _upsample(self.conv9_up, h, self.shortcut2_9, kept.pop("conv2_2")))
        h = yield from _emit("conv9_3", self.conv9(h))
        if chunk is not None and len(x) > chunk and not torch.is_grad_enabled():
            h = _upsample_in_chunks(self.conv10_up, h, self.shortcut1_10, kept.pop("conv1_2"), chunk)
            h = yield from _emit("conv10_up", h)
            h = yield from _emit("conv10_2", _overwrite_in_chunks(self.conv10, h, chunk))
        else:
            h = yield from _emit("conv10_up", _upsample(self.conv10_up, h, self.shortcut1_10, kept.pop("conv1_2")))
            h = yield from _emit("conv10_2", self.conv10(h))
        return self.ab_head(h)


def _upsample(up: nn.Module, h: torch.Tensor, shortcut: nn.Module, source: torch.Tensor) -> torch.Tensor:
    """``up(h) + shortcut(source)``, with ``source`` freed before ``up`` runs (the caller passes its last reference)."""
    skip = shortcut(source)
    del source
    return up(h).add_(skip)


def _upsample_in_chunks(
    up: nn.Module, h: torch.Tensor, shortcut: nn.Module, source: torch.Tensor, chunk: int
) -> torch.Tensor:
    """:func:`_upsample` with the shortcut added ``chunk`` samples at a time (one full-size map fewer)."""
    out = up(h)
    for start in range(0, len(out), chunk):
        out[start : start + chunk].add_(shortcut(source[start : start + chunk]))
    return out


def _overwrite_in_chunks(block: nn.Module, h: torch.Tensor, chunk: int) -> torch.Tensor:
    """``block(h)`` for a shape-keeping block, ``chunk`` samples at a time, written over ``h``."""
    for start in range(0, len(h), chunk):
        part = h[start : start + chunk]
        part.copy_(block(part))
    return h


def _emit(name: str, value: torch.Tensor) -> Generator[tuple[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
    replacement = yield name, value
    return value if replacement is None else replacement


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
    outside the union of boxes.

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
    """

    def __init__(self, channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.instance_net = _weight_cnn(channels, hidden)
        self.background_net = _weight_cnn(channels, hidden)
        self.paste = "padded"

    def forward(
        self,
        background: torch.Tensor,
        instances: torch.Tensor,
        box_info: torch.Tensor,
        placement: GridPlacement | None = None,
    ) -> torch.Tensor:
        """Fuse.

        Args:
            background: ``(1, C, s, s)`` full-image feature map.
            instances: ``(N, C, h, w)`` the instance net's feature maps of the N crops.
            box_info: ``(N, 6)`` int placement of each box on this grid (:func:`geometry.box_info`);
                ``"regions"`` reads it on the host: keep it on the CPU there.
            placement: the boxes' :class:`GridPlacement` for ``"gathered"`` (computed if None).

        Returns:
            ``(1, C, s, s)`` fused feature map.
        """
        if self.paste == "regions":
            return self._fuse_by_regions(background, instances, box_info)
        grid = background.shape[-2:]
        logits = self.instance_net(instances)
        if self.paste == "gathered":
            if placement is None:
                placement = GridPlacement.of(box_info, grid, instances.shape[-2:], background.device)
            weights, features = paste_instances_batched(logits, instances, box_info, grid, placement)
            inside = placement.inside
        else:
            weights, features = paste_instances(logits, instances, box_info, grid)
            inside = weights.new_zeros(()) if len(box_info) == 0 else box_masks(box_info, grid, weights)
        bg_logit = self.background_net(background).float() + (1.0 - inside.float()) * BACKGROUND_OUTSIDE_BOXES
        probs = torch.softmax(torch.cat([weights.float().transpose(0, 1), bg_logit], dim=1), dim=1).to(features.dtype)
        fused = (probs[:, :-1].transpose(0, 1) * features).sum(dim=0, keepdim=True)
        return fused + probs[:, -1:] * background

    def _fuse_by_regions(
        self, background: torch.Tensor, instances: torch.Tensor, box_info: torch.Tensor
    ) -> torch.Tensor:
        grid_h, grid_w = background.shape[-2:]
        boxes = box_info.tolist()
        logits = self.instance_net(instances).float() if boxes else None
        all_logits = background.new_zeros((1, len(boxes) + 1, grid_h, grid_w), dtype=torch.float32)
        for i, (left, _, top, _, width, height) in enumerate(boxes):
            all_logits[:, i, top : top + height, left : left + width] = _resize(logits[i : i + 1], height, width)[:, 0]
        inside = union_mask(box_info, (grid_h, grid_w), background.device)
        bg_logit = self.background_net(background).float()
        all_logits[:, -1:] = torch.where(inside, bg_logit, bg_logit + BACKGROUND_OUTSIDE_BOXES)
        probs = torch.softmax(all_logits, dim=1).to(background.dtype)
        fused = probs[:, -1:] * background
        for i, (left, _, top, _, width, height) in enumerate(boxes):
            region = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
            fused[region] += probs[:, i : i + 1][region] * _resize(instances[i : i + 1], height, width)
        return fused


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
    features: torch.Tensor,
    box_info: torch.Tensor,
    grid_hw: Sequence[int],
    placement: GridPlacement | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`paste_instances` for all instances at once: bilinear gathers, no loop over boxes."""
    n, channels, height, width = features.shape
    grid_h, grid_w = int(grid_hw[0]), int(grid_hw[1])
    both = torch.cat([logits.to(features.dtype), features], dim=1)
    if placement is None:
        placement = GridPlacement.of(box_info, grid_hw, (height, width), features.device)
    r0, r1, u0, u1 = placement.rows
    c0, c1, v0, v1 = placement.cols
    dtype = both.dtype
    expand_rows = (n, channels + 1, grid_h, width)
    rows = both.gather(2, r0[:, None, :, None].expand(expand_rows)) * u0[:, None, :, None].to(dtype)
    rows += both.gather(2, r1[:, None, :, None].expand(expand_rows)) * u1[:, None, :, None].to(dtype)
    expand_cols = (n, channels + 1, grid_h, grid_w)
    pasted = rows.gather(3, c0[:, None, None, :].expand(expand_cols)) * v0[:, None, None, :].to(dtype)
    pasted += rows.gather(3, c1[:, None, None, :].expand(expand_cols)) * v1[:, None, None, :].to(dtype)
    return pasted[:, :1].to(logits.dtype), pasted[:, 1:]


def paste_instances(
    logits: torch.Tensor, features: torch.Tensor, box_info: torch.Tensor, grid_hw: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize each crop's logit and feature map to its box and zero-pad it onto the grid.

    Returns ``(N, 1, H, W)`` logits and ``(N, C, H, W)`` features on the ``grid_hw`` grid.
    """
    n = features.shape[0]
    grid_h, grid_w = int(grid_hw[0]), int(grid_hw[1])
    out_logits = logits.new_zeros((n, 1, grid_h, grid_w))
    out_feats = features.new_zeros((n, features.shape[1], grid_h, grid_w))
    for i, (left, _, top, _, width, height) in enumerate(box_info.tolist()):
        both = torch.cat([logits[i : i + 1], features[i : i + 1]], dim=1)
        resized = F.interpolate(both, size=(height, width), mode="bilinear", align_corners=False)
        out_logits[i, :, top : top + height, left : left + width] = resized[0, :1]
        out_feats[i, :, top : top + height, left : left + width] = resized[0, 1:]
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
        self.fusers = nn.ModuleDict(
            {name: FusionLayer(config.channels(c), config.fusion_hidden) for name, c in channels.items()}
        )

    def forward(
        self,
        full_input: torch.Tensor,
        instance_features: Mapping[str, torch.Tensor] | Iterator[tuple[str, torch.Tensor]],
        box_info: dict[int, torch.Tensor],
    ) -> torch.Tensor:
        """Fused ab ``(1, 2, S, S)`` for one image.

        Args:
            full_input: ``(1, 4, S, S)`` network input of the whole image.
            instance_features: the instance net's 13 feature maps for the N crops, either all at
                once (a mapping) or one at a time in network order
                (:meth:`ColorizationBackbone.stages` of the crops), which keeps only one
                layer's instance features alive; such a stream is closed when done.
            box_info: ``{grid: (N, 6)}`` box placements for the grids ``S, S/2, S/4, S/8``.
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

        def fuse(name: str, value: torch.Tensor) -> torch.Tensor:
            grid = size // FEATURE_STRIDE[name]
            layer, instances = self.fusers[name], instance_feature(name)
            if layer.paste != "gathered":
                return layer(value, instances, box_info[grid])
            key = (grid, tuple(instances.shape[-2:]))
            if key not in placements:
                placements[key] = GridPlacement.of(box_info[grid], value.shape[-2:], instances.shape[-2:], value.device)
            return layer(value, instances, box_info[grid], placements[key])

        try:
            ab, _ = self.backbone(full_input, fuse=fuse)
        finally:
            if not isinstance(instance_features, Mapping):
                instance_features.close()
        return ab


#: Crops per chunk at the full-resolution end of the streamed instance net on CPUs: less memory at
#: the same speed (on GPUs the extra kernel launches would cost time, and memory is rarely short).
INSTANCE_CHUNK = 2

#: How :class:`InstColorModel` runs the fusion path (see :meth:`InstColorModel.set_fusion_strategy`):
#: whether the instance net runs in step with the fusion net, and how fusion layers paste.
FUSION_STRATEGIES = {"reference": (False, "padded"), "streamed": (True, "regions"), "batched": (True, "gathered")}


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
        self.instance = ColorizationBackbone(config)
        self.fusion = FusionNet(config)
        self.fusion_strategy = "reference"

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
        self, full_input: torch.Tensor, crop_inputs: torch.Tensor | None, box_info: dict[int, torch.Tensor] | None
    ) -> torch.Tensor:
        """ab ``(1, 2, S, S)`` in ``[-1, 1]`` for one image and its N crops (``(N, 4, S, S)``)."""
        if crop_inputs is None or len(crop_inputs) == 0:
            return self.full(full_input)[0]
        if FUSION_STRATEGIES[self.fusion_strategy][0]:
            chunk = INSTANCE_CHUNK if crop_inputs.device.type == "cpu" else None
            return self.fusion(full_input, self.instance.stages(crop_inputs, chunk=chunk), box_info)
        _, instance_features = self.instance(crop_inputs)
        return self.fusion(full_input, instance_features, box_info)


def network_input(lightness: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` normalised lightness ``(L - 50) / 100`` -> ``(B, 4, H, W)`` network input."""
    b, _, h, w = lightness.shape
    hints = lightness.new_zeros((b, 2, h, w))
    mask = lightness.new_full((b, 1, h, w), -0.5)
    return torch.cat([lightness, hints, mask], dim=1)
