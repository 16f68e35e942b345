"""From an image and its boxes to network inputs: the whole image and each box crop at S x S.

Shared by inference, training and evaluation so that all three see exactly the same inputs.
Resizing is bilinear with antialiasing and does not keep the aspect ratio (as the reference's
Pillow ``Resize((S, S))``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from instcolor.color.hints import Hints, grid_hints
from instcolor.geometry import box_infos, fusion_grids, sanitize_boxes


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, size, size)`` (or ``(h, w)``), bilinear, antialiased."""
    size = (size, size) if isinstance(size, int) else size
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def crop_and_resize(x: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Crop each box from a ``(1, C, H, W)`` tensor and resize it: ``(N, C, size, size)``.

    Args:
        boxes: ``(N, 4)`` int boxes already passed through :func:`geometry.sanitize_boxes`.
    """
    crops = [resize(x[:, :, y1:y2, x1:x2], size) for x1, y1, x2, y2 in np.asarray(boxes).tolist()]
    if not crops:
        return x.new_zeros((0, x.shape[1], size, size))
    return torch.cat(crops, dim=0)


@dataclass
class NetworkInputs:
    """Everything the networks need for one image.

    Attributes:
        full: ``(1, C, S, S)`` the whole image resized.
        crops: ``(N, C, S, S)`` each box crop resized.
        boxes: ``(N, 4)`` int64 sanitized boxes in original pixels.
        box_info: ``{grid: (N, 6) int64 tensor}`` for the four fusion grids.
        crop_masks: ``(N, 1, S, S)`` float32 in ``[0, 1]``, each instance's mask cropped to its
            box and resized like the crops, or None when no mask was given.
    """

    full: torch.Tensor
    crops: torch.Tensor
    boxes: np.ndarray
    box_info: dict[int, torch.Tensor]
    crop_masks: torch.Tensor | None = None
    full_hints: torch.Tensor | None = None
    crop_hints: torch.Tensor | None = None


def prepare(
    image: torch.Tensor,
    boxes: np.ndarray | None,
    size: int = 256,
    placements_device: torch.device | str | None = None,
    masks: np.ndarray | torch.Tensor | None = None,
    hints: Hints | None = None,
) -> NetworkInputs:
    """Resize a ``(1, C, H, W)`` image (any channels: L, or L+ab for training targets) and its boxes.

    Args:
        image: ``(1, C, H, W)`` tensor at the original resolution.
        boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in original pixels (floats allowed), or None.
        size: network side ``S`` (divisible by 8).
        placements_device: where ``box_info`` goes (default: the image's device). Placements only
            steer host-side slicing in some fusion strategies: on the CPU, reading them costs no
            device synchronisation.
        masks: ``(N, H, W)`` instance masks (bool or float in ``[0, 1]``) at the image's resolution,
            one per box, or None.
        hints: colour hints in the image's pixels (instance indices = positions in ``boxes``), or None.
    """
    height, width = image.shape[-2:]
    boxes = sanitize_boxes(np.zeros((0, 4)) if boxes is None else boxes, (width, height))
    infos = box_infos(boxes, (width, height), fusion_grids(size))
    crop_masks = None
    if masks is not None and len(boxes):
        masks = torch.as_tensor(masks)
        if masks.shape != (len(boxes), height, width):
            raise ValueError(f"expected {len(boxes)} masks of {height}x{width}, got {tuple(masks.shape)}")
        crop_masks = torch.cat([
            resize(masks[i, y1:y2, x1:x2][None, None].to(image.device, torch.float32), size)
            for i, (x1, y1, x2, y2) in enumerate(boxes.tolist())
        ])  # fmt: skip
        empty = torch.nonzero(crop_masks.flatten(1).amax(dim=1) <= 0).flatten().tolist()
        if empty:
            raise ValueError(f"the mask of instance {empty[0] + 1} is empty inside its box")
    full_hints, crop_hints = grid_hints(hints, (width, height), boxes, size)
    return NetworkInputs(
        full=resize(image, size),
        crops=crop_and_resize(image, boxes, size),
        boxes=boxes,
        box_info={grid: torch.from_numpy(info).to(placements_device or image.device) for grid, info in infos.items()},
        crop_masks=crop_masks,
        full_hints=None if full_hints is None else full_hints.to(image.device),
        crop_hints=None if crop_hints is None else crop_hints.to(image.device),
    )
