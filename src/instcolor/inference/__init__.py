"""Inference: the :class:`~.pipeline.Colorizer` and how the networks run.

* :mod:`.pipeline`: :class:`Colorizer`, one image from file to result;
* :mod:`.preprocess`: crops, boxes and fusion grids of the network inputs;
* :mod:`.hardware`: CPU instruction sets (bf16, VNNI, AMX) and device descriptions;
* :mod:`.runtime`: :class:`RuntimeOptions` and :func:`prepare_model` (streamed / batched fusion,
  channels-last, bf16 / fp16 / int8, ``torch.compile``); :data:`EAGER_FP32` is the plain baseline;
* :mod:`.precision`: ``precision="auto"``, measured once per machine and cached;
* :mod:`.quantization`: static int8 quantization of the backbone convolutions;
* :mod:`.cudagraphs`: the networks replayed as CUDA graphs;
* :mod:`.overlap`: folder runs with decoding and encoding overlapped with compute;
* :mod:`.timing`: per-stage timers and peak memory.

Imports the layers below (io, instances, geometry, color, models, detection), never above.
"""

from instcolor.inference.hardware import CpuInfo, cpu_info, device_description
from instcolor.inference.precision import candidate_precisions, choose_precision, precision_cache_path
from instcolor.inference.runtime import (
    EAGER_FP32,
    FAST_FP32,
    PRECISIONS,
    PreparedModel,
    RuntimeOptions,
    prepare_model,
)
from instcolor.inference.timing import StageTimer, peak_rss_bytes, reset_peak_rss

__all__ = [
    "EAGER_FP32",
    "FAST_FP32",
    "PRECISIONS",
    "CpuInfo",
    "PreparedModel",
    "RuntimeOptions",
    "StageTimer",
    "candidate_precisions",
    "choose_precision",
    "cpu_info",
    "device_description",
    "peak_rss_bytes",
    "precision_cache_path",
    "prepare_model",
    "reset_peak_rss",
]
