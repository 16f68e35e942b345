"""Full-resolution colour work in row bands: the image's lightness, and L + upsampled ab -> 8-bit sRGB.

The plain path converts the whole image at once (``color.lightness`` computes a full Lab image
only to keep L; ``color.join_lab`` then ``io.to_pil`` make three full-size float RGB arrays). Here
each band of rows goes through the same colour maths while it is in cache, lightness needs only
luminance Y, and the result is written straight into the 8-bit output: for a 12-megapixel photo
that is a few hundred MB less memory and several times less time, with the same pixels (to float
rounding, which may move a value by one 8-bit step).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from instcolor.color import lab_to_rgb

#: Pixels per band: about a megabyte per float32 channel.
BAND_PIXELS = 1 << 18

# sRGB -> CIE Lab L*, D65, with the constants of kornia.color.rgb_to_lab (our reference maths).
_LINEAR_THRESHOLD = 0.04045
_Y_WEIGHTS = (0.212671, 0.715160, 0.072169)
_F_THRESHOLD = 0.008856


def _band_rows(width: int) -> int:
    return max(1, BAND_PIXELS // max(1, width))


def _linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c > _LINEAR_THRESHOLD, torch.pow((c + 0.055).clamp(min=0.0) / 1.055, 2.4), c / 12.92)


def _lightness_from_y(y: torch.Tensor) -> torch.Tensor:
    f = torch.where(y > _F_THRESHOLD, torch.pow(y.clamp(min=_F_THRESHOLD), 1 / 3.0), 7.787 * y + 4.0 / 29.0)
    return 116.0 * f - 16.0


def lightness_bands(rgb: np.ndarray | torch.Tensor, is_grey: bool = False) -> torch.Tensor:
    """CIE L* ``(1, 1, H, W)`` in ``[0, 100]`` of an ``(H, W, 3)`` float sRGB image in ``[0, 1]``.

    Args:
        rgb: ``(H, W, 3)`` float32 array or tensor (a decoded image).
        is_grey: the three channels are equal (then only one is read).
    """
    rgb = torch.as_tensor(rgb)
    height, width = rgb.shape[:2]
    out = torch.empty((1, 1, height, width), dtype=torch.float32, device=rgb.device)
    rows = height if rgb.device.type == "cuda" else _band_rows(width)
    for top in range(0, height, rows):
        band = rgb[top : top + rows].float()
        if is_grey:
            y = _linear(band[..., 0])
        else:
            lin = _linear(band)
            y = lin[..., 0] * _Y_WEIGHTS[0] + lin[..., 1] * _Y_WEIGHTS[1] + lin[..., 2] * _Y_WEIGHTS[2]
        out[0, 0, top : top + rows] = _lightness_from_y(y)
    return out


def lab_to_image(l_full: torch.Tensor, ab: torch.Tensor, alpha: np.ndarray | None = None) -> Image.Image:
    """8-bit sRGB (or RGBA) image from L ``(1, 1, H, W)`` and ab ``(1, 2, H, W)`` in Lab units.

    Colours outside the sRGB gamut are clipped, values rounded to the nearest 8-bit step, exactly
    as ``io.to_pil(color.join_lab(L, ab))`` does for the whole image.
    """
    height, width = l_full.shape[-2:]
    channels = 3 if alpha is None else 4
    out = np.empty((height, width, channels), dtype=np.uint8)
    if alpha is not None:
        out[..., 3] = alpha
    target = torch.from_numpy(out)
    rows = height if l_full.device.type == "cuda" else _band_rows(width)  # a GPU converts it at once
    for top in range(0, height, rows):
        lab = torch.cat([l_full[:, :, top : top + rows], ab[:, :, top : top + rows]], dim=1).float()
        rgb = lab_to_rgb(lab)[0].permute(1, 2, 0)
        target[top : top + rows, :, :3] = rgb.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu()
    return Image.fromarray(out, "RGB" if alpha is None else "RGBA")
