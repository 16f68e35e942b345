"""The SIGGRAPH17 colorization backbone (full-image and instance network).

Shapes for a network input of side ``S`` (divisible by 8) and width multiplier ``w``:

* input ``(B, 4, S, S)``: ``(L - 50) / 100``, two zero hint channels, one ``-0.5`` mask channel
  (:func:`instcolor.models.model.network_input`);
* output ``(B, 2, S, S)`` ab in tanh units in ``[-1, 1]`` (times 110 gives Lab a*, b*);
* 13 feature maps (:data:`FEATURE_NAMES`) on grids ``S``, ``S/2``, ``S/4``, ``S/8``.

Module names differ from the reference (``model1`` -> ``conv1``, ``model3short8`` ->
``shortcut3_8`` ...); :mod:`instcolor.models.weights.reference` maps reference checkpoints onto
them explicitly. :attr:`ColorizationBackbone.BLOCK_NAMES` lists the blocks for whoever needs them
(compilation, quantization, training a head).
"""

from __future__ import annotations

from collections.abc import Generator

import torch
from torch import nn

from instcolor.models.config import ModelConfig

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


def conv3x3(c_in: int, c_out: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=dilation, dilation=dilation)


def _block(c_in: int, c_out: int, n_convs: int, dilation: int = 1, norm: bool = True) -> nn.Sequential:
    """``n_convs`` x (conv 3x3 + ReLU), then BatchNorm: indices match the reference Sequentials."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [conv3x3(c_in if i == 0 else c_out, c_out, dilation), nn.ReLU(inplace=True)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


def _up_block(c_in: int, c_out: int, n_convs: int, last_act: nn.Module | None = None) -> nn.Sequential:
    """ReLU, then ``n_convs`` x (conv + ReLU), then BatchNorm (conv8, conv9) or LeakyReLU (conv10)."""
    layers: list[nn.Module] = [nn.ReLU(inplace=True)]
    for i in range(n_convs):
        layers.append(conv3x3(c_in if i == 0 else c_out, c_out))
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

    #: Every block, in the order :meth:`stages` runs them.
    BLOCK_NAMES: tuple[str, ...] = (
        "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv8_up", "shortcut3_8", "conv8",
        "conv9_up", "shortcut2_9", "conv9", "conv10_up", "shortcut1_10", "conv10", "ab_head",
    )  # fmt: skip
    #: The convolution stacks (no upsampling, shortcut or head): what int8 quantization converts.
    CONV_BLOCK_NAMES: tuple[str, ...] = (
        "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv8", "conv9", "conv10",
    )  # fmt: skip
    #: The last block and the ab head: what training's ``fusion_head`` option also fine-tunes.
    HEAD_BLOCK_NAMES: tuple[str, ...] = ("conv10", "ab_head")

    def __init__(self, config: ModelConfig = ModelConfig(), num_classes: int = 0) -> None:
        super().__init__()
        self.config = config
        c64, c128, c256, c512 = (config.channels(c) for c in (64, 128, 256, 512))
        self.conv1 = _block(4, c64, 2)
        #: Class-aware instance net only: ``(num_classes, C)`` added to ``conv1_2`` (zero at first).
        self.class_embedding = zero_embedding(num_classes, c64) if num_classes else None
        self.conv2 = _block(c64, c128, 2)
        self.conv3 = _block(c128, c256, 3)
        self.conv4 = _block(c256, c512, 3)
        self.conv5 = _block(c512, c512, 3, dilation=2)
        self.conv6 = _block(c512, c512, 3, dilation=2)
        self.conv7 = _block(c512, c512, 3)
        self.conv8_up = nn.ConvTranspose2d(c512, c256, kernel_size=4, stride=2, padding=1)
        self.shortcut3_8 = conv3x3(c256, c256)
        self.conv8 = _up_block(c256, c256, 2)
        self.conv9_up = nn.ConvTranspose2d(c256, c128, kernel_size=4, stride=2, padding=1)
        self.shortcut2_9 = conv3x3(c128, c128)
        self.conv9 = _up_block(c128, c128, 1)
        self.conv10_up = nn.ConvTranspose2d(c128, c128, kernel_size=4, stride=2, padding=1)
        self.shortcut1_10 = conv3x3(c64, c128)
        self.conv10 = _up_block(c128, c128, 1, last_act=nn.LeakyReLU(0.2, inplace=True))
        self.ab_head = nn.Sequential(nn.Conv2d(c128, 2, kernel_size=1), nn.Tanh())

    def blocks(self, names: tuple[str, ...] = BLOCK_NAMES) -> list[nn.Module]:
        """The blocks called ``names`` (default: all of :attr:`BLOCK_NAMES`), in that order."""
        return [getattr(self, name) for name in names]

    def forward(
        self, x: torch.Tensor, fuse=None, classes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats: dict[str, torch.Tensor] = {}
        stages = self.stages(x) if classes is None else self.stages(x, classes=classes)
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
        self, x: torch.Tensor, chunk: int | None = None, classes: torch.Tensor | None = None
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
            classes: ``(B,)`` int64 class id of each sample, for a net with a
                :attr:`class_embedding` (the class-aware instance net); ignored without one, and
                None skips the embedding.
        """
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"input height and width must be divisible by 8, got {tuple(x.shape[-2:])}")
        h = self.conv1(x)
        if classes is not None and self.class_embedding is not None:
            h = h + self.class_embedding(classes.to(h.device)).to(h.dtype)[:, :, None, None]
        # The shortcuts' sources are kept by name and popped when used, so that none stays alive longer.
        kept = {"conv1_2": (yield from _emit("conv1_2", h))}
        del h
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


def zero_embedding(count: int, dim: int) -> nn.Embedding:
    """An ``(count, dim)`` embedding that starts at zero (a class-aware model starts class-blind).

    It draws no random number, so a class-aware model built after ``torch.manual_seed(s)`` has the
    same other weights as a class-blind one built after it.
    """
    return nn.Embedding.from_pretrained(torch.zeros(count, dim), freeze=False)


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
