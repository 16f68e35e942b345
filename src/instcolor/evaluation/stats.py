"""Summary statistics: means with percentile-bootstrap confidence intervals over images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Mean of a metric with its bootstrap confidence interval.

    Attributes:
        mean: mean over all finite values (NaN when there is none).
        low, high: the confidence interval (NaN when there is no value).
        n: number of finite values averaged.
        n_images: number of images that contributed at least one value.
    """

    mean: float
    low: float
    high: float
    n: int
    n_images: int

    def to_json(self) -> dict:
        def number(x: float) -> float | None:
            return round(float(x), 6) if np.isfinite(x) else None

        return {"mean": number(self.mean), "ci95": [number(self.low), number(self.high)], "n": self.n, "n_images": self.n_images}


def bootstrap_mean(
    per_image: Sequence[Sequence[float] | float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Summary:
    """Mean and percentile-bootstrap interval of values grouped by image.

    Each entry of ``per_image`` is one image's value, or the list of its instances' values. The
    mean pools every finite value (instance-level metrics are averaged over instances); the
    bootstrap resamples whole images with replacement (a cluster bootstrap: an image's instances
    stay together), so the interval reflects variation between images. ``inf`` and NaN values are
    left out (an identical pair has infinite PSNR).

    Args:
        n_resamples: bootstrap resamples; 0 gives no interval (``low = high = mean``).
        seed: seed of the resampling, so that reports are reproducible.
    """
    sums, counts = [], []
    for values in per_image:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        arr = arr[np.isfinite(arr)]
        if arr.size:
            sums.append(arr.sum())
            counts.append(arr.size)
    if not counts:
        return Summary(float("nan"), float("nan"), float("nan"), 0, 0)
    sums_arr, counts_arr = np.asarray(sums), np.asarray(counts, dtype=np.float64)
    mean = float(sums_arr.sum() / counts_arr.sum())
    if n_resamples <= 0 or len(counts) == 1:
        return Summary(mean, mean, mean, int(counts_arr.sum()), len(counts))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(counts), size=(n_resamples, len(counts)))
    means = sums_arr[index].sum(axis=1) / counts_arr[index].sum(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Summary(mean, float(low), float(high), int(counts_arr.sum()), len(counts))


def paired_differences(
    records: Sequence,
    first: str,
    second: str,
    metrics: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
    cap: float = 100.0,
) -> dict[str, dict[str, Summary]]:
    """``{"image" | "instance": {metric: Summary}}`` of method ``first`` minus method ``second``.

    Each photo's (each instance's) value of the first method minus the second's, averaged with a
    bootstrap interval over photos that resamples both methods together: far narrower than the two
    methods' own intervals when they move together from photo to photo, so an interval that
    excludes 0 is a difference these photos support.

    Args:
        records: per-photo records whose ``metrics[method]`` holds ``{"image": {metric: value},
            "instances": [{metric: value}, ...]}`` (:class:`instcolor.evaluation.runner.ImageRecord`).
        cap: values are clipped to ``[-cap, cap]`` first, so that a perfect result (infinite PSNR)
            counts as a large gain and two perfect results as none, instead of being left out.
    """
    found: dict[str, dict[str, Summary]] = {"image": {}, "instance": {}}
    for metric in metrics:

        def difference(a: dict, b: dict) -> float:
            return float(np.clip(a.get(metric, np.nan), -cap, cap) - np.clip(b.get(metric, np.nan), -cap, cap))

        whole = [difference(r.metrics[first]["image"], r.metrics[second]["image"]) for r in records]
        inside = [list(map(difference, r.metrics[first]["instances"], r.metrics[second]["instances"])) for r in records]
        for level, values in (("image", whole), ("instance", inside)):
            summary = bootstrap_mean(values, n_resamples=resamples, seed=seed)
            if summary.n:
                found[level][metric] = summary
    return found
