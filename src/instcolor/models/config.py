"""Architecture hyper-parameters stored with every weights file (:class:`ModelConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


#: How fusion weighs instances (:attr:`ModelConfig.fusion_rule`).
FUSION_RULES = ("reference", "confined")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters stored with every weights file.

    Attributes:
        width: channel multiplier (1.0 = the paper's networks).
        fusion_hidden: hidden channels of the fusion weight CNNs (16 in the paper).
        input_size: the square network input side the weights were trained for (divisible by 8).
        fusion_rule: how the per-pixel softmax weighs instances:

            * ``"reference"`` (the paper): an instance's weight logit is 0 outside its box and
              still takes part in every pixel's softmax inside the union of boxes, so each extra
              instance dilutes all the others (with a zero feature) wherever it is not;
            * ``"confined"``: an instance takes part only inside its *support*, its box with a
              feathered border or its mask (:func:`instance_supports`); elsewhere its weight is
              exactly 0, so instances never touch each other or the background outside it.
        support_feather: ``"confined"`` only: width of the box border over which an instance's
            support ramps from 0 to 1, as a fraction of the crop side (no seam at box edges).
        hints: the networks were trained with random colour hints in their hint inputs
            (:mod:`instcolor.color.hints`), so user hints steer them; weights without it
            (the paper's) were trained with empty hint inputs only.
    """

    width: float = 1.0
    fusion_hidden: int = 16
    input_size: int = 256
    fusion_rule: str = "reference"
    support_feather: float = 0.125
    hints: bool = False

    def __post_init__(self) -> None:
        if self.fusion_rule not in FUSION_RULES:
            raise ValueError(f"fusion_rule must be one of {FUSION_RULES}, got {self.fusion_rule!r}")
        if not 0.0 < self.support_feather <= 0.5:
            raise ValueError(f"support_feather must be in (0, 0.5], got {self.support_feather}")

    def channels(self, base: int) -> int:
        return max(1, int(round(base * self.width)))

    def to_dict(self) -> dict:
        return asdict(self)
