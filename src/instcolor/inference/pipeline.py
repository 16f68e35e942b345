"""The end-to-end colorizer: image in, full-resolution colour image out.

    >>> from instcolor import Colorizer
    >>> colorizer = Colorizer.from_pretrained("paper-coco")        # doctest: +SKIP
    >>> result = colorizer("grandma.jpg")                           # doctest: +SKIP
    >>> result.image.save("grandma-colour.png")                     # doctest: +SKIP

Steps: decode (EXIF, any mode) -> Lab L at full resolution -> detect boxes on the grey image
(unless given) -> 256x256 full image and box crops -> instance net on all crops in one batch ->
fusion -> ab upsampled bilinearly to full resolution -> joined with the original L -> sRGB clipped
to gamut; alpha carried over. With no box the full-image network runs alone.

Speed (see :mod:`instcolor.inference`): by default the networks run the float32 fast path (streamed
fusion on CPU, batched on CUDA; channels-last) and full-resolution colour work runs in row bands; ``precision="bf16"``,
``"fp16"``, ``"int8"`` or ``"auto"`` and ``compile=True`` go further. ``fast=False`` is the plain
eager float32 path, kept as the baseline every fast path is measured and tested against.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from instcolor.color import denormalize_ab, join_lab, lightness, normalize_l
from instcolor.color.hint_spread import shift_instances, spread_hints
from instcolor.color.hints import Hints, instance_hints, instance_regions, parse_hints
from instcolor.color.compose import grey_levels, image_lightness, lab_to_image, lab_to_rgb16
from instcolor.devices import resolve_device
from instcolor.inference.preprocess import prepare
from instcolor.inference.runtime import EAGER_FP32, RuntimeOptions, prepare_model
from instcolor.geometry import sanitize_boxes
from instcolor.inference.timing import StageTimer
from instcolor.instances import DEFAULT_MAX_INSTANCES, Instances, check_boxes
from instcolor.io import DecodedImage, decode_image, to_pil
from instcolor.models.model import InstColorModel
from instcolor.models.weights.registry import resolve_weights_path
from instcolor.models.weights.store import load_weights

MODES = ("fusion", "full")
#: ``colour_input=`` choices for an input that already has colour: colorize its lightness (``grey``),
#: keep its own chroma where it has some (``keep-chroma``), or refuse it (``skip``).
COLOUR_INPUT_CHOICES = ("grey", "keep-chroma", "skip")


#: The warning :class:`Colorizer` gives once when hints go into networks trained without them.
HINTS_IGNORED = (
    "these weights were not trained with colour hints: hints given to the networks (--hint-mode network or both) "
    "have little effect and can make the colours worse (train with `instcolor train --hints`)"
)

#: ``hint_mode=`` choices for point hints: spread over the result edge-aware
#: (:func:`instcolor.color.hint_spread.spread_hints`), fed to the networks' hint inputs, or both.
HINT_MODES = ("propagate", "network", "both")


class InputSkipped(ValueError):
    """An input left alone on purpose (``colour_input="skip"`` and the input has colour)."""


#: ``masks=`` choices: use instance masks where there are any (given, or from the detector), or boxes only.
MASK_CHOICES = ("auto", "none")

#: ``class_aware=`` choices: feed instance labels to class-aware weights, or give every instance the unknown class.
CLASS_AWARE_CHOICES = ("auto", "off")


@dataclass
class ColorizeResult:
    """What :class:`Colorizer` returns for one image.

    Attributes:
        image: the colour image at the input's full resolution (RGB, or RGBA when the input had alpha).
        ab: ``(2, H, W)`` float32 predicted Lab a*, b* at full resolution.
        instances: the instances used (detected or given), boxes in original pixels.
        mode: the network path that ran: ``"fusion"`` or ``"full"`` (no box, or asked for).
        detector: the detector's name, or None when boxes were given or detection was off.
        timings: seconds per stage (``decode``, ``detect``, ``networks``, ``upsample_convert``)
            when the colorizer has a :attr:`Colorizer.timer`, else empty.
        notes: one line each for what the user should know: given boxes dropped, clipped or left
            out by the instance cap, an input that already had colour.
        image16: for a 16-bit input (without alpha), the same colour image as ``(H, W, 3)`` uint16
            sRGB (``image`` is it rounded to 8 bits); None otherwise. Folder runs write it to PNG
            and TIFF outputs (:func:`instcolor.io.save_image`).
    """

    image: Image.Image
    ab: np.ndarray
    instances: Instances = field(default_factory=Instances)
    mode: str = "full"
    detector: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    image16: np.ndarray | None = None

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


class Colorizer:
    """Instance-aware colorizer around an :class:`InstColorModel` and an optional detector.

    Args:
        model: the three networks (moved to ``device`` and converted in place: pass a copy to keep
            the original as it is).
        detector: callable ``(grey HxWx3 uint8) -> Instances`` with a ``name``; None disables
            detection (then only given boxes are used).
        device: where the networks run.
        size: network input side; default: the side the weights were trained for (256 for the paper's).
        metadata: the weights file's metadata, kept for provenance.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` (CUDA), ``"int8"`` (CPU) or ``"auto"``
            (measured once per machine and cached, see :func:`instcolor.inference.choose_precision`).
        channels_last: NHWC memory format in the networks.
        compile: :func:`torch.compile` the network blocks (first images are slow while it compiles).
        fusion: ``"auto"`` (``"batched"`` on CUDA, ``"streamed"`` on CPU) or a strategy of
            :meth:`InstColorModel.set_fusion_strategy`.
        cuda_graphs: replay the networks as CUDA graphs, one per instance count (CUDA only).
        backend: ``"torch"``, ``"onnxruntime"`` (the exported graphs, fp32 or int8; see
            :mod:`instcolor.inference.backends`) or ``"auto"`` (the faster here, measured once and cached).
        fast: False runs the plain eager float32 path (reference fusion, whole-image colour
            conversion); then ``precision`` must be fp32 and the other speed options are ignored.
        fusion_rule: ``"reference"`` or ``"confined"`` (see :class:`instcolor.models.config.ModelConfig`)
            instead of the rule the weights were trained with (None).
        masks: ``"auto"``: confine each instance to its mask where it has one (given with the
            instances, or from the detector), else, for people, to the silhouette the
            ``segmenter`` finds, and to its box elsewhere; ``"none"``: boxes only. Masks act
            under the ``"confined"`` fusion rule only.
        segmenter: person segmenter for ``masks="auto"`` (a
            :class:`instcolor.detection.person_masks.PersonSegmenter`), or None.
        max_instances: most instances used per image, given ones included (highest score, then
            largest; 0: no cap): memory grows with the instance count.
        colour_input: what to do with an input that already has colour: ``"grey"`` (colorize its
            lightness, with a note), ``"keep-chroma"`` (keep its own colour where it has some) or
            ``"skip"`` (raise :class:`InputSkipped`).
        class_aware: ``"auto"``: class-aware weights (:attr:`ModelConfig.num_classes`) get each
            instance's label (detected or given; COCO names, see
            :func:`instcolor.detection.coco.coco_class_ids`); ``"off"``: every instance is of
            unknown class. Class-blind weights run the same either way.
        hint_mode: what point hints do: ``"propagate"`` (the default): each hint's colour is spread
            over the result without hints, edge-aware, with any weights
            (:func:`instcolor.color.hint_spread.spread_hints`); ``"network"``: they go into the
            networks' hint inputs (weights trained with ``--hints``); ``"both"``. Under
            ``"propagate"`` an instance colour shifts the instance's silhouette (or, for an
            instance known by its box only, the object a random walk finds in the box) to that mean
            colour (:func:`instcolor.color.hint_spread.shift_instances`); under the other two it goes into the instance's crop
            as hints. :class:`Hints` given with an owning instance (``instance >= 0``) always go to
            that instance's crop.

    Attributes:
        timer: set a :class:`instcolor.inference.StageTimer` to get per-stage seconds in each result.
        precision: the precision in use (``"auto"`` resolved).
    """

    def __init__(
        self,
        model: InstColorModel,
        detector=None,
        device: str | torch.device = "cpu",
        size: int | None = None,
        metadata: dict[str, str] | None = None,
        *,
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool = False,
        fusion: str = "auto",
        cuda_graphs: bool = False,
        fast: bool = True,
        fusion_rule: str | None = None,
        masks: str = "auto",
        segmenter=None,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        colour_input: str = "grey",
        backend: str = "torch",
        class_aware: str = "auto",
        hint_mode: str = "propagate",
    ) -> None:
        if colour_input not in COLOUR_INPUT_CHOICES:
            raise ValueError(f"colour_input must be one of {COLOUR_INPUT_CHOICES}, got {colour_input!r}")
        if class_aware not in CLASS_AWARE_CHOICES:
            raise ValueError(f"class_aware must be one of {CLASS_AWARE_CHOICES}, got {class_aware!r}")
        if hint_mode not in HINT_MODES:
            raise ValueError(f"hint_mode must be one of {HINT_MODES}, got {hint_mode!r}")
        self.class_aware = class_aware
        self.hint_mode = hint_mode
        self.max_instances = max_instances
        self.colour_input = colour_input
        if masks not in MASK_CHOICES:
            raise ValueError(f"masks must be one of {MASK_CHOICES}, got {masks!r}")
        if fusion_rule is not None:
            model.set_fusion_rule(fusion_rule)
        self.masks = masks
        self.segmenter = segmenter
        self.device = resolve_device(device)
        self.detector = detector
        self.size = size or model.config.input_size
        self.metadata = dict(metadata or {})
        self.fast = fast
        self.timer: StageTimer | None = None
        if not fast:
            if precision != "fp32" or compile:
                raise ValueError("the plain eager path (fast=False) runs float32 without compile")
            options = EAGER_FP32
        else:
            if precision == "auto":
                from instcolor.inference.precision import choose_precision

                allowed = ("fp32", "int8") if backend == "onnxruntime" else None  # what ONNX Runtime runs
                precision = choose_precision(model.to(self.device).eval(), self.device, self.size, allowed=allowed)
            options = RuntimeOptions(
                precision=precision, channels_last=channels_last, fusion=fusion, compile=compile,
                cuda_graphs=cuda_graphs,
            )  # fmt: skip
        if backend == "torch":
            self._runtime = prepare_model(model, self.device, options, self.size)
        elif not fast:
            raise ValueError("the plain eager path (fast=False) runs on the torch backend")
        else:
            from instcolor.inference.backends import backend_runtime

            self._runtime = backend_runtime(model, self.device, options, self.size, backend)
        self.backend = getattr(self._runtime, "backend", "torch")
        self.model = self._runtime.model
        self.options = options  # how the networks run
        self.precision = options.precision
        self._warned_hints = False

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device = "auto",
        detector: str | None = "auto",
        *,
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool = False,
        fast: bool = True,
        fusion_rule: str | None = None,
        masks: str = "auto",
        colour_input: str = "grey",
        fallback: bool | None = None,
        backend: str = "torch",
        class_aware: str = "auto",
        hint_mode: str = "propagate",
        **detector_options,
    ) -> Colorizer:
        """Load installed weights by name (``paper-coco``, ``starter``...) or from a file.

        Args:
            detector: ``"auto"``, ``"maskrcnn"``, ``"centernet"`` or ``None``/``"none"``.
            precision, channels_last, compile, fast, fusion_rule, masks: see :class:`Colorizer`.
            colour_input, class_aware, hint_mode: see :class:`Colorizer`.
            fallback: when ``name_or_path`` is ``"paper-coco"`` and it is not installed, download it
                (unless offline) and else use the bundled ``starter`` weights with a warning, as the
                command line does. None: only for ``"paper-coco"``; False: never.
            detector_options: passed to :func:`instcolor.detection.load_detector`
                (``score_threshold``, ``max_instances``, ``classes``).
        """
        device = resolve_device(device)
        loaded = load_weights(_weights_path(name_or_path, fallback))
        det = None
        if detector not in (None, "none"):
            from instcolor.detection import load_detector

            det = load_detector(detector, device=str(device), **detector_options)
        rule = fusion_rule or loaded.model.config.fusion_rule
        segmenter = None
        if masks == "auto" and rule == "confined":
            from instcolor.detection.person_masks import PersonSegmenter

            segmenter = PersonSegmenter(device=device)
        return cls(
            loaded.model, detector=det, device=device, metadata=loaded.metadata,
            precision=precision, channels_last=channels_last, compile=compile, fast=fast,
            fusion_rule=fusion_rule, masks=masks, segmenter=segmenter, colour_input=colour_input,
            max_instances=detector_options.get("max_instances", DEFAULT_MAX_INSTANCES),
            backend=backend, class_aware=class_aware, hint_mode=hint_mode,
        )  # fmt: skip

    def detect(self, decoded: DecodedImage, l_full_res: torch.Tensor | None = None) -> Instances:
        """Run the detector on the grey version of the image (L replicated), as the paper does.

        Args:
            decoded: the image.
            l_full_res: its lightness ``(1, 1, H, W)`` when already computed (spares computing it again).
        """
        if self.detector is None:
            return Instances()
        from instcolor.detection.base import detection_image, grey_image

        return self.detector(detection_image(decoded) if l_full_res is None else grey_image(grey_levels(l_full_res)))

    @property
    def uses_classes(self) -> bool:
        """Whether instance labels change the result (class-aware weights and ``class_aware="auto"``)."""
        return self.class_aware == "auto" and self.model.config.class_aware

    def crop_classes(self, labels: Sequence[str] | None, count: int) -> torch.Tensor | None:
        """``(count,)`` int64 class ids for the instances' labels: all unknown under
        ``class_aware="off"`` or without labels; None for class-blind weights."""
        if not self.model.config.class_aware:
            return None
        if not self.uses_classes or labels is None:
            labels = [""] * count
        if len(labels) != count:
            raise ValueError(f"{count} boxes but {len(labels)} labels")
        from instcolor.detection.coco import coco_class_ids

        return torch.from_numpy(coco_class_ids(labels, self.model.config.num_classes)).to(self.device)

    @property
    def uses_masks(self) -> bool:
        """Whether instance masks change the result (``masks="auto"`` and the confined fusion rule)."""
        return self.masks == "auto" and self.model.config.fusion_rule == "confined"

    def _stage(self, name: str):
        return self.timer.stage(name) if self.timer is not None else contextlib.nullcontext()

    @torch.inference_mode()
    def predict_ab(
        self,
        l_full_res: torch.Tensor,
        boxes: np.ndarray | None,
        mode: str = "fusion",
        masks: np.ndarray | None = None,
        hints: Hints | None = None,
        labels: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, str]:
        """Predict ab at full resolution.

        Args:
            l_full_res: ``(1, 1, H, W)`` Lab lightness in ``[0, 100]``.
            boxes: ``(N, 4)`` boxes in original pixels, or None.
            mode: ``"fusion"`` (instance-aware; the full-image net when there is no box) or ``"full"``.
            masks: ``(N, H, W)`` instance masks (used under the ``"confined"`` fusion rule), or None.
            hints: colour hints in original pixels (instance indices = rows of ``boxes``), or None.
            labels: N instance labels (COCO names, ``""`` unknown) for class-aware weights, or None
                (all unknown).

        Returns:
            ``((1, 2, H, W)`` float32 ab in Lab units, the mode that ran).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        runtime = self._runtime
        with self._stage("upsample_convert"):
            l_full_res = l_full_res.to(self.device, torch.float32)
            placements_device = "cpu" if self.fast else None  # the fast path reads them without device syncs
            if mode != "fusion" or not self.uses_masks:
                masks = None
            boxes = boxes if mode == "fusion" else None
            inputs = prepare(normalize_l(l_full_res), boxes, self.size, placements_device, masks=masks, hints=hints)
            full_input = runtime.network_inputs(inputs.full, inputs.full_hints)
            crops = runtime.network_inputs(inputs.crops, inputs.crop_hints) if len(inputs.crops) else None
            box_info = inputs.box_info
            classes = self.crop_classes(labels, len(inputs.crops)) if crops is not None else None
        with self._stage("networks"), runtime.context():
            if crops is None:
                ab_small, ran = runtime.run_full(full_input), "full"
            else:
                ab_small = runtime.run_fusion(full_input, crops, box_info, inputs.crop_masks, classes)
                ran = "fusion"
        with self._stage("upsample_convert"):
            ab = F.interpolate(ab_small.float(), size=l_full_res.shape[-2:], mode="bilinear", align_corners=False)
        return denormalize_ab(ab), ran

    def __call__(
        self,
        image: str | os.PathLike | Image.Image | np.ndarray | DecodedImage,
        instances: Instances | None = None,
        *,
        boxes: np.ndarray | list | None = None,
        masks: np.ndarray | None = None,
        mode: str = "fusion",
        hints: list[dict] | Hints | None = None,
    ) -> ColorizeResult:
        """Colorize one image.

        Args:
            image: a path, PIL image, ``HxW`` / ``HxWx3`` / ``HxWx4`` uint8 (or uint16) array, or an
                already decoded image (:func:`instcolor.io.decode_image`, e.g. from a reader thread).
            instances: instances to use instead of the detector (``Instances()`` means none); an
                instance with a ``colour`` (:attr:`Instances.colours`) is pushed to that colour, and
                nothing outside the instance (its mask, else its box with a feathered border) moves:
                see :attr:`hint_mode`; for ``"network"`` and ``"both"`` hints tile it in its crop only
                (:func:`instcolor.color.hints.instance_hints`), and outside it the result is the one
                without them (a second network run).
            boxes: shorthand for ``Instances(boxes=boxes, masks=masks)``; overrides the detector.
            mode: ``"fusion"`` or ``"full"`` (the full-image network alone).
            hints: colour hints ``[{"xy": [x, y], "colour": "#rrggbb" or [r, g, b]}, ...]`` in
                image pixels (:func:`instcolor.color.hints.parse_hints`). By :attr:`hint_mode`,
                spread over the result edge-aware, and/or given to the full-image input and to
                every crop that contains them (weights trained without hints,
                :attr:`ModelConfig.hints`, hardly follow them there: a warning says so, once).

        Raises:
            ValueError: bad hints (a point outside the image, a bad colour, wrong types).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self.timer is not None:
            self.timer.reset()
        with self._stage("decode"):
            decoded = image if isinstance(image, DecodedImage) else decode_image(image)
        user_hints = parse_hints(hints, decoded.size, self.size) if hints is not None and len(hints) else None
        with self._stage("upsample_convert"):
            if self.fast:  # from the decoded samples by tables: no float copy of the image
                l_full_res = image_lightness(decoded).to(self.device)
            else:
                l_full_res = lightness(torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None].to(self.device))
        notes: list[str] = []
        own_colour = None  # (ab, where the input has colour) under colour_input="keep-chroma"
        if not decoded.is_grey:
            from instcolor.color.compose import has_colour, input_ab

            if has_colour(decoded):
                if self.colour_input == "skip":
                    raise InputSkipped("already has colour; skipped (--colour-input skip)")
                if self.colour_input == "keep-chroma":
                    own_colour = input_ab(decoded)
                    notes.append("already has colour: kept its own colour where it has some (--colour-input keep-chroma)")
                else:
                    notes.append(
                        "already has colour: its colours were replaced, only its lightness was colorized "
                        "(--colour-input skip or keep-chroma to keep them)"
                    )
        detector_name = None
        if instances is None and boxes is not None:
            instances = Instances(boxes=np.asarray(boxes, np.float64).reshape(-1, 4), masks=masks)
        if instances is not None and len(instances):
            instances, box_notes = checked_instances(instances, decoded.size, self.max_instances)
            notes += box_notes
        if instances is None:
            with self._stage("detect"):
                instances = self.detect(decoded, l_full_res if self.fast else None) if mode == "fusion" else Instances()
            detector_name = getattr(self.detector, "name", None)
        if (
            mode == "fusion" and len(instances) and instances.masks is None and self.uses_masks
            and self.segmenter is not None and any(label == "person" for label in instances.labels)
        ):  # fmt: skip
            from instcolor.detection.person_masks import with_person_masks

            with self._stage("detect"):
                instances = with_person_masks(instances, grey_levels(l_full_res), self.segmenter)
        alpha = decoded.alpha
        sixteen = decoded.pixels.dtype == np.uint16 and alpha is None  # kept as 16-bit RGB (PNG/TIFF)
        del decoded  # only L and alpha are needed from here
        has_boxes = len(instances) > 0
        spread, network_user_hints = self._route_hints(user_hints)
        shifted = self.hint_mode == "propagate" and mode == "fusion" and has_boxes and instances.colours is not None
        all_hints = self._hints(
            network_user_hints, instances if mode == "fusion" and not shifted else Instances(), l_full_res.shape[-2:]
        )
        if instances.colours is not None and mode != "fusion":
            notes.append("instance colours act on the instances' crops: ignored in --mode full")
        boxes = instances.boxes if has_boxes else None
        labels = instances.labels
        ab, ran = self.predict_ab(l_full_res, boxes, mode, instances.masks, hints=all_hints, labels=labels)
        if ran == "fusion" and all_hints is not None and (all_hints.instance >= 0).any():
            ab = self._confine_instance_hints(ab, l_full_res, boxes, instances.masks, all_hints, labels, spread)
        elif spread is not None:
            with self._stage("upsample_convert"):
                ab = spread_hints(l_full_res, ab, spread)
        if shifted:  # inside a coloured instance its colour wins over point hints
            sanitized = sanitize_boxes(instances.boxes, (l_full_res.shape[-1], l_full_res.shape[-2]))
            feather = self.model.config.support_feather
            ab = shift_instances(l_full_res, ab, sanitized, instances.colours, instances.masks, feather)
        if own_colour is not None:
            own_ab, coloured = own_colour
            ab = torch.where(coloured.to(ab.device), own_ab.to(ab.device), ab)
        image16 = None
        with self._stage("upsample_convert"):
            if self.fast:
                colour = lab_to_image(l_full_res, ab, alpha)
                if sixteen:
                    image16 = lab_to_rgb16(l_full_res, ab)
            else:
                rgb = join_lab(l_full_res, ab)[0].permute(1, 2, 0).cpu().numpy()
                colour = to_pil(rgb, alpha)
                if sixteen:
                    image16 = np.clip(np.round(rgb * 65535.0), 0, 65535).astype(np.uint16)
            ab_array = ab[0].cpu().numpy()
        return ColorizeResult(
            image=colour,
            image16=image16,
            ab=ab_array,
            instances=instances,
            mode=ran,
            detector=detector_name,
            timings=dict(self.timer.seconds) if self.timer is not None else {},
            notes=notes,
        )


    def _confine_instance_hints(
        self, ab: torch.Tensor, l_full_res: torch.Tensor, boxes: np.ndarray, masks: np.ndarray | None, hints: Hints,
        labels: Sequence[str] | None = None, spread: Hints | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Keep the effect of instance-owned hints inside their instances: ``ab`` outside them is
        replaced by the result without those hints (a second network run), joined by
        :func:`instcolor.color.hints.instance_regions`. Hints to ``spread`` are spread over both
        results before they are joined, so that outside the instances all stays as without them."""
        shared = hints.select(hints.instance < 0)
        without, _ = self.predict_ab(
            l_full_res, boxes, "fusion", masks, hints=shared if len(shared) else None, labels=labels
        )
        if spread is not None:
            without, ab = (spread_hints(l_full_res, result, spread) for result in (without, ab))
        height, width = l_full_res.shape[-2:]
        sanitized = sanitize_boxes(boxes, (width, height))
        owners = hints.instance[hints.instance >= 0]
        weight = instance_regions(sanitized, owners, (height, width), masks, self.model.config.support_feather)
        return torch.lerp(without, ab, weight.to(ab.device))

    def _route_hints(self, user_hints: Hints | None) -> tuple[Hints | None, Hints | None]:
        """``(hints spread over the result, hints for the networks)`` by :attr:`hint_mode`: image-wide
        hints follow the mode, hints owned by an instance always go to the networks."""
        if user_hints is None or self.hint_mode == "network":
            return None, user_hints
        image_wide = user_hints.select(user_hints.instance < 0)
        spread = image_wide if len(image_wide) else None
        if self.hint_mode == "both":
            return spread, user_hints
        owned = user_hints.select(user_hints.instance >= 0)
        return spread, owned if len(owned) else None

    def _hints(self, user_hints: Hints | None, instances: Instances, image_hw) -> Hints | None:
        """Hints for the networks: ``user_hints`` plus the instances' colours; warns once when the
        weights were not trained with hints."""
        found = user_hints
        if instances.colours is not None and len(instances):
            height, width = int(image_hw[0]), int(image_hw[1])
            boxes = sanitize_boxes(instances.boxes, (width, height))
            own = instance_hints(boxes, instances.colours, self.size, instances.masks)
            found = own if found is None else found + own
        if found is not None and len(found) and not self.model.config.hints and not self._warned_hints:
            import warnings

            warnings.warn(HINTS_IGNORED, UserWarning, stacklevel=3)
            self._warned_hints = True
        return found


def checked_instances(
    instances: Instances, image_size: tuple[int, int], max_instances: int
) -> tuple[Instances, list[str]]:
    """Given instances with bad boxes dropped, the rest clipped to the image and capped (notes say what changed)."""
    keep, notes, boxes = check_boxes(instances.boxes, instances.scores, image_size, max_instances)
    if not notes:
        return instances, notes
    kept = instances.select(keep)
    return replace(kept, boxes=boxes[keep]), notes


def _weights_path(name_or_path: str | os.PathLike, fallback: bool | None):
    """The weights file for ``from_pretrained``: with ``fallback``, ``paper-coco`` falls back like the CLI."""
    from instcolor.models.weights.registry import PREFERRED

    if fallback is None:
        fallback = os.fspath(name_or_path) == PREFERRED
    if fallback and os.fspath(name_or_path) == PREFERRED and not Path(name_or_path).is_file():
        import warnings

        from instcolor.models.weights.download import default_weights

        path, message = default_weights()
        if message:
            warnings.warn(message, UserWarning, stacklevel=3)
        return path
    return resolve_weights_path(name_or_path)
