"""A synthetic instance-colorization benchmark: small shapes whose colour is set by their class.

Each scene is a textured background of one of a few families, whose colour follows the
texture (smooth "sky", grainy "grass", striped "sand", blotchy "rock"), with a few small objects
on it. An object's hue and chroma are fixed by its shape class (circle, square, triangle, cross,
diamond); its lightness is drawn from the same range for every class, so that the grey image
tells the colour only through the shape. Objects have a thin dark outline, do not overlap, and
come with exact boxes and masks.

With ``colour_by="label"`` the shape tells nothing: each object gets a COCO label of
:data:`LABEL_COLOURS` and that label alone sets its colour; shapes and lightness are drawn
independently of it, so objects of different classes look the same in grey and only a model told
the label (a class-aware model, :attr:`instcolor.models.config.ModelConfig.num_classes`) can know
their colour.

    >>> from instcolor.training.synthetic import write_scenes
    >>> boxes_file = write_scenes("scenes/train", count=200, size=128, seed=0)  # doctest: +SKIP

writes ``scene_00000.png`` ... and a boxes file (:mod:`instcolor.instances` format) keyed by
file name, with labels, score 1 and run-length-encoded masks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from instcolor.color import lab_to_rgb
from instcolor.instances import Instances, save_boxes_file
from instcolor.io import save_image, to_pil

#: Shape class -> Lab (a, b) of its colour; lightness is drawn independently of the class.
SHAPE_COLOURS: dict[str, tuple[float, float]] = {
    "circle": (30.0, 22.0),  # red
    "square": (6.0, -34.0),  # blue
    "triangle": (-1.5, 55.0),  # yellow
    "cross": (45.0, -30.0),  # magenta
    "diamond": (-28.0, -9.0),  # teal
}
#: ``colour_by="label"``: object label (a COCO name) -> Lab (a, b), the colours of :data:`SHAPE_COLOURS`.
LABEL_COLOURS: dict[str, tuple[float, float]] = dict(
    zip(("apple", "umbrella", "banana", "frisbee", "vase"), SHAPE_COLOURS.values())
)
#: How :func:`make_scene` decides an object's colour.
COLOUR_BY = ("shape", "label")
#: Object lightness range (before a +-4 shading ramp): every class colour is inside the sRGB
#: gamut over it, so the colour really is the class's.
OBJECT_LIGHTNESS = (55.0, 72.0)
#: Background family -> Lab (a, b) of its colour at full chroma.
BACKGROUND_COLOURS: dict[str, tuple[float, float]] = {
    "sky": (-5.0, -35.0),
    "grass": (-40.0, 40.0),
    "sand": (8.0, 30.0),
    "rock": (3.0, 3.0),
}
OUTLINE_LIGHTNESS = 12.0


@dataclass
class SyntheticScene:
    """One scene: ``image`` ``(H, W, 3)`` uint8 sRGB and its objects (boxes ``x1, y1, x2, y2`` with
    exclusive ends, labels = shape classes or, with ``colour_by="label"``, colour labels; ``(N, H, W)``
    masks including the outline)."""

    image: np.ndarray
    instances: Instances
    background: str


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` noise in ``[0, 1]``: a ``cells x cells`` random grid, bicubically enlarged."""
    grid = torch.from_numpy(rng.random((1, 1, cells, cells)))
    noise = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)[0, 0].numpy()
    low, high = noise.min(), noise.max()
    return (noise - low) / max(high - low, 1e-9)


def _background(rng: np.random.Generator, family: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lightness ``(S, S)`` and chroma scale ``(S, S)`` of a background texture family."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    if family == "sky":  # smooth vertical gradient with soft clouds
        light = 55 + 30 * yy + 10 * _smooth_noise(rng, size, 3)
        chroma = 1.0 - 0.5 * _smooth_noise(rng, size, 4)
    elif family == "grass":  # fine grain
        light = 35 + 25 * _smooth_noise(rng, size, max(4, size // 4)) + 8 * rng.random((size, size))
        chroma = 0.7 + 0.3 * _smooth_noise(rng, size, 6)
    elif family == "sand":  # oblique stripes
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.16)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        light = 60 + 15 * np.sin(2 * np.pi * phase) + 8 * _smooth_noise(rng, size, 8)
        chroma = 0.8 + 0.2 * _smooth_noise(rng, size, 4)
    else:  # rock: blotches
        light = 30 + 27 * (_smooth_noise(rng, size, 8) > 0.5) + 20 * _smooth_noise(rng, size, 12)
        chroma = 0.5 + 0.5 * _smooth_noise(rng, size, 5)
    return np.clip(light, 0, 100), chroma


def _shape_mask(shape: str, size: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """``(S, S)`` bool mask of a shape centred at ``(cx, cy)`` with circumradius-like ``radius``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / radius
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / radius
    if shape == "circle":
        return u**2 + v**2 <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":
        return ((np.abs(u) <= 0.95) & (np.abs(v) <= 0.3)) | ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95))
    if shape == "triangle":  # equilateral, vertices on the unit circle
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            normal = np.pi / 2 + 2 * np.pi * k / 3 + np.pi  # each edge faces away from a vertex
            inside &= u * np.cos(normal) + v * np.sin(normal) <= 0.5
        return inside
    raise ValueError(f"unknown shape {shape!r}")


def _dilate(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def make_scene(
    rng: np.random.Generator,
    size: int = 128,
    objects: tuple[int, int] = (2, 5),
    object_size: tuple[float, float] = (0.12, 0.24),
    overlapping: bool = False,
    colour_by: str = "shape",
) -> SyntheticScene:
    """Draw one scene.

    Args:
        rng: the random source (the scene is a pure function of its state).
        size: side of the square image in pixels.
        objects: inclusive range of the number of objects.
        object_size: range of an object's diameter as a fraction of ``size``.
        overlapping: let objects stand close enough that their boxes overlap (their shapes never
            touch): the paper's failure case. Each new object is then placed next to an earlier one.
        colour_by: ``"shape"``: the shape class sets the colour and is the label; ``"label"``: a
            label of :data:`LABEL_COLOURS` drawn for each object sets it, the shape is drawn apart.
    """
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour_by must be one of {COLOUR_BY}, got {colour_by!r}")
    family = list(BACKGROUND_COLOURS)[rng.integers(len(BACKGROUND_COLOURS))]
    light, chroma = _background(rng, family, size)
    bg_a, bg_b = BACKGROUND_COLOURS[family]
    lab = np.stack([light, bg_a * chroma, bg_b * chroma]).astype(np.float64)

    shapes = list(SHAPE_COLOURS)
    wanted = int(rng.integers(objects[0], objects[1] + 1))
    boxes, labels, masks = [], [], []
    occupied = np.zeros((size, size), dtype=bool)
    for _ in range(wanted * 20):
        if len(boxes) == wanted:
            break
        shape = shapes[rng.integers(len(shapes))]
        radius = rng.uniform(*object_size) * size / 2
        cx, cy = rng.uniform(radius + 2, size - radius - 2, size=2)
        if overlapping and boxes:  # next to an earlier object, so that the boxes overlap
            x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))]
            angle = rng.uniform(0, 2 * np.pi)
            reach = 0.5 * max(x2 - x1, y2 - y1) + 0.6 * radius
            cx = float(np.clip((x1 + x2) / 2 + reach * np.cos(angle), radius + 2, size - radius - 2))
            cy = float(np.clip((y1 + y2) / 2 + reach * np.sin(angle), radius + 2, size - radius - 2))
        mask = _dilate(_shape_mask(shape, size, cx, cy, radius, rng.uniform(0, 2 * np.pi)))
        if not mask.any() or (_dilate(_dilate(mask)) & occupied).any():
            continue
        interior = mask & ~_dilate(~mask)  # the outline is the outermost ring of the mask
        label = shape if colour_by == "shape" else list(LABEL_COLOURS)[rng.integers(len(LABEL_COLOURS))]
        a, b = SHAPE_COLOURS[shape] if colour_by == "shape" else LABEL_COLOURS[label]
        jitter = rng.normal(0, 2, size=2)
        shade = rng.uniform(*OBJECT_LIGHTNESS) + 4 * (np.mgrid[0:size, 0:size][0] - cy) / max(radius, 1)
        lab[0][interior] = np.clip(shade[interior], 0, 100)
        lab[1][interior] = a + jitter[0]
        lab[2][interior] = b + jitter[1]
        ring = mask & ~interior
        lab[0][ring], lab[1][ring], lab[2][ring] = OUTLINE_LIGHTNESS, 0.0, 0.0
        occupied |= mask
        rows, cols = np.nonzero(mask)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        labels.append(label)
        masks.append(mask)

    rgb = lab_to_rgb(torch.from_numpy(lab).float()[None])[0].permute(1, 2, 0).numpy()
    image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    instances = Instances(
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        scores=np.ones(len(boxes), np.float32),
        labels=labels,
        masks=np.stack(masks) if masks else np.zeros((0, size, size), bool),
    )
    return SyntheticScene(image=image, instances=instances, background=family)


def write_scenes(
    directory: str | os.PathLike,
    count: int,
    size: int = 128,
    seed: int = 0,
    boxes_name: str = "boxes.json",
    prefix: str = "scene",
    **scene_options,
) -> Path:
    """Write ``count`` scenes as ``{prefix}_00000.png`` ... and their boxes file into ``directory``.

    Returns:
        The boxes file's path (keys are the PNG file names).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Instances] = {}
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = make_scene(rng, size, **scene_options)
        name = f"{prefix}_{index:05d}.png"
        save_image(to_pil(scene.image / 255.0), directory / name)
        entries[name] = scene.instances
    boxes_path = directory / boxes_name
    save_boxes_file(boxes_path, entries)
    return boxes_path
