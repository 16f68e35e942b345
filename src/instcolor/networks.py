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

from collections.abc import Sequence
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
        self.conv10 = _up_block(c128, c128, 1, last_act=nn.LeakyReLU(0.2))
        self.ab_head = nn.Sequential(nn.Conv2d(c128, 2, kernel_size=1), nn.Tanh())

    def forward(self, x: torch.Tensor, fuse=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"input height and width must be divisible by 8, got {tuple(x.shape[-2:])}")
        feats: dict[str, torch.Tensor] = {}

        def keep(name: str, value: torch.Tensor) -> torch.Tensor:
            if fuse is not None:
                value = fuse(name, value)
            feats[name] = value
            return value

        conv1_2 = keep("conv1_2", self.conv1(x))
        conv2_2 = keep("conv2_2", self.conv2(conv1_2[:, :, ::2, ::2]))
        conv3_3 = keep("conv3_3", self.conv3(conv2_2[:, :, ::2, ::2]))
        h = keep("conv4_3", self.conv4(conv3_3[:, :, ::2, ::2]))
        h = keep("conv5_3", self.conv5(h))
        h = keep("conv6_3", self.conv6(h))
        h = keep("conv7_3", self.conv7(h))
        h = keep("conv8_up", self.conv8_up(h) + self.shortcut3_8(conv3_3))
        h = keep("conv8_3", self.conv8(h))
        h = keep("conv9_up", self.conv9_up(h) + self.shortcut2_9(conv2_2))
        h = keep("conv9_3", self.conv9(h))
        h = keep("conv10_up", self.conv10_up(h) + self.shortcut1_10(conv1_2))
        h = keep("conv10_2", self.conv10(h))
        return self.ab_head(h), feats


def _weight_cnn(c_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        _conv(c_in, hidden), nn.ReLU(inplace=True),
        _conv(hidden, hidden), nn.ReLU(inplace=True),
        _conv(hidden, 1), nn.ReLU(inplace=True),
    )  # fmt: skip


class FusionLayer(nn.Module):
    """One fusion module: per-pixel softmax weights for background and each instance feature.

    The instance CNN runs on each crop's feature map at crop resolution; logits and features are
    bilinearly resized to the box on this grid and zero-padded; the background logit gets ``+1e5``
    outside the union of boxes.
    """

    def __init__(self, channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.instance_net = _weight_cnn(channels, hidden)
        self.background_net = _weight_cnn(channels, hidden)

    def forward(self, background: torch.Tensor, instances: torch.Tensor, box_info: torch.Tensor) -> torch.Tensor:
        """Fuse.

        Args:
            background: ``(1, C, s, s)`` full-image feature map.
            instances: ``(N, C, h, w)`` the instance net's feature maps of the N crops.
            box_info: ``(N, 6)`` int placement of each box on this grid (:func:`geometry.box_info`).

        Returns:
            ``(1, C, s, s)`` fused feature map.
        """
        weights, features = paste_instances(self.instance_net(instances), instances, box_info, background.shape[-2:])
        inside = (weights.new_zeros(()) if len(box_info) == 0 else box_masks(box_info, background.shape[-2:], weights))
        bg_logit = self.background_net(background) + (1.0 - inside) * BACKGROUND_OUTSIDE_BOXES
        probs = torch.softmax(torch.cat([weights.transpose(0, 1), bg_logit], dim=1), dim=1)
        fused = (probs[:, :-1].transpose(0, 1) * features).sum(dim=0, keepdim=True)
        return fused + probs[:, -1:] * background


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
        instance_features: dict[str, torch.Tensor],
        box_info: dict[int, torch.Tensor],
    ) -> torch.Tensor:
        """Fused ab ``(1, 2, S, S)`` for one image.

        Args:
            full_input: ``(1, 4, S, S)`` network input of the whole image.
            instance_features: the instance net's 13 feature maps for the N crops.
            box_info: ``{grid: (N, 6)}`` box placements for the grids ``S, S/2, S/4, S/8``.
        """
        size = full_input.shape[-1]

        def fuse(name: str, value: torch.Tensor) -> torch.Tensor:
            grid = size // FEATURE_STRIDE[name]
            return self.fusers[name](value, instance_features[name], box_info[grid])

        ab, _ = self.backbone(full_input, fuse=fuse)
        return ab


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

    def forward(
        self, full_input: torch.Tensor, crop_inputs: torch.Tensor | None, box_info: dict[int, torch.Tensor] | None
    ) -> torch.Tensor:
        """ab ``(1, 2, S, S)`` in ``[-1, 1]`` for one image and its N crops (``(N, 4, S, S)``)."""
        if crop_inputs is None or len(crop_inputs) == 0:
            return self.full(full_input)[0]
        _, instance_features = self.instance(crop_inputs)
        return self.fusion(full_input, instance_features, box_info)


def network_input(lightness: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` normalised lightness ``(L - 50) / 100`` -> ``(B, 4, H, W)`` network input."""
    b, _, h, w = lightness.shape
    hints = lightness.new_zeros((b, 2, h, w))
    mask = lightness.new_full((b, 1, h, w), -0.5)
    return torch.cat([lightness, hints, mask], dim=1)
