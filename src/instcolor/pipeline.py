"""The end-to-end colorizer: image in, full-resolution colour image out.

    >>> from instcolor import Colorizer
    >>> colorizer = Colorizer.from_pretrained("paper-coco")        # doctest: +SKIP
    >>> result = colorizer("grandma.jpg")                           # doctest: +SKIP
    >>> result.image.save("grandma-colour.png")                     # doctest: +SKIP

Steps: decode (EXIF, any mode) -> Lab L at full resolution -> detect boxes on the grey image
(unless given) -> 256x256 full image and box crops -> instance net on all crops in one batch ->
fusion -> ab upsampled bilinearly to full resolution -> joined with the original L -> sRGB clipped
to gamut; alpha carried over. With no box the full-image network runs alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from instcolor.color import denormalize_ab, join_lab, lightness, normalize_l
from instcolor.instances import Instances
from instcolor.io import DecodedImage, decode_image, to_pil
from instcolor.networks import InstColorModel, network_input
from instcolor.preprocess import prepare
from instcolor.weights import load_weights, resolve_weights_path

MODES = ("fusion", "full")


@dataclass
class ColorizeResult:
    """What :class:`Colorizer` returns for one image.

    Attributes:
        image: the colour image at the input's full resolution (RGB, or RGBA when the input had alpha).
        ab: ``(2, H, W)`` float32 predicted Lab a*, b* at full resolution.
        instances: the instances used (detected or given), boxes in original pixels.
        mode: the network path that ran: ``"fusion"`` or ``"full"`` (no box, or asked for).
        detector: the detector's name, or None when boxes were given or detection was off.
    """

    image: Image.Image
    ab: np.ndarray
    instances: Instances = field(default_factory=Instances)
    mode: str = "full"
    detector: str | None = None

    @property
    def boxes(self) -> np.ndarray:
        return self.instances.boxes

    @property
    def scores(self) -> np.ndarray:
        return self.instances.scores

    @property
    def labels(self) -> list[str]:
        return self.instances.labels

    @property
    def masks(self) -> np.ndarray | None:
        return self.instances.masks


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (checked)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no CUDA device is available")
    return device


class Colorizer:
    """Instance-aware colorizer around an :class:`InstColorModel` and an optional detector.

    Args:
        model: the three networks.
        detector: callable ``(grey HxWx3 uint8) -> Instances`` with a ``name``; None disables
            detection (then only given boxes are used).
        device: where the networks run.
        size: network input side; default: the side the weights were trained for (256 for the paper's).
        metadata: the weights file's metadata, kept for provenance.
    """

    def __init__(
        self,
        model: InstColorModel,
        detector=None,
        device: str | torch.device = "cpu",
        size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.detector = detector
        self.size = size or model.config.input_size
        self.metadata = dict(metadata or {})

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "auto",
        detector: str | None = "auto",
        **detector_options,
    ) -> Colorizer:
        """Load installed weights by name (``paper-coco``, ``starter``...) or from a file.

        Args:
            detector: ``"auto"``, ``"maskrcnn"``, ``"centernet"`` or ``None``/``"none"``.
            detector_options: passed to :func:`instcolor.detection.load_detector`
                (``score_threshold``, ``max_instances``, ``classes``).
        """
        device = resolve_device(device)
        loaded = load_weights(resolve_weights_path(name_or_path))
        det = None
        if detector not in (None, "none"):
            from instcolor.detection import load_detector

            det = load_detector(detector, device=str(device), **detector_options)
        return cls(loaded.model, detector=det, device=device, metadata=loaded.metadata)

    def detect(self, decoded: DecodedImage) -> Instances:
        """Run the detector on the grey version of the image (L replicated), as the paper does."""
        if self.detector is None:
            return Instances()
        from instcolor.detection.base import detection_image

        return self.detector(detection_image(decoded))

    @torch.inference_mode()
    def predict_ab(self, l_full: torch.Tensor, boxes: np.ndarray | None, mode: str = "fusion") -> tuple[torch.Tensor, str]:
        """Predict ab at full resolution.

        Args:
            l_full: ``(1, 1, H, W)`` Lab lightness in ``[0, 100]``.
            boxes: ``(N, 4)`` boxes in original pixels, or None.
            mode: ``"fusion"`` (instance-aware; the full-image net when there is no box) or ``"full"``.

        Returns:
            ``((1, 2, H, W)`` ab in Lab units, the mode that ran).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        l_full = l_full.to(self.device, torch.float32)
        inputs = prepare(normalize_l(l_full), boxes if mode == "fusion" else None, self.size)
        full_input = network_input(inputs.full)
        if len(inputs.crops) == 0:
            ab_small, ran = self.model.full(full_input)[0], "full"
        else:
            ab_small, ran = self.model(full_input, network_input(inputs.crops), inputs.box_info), "fusion"
        ab = F.interpolate(ab_small.float(), size=l_full.shape[-2:], mode="bilinear", align_corners=False)
        return denormalize_ab(ab), ran

    def __call__(
        self,
        image: str | os.PathLike | Image.Image | np.ndarray,
        instances: Instances | None = None,
        *,
        boxes: np.ndarray | list | None = None,
        masks: np.ndarray | None = None,
        mode: str = "fusion",
    ) -> ColorizeResult:
        """Colorize one image.

        Args:
            image: a path, PIL image, or ``HxW`` / ``HxWx3`` / ``HxWx4`` uint8 (or uint16) array.
            instances: instances to use instead of the detector (``Instances()`` means none).
            boxes: shorthand for ``Instances(boxes=boxes, masks=masks)``; overrides the detector.
            mode: ``"fusion"`` or ``"full"`` (the full-image network alone).
        """
        decoded = decode_image(image)
        detector_name = None
        if instances is None and boxes is not None:
            instances = Instances(boxes=np.asarray(boxes, np.float32).reshape(-1, 4), masks=masks)
        if instances is None:
            instances = self.detect(decoded) if mode == "fusion" else Instances()
            detector_name = getattr(self.detector, "name", None)
        rgb = torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None].to(self.device)
        l_full = lightness(rgb)
        ab, ran = self.predict_ab(l_full, instances.boxes if len(instances) else None, mode)
        colour = join_lab(l_full, ab)[0].permute(1, 2, 0).cpu().numpy()
        return ColorizeResult(
            image=to_pil(colour, decoded.alpha),
            ab=ab[0].cpu().numpy(),
            instances=instances,
            mode=ran,
            detector=detector_name,
        )
