"""Colour maths: sRGB <-> CIE Lab (D65), the networks' normalisation, and greyscale conversion.

Tensors are ``(B, C, H, W)``: RGB in ``[0, 1]``, L in ``[0, 100]``, a/b in about ``[-110, 110]``.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb as _lab_to_rgb
from kornia.color import rgb_to_lab as _rgb_to_lab

#: Lab a*, b* per unit of the networks' tanh output.
AB_SCALE = 110.0
L_CENTER = 50.0
L_SCALE = 100.0

#: ITU-R BT.709 luma weights on gamma-encoded sRGB, as scikit-image's ``rgb2gray`` (the reference's).
GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` sRGB in ``[0, 1]`` -> ``(B, 3, H, W)`` Lab (D65)."""
    return _rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` Lab -> sRGB clipped to ``[0, 1]`` (the sRGB gamut)."""
    return _lab_to_rgb(lab, clip=True)


def lightness(rgb: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` sRGB in ``[0, 1]`` -> ``(B, 1, H, W)`` L in ``[0, 100]``."""
    return rgb_to_lab(rgb)[:, :1]


def normalize_l(l_channel: torch.Tensor) -> torch.Tensor:
    """L in ``[0, 100]`` -> network lightness ``(L - 50) / 100`` in ``[-0.5, 0.5]``."""
    return (l_channel - L_CENTER) / L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """Lab ab -> network units (``ab / 110``)."""
    return ab / AB_SCALE


def denormalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """Network units -> Lab ab."""
    return ab * AB_SCALE


def rgb_to_grey(rgb: torch.Tensor) -> torch.Tensor:
    """The reference's training greyscale: BT.709 luma on sRGB, rounded to 8 bits, replicated.

    ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` grey in ``[0, 1]`` (on the 1/255 grid).
    """
    weights = rgb.new_tensor(GREY_WEIGHTS).view(1, 3, 1, 1)
    grey = torch.round((rgb * weights).sum(dim=1, keepdim=True) * 255.0) / 255.0
    return grey.expand(-1, 3, -1, -1)


def join_lab(l_channel: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L ``(B, 1, H, W)`` in ``[0, 100]`` and ab ``(B, 2, H, W)`` in Lab units -> sRGB in ``[0, 1]``."""
    return lab_to_rgb(torch.cat([l_channel, ab], dim=1))
