"""Colour: sRGB <-> Lab maths (:mod:`.lab`) and banded full-resolution composition (:mod:`.compose`).

The lowest layer with :mod:`instcolor.io`, :mod:`instcolor.instances` and :mod:`instcolor.geometry`:
it imports none of the layers above. ``from instcolor.color import rgb_to_lab`` reads :mod:`.lab`.
"""

from instcolor.color.lab import (
    AB_SCALE,
    GREY_WEIGHTS,
    L_CENTER,
    L_SCALE,
    denormalize_ab,
    join_lab,
    lab_to_rgb,
    lightness,
    normalize_ab,
    normalize_l,
    rgb_to_grey,
    rgb_to_lab,
)

__all__ = [
    "AB_SCALE",
    "GREY_WEIGHTS",
    "L_CENTER",
    "L_SCALE",
    "denormalize_ab",
    "join_lab",
    "lab_to_rgb",
    "lightness",
    "normalize_ab",
    "normalize_l",
    "rgb_to_grey",
    "rgb_to_lab",
]
