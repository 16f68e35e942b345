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
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from instcolor.color import denormalize_ab, join_lab, lightness, normalize_l
from instcolor.color.compose import grey_levels, image_lightness, lab_to_image
from instcolor.devices import resolve_device
from instcolor.inference.preprocess import prepare
from instcolor.inference.runtime import EAGER_FP32, RuntimeOptions, prepare_model
from instcolor.inference.timing import StageTimer
from instcolor.instances import Instances
from instcolor.io import DecodedImage, decode_image, to_pil
from instcolor.models.model import InstColorModel
from instcolor.models.weights.registry import resolve_weights_path
from instcolor.models.weights.store import load_weights

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
        timings: seconds per stage (``decode``, ``detect``, ``networks``, ``upsample_convert``)
            when the colorizer has a :attr:`Colorizer.timer`, else empty.
    """

    image: Image.Image
    ab: np.ndarray
    instances: Instances = field(default_factory=Instances)
    mode: str = "full"
    detector: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

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
        backend: str = "torch",
    ) -> None:
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
        self.precision = options.precision

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
        backend: str = "torch",
        **detector_options,
    ) -> Colorizer:
        """Load installed weights by name (``paper-coco``, ``starter``...) or from a file.

        Args:
            detector: ``"auto"``, ``"maskrcnn"``, ``"centernet"`` or ``None``/``"none"``.
            precision, channels_last, compile, fast: see :class:`Colorizer`.
            detector_options: passed to :func:`instcolor.detection.load_detector`
                (``score_threshold``, ``max_instances``, ``classes``).
        """
        device = resolve_device(device)
        loaded = load_weights(resolve_weights_path(name_or_path))
        det = None
        if detector not in (None, "none"):
            from instcolor.detection import load_detector

            det = load_detector(detector, device=str(device), **detector_options)
        return cls(
            loaded.model, detector=det, device=device, metadata=loaded.metadata,
            precision=precision, channels_last=channels_last, compile=compile, fast=fast, backend=backend,
        )  # fmt: skip

    def detect(self, decoded: DecodedImage, l_full: torch.Tensor | None = None) -> Instances:
        """Run the detector on the grey version of the image (L replicated), as the paper does.

        Args:
            decoded: the image.
            l_full: its lightness ``(1, 1, H, W)`` when already computed (spares computing it again).
        """
        if self.detector is None:
            return Instances()
        from instcolor.detection.base import detection_image, grey_image

        return self.detector(detection_image(decoded) if l_full is None else grey_image(grey_levels(l_full)))

    def _stage(self, name: str):
        return self.timer.stage(name) if self.timer is not None else contextlib.nullcontext()

    @torch.inference_mode()
    def predict_ab(
        self, l_full: torch.Tensor, boxes: np.ndarray | None, mode: str = "fusion"
    ) -> tuple[torch.Tensor, str]:
        """Predict ab at full resolution.

        Args:
            l_full: ``(1, 1, H, W)`` Lab lightness in ``[0, 100]``.
            boxes: ``(N, 4)`` boxes in original pixels, or None.
            mode: ``"fusion"`` (instance-aware; the full-image net when there is no box) or ``"full"``.

        Returns:
            ``((1, 2, H, W)`` float32 ab in Lab units, the mode that ran).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        runtime = self._runtime
        with self._stage("upsample_convert"):
            l_full = l_full.to(self.device, torch.float32)
            placements_device = "cpu" if self.fast else None  # the fast path reads them without device syncs
            inputs = prepare(normalize_l(l_full), boxes if mode == "fusion" else None, self.size, placements_device)
            full_input = runtime.network_inputs(inputs.full)
            crops = runtime.network_inputs(inputs.crops) if len(inputs.crops) else None
            box_info = inputs.box_info
        with self._stage("networks"), runtime.context():
            if crops is None:
                ab_small, ran = runtime.run_full(full_input), "full"
            else:
                ab_small, ran = runtime.run_fusion(full_input, crops, box_info), "fusion"
        with self._stage("upsample_convert"):
            ab = F.interpolate(ab_small.float(), size=l_full.shape[-2:], mode="bilinear", align_corners=False)
        return denormalize_ab(ab), ran

    def __call__(
        self,
        image: str | os.PathLike | Image.Image | np.ndarray | DecodedImage,
        instances: Instances | None = None,
        *,
        boxes: np.ndarray | list | None = None,
        masks: np.ndarray | None = None,
        mode: str = "fusion",
    ) -> ColorizeResult:
        """Colorize one image.

        Args:
            image: a path, PIL image, ``HxW`` / ``HxWx3`` / ``HxWx4`` uint8 (or uint16) array, or an
                already decoded image (:func:`instcolor.io.decode_image`, e.g. from a reader thread).
            instances: instances to use instead of the detector (``Instances()`` means none).
            boxes: shorthand for ``Instances(boxes=boxes, masks=masks)``; overrides the detector.
            mode: ``"fusion"`` or ``"full"`` (the full-image network alone).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self.timer is not None:
            self.timer.reset()
        with self._stage("decode"):
            decoded = image if isinstance(image, DecodedImage) else decode_image(image)
        with self._stage("upsample_convert"):
            if self.fast:  # from the decoded samples by tables: no float copy of the image
                l_full = image_lightness(decoded).to(self.device)
            else:
                l_full = lightness(torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None].to(self.device))
        detector_name = None
        if instances is None and boxes is not None:
            instances = Instances(boxes=np.asarray(boxes, np.float32).reshape(-1, 4), masks=masks)
        if instances is None:
            with self._stage("detect"):
                instances = self.detect(decoded, l_full if self.fast else None) if mode == "fusion" else Instances()
            detector_name = getattr(self.detector, "name", None)
        alpha = decoded.alpha
        del decoded  # only L and alpha are needed from here
        ab, ran = self.predict_ab(l_full, instances.boxes if len(instances) else None, mode)
        with self._stage("upsample_convert"):
            if self.fast:
                colour = lab_to_image(l_full, ab, alpha)
            else:
                colour = to_pil(join_lab(l_full, ab)[0].permute(1, 2, 0).cpu().numpy(), alpha)
            ab_array = ab[0].cpu().numpy()
        return ColorizeResult(
            image=colour,
            ab=ab_array,
            instances=instances,
            mode=ran,
            detector=detector_name,
            timings=dict(self.timer.seconds) if self.timer is not None else {},
        )
