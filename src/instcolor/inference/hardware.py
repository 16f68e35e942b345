"""What the machine can do natively: CPU instruction sets and the accelerator, for precision choice
and for benchmark reports.

>>> info = cpu_info()
>>> info.native_bf16, info.int8_dot_product    # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: CPU flags (as /proc/cpuinfo spells them) that matter for reduced-precision inference.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
REPORTED_FLAGS = (
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


@dataclass(frozen=True)
class CpuInfo:
    """The host CPU.

    Attributes:
        model_name: e.g. ``"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"`` or ``"AMD EPYC"``.
        flags: the instruction-set flags of /proc/cpuinfo (empty where it cannot be read).
        capability: ``torch.backends.cpu.get_cpu_capability()`` (``"AVX512"``, ``"AVX2"``...).
        threads: torch's intra-op thread count.
    """

    model_name: str
    flags: frozenset[str] = field(default_factory=frozenset)
    capability: str = ""
    threads: int = 1

    @property
    def native_bf16(self) -> bool:
        """bf16 dot products in hardware (AVX512-BF16 or AMX); elsewhere oneDNN emulates bf16 slowly."""
        return any(flag in self.flags for flag in BF16_FLAGS)

    @property
    def int8_dot_product(self) -> bool:
        """int8 dot products in hardware (VNNI or AMX), which quantized convolutions use."""
        return any(flag in self.flags for flag in INT8_DOT_FLAGS)

    @property
    def reported_flags(self) -> list[str]:
        return [flag for flag in REPORTED_FLAGS if flag in self.flags]

    def signature(self) -> str:
        """A short key identifying this CPU setup, for caches of measured choices."""
        return f"{self.model_name}|{','.join(self.reported_flags)}|{self.capability}|{self.threads}t"

    def to_dict(self) -> dict:
        return {
            "model_name": self.model_name,
            "flags": self.reported_flags,
            "capability": self.capability,
            "threads": self.threads,
            "native_bf16": self.native_bf16,
            "int8_dot_product": self.int8_dot_product,
        }


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` from the text of /proc/cpuinfo (first processor entry)."""
    model_name, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model_name:
            model_name = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        if model_name and flags:
            break
    return model_name, flags


@functools.lru_cache(maxsize=1)
def _read_cpu() -> tuple[str, frozenset[str], str]:
    model_name, flags = "", frozenset()
    path = Path("/proc/cpuinfo")
    if path.is_file():
        try:
            model_name, flags = parse_cpuinfo(path.read_text(errors="replace"))
        except OSError:
            pass
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = ""
    return model_name or platform.processor() or platform.machine() or "unknown CPU", flags, capability


def cpu_info() -> CpuInfo:
    """The host CPU (flags read once per process)."""
    model_name, flags, capability = _read_cpu()
    return CpuInfo(model_name=model_name, flags=flags, capability=capability, threads=torch.get_num_threads())


def device_description(device: torch.device | str) -> dict:
    """What a benchmark report says about the device it ran on."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {
            "type": "cuda",
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "bf16": torch.cuda.is_bf16_supported(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
    return {"type": "cpu", **cpu_info().to_dict(), "cores": os.cpu_count(), "torch": torch.__version__}
