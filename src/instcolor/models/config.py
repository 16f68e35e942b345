"""Architecture hyper-parameters stored with every weights file (:class:`ModelConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters stored with every weights file.

    Attributes:
        width: channel multiplier (1.0 = the paper's networks).
        fusion_hidden: hidden channels of the fusion weight CNNs (16 in the paper).
        input_size: the square network input side the weights were trained for (divisible by 8).
    """

    width: float = 1.0
    fusion_hidden: int = 16
    input_size: int = 256

    def channels(self, base: int) -> int:
        return max(1, int(round(base * self.width)))

    def to_dict(self) -> dict:
        return asdict(self)
