"""Mask R-CNN (torchvision ``maskrcnn_resnet50_fpn_v2``, COCO) as an instance detector.

Weights come, in this order, from: an explicit file, the file named by ``$INSTCOLOR_MASKRCNN_WEIGHTS``,
or torchvision's own weights API (``MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT``), which downloads
once into the torch hub cache (``$TORCH_HOME/hub/checkpoints``) and reads it from there afterwards.
A local file is a state dict saved with ``torch.save``; it is read with ``weights_only=True`` and
must match the architecture exactly.

The paper used detectron2's Mask R-CNN X101-FPN with ``SCORE_THRESH_TEST = 0.7``; this is the
closest maintained model that torchvision ships (COCO box AP 47.4, mask AP 41.8).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, maskrcnn_resnet50_fpn_v2

from instcolor.detection.base import is_grey_view
from instcolor.detection.coco import TORCHVISION_COCO_NAMES
from instcolor.instances import Instances

#: Environment variable naming a local Mask R-CNN state dict file.
WEIGHTS_ENV = "INSTCOLOR_MASKRCNN_WEIGHTS"
#: torchvision's COCO weights (downloaded through its weights API).
TORCHVISION_WEIGHTS = MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT
#: torchvision's detection head has 91 outputs: background + COCO's 90 original category ids.
NUM_CLASSES = 91
#: Mask probability above which a pixel belongs to the instance.
MASK_THRESHOLD = 0.5
#: torchvision's default candidate score floor (``box_score_thresh``).
DEFAULT_CANDIDATE_THRESHOLD = 0.05


class DetectorWeightsError(RuntimeError):
    """Detector weights are missing, unreadable, or do not fit the architecture."""


def torch_hub_checkpoint() -> Path:
    """Where torchvision's weights API caches the COCO checkpoint (it may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(TORCHVISION_WEIGHTS.url)


def maskrcnn_weights_file(weights: str | os.PathLike | None = None) -> Path | None:
    """The local weights file to use: ``weights``, else ``$INSTCOLOR_MASKRCNN_WEIGHTS``, else None.

    None means torchvision's weights API (hub cache, downloading when absent).
    """
    if weights is not None:
        return Path(weights)
    from_env = os.environ.get(WEIGHTS_ENV)
    return Path(from_env) if from_env else None


def maskrcnn_available(weights: str | os.PathLike | None = None) -> bool:
    """Whether Mask R-CNN weights are present on this machine; never touches the network."""
    local = maskrcnn_weights_file(weights)
    if local is not None:
        return local.is_file()
    return torch_hub_checkpoint().is_file()


def _read_state_dict(weights: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    local = maskrcnn_weights_file(weights)
    if local is None:
        try:
            return TORCHVISION_WEIGHTS.get_state_dict(progress=True, check_hash=True)
        except Exception as err:  # network errors, hash mismatch, truncated download
            raise DetectorWeightsError(
                f"cannot get Mask R-CNN weights from {TORCHVISION_WEIGHTS.url} ({err}); "
                f"put them at {torch_hub_checkpoint()}, set {WEIGHTS_ENV}, or use the centernet detector"
            ) from err
    if not local.is_file():
        raise DetectorWeightsError(f"Mask R-CNN weights file not found: {local}")
    try:
        state = torch.load(local, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DetectorWeightsError(f"cannot read Mask R-CNN weights {local}: {err}") from err
    if not isinstance(state, dict):
        raise DetectorWeightsError(f"{local} does not hold a state dict")
    return state


class MaskRCNNDetector:
    """torchvision Mask R-CNN ResNet-50-FPN v2 on COCO.

    Args:
        weights: a local state dict file; None uses ``$INSTCOLOR_MASKRCNN_WEIGHTS`` or torchvision's
            COCO weights (downloaded once into the torch hub cache).
        device: where the model runs.
        candidate_threshold: the model's own score floor for candidates (torchvision's
            ``box_score_thresh``). :func:`instcolor.detection.load_detector` sets it to the
            filter's threshold, as the paper's ``SCORE_THRESH_TEST = 0.7``, so that masks are
            only pasted for instances that can be kept.
        model_options: passed to ``maskrcnn_resnet50_fpn_v2`` (``min_size``, ``max_size``,
            ``rpn_post_nms_top_n_test``, ``box_detections_per_img``, ...); they change
            behaviour, not the weights.
    """

    name = "maskrcnn"
    default_score_threshold = 0.7

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        candidate_threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
        **model_options,
    ) -> None:
        self.device = torch.device(device)
        state = _read_state_dict(weights)
        model = maskrcnn_resnet50_fpn_v2(
            weights=None,
            weights_backbone=None,
            num_classes=NUM_CLASSES,
            box_score_thresh=candidate_threshold,
            **model_options,
        )
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise DetectorWeightsError(f"Mask R-CNN weights do not fit maskrcnn_resnet50_fpn_v2: {err}") from err
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def raw(self, image: np.ndarray) -> Instances:
        """Candidates of an ``(H, W, 3)`` uint8 image: boxes, scores, COCO names, ``(N, H, W)`` masks.

        Images larger than the model's working size (``min_size`` short side, at most
        ``max_size`` long side) are first shrunk with antialiasing, which the model's own
        bilinear resize lacks; boxes and masks are then mapped back to the original pixels.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        planes = image[None, :, :, 0] if is_grey_view(image) else image.transpose(2, 0, 1)  # grey: one plane
        x = torch.from_numpy(np.array(planes)).to(self.device, torch.float32) / 255.0  # a copy: views may be read-only
        work_h, work_w = self._working_size(height, width)
        if (work_h, work_w) != (height, width):
            x = F.interpolate(x[None], size=(work_h, work_w), mode="bilinear", align_corners=False, antialias=True)[0]
        x = x.expand(3, -1, -1)
        output = self.model([x])[0]

        boxes = output["boxes"].float()
        if (work_h, work_w) != (height, width):
            boxes = boxes * boxes.new_tensor([width / work_w, height / work_h] * 2)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        # Background and COCO's ten unused ids ("N/A") are no objects.
        names = [TORCHVISION_COCO_NAMES[label] for label in output["labels"].tolist()]
        real = [i for i, name in enumerate(names) if name not in ("__background__", "N/A")]
        return Instances(
            boxes=boxes[real].cpu().numpy(),
            scores=output["scores"][real].float().cpu().numpy(),
            labels=[names[i] for i in real],
            masks=self._full_resolution_masks(output["masks"][real], (height, width)),
        )

    def _working_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the model would resize to, when that is smaller; else the image's own size."""
        transform = self.model.transform
        min_size = float(transform.min_size[-1])
        scale = min(min_size / min(height, width), float(transform.max_size) / max(height, width))
        if scale >= 1.0:
            return height, width
        return max(1, round(height * scale)), max(1, round(width * scale))

    @staticmethod
    def _full_resolution_masks(probabilities: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """``(N, 1, h, w)`` mask probabilities -> ``(N, H, W)`` bool at ``MASK_THRESHOLD``."""
        masks = np.zeros((len(probabilities), *size), dtype=bool)
        for i, probability in enumerate(probabilities):
            if tuple(probability.shape[-2:]) != size:
                probability = F.interpolate(probability[None].float(), size=size, mode="bilinear", align_corners=False)[0]
            masks[i] = (probability[0] > MASK_THRESHOLD).cpu().numpy()
        return masks
