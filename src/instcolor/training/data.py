"""Training data: colour photos -> grey network inputs and ab targets for the three training stages.

Every sample is a pure function of ``(seed, epoch, index)``: augmentation draws come from a torch
generator seeded with those three numbers, never from a global random state. The order of the
samples is a pure function of ``(seed, epoch)`` (:class:`StepBatchSampler`). Together this makes a
run independent of the number of data-loader workers and of the number of processes, and lets a
resumed run see exactly the batches an uninterrupted run would have seen.

Stages (as the reference's ``fusion_dataset.py``):

* ``full``: one sample per image: the whole image;
* ``instance``: one sample per image that has boxes: one of its boxes, drawn anew each epoch;
* ``fusion``: one sample per image that has boxes: the whole image with all its crops.

Tensors: network inputs ``(4, S, S)`` (:func:`instcolor.models.model.network_input` of the grey
image's normalised lightness), targets ``(2, S, S)`` ab in network units (Lab ab / 110).

With ``hints`` (:func:`instcolor.color.hints.draw_training_hints`), random colour hints revealing
the ground truth are drawn after the augmentation draws on the network grid of what the trained
network sees whole: the image (stages ``full`` and ``fusion``; in ``fusion`` every crop gets the
image's hints that fall in it, as at inference) or the box crop (stage ``instance``: hints drawn
on the whole image and moved into the crop left about 60% of the crops without any, so the
instance net would hardly learn them).

For a class-aware model (``ColorizationDataset(classes=True)``) samples also carry the class id
of each instance they show (:func:`instcolor.detection.coco.coco_class_ids` of the boxes file's
labels), each one replaced by the unknown id with probability ``class_dropout`` so that the model
also learns to colour instances whose class it is not told.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import RandomResizedCrop

from instcolor.color import AB_SCALE, lightness, normalize_ab, normalize_l, rgb_to_grey, rgb_to_lab
from instcolor.color.hints import NO_HINT_SHARE, draw_training_hints, grid_hints
from instcolor.detection.coco import UNKNOWN_CLASS_ID, coco_class_ids
from instcolor.geometry import sanitize_boxes
from instcolor.inference.preprocess import prepare
from instcolor.instances import Instances, lookup_instances, mask_to_rle, rle_to_mask
from instcolor.io import atomic_write_bytes, decode_image, find_images
from instcolor.models.model import hinted_input

STAGES = ("full", "instance", "fusion")

#: Images whose a and b ranges add up to less than this (Lab units) are greyscale originals.
AB_RANGE_THRESHOLD = 5.0


@dataclass(frozen=True)
class Augmentation:
    """Random horizontal flip and random resized crop (torchvision's parameter draw).

    Attributes:
        flip: flip horizontally with probability 1/2.
        crop_scale: range of the crop's area as a fraction of the region; ``(1, 1)`` disables it.
        crop_ratio: range of the crop's aspect ratio.
        min_box_visible: in the fusion stage, a box is kept when at least this fraction of its
            area lies inside the crop.
    """

    flip: bool = True
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    min_box_visible: float = 0.5

    @property
    def crops(self) -> bool:
        return tuple(self.crop_scale) != (1.0, 1.0)


NO_AUGMENTATION = Augmentation(flip=False, crop_scale=(1.0, 1.0))


@dataclass
class TrainingItem:
    """One image of a training set and its boxes (``(N, 4)`` original pixels, maybe empty).

    ``masks``: the boxes file's masks (run-length encoded, :func:`instcolor.instances.mask_to_rle`),
    one per box, or None. ``labels``: the boxes' labels (COCO names, ``""`` when unknown), or
    None when no box has one.
    """

    path: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    masks: list[dict] | None = None
    labels: list[str] | None = None

    def to_json(self) -> dict:
        data = {"path": self.path, "boxes": [[round(float(v), 3) for v in b] for b in self.boxes]}
        if self.masks is not None:
            data["masks"] = self.masks
        return data if self.labels is None else {**data, "labels": self.labels}

    @classmethod
    def from_json(cls, data: dict) -> TrainingItem:
        boxes = np.asarray(data["boxes"], np.float32).reshape(-1, 4)
        return cls(path=str(data["path"]), boxes=boxes, masks=data.get("masks"), labels=data.get("labels"))

    def class_ids(self) -> np.ndarray:
        """``(N,)`` int64 class id of each box (:func:`coco_class_ids`; unknown without labels)."""
        return coco_class_ids(self.labels if self.labels is not None else [""] * len(self.boxes))


def collect_items(
    inputs: Sequence[str | os.PathLike],
    stage: str,
    instances: dict[str, Instances] | None = None,
    max_instances: int = 8,
) -> tuple[list[TrainingItem], list[str]]:
    """Walk the data folders (recursively) and attach each image's boxes.

    Args:
        inputs: folders, files or glob patterns of colour images.
        stage: ``"full"``, ``"instance"`` or ``"fusion"``; the last two keep only images with boxes.
        instances: a loaded boxes file (:func:`instcolor.instances.load_boxes_file`); needed for
            the instance and fusion stages.
        max_instances: keep at most this many highest-scoring boxes per image (8 in the paper).

    Returns:
        ``(items, problems)``: the training items in a stable order and human-readable notes
        (inputs that matched nothing, images without an entry in the boxes file).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    paths, problems = find_images([os.fspath(p) for p in inputs])
    items: list[TrainingItem] = []
    missing = without_boxes = 0
    for path in paths:
        found = find_instances(instances, path) if instances is not None else None
        if found is None and stage != "full":
            missing += 1
            continue
        kept = found.top(max_instances) if found is not None else Instances()
        if stage != "full" and len(kept) == 0:
            without_boxes += 1
            continue
        masks = None if kept.masks is None else [mask_to_rle(m) for m in kept.masks]
        labels = list(kept.labels) if any(kept.labels) else None
        items.append(TrainingItem(path=str(path), boxes=kept.boxes, masks=masks, labels=labels))
    if missing:
        problems.append(f"{missing} image(s) have no entry in the boxes file and are left out")
    if without_boxes:
        problems.append(f"{without_boxes} image(s) have no box and are left out of the {stage} stage")
    return items, problems


def find_instances(entries: dict[str, Instances], image_path: str | os.PathLike) -> Instances | None:
    """An image's entry in a boxes file: by its path as given, by the longest trailing part of its
    path (``instcolor detect`` keys images that share a name as ``a/1.jpg``), by name, or by stem."""
    if os.fspath(image_path) in entries:
        return entries[os.fspath(image_path)]
    parts = Path(image_path).parts
    for start in range(1, len(parts) - 1):
        key = "/".join(parts[start:])
        if key in entries:
            return entries[key]
    return lookup_instances(entries, image_path)


def save_items(path: str | os.PathLike, items: Sequence[TrainingItem]) -> None:
    """Write the item list of a run (so that a resumed run sees the same data in the same order)."""
    atomic_write_bytes(path, json.dumps([item.to_json() for item in items]).encode())


def load_items(path: str | os.PathLike) -> list[TrainingItem]:
    return [TrainingItem.from_json(d) for d in json.loads(Path(path).read_text())]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch, well mixed by numpy's SeedSequence."""
    words = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 31 ^ int(words[1])


def ab_range(ab: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` Lab ab -> ``(B,)`` range of a plus range of b (the reference's grey test)."""
    flat = ab.flatten(2)
    return (flat.amax(dim=2) - flat.amin(dim=2)).sum(dim=1)


@dataclass
class Sample:
    """One training sample.

    Attributes:
        input: ``(4, S, S)`` network input (stages ``full``/``instance``: the image or the crop;
            ``fusion``: the whole image).
        target: ``(2, S, S)`` ab / 110 of the same view.
        valid: False for greyscale originals (ab range under the threshold): they get no loss.
        crops: fusion stage only: ``(N, 4, S, S)`` network inputs of the N box crops.
        box_info: fusion stage only: ``{grid: (N, 6)}`` box placements.
        boxes: fusion stage only: ``(N, 4)`` boxes in pixels of the (augmented) image.
        crop_masks: fusion stage only: ``(N, 1, S, S)`` masks cropped to the boxes, or None.
        classes: class-aware datasets only: int64 class ids of the instances shown, ``(1,)`` for
            the instance stage's crop, ``(N,)`` for the fusion stage's crops; else None.
    """

    input: torch.Tensor
    target: torch.Tensor
    valid: bool
    crops: torch.Tensor | None = None
    box_info: dict[int, torch.Tensor] | None = None
    boxes: np.ndarray | None = None
    crop_masks: torch.Tensor | None = None
    classes: torch.Tensor | None = None


@dataclass
class Batch:
    """A collated batch: ``inputs (B, 4, S, S)``, ``targets (B, 2, S, S)``, ``valid (B,)`` float;
    for the fusion stage also ``samples``, the per-image :class:`Sample` list; for the instance
    stage of a class-aware dataset ``classes (B,)`` int64 (else None)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    valid: torch.Tensor
    samples: list[Sample]
    classes: torch.Tensor | None = None


def collate(samples: list[Sample]) -> Batch:
    fusion = bool(samples) and samples[0].crops is not None
    with_classes = bool(samples) and samples[0].classes is not None and not fusion
    return Batch(
        inputs=torch.stack([s.input for s in samples]),
        targets=torch.stack([s.target for s in samples]),
        valid=torch.tensor([float(s.valid) for s in samples]),
        samples=samples if fusion else [],
        classes=torch.cat([s.classes for s in samples]) if with_classes else None,
    )


class ColorizationDataset(Dataset):
    """Training samples of one stage; index with ``(epoch, index)`` pairs (:class:`StepBatchSampler`).

    Args:
        items: images and their boxes (:func:`collect_items`).
        stage: ``"full"``, ``"instance"`` or ``"fusion"``.
        size: network side ``S`` (divisible by 8).
        augmentation: random flip and resized crop; :data:`NO_AUGMENTATION` for none.
        seed: base seed of the per-sample random draws.
        ab_threshold: ab range (Lab units) under which a sample counts as a greyscale original.
        hints: feed random colour hints drawn from the ground truth (Zhang et al. 2017).
        no_hint_share: with ``hints``, the share of samples that get none at all.
        classes: samples of the instance and fusion stages carry their instances' class ids
            (:attr:`Sample.classes`), for a class-aware model.
        class_dropout: with ``classes``, the probability that an instance's id is replaced by the
            unknown id (drawn after the augmentation, so the images are those of a class-blind run).
    """

    def __init__(
        self,
        items: Sequence[TrainingItem],
        stage: str,
        size: int = 256,
        augmentation: Augmentation = Augmentation(),
        seed: int = 0,
        ab_threshold: float = AB_RANGE_THRESHOLD,
        hints: bool = False,
        no_hint_share: float = NO_HINT_SHARE,
        classes: bool = False,
        class_dropout: float = 0.0,
    ) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if size % 8:
            raise ValueError(f"size must be divisible by 8, got {size}")
        if stage != "full" and any(len(item.boxes) == 0 for item in items):
            raise ValueError(f"every image of the {stage} stage needs at least one box")
        self.items = list(items)
        self.stage = stage
        self.size = size
        self.augmentation = augmentation
        self.seed = seed
        self.ab_threshold = ab_threshold
        self.hints = hints
        self.no_hint_share = no_hint_share
        self.classes = classes and stage != "full"
        self.class_dropout = class_dropout

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        epoch, index = key
        item = self.items[index]
        rgb = torch.from_numpy(decode_image(item.path).rgb).permute(2, 0, 1)[None]
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index))
        if self.stage == "full":
            return self._single(self._augment(rgb, generator), generator)
        if self.stage == "instance":  # hints drawn on the crop, the instance net's whole input
            choice = int(torch.randint(len(item.boxes), (1,), generator=generator))
            x1, y1, x2, y2 = _box_region(item.boxes[choice], rgb.shape[-2:])
            sample = self._single(self._augment(rgb[..., y1:y2, x1:x2], generator), generator)
            shown = [choice]
        else:
            masks = None if item.masks is None else np.stack([rle_to_mask(m) for m in item.masks])
            sample, shown = self._fusion(rgb, item.boxes, generator, masks)
        if self.classes:  # drawn last: the images and hints are those of a class-blind run
            ids = torch.from_numpy(item.class_ids()[shown])
            dropped = torch.rand(len(ids), generator=generator) < self.class_dropout
            sample.classes = torch.where(dropped, UNKNOWN_CLASS_ID, ids)
        return sample

    def _augment(self, rgb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        window, flip = self._draw(rgb, generator)
        top, left, height, width = window
        rgb = rgb[..., top : top + height, left : left + width]
        return rgb.flip(-1) if flip else rgb

    def _draw(self, rgb: torch.Tensor, generator: torch.Generator) -> tuple[tuple[int, int, int, int], bool]:
        """A crop window ``(top, left, height, width)`` and a flip decision."""
        aug = self.augmentation
        window = (0, 0, rgb.shape[-2], rgb.shape[-1])
        if aug.crops:
            # torchvision draws from the global generator: run it on a forked, seeded one.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
                window = RandomResizedCrop.get_params(rgb[0], list(aug.crop_scale), list(aug.crop_ratio))
        flip = aug.flip and bool(torch.rand((), generator=generator) < 0.5)
        return window, flip

    def _lab_stack(self, rgb: torch.Tensor) -> torch.Tensor:
        """``(1, 3, h, w)`` colour -> ``(1, 3, h, w)``: normalised grey lightness, target ab / 110."""
        l_grey = normalize_l(lightness(rgb_to_grey(rgb)))
        return torch.cat([l_grey, normalize_ab(rgb_to_lab(rgb)[:, 1:])], dim=1)

    def _is_colour(self, target: torch.Tensor) -> bool:
        return bool(ab_range(target * AB_SCALE)[0] >= self.ab_threshold)

    def _hint_planes(
        self, image_size: tuple[int, int], target: torch.Tensor, boxes: np.ndarray, generator: torch.Generator
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Random hints of an image of ``(width, height)`` whose ab / 110 on the network grid is
        ``target`` ``(2, S, S)``: its planes and those of the crops of ``boxes`` (:func:`grid_hints`)."""
        hints = draw_training_hints(target, image_size, generator, no_hint_share=self.no_hint_share)
        return grid_hints(hints, image_size, boxes, self.size)

    def _single(self, rgb: torch.Tensor, generator: torch.Generator) -> Sample:
        full = prepare(self._lab_stack(rgb), None, self.size).full
        planes = None
        if self.hints:
            no_boxes = np.zeros((0, 4), np.int64)
            planes, _ = self._hint_planes((rgb.shape[-1], rgb.shape[-2]), full[0, 1:], no_boxes, generator)
        return Sample(
            input=hinted_input(full[:, :1], planes)[0], target=full[0, 1:], valid=self._is_colour(full[:, 1:])
        )

    def _fusion(
        self, rgb: torch.Tensor, boxes: np.ndarray, generator: torch.Generator, masks: np.ndarray | None = None
    ) -> tuple[Sample, np.ndarray]:
        """The fusion sample and the indices (into ``boxes``) of the boxes it kept."""
        window, flip = self._draw(rgb, generator)
        kept, index = transform_boxes(boxes, window, flip, self.augmentation.min_box_visible, with_index=True)
        if len(kept) == 0:  # the crop lost every box: keep the whole image, and the flip
            window = (0, 0, rgb.shape[-2], rgb.shape[-1])
            kept, index = transform_boxes(boxes, window, flip, 0.0, with_index=True)
        top, left, height, width = window
        rgb = rgb[..., top : top + height, left : left + width]
        rgb = rgb.flip(-1) if flip else rgb
        if masks is not None:
            masks = masks[index][:, top : top + height, left : left + width]
            masks = np.ascontiguousarray(masks[:, :, ::-1] if flip else masks)
            if not all(m[int(y1) : max(int(y2), int(y1) + 1), int(x1) : max(int(x2), int(x1) + 1)].any()
                       for m, (x1, y1, x2, y2) in zip(masks, kept)):  # fmt: skip
                masks = None  # a silhouette left its box in this crop: train on the boxes
        prepared = prepare(self._lab_stack(rgb), kept, self.size, masks=masks)
        full_hints = crop_hints = None
        if self.hints:
            full_hints, crop_hints = self._hint_planes((width, height), prepared.full[0, 1:], prepared.boxes, generator)
        sample = Sample(
            input=hinted_input(prepared.full[:, :1], full_hints)[0],
            target=prepared.full[0, 1:],
            valid=self._is_colour(prepared.full[:, 1:]),
            crops=hinted_input(prepared.crops[:, :1], crop_hints),
            box_info=prepared.box_info,
            boxes=prepared.boxes,
            crop_masks=prepared.crop_masks,
        )
        return sample, index


def _box_region(box: np.ndarray, image_hw: Sequence[int]) -> tuple[int, int, int, int]:
    """Integer crop region of a box, at least one pixel, inside the image."""
    height, width = int(image_hw[0]), int(image_hw[1])
    return tuple(int(v) for v in sanitize_boxes(np.asarray(box)[None], (width, height))[0])


def transform_boxes(
    boxes: np.ndarray, window: tuple[int, int, int, int], flip: bool, min_visible: float, with_index: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Move boxes into a crop window ``(top, left, height, width)`` and mirror them when flipped.

    Boxes are clipped to the window; a box keeps when the visible part has at least
    ``min_visible`` of its area (and is not empty). Returns ``(M, 4)`` float32, M <= N (and, with
    ``with_index``, the indices of the kept boxes).
    """
    top, left, height, width = window
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    moved = boxes - np.array([left, top, left, top], np.float64)
    moved[:, 0::2] = np.clip(moved[:, 0::2], 0, width)
    moved[:, 1::2] = np.clip(moved[:, 1::2], 0, height)
    visible = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    keep = (visible > 0) & (visible >= min_visible * area)
    moved = moved[keep]
    if flip:
        moved[:, [0, 2]] = width - moved[:, [2, 0]]
    return (moved.astype(np.float32), np.flatnonzero(keep)) if with_index else moved.astype(np.float32)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for steps ``start_step .. stop_step - 1``, this process's share of each global batch.

    Epoch ``e`` is a permutation of the items drawn from ``(seed, e)``; step ``s`` of it takes the
    ``global_batch`` items at positions ``[k * G, (k + 1) * G)`` with ``k = s mod steps_per_epoch``,
    and process ``rank`` gets the ``rank``-th of ``world_size`` equal slices. An incomplete last
    batch of an epoch is dropped. Each element is an ``(epoch, index)`` key of
    :class:`ColorizationDataset`.
    """

    def __init__(
        self,
        num_items: int,
        global_batch: int,
        seed: int = 0,
        start_step: int = 0,
        stop_step: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by the {world_size} processes")
        self.steps_per_epoch = num_items // global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"{num_items} training samples are fewer than one batch of {global_batch}")
        self.num_items = num_items
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.seed = seed
        self.start_step = start_step
        self.stop_step = stop_step
        self.rank = rank

    def epoch_order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return torch.randperm(self.num_items, generator=generator).tolist()

    def batch(self, step: int, order: list[int] | None = None) -> list[tuple[int, int]]:
        epoch, k = divmod(step, self.steps_per_epoch)
        order = order if order is not None else self.epoch_order(epoch)
        first = k * self.global_batch + self.rank * self.local_batch
        return [(epoch, i) for i in order[first : first + self.local_batch]]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        cached: tuple[int, list[int]] | None = None
        step = self.start_step
        while self.stop_step is None or step < self.stop_step:
            epoch = step // self.steps_per_epoch
            if cached is None or cached[0] != epoch:
                cached = (epoch, self.epoch_order(epoch))
            yield self.batch(step, cached[1])
            step += 1

    def __len__(self) -> int:
        if self.stop_step is None:
            raise TypeError("an endless sampler has no length")
        return max(0, self.stop_step - self.start_step)
