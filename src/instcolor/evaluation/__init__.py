"""Evaluation of colorization: the paper's metrics, reproducibly, with reports people can read.

    >>> from instcolor import Colorizer
    >>> from instcolor.evaluation import EvaluationConfig, evaluate, write_report
    >>> colorizer = Colorizer.from_pretrained("paper-coco", detector="none")   # doctest: +SKIP
    >>> result = evaluate(["photo1.jpg", "photo2.jpg"], colorizer)               # doctest: +SKIP
    >>> write_report(result, "report/")                                         # doctest: +SKIP

:mod:`~instcolor.evaluation.runner` holds the protocol, :mod:`~instcolor.evaluation.metrics` the
metrics, :mod:`~instcolor.evaluation.stats` the bootstrap intervals,
:mod:`~instcolor.evaluation.datasets` the benchmark layouts and
:mod:`~instcolor.evaluation.report` the report folder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> submodule; loaded on first use so that ``instcolor --help`` stays quick.
_EXPORTS = {
    "DATASETS": "datasets",
    "DatasetImages": "datasets",
    "find_dataset": "datasets",
    "MetricUnavailable": "metrics",
    "colourfulness": "metrics",
    "load_inception": "metrics",
    "load_lpips": "metrics",
    "psnr": "metrics",
    "ssim": "metrics",
    "write_report": "report",
    "METHODS": "runner",
    "EvaluationConfig": "runner",
    "EvaluationResult": "runner",
    "ImageRecord": "runner",
    "evaluate": "runner",
    "Summary": "stats",
    "bootstrap_mean": "stats",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from instcolor.evaluation.datasets import DATASETS, DatasetImages, find_dataset
    from instcolor.evaluation.metrics import MetricUnavailable, colourfulness, load_inception, load_lpips, psnr, ssim
    from instcolor.evaluation.report import write_report
    from instcolor.evaluation.runner import METHODS, EvaluationConfig, EvaluationResult, ImageRecord, evaluate
    from instcolor.evaluation.stats import Summary, bootstrap_mean


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
