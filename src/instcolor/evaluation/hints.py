"""PSNR against the number of colour hint points drawn from the ground truth (Zhang et al. 2017).

For every evaluated image, :data:`MAX_POINTS`-or-fewer points are drawn once from its ground truth,
deterministically (seed: the run's seed and the image's name): the training sampler
(:func:`instcolor.color.hints.draw_training_hints`, normally distributed places) with patches of
:data:`instcolor.color.hints.POINT_SIDE` cells of the full-image grid, the size of a user's point
hint, each revealing the ground truth's mean colour there. The image is then colorized (fusion,
with its instances) with the first ``n`` of them for each ``n`` asked, so that the curve adds points
one by one; PSNR is measured on the whole image, as the main table's.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from instcolor.color import normalize_ab, rgb_to_lab
from instcolor.color.hints import POINT_SIDE, Hints, draw_training_hints
from instcolor.evaluation.metrics import psnr_many
from instcolor.evaluation.stats import Summary, bootstrap_mean
from instcolor.inference.preprocess import resize
from instcolor.instances import Instances
from instcolor.io import atomic_path

#: ``instcolor evaluate --hints`` without a list: Zhang et al.'s points.
DEFAULT_POINTS = (0, 1, 2, 5, 10, 20)


def parse_points(text: str) -> tuple[int, ...]:
    """``"0,1,2,5,10,20"`` (or one number) -> sorted distinct non-negative counts; ValueError otherwise."""
    try:
        points = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise ValueError(f"--hints takes point counts such as 0,1,2,5,10,20, got {text!r}") from None
    if not points or points[0] < 0:
        raise ValueError(f"--hints takes non-negative point counts such as 0,1,2,5,10,20, got {text!r}")
    return tuple(points)


def ground_truth_hints(truth: np.ndarray, count: int, size: int, seed: int) -> Hints:
    """``count`` hint points revealing an ``(H, W, 3)`` uint8 ground truth, in its pixels."""
    rgb = torch.tensor(truth).permute(2, 0, 1)[None].float() / 255.0
    target = resize(normalize_ab(rgb_to_lab(rgb)[:, 1:]), size)[0]
    generator = torch.Generator().manual_seed(seed)
    return draw_training_hints(target, (truth.shape[1], truth.shape[0]), generator, count=count, sides=(POINT_SIDE,))


def image_seed(seed: int, name: str) -> int:
    """The hint draw's seed for one image: a function of the run's seed and the image's name only."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def hint_psnr(
    colorizer,
    grey: np.ndarray,
    truth: np.ndarray,
    instances: Instances,
    points: Sequence[int],
    seed: int,
    plain: np.ndarray | None = None,
) -> dict[int, float]:
    """``{n: PSNR}`` of the fusion result with the first ``n`` ground-truth points, for each ``n``.

    Args:
        colorizer: a :class:`instcolor.inference.pipeline.Colorizer`.
        grey: ``(H, W)`` uint8 input; truth: ``(H, W, 3)`` uint8 ground truth.
        instances: the image's instances (boxes in its pixels).
        seed: the image's seed (:func:`image_seed`).
        plain: the result without hints, when already computed (used for ``n = 0``).
    """
    hints = ground_truth_hints(truth, max(points), getattr(colorizer, "size", 256), seed)
    results = []
    for n in points:
        if n == 0 and plain is not None:
            results.append(plain)
            continue
        result = colorizer(grey, instances, mode="fusion", hints=hints.select(slice(0, n)))
        results.append(np.asarray(result.image.convert("RGB")))
    return dict(zip(points, psnr_many(results, truth)))


def hint_curve(per_image: Sequence[dict[int, float]], points: Sequence[int], resamples: int, seed: int) -> dict[int, Summary]:
    """``{n: mean PSNR with its 95% bootstrap interval over images}``."""
    return {n: bootstrap_mean([values[n] for values in per_image], n_resamples=resamples, seed=seed) for n in points}


def hint_table(curve: dict[int, Summary]) -> list[str]:
    """Markdown table: points, PSNR [95% interval], gain over no hint."""
    base = curve.get(0)
    lines = ["| hint points | PSNR (dB) ↑ | gain over 0 points (dB) |", "|---|---|---|"]
    for n, summary in curve.items():
        gain = f"{summary.mean - base.mean:+.2f}" if base is not None and base.n else "–"
        lines.append(f"| {n} | {summary.mean:.2f} [{summary.low:.2f}, {summary.high:.2f}] | {gain} |")
    return lines


def hint_plot(curve: dict[int, Summary], path: str | os.PathLike, title: str = "") -> bool:
    """PSNR against the number of hint points, with the 95% interval as a band; False when empty."""
    if not curve:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = list(curve)
    means = [curve[n].mean for n in points]
    figure = Figure(figsize=(5.0, 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    axis.fill_between(points, [curve[n].low for n in points], [curve[n].high for n in points], alpha=0.25)
    axis.plot(points, means, "o-")
    for n, mean in zip(points, means):
        axis.annotate(f"{mean:.2f}", (n, mean), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    if len(points) > 2 and max(points) > 2:
        axis.set_xscale("symlog", linthresh=1)
    axis.set_xticks(points, [str(n) for n in points])
    axis.set_xlabel("hint points drawn from the ground truth")
    axis.set_ylabel("PSNR (dB), whole image")
    axis.set_title(title or "PSNR against the number of hint points", fontsize=10)
    axis.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return True
