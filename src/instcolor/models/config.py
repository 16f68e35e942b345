"""Architecture hyper-parameters stored with every weights file (:class:`ModelConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


#: How fusion weighs instances (:attr:`ModelConfig.fusion_rule`).
FUSION_RULES = ("reference", "confined")

#: Where a class-aware model feeds each instance's class (:attr:`ModelConfig.class_inputs`).
CLASS_INPUTS = ("instance", "fusion", "both")

#: The config fields of class awareness: written to a weights file only when it is class-aware,
#: so class-blind files keep the config they always had.
CLASS_FIELDS = ("num_classes", "class_inputs")


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
        num_classes: class ids the model knows (id 0 = unknown), or 0 for a class-blind model
            (the paper's). A class-aware model takes each instance's class id
            (:meth:`InstColorModel.forward`'s ``crop_classes``) through learned embeddings that
            start at zero, so it starts equal to the class-blind model it grows from.
        class_inputs: class-aware only: where the class goes in:

            * ``"instance"``: an embedding added to the instance net's first feature map
              (``conv1_2``), broadcast over the crop, so every later layer and every fused
              feature knows the class;
            * ``"fusion"``: a per-class bias on each fusion layer's instance weight logit (how
              much an instance of that class is trusted against the full-image feature);
            * ``"both"``.
        hints: the networks were trained with random colour hints in their hint inputs
            (:mod:`instcolor.color.hints`), so user hints steer them; weights without it
            (the paper's) were trained with empty hint inputs only.
    """

    width: float = 1.0
    fusion_hidden: int = 16
    input_size: int = 256
    fusion_rule: str = "reference"
    support_feather: float = 0.125
    num_classes: int = 0
    class_inputs: str = "instance"
    hints: bool = False

    def __post_init__(self) -> None:
        if self.fusion_rule not in FUSION_RULES:
            raise ValueError(f"fusion_rule must be one of {FUSION_RULES}, got {self.fusion_rule!r}")
        if not 0.0 < self.support_feather <= 0.5:
            raise ValueError(f"support_feather must be in (0, 0.5], got {self.support_feather}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if self.class_inputs not in CLASS_INPUTS:
            raise ValueError(f"class_inputs must be one of {CLASS_INPUTS}, got {self.class_inputs!r}")

    @property
    def class_aware(self) -> bool:
        """Whether the model takes instance classes (``num_classes > 0``)."""
        return self.num_classes > 0

    @property
    def instance_classes(self) -> int:
        """Class ids the instance net embeds (0: none)."""
        return self.num_classes if self.class_inputs in ("instance", "both") else 0

    @property
    def fusion_classes(self) -> int:
        """Class ids the fusion weight generators embed (0: none)."""
        return self.num_classes if self.class_inputs in ("fusion", "both") else 0

    def channels(self, base: int) -> int:
        return max(1, int(round(base * self.width)))

    def to_dict(self) -> dict:
        """The fields as a dict; a class-blind config leaves out :data:`CLASS_FIELDS`."""
        data = asdict(self)
        if not self.class_aware:
            for name in CLASS_FIELDS:
                del data[name]
        return data
