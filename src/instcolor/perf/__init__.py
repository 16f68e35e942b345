"""Speed: precision choice, int8 quantization, fast paths, timing and the benchmark.

* :mod:`.hardware`: CPU instruction sets (bf16, VNNI, AMX) and device descriptions;
* :mod:`.runtime`: :class:`RuntimeOptions` and :func:`prepare_model` (streamed / batched fusion,
  channels-last, bf16 / fp16 / int8, ``torch.compile``); :data:`EAGER_FP32` is the plain baseline;
* :mod:`.precision`: ``precision="auto"``, measured once per machine and cached;
* :mod:`.quantization`: static int8 quantization of the backbone convolutions;
* :mod:`.compose`: full-resolution lightness and Lab -> 8-bit sRGB in row bands;
* :mod:`.timing`: per-stage timers and peak memory;
* :mod:`.bench`: the benchmark behind ``instcolor bench``.
"""

from instcolor.perf.hardware import CpuInfo, cpu_info, device_description
from instcolor.perf.precision import candidate_precisions, choose_precision, precision_cache_path
from instcolor.perf.runtime import EAGER_FP32, FAST_FP32, PRECISIONS, PreparedModel, RuntimeOptions, prepare_model
from instcolor.perf.timing import StageTimer, peak_rss_bytes, reset_peak_rss

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
