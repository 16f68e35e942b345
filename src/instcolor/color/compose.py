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

from instcolor.io import DecodedImage, unit_values

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


def image_lightness(decoded: DecodedImage) -> torch.Tensor:
    """CIE L* ``(1, 1, H, W)`` float32 in ``[0, 100]`` of a decoded image, on the CPU.

    Integer samples go through tables (256 or 65536 entries: a grey image's L is one lookup per
    pixel, a colour image's linear RGB too), so no float RGB copy of the image is ever made; the
    table entries are the same maths as :func:`lightness_bands` on the same values.
    """
    pixels = decoded.pixels
    if pixels.dtype not in (np.uint8, np.uint16):
        return lightness_bands(decoded.rgb, decoded.is_grey)
    unit = torch.from_numpy(unit_values(np.arange(np.iinfo(pixels.dtype).max + 1, dtype=pixels.dtype)))
    height, width = pixels.shape[:2]
    if decoded.is_grey:
        table = _lightness_from_y(_linear(unit)).numpy()
        return torch.from_numpy(np.take(table, pixels))[None, None]
    linear_table = _linear(unit).numpy()
    out = torch.empty((1, 1, height, width), dtype=torch.float32)
    rows = _band_rows(width)
    for top in range(0, height, rows):
        lin = torch.from_numpy(np.take(linear_table, pixels[top : top + rows]))
        y = lin[..., 0] * _Y_WEIGHTS[0] + lin[..., 1] * _Y_WEIGHTS[1] + lin[..., 2] * _Y_WEIGHTS[2]
        out[0, 0, top : top + rows] = _lightness_from_y(y)
    return out


def grey_levels(l_full_res: torch.Tensor) -> np.ndarray:
    """``(H, W)`` uint8 grey of L ``(1, 1, H, W)`` in ``[0, 100]``: ``round(L * 255 / 100)``."""
    grey = l_full_res[0, 0].float().mul(255.0 / 100.0).round_().clamp_(0, 255)
    return grey.to(torch.uint8).cpu().numpy()


def lab_to_image(l_full_res: torch.Tensor, ab: torch.Tensor, alpha: np.ndarray | None = None) -> Image.Image:
    """8-bit sRGB (or RGBA) image from L ``(1, 1, H, W)`` and ab ``(1, 2, H, W)`` in Lab units.

    Colours outside the sRGB gamut are clipped and values rounded to the nearest 8-bit step, as
    ``io.to_pil(color.join_lab(L, ab))`` does for the whole image (same maths; float rounding in
    another order may move a value by one step).
    """
    height, width = l_full_res.shape[-2:]
    channels = 3 if alpha is None else 4
    out = np.empty((height, width, channels), dtype=np.uint8)
    if alpha is not None:
        out[..., 3] = alpha
    target = torch.from_numpy(out)
    rows = height if l_full_res.device.type == "cuda" else _band_rows(width)  # a GPU converts it at once
    for top in range(0, height, rows):
        l_band = l_full_res[0, 0, top : top + rows].float()
        a_band, b_band = ab[0, :, top : top + rows].float()
        target[top : top + rows, :, :3] = _lab_to_rgb8(l_band, a_band, b_band).permute(1, 2, 0).cpu()
    return Image.fromarray(out, "RGB" if alpha is None else "RGBA")


# Lab -> sRGB, D65, with the constants of kornia.color.lab_to_rgb (our reference maths).
_WHITE = (0.95047, 1.0, 1.08883)
_XYZ_TO_LINEAR_RGB = (
    (3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
    (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
    (0.0556466391351772, -0.2040413383665112, 1.0573110696453443),
)


def _lab_to_rgb8(l_channel: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(3, h, w)`` uint8 sRGB of Lab planes ``(h, w)``: :func:`color.lab_to_rgb` with fewer temporaries."""
    f = torch.empty((3, *l_channel.shape), dtype=torch.float32, device=l_channel.device)
    torch.add(l_channel, 16.0, out=f[1]).div_(116.0)
    torch.div(a, 500.0, out=f[0]).add_(f[1])
    torch.sub(f[1], b / 200.0, out=f[2]).clamp_(min=0.0)
    xyz = torch.where(f > 0.2068966, f * f * f, (f - 4.0 / 29.0).div_(7.787))
    del f
    for channel, white in enumerate(_WHITE):
        if white != 1.0:
            xyz[channel].mul_(white)
    matrix = torch.tensor(_XYZ_TO_LINEAR_RGB, dtype=torch.float32, device=xyz.device)
    linear = torch.mm(matrix, xyz.view(3, -1)).view_as(xyz)
    del xyz
    encoded = torch.where(
        linear > 0.0031308, torch.pow(linear.clamp(min=0.0031308), 1 / 2.4).mul_(1.055).sub_(0.055), linear * 12.92
    )
    return encoded.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


#: Lab chroma (``sqrt(a*^2 + b*^2)``) above which a pixel counts as coloured: grey JPEGs stay under 3.
COLOUR_CHROMA = 8.0
#: Share of coloured pixels that makes an input a colour photo (not a grey one with stray pixels).
COLOUR_SHARE = 0.01


def input_chroma(decoded: DecodedImage, side: int = 256) -> float:
    """Share of pixels whose own Lab chroma exceeds :data:`COLOUR_CHROMA` (0.0 for a grey input).

    Measured on an evenly strided sample of at most about ``side x side`` pixels (cheap for any size).
    """
    if decoded.is_grey:
        return 0.0
    from instcolor.color.lab import rgb_to_lab

    pixels = decoded.pixels
    step = max(1, max(pixels.shape[:2]) // side)
    sample = unit_values(pixels[::step, ::step])
    lab = rgb_to_lab(torch.from_numpy(np.ascontiguousarray(sample)).permute(2, 0, 1)[None].float())
    chroma = torch.sqrt(lab[0, 1] ** 2 + lab[0, 2] ** 2)
    return float((chroma > COLOUR_CHROMA).float().mean())


def has_colour(decoded: DecodedImage) -> bool:
    """Whether an input already has colour (see :func:`input_chroma`)."""
    return input_chroma(decoded) >= COLOUR_SHARE


def input_ab(decoded: DecodedImage) -> tuple[torch.Tensor, torch.Tensor]:
    """The input's own ab ``(1, 2, H, W)`` and a ``(1, 1, H, W)`` bool map of its coloured pixels."""
    from instcolor.color.lab import rgb_to_lab

    height, width = decoded.pixels.shape[:2]
    ab = torch.empty((1, 2, height, width), dtype=torch.float32)
    rows = _band_rows(width)
    for top in range(0, height, rows):
        band = torch.from_numpy(np.ascontiguousarray(decoded.rgb[top : top + rows])).permute(2, 0, 1)[None]
        ab[:, :, top : top + rows] = rgb_to_lab(band.float())[:, 1:]
    coloured = (ab[:, :1] ** 2 + ab[:, 1:] ** 2) > COLOUR_CHROMA**2
    return ab, coloured
