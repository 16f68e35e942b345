"""Bootstrap means: pooling, resampling by image, reproducibility, and agreement with scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from instcolor.evaluation.stats import bootstrap_mean


def test_scalar_values_mean_and_interval_agree_with_scipy():
    values = np.random.default_rng(0).normal(25.0, 3.0, size=200)
    ours = bootstrap_mean(values.tolist(), n_resamples=4000, seed=1)
    theirs = scipy.stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=2)
    assert ours.mean == pytest.approx(values.mean())
    assert ours.low < ours.mean < ours.high
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=0.1)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=0.1)
    assert (ours.n, ours.n_images) == (200, 200)


def test_instances_are_pooled_and_resampled_with_their_image():
    per_image = [[1.0, 2.0, 3.0], [10.0], []]
    summary = bootstrap_mean(per_image, n_resamples=500, seed=0)
    assert summary.mean == pytest.approx(4.0)  # mean over instances, not over image means (6.0)
    assert (summary.n, summary.n_images) == (4, 2)
    # any resample of whole images gives a pooled mean between 2 (image 1 only) and 10 (image 2 only)
    assert 2.0 <= summary.low <= summary.high <= 10.0


def test_non_finite_values_are_left_out_and_seed_makes_it_reproducible():
    values = [1.0, float("nan"), 3.0, float("inf"), 5.0]
    first = bootstrap_mean(values, seed=3)
    assert first.mean == pytest.approx(3.0) and first.n == 3
    assert bootstrap_mean(values, seed=3) == first
    many = np.random.default_rng(0).normal(size=50).tolist()
    assert bootstrap_mean(many, seed=3) == bootstrap_mean(many, seed=3)
    assert bootstrap_mean(many, seed=3) != bootstrap_mean(many, seed=4)


def test_degenerate_inputs():
    empty = bootstrap_mean([[], [float("nan")]])
    assert empty.n == 0 and np.isnan(empty.mean)
    assert empty.to_json() == {"mean": None, "ci95": [None, None], "n": 0, "n_images": 0}
    single = bootstrap_mean([7.5])
    assert (single.mean, single.low, single.high) == (7.5, 7.5, 7.5)
