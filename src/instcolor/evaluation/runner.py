"""The evaluation protocol: colour photo -> grey -> colorized by each method -> metrics.

For every colour photo (see :func:`evaluate`):

1. decode it (EXIF orientation applied) and round to 8 bits per channel: the ground truth. Photos
   that are grey already (one channel, or Lab ab range under 5, the training rule) are skipped;
2. at ``resolution=256`` (the paper's protocol) resize the ground truth to 256x256 with Pillow's
   bilinear filter, aspect not kept, and round to 8 bits; at full resolution keep it as is;
3. make the grey input exactly as training does (:func:`instcolor.color.rgb_to_grey`: BT.709 luma,
   rounded to 8 bits);
4. take the instances from the boxes file, or from the colorizer's detector run on the
   full-resolution grey photo, keep the ``max_instances`` best, and map the boxes onto the
   evaluation image;
5. colorize the grey image with each method: ``grey`` (ab = 0, i.e. the grey input itself), ``full``
   (the full-image network alone), ``fusion`` (instance-aware) and optionally ``compare`` (fusion
   with a second weights file); each result is 8-bit sRGB;
6. measure each result against the ground truth over the whole image and inside each box.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from instcolor.color import rgb_to_grey, rgb_to_lab
from instcolor.color.hints import POINT_SIDE
from instcolor.training.data import AB_RANGE_THRESHOLD
from instcolor.training.data import ab_range as _training_ab_range
from instcolor.evaluation.metrics import (
    LPIPS_MIN_SIDE,
    FrechetDistance,
    MetricUnavailable,
    cast_score,
    colourfulness,
    load_inception,
    load_lpips,
    psnr_many,
    seam_score,
    ssim_many,
)
from instcolor.evaluation.hints import hint_curve, hint_psnr, image_seed
from instcolor.evaluation.stats import Summary, bootstrap_mean, paired_differences
from instcolor.geometry import sanitize_boxes
from instcolor.instances import Instances, lookup_instances
from instcolor.io import decode_image

#: Method id -> description, in report order.
METHODS: dict[str, str] = {
    "grey": "grey input (ab = 0)",
    "full": "full-image network alone",
    "fusion": "instance-aware fusion",
    "compare": "instance-aware fusion, second weights",
}
GROUND_TRUTH = "ground_truth"
#: Per-image metrics, and whether higher is better (None: neither; reported for reference).
METRICS: dict[str, bool | None] = {
    "psnr": True, "ssim": True, "lpips": False, "colourfulness": None, "seam": None, "cast": False,
}  # fmt: skip
#: Metrics of the whole image only (they look at all boxes together): the seam score (closest to
#: the ground truth's is best) and the green-cast share inside person boxes.
IMAGE_ONLY_METRICS = frozenset({"seam", "cast"})
#: What the ground truth is measured with, for reference.
TRUTH_METRICS = ("colourfulness", "seam", "cast")
#: Images whose Lab ab range (range of a* plus range of b*) is under this are greyscale
#: originals: the training rule (:data:`instcolor.training.data.AB_RANGE_THRESHOLD`).
MIN_AB_RANGE = AB_RANGE_THRESHOLD


@dataclass
class EvaluationConfig:
    """Settings of one evaluation run (all written into the report's protocol).

    Attributes:
        resolution: side of the square evaluation image (256: the paper's), or None for full resolution.
        max_instances: most instances per image, highest scores first (the paper: 8).
        min_box_side: boxes with a side shorter than this (evaluation pixels) are left out of the
            instance-level metrics; at least 31 for LPIPS's AlexNet.
        lpips_weights, inception_weights: local torchvision state dicts for the backbones, or None
            to use ``$INSTCOLOR_ALEXNET_WEIGHTS`` / ``$INSTCOLOR_INCEPTION_WEIGHTS`` / the torch hub cache.
        download: allow downloading the backbones through torch hub; None: unless ``$INSTCOLOR_OFFLINE`` is set.
        lpips, fid: compute these (they need their backbones).
        bootstrap_resamples, seed: for the 95% intervals.
        preview_images: how many images the contact sheet shows.
        preview_height: row height of the contact sheet, pixels.
        hint_points: also measure PSNR with this many hint points drawn from the ground truth
            (:mod:`instcolor.evaluation.hints`), e.g. ``(0, 1, 2, 5, 10, 20)``; empty: not.
    """

    resolution: int | None = 256
    max_instances: int = 8
    min_box_side: int = 32
    lpips_weights: str | os.PathLike | None = None
    inception_weights: str | os.PathLike | None = None
    download: bool | None = None
    lpips: bool = True
    fid: bool = True
    bootstrap_resamples: int = 1000
    seed: int = 0
    preview_images: int = 16
    preview_height: int = 128
    hint_points: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.hint_points = tuple(sorted({int(n) for n in self.hint_points}))
        if self.hint_points and self.hint_points[0] < 0:
            raise ValueError(f"hint_points must be non-negative, got {self.hint_points}")
        if self.resolution is not None and (self.resolution < 16 or self.resolution % 8):
            raise ValueError(f"resolution must be a multiple of 8 of at least 16, got {self.resolution}")
        if self.download is None:
            from instcolor.models.weights.registry import offline

            self.download = not offline()
        if self.min_box_side < LPIPS_MIN_SIDE:
            raise ValueError(f"min_box_side must be at least {LPIPS_MIN_SIDE} (LPIPS's AlexNet), got {self.min_box_side}")


@dataclass
class Preview:
    """Small copies of one image's results for the contact sheet.

    Attributes:
        name: the image's name.
        images: ``{"input" | method | "ground_truth": (h, w, 3) uint8}``.
        boxes: ``(N, 4)`` boxes in preview pixels.
    """

    name: str
    images: dict[str, np.ndarray]
    boxes: np.ndarray


@dataclass
class ImageRecord:
    """Everything measured on one image.

    Attributes:
        name: path relative to the data root (or the file name).
        size: ``(width, height)`` of the original; eval_size: of the evaluated images.
        instances: per instance: ``box`` (original pixels), ``eval_box`` (evaluation pixels),
            ``label``, ``score``, ``used`` (large enough for the instance-level metrics).
        metrics: ``{method or "ground_truth": {"image": {metric: value}, "instances": [{metric: value}]}}``;
            instance lists hold the used instances only.
        modes: ``{method: network path that ran}`` ("full" for fusion when the image has no box).
        hint_psnr: ``{hint points: whole-image PSNR of the fusion result}`` (empty unless asked).
    """

    name: str
    size: tuple[int, int]
    eval_size: tuple[int, int]
    instances: list[dict]
    metrics: dict[str, dict]
    modes: dict[str, str]
    hint_psnr: dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = {
            "image": self.name,
            "size": list(self.size),
            "eval_size": list(self.eval_size),
            "instances": self.instances,
            "modes": self.modes,
            "metrics": json_safe(self.metrics),
        }
        if self.hint_psnr:
            data["hint_psnr"] = json_safe({str(n): v for n, v in self.hint_psnr.items()})
        return data


@dataclass
class EvaluationResult:
    """The outcome of :func:`evaluate`; :func:`instcolor.evaluation.report.write_report` writes it.

    Attributes:
        protocol: how everything was computed, for the report.
        methods: ``{method id: description}`` of the methods evaluated.
        images: one record per evaluated image.
        skipped: ``(name, reason)`` of colour-less photos left out on purpose.
        failed: ``(name, error)`` of inputs that could not be evaluated.
        unavailable: ``{metric: reason}`` for metrics that could not be computed.
        summary: ``{"image" | "instance": {method: {metric: Summary}}}``.
        fid: ``{method: Fréchet distance}`` over whole images (empty when unavailable).
        previews: contact-sheet material for the first images.
        hint_curve: ``{hint points: Summary of the whole-image PSNR}`` (empty unless asked).
        differences: ``{"image" | "instance": {"first-second": {metric: Summary}}}``: the paired
            differences of :data:`PAIRS` (:func:`instcolor.evaluation.stats.paired_differences`);
            fusion against full over the photos where fusion had instances only.
    """

    protocol: dict
    methods: dict[str, str]
    images: list[ImageRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    summary: dict[str, dict[str, dict[str, Summary]]] = field(default_factory=dict)
    fid: dict[str, float] = field(default_factory=dict)
    previews: list[Preview] = field(default_factory=list)
    hint_curve: dict[int, Summary] = field(default_factory=dict)
    differences: dict[str, dict[str, dict[str, Summary]]] = field(default_factory=dict)


def json_safe(value):
    """JSON-safe copy: floats rounded, NaN and infinities as None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def make_grey(truth: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 ground truth -> ``(H, W)`` uint8 grey input, exactly as training makes it."""
    rgb = torch.tensor(truth).permute(2, 0, 1)[None].to(torch.float64) / 255.0
    return _to_uint8(rgb_to_grey(rgb)[0, 0].numpy())


def ab_range(truth: np.ndarray) -> float:
    """Range of a* plus range of b* (Lab) of an ``(H, W, 3)`` uint8 image, as training measures it."""
    rgb = torch.tensor(truth).permute(2, 0, 1)[None].to(torch.float32) / 255.0
    return float(_training_ab_range(rgb_to_lab(rgb)[:, 1:])[0])


def scale_boxes(boxes: np.ndarray, size: tuple[int, int], eval_size: tuple[int, int]) -> np.ndarray:
    """Map ``(N, 4)`` boxes from original pixels onto the evaluation image; int64, clipped, non-empty."""
    (width, height), (eval_w, eval_h) = size, eval_size
    scale = np.array([eval_w / width, eval_h / height, eval_w / width, eval_h / height])
    return sanitize_boxes(np.asarray(boxes, np.float64).reshape(-1, 4) * scale, eval_size)


def measure(preds: dict[str, np.ndarray], truth: np.ndarray, lpips=None) -> dict[str, dict[str, float]]:
    """``{method: {metric: value}}`` of same-size ``(H, W, 3)`` uint8 results against the ground truth."""
    order = list(preds)
    images = [np.ascontiguousarray(preds[m]) for m in order]
    truth = np.ascontiguousarray(truth)
    columns = {"psnr": psnr_many(images, truth), "ssim": ssim_many(images, truth)}
    if lpips is not None:
        columns["lpips"] = lpips.many(images, truth)
    columns["colourfulness"] = [colourfulness(image) for image in images]
    return {method: {metric: values[i] for metric, values in columns.items()} for i, method in enumerate(order)}


def box_scores(image: np.ndarray, boxes: np.ndarray, labels: list[str]) -> dict[str, float]:
    """The whole-image metrics that look at the boxes: ``seam`` and ``cast`` (NaN when they do not apply)."""
    return {"seam": seam_score(image, boxes), "cast": cast_score(image, boxes, labels)}


class _Evaluator:
    """Runs the protocol image by image and accumulates the results."""

    def __init__(self, colorizer, compare, config: EvaluationConfig, device: torch.device) -> None:
        self.colorizer = colorizer
        self.compare = compare
        self.config = config
        self.methods = {k: v for k, v in METHODS.items() if k != "compare" or compare is not None}
        self.unavailable: dict[str, str] = {}
        self.lpips = None
        if config.lpips:
            try:
                self.lpips = load_lpips(config.lpips_weights, download=config.download, device=device)
            except MetricUnavailable as err:
                self.unavailable["lpips"] = str(err)
        else:
            self.unavailable["lpips"] = "turned off for this run"
        self.fid = None
        self.inception = None
        if config.fid:
            try:
                features, self.inception = load_inception(config.inception_weights, download=config.download)
                self.fid = FrechetDistance(features.to(device), device=device)
            except MetricUnavailable as err:
                self.unavailable["fid"] = str(err)
        else:
            self.unavailable["fid"] = "turned off for this run"

    def instances_for(self, name: str, path: Path, boxes: dict[str, Instances] | None, grey_full: np.ndarray) -> Instances:
        if boxes is not None:
            found = boxes.get(name)
            if found is None:
                found = lookup_instances(boxes, path)
            return found if found is not None else Instances()
        if getattr(self.colorizer, "detector", None) is None:
            return Instances()
        return self.colorizer.detect(decode_image(np.repeat(grey_full[..., None], 3, axis=2)))

    def predictions(self, grey: np.ndarray, instances: Instances) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        preds = {"grey": np.repeat(grey[..., None], 3, axis=2)}
        modes = {"grey": "none"}
        runs = [("full", self.colorizer, Instances(), "full"), ("fusion", self.colorizer, instances, "fusion")]
        if self.compare is not None:
            runs.append(("compare", self.compare, instances, "fusion"))
        for method, colorizer, given, mode in runs:
            result = colorizer(grey, given, mode=mode)
            preds[method] = np.asarray(result.image.convert("RGB"))
            modes[method] = result.mode
        return preds, modes

    def image(self, path: Path, name: str, boxes: dict[str, Instances] | None) -> tuple[ImageRecord, Preview] | str:
        """Evaluate one photo: its record and preview, or the reason it was skipped."""
        decoded = decode_image(path)
        if decoded.is_grey:
            return "greyscale original (one colour channel)"
        truth_full = _to_uint8(decoded.rgb)
        spread = ab_range(truth_full)
        if spread < MIN_AB_RANGE:
            return f"greyscale original (Lab ab range {spread:.2f} under {MIN_AB_RANGE:g})"
        size = (truth_full.shape[1], truth_full.shape[0])
        resolution = self.config.resolution
        if resolution is None:
            truth = truth_full
        else:
            truth = np.asarray(Image.fromarray(truth_full).resize((resolution, resolution), Image.Resampling.BILINEAR))
        eval_size = (truth.shape[1], truth.shape[0])
        grey = make_grey(truth)
        found = self.instances_for(name, path, boxes, make_grey(truth_full) if resolution is not None else grey)
        found = found.top(self.config.max_instances)
        eval_boxes = scale_boxes(found.boxes, size, eval_size)
        given = Instances(boxes=eval_boxes.astype(np.float32), scores=found.scores, labels=found.labels)
        preds, modes = self.predictions(grey, given)

        side = self.config.min_box_side
        used = [min(x2 - x1, y2 - y1) >= side for x1, y1, x2, y2 in eval_boxes.tolist()]
        crops = [(slice(y1, y2), slice(x1, x2)) for (x1, y1, x2, y2), ok in zip(eval_boxes.tolist(), used) if ok]
        metrics: dict[str, dict] = {
            GROUND_TRUTH: {
                "image": {"colourfulness": colourfulness(truth), **box_scores(truth, eval_boxes, found.labels)},
                "instances": [{"colourfulness": colourfulness(truth[c])} for c in crops],
            }
        }
        whole = measure(preds, truth, self.lpips)
        inside = [measure({m: p[c] for m, p in preds.items()}, truth[c], self.lpips) for c in crops]
        for method in preds:
            whole[method].update(box_scores(preds[method], eval_boxes, found.labels))
            metrics[method] = {"image": whole[method], "instances": [values[method] for values in inside]}
        if self.fid is not None:
            self.fid.update_real([truth])
            for method, pred in preds.items():
                self.fid.update_fake(method, [pred])
        instances = [
            {
                "box": [round(float(v), 2) for v in found.boxes[i]],
                "eval_box": [int(v) for v in eval_boxes[i]],
                "label": found.labels[i],
                "score": round(float(found.scores[i]), 4),
                "used": bool(used[i]),
            }
            for i in range(len(found))
        ]
        record = ImageRecord(name, size, eval_size, instances, metrics, modes)
        if self.config.hint_points:
            seed = image_seed(self.config.seed, name)
            record.hint_psnr = hint_psnr(self.colorizer, grey, truth, given, self.config.hint_points, seed, preds["fusion"])
        return record, self.preview(name, preds, truth, eval_boxes)

    def preview(self, name: str, preds: dict[str, np.ndarray], truth: np.ndarray, boxes: np.ndarray) -> Preview:
        height = self.config.preview_height
        width = max(1, round(truth.shape[1] * height / truth.shape[0]))

        def small(image: np.ndarray) -> np.ndarray:
            return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))

        images = {method: small(pred) for method, pred in preds.items()}
        images[GROUND_TRUTH] = small(truth)
        scale = np.array([width / truth.shape[1], height / truth.shape[0]] * 2)
        return Preview(name, images, np.asarray(boxes, np.float64).reshape(-1, 4) * scale)


def summarize(records: Sequence[ImageRecord], methods: Sequence[str], resamples: int, seed: int) -> dict:
    """``{"image" | "instance": {method: {metric: Summary}}}`` over the records."""
    summary: dict[str, dict] = {"image": {}, "instance": {}}
    for method in [*methods, GROUND_TRUTH]:
        all_names = list(TRUTH_METRICS) if method == GROUND_TRUTH else list(METRICS)
        for level in ("image", "instance"):
            table = {}
            for metric in all_names if level == "image" else [m for m in all_names if m not in IMAGE_ONLY_METRICS]:
                if level == "image":
                    values = [r.metrics[method]["image"].get(metric, np.nan) for r in records]
                else:
                    values = [[inst.get(metric, np.nan) for inst in r.metrics[method]["instances"]] for r in records]
                table[metric] = bootstrap_mean(values, n_resamples=resamples, seed=seed)
            summary[level][method] = table
    return summary


#: Methods compared photo by photo (first minus second) when both ran: instance awareness against
#: the full-image network, and against the second weights.
PAIRS = (("fusion", "full"), ("fusion", "compare"))
#: The accuracy metrics compared in pairs.
PAIRED_METRICS = ("psnr", "ssim", "lpips")


def evaluate(
    images: Sequence[str | os.PathLike],
    colorizer,
    *,
    boxes: dict[str, Instances] | None = None,
    compare=None,
    config: EvaluationConfig | None = None,
    root: str | os.PathLike | None = None,
    protocol: dict | None = None,
    progress: Callable[[Path, str | None], None] | None = None,
) -> EvaluationResult:
    """Evaluate a colorizer (and its baselines) on colour photos.

    Args:
        images: colour photos (the ground truth).
        colorizer: an :class:`instcolor.inference.pipeline.Colorizer`; its detector (if any) gives the boxes
            when ``boxes`` is None.
        boxes: ``{image name: Instances}`` from a boxes file (boxes in original pixels); images
            without an entry have no box.
        compare: a second Colorizer evaluated as the ``compare`` method (fusion).
        config: protocol settings.
        root: images are named relative to this folder in the report (else by file name).
        protocol: extra entries for the report's protocol (weights, dataset, command line...).
        progress: called after each image with its path and an error message or None.

    Returns:
        The per-image records, summaries with 95% bootstrap intervals, and the protocol.
    """
    import instcolor

    config = config or EvaluationConfig()
    device = getattr(colorizer, "device", torch.device("cpu"))
    runner = _Evaluator(colorizer, compare, config, torch.device(device))
    result = EvaluationResult(protocol={}, methods=runner.methods)
    root_path = Path(root).resolve() if root is not None else None
    for path in map(Path, images):
        name = path.name
        if root_path is not None:
            try:
                name = path.resolve().relative_to(root_path).as_posix()
            except ValueError:
                pass
        error = None
        try:
            outcome = runner.image(path, name, boxes)
        except Exception as err:  # one unreadable photo must not stop a benchmark run
            error = f"{type(err).__name__}: {err}"
            result.failed.append((name, error))
        else:
            if isinstance(outcome, str):
                result.skipped.append((name, outcome))
            else:
                record, preview = outcome
                result.images.append(record)
                if len(result.previews) < config.preview_images:
                    result.previews.append(preview)
        if progress is not None:
            progress(path, error)

    result.unavailable = dict(runner.unavailable)
    if runner.fid is not None:
        if len(result.images) < 2:
            result.unavailable["fid"] = f"needs at least 2 evaluated images, got {len(result.images)}"
        else:
            result.fid = runner.fid.compute()
    result.summary = summarize(result.images, list(result.methods), config.bootstrap_resamples, config.seed)
    for first, second in (pair for pair in PAIRS if set(pair) <= set(result.methods)):
        # fusion against full: only where fusion had instances (elsewhere both are the full network)
        records = [r for r in result.images if second != "full" or r.modes.get("fusion") == "fusion"]
        found = paired_differences(records, first, second, PAIRED_METRICS, config.bootstrap_resamples, config.seed)
        for level, table in found.items():
            if table:
                result.differences.setdefault(level, {})[f"{first}-{second}"] = table
    if config.hint_points and result.images:
        per_image = [record.hint_psnr for record in result.images]
        result.hint_curve = hint_curve(per_image, config.hint_points, config.bootstrap_resamples, config.seed)
    result.protocol = describe_protocol(config, colorizer, compare, boxes, runner, len(result.images), instcolor.__version__)
    result.protocol.update(protocol or {})
    return result


def _weights_description(colorizer) -> dict:
    meta = dict(getattr(colorizer, "metadata", {}) or {})
    keep = ("name", "source", "licence", "created", "config", "format_version")
    return {k: meta[k] for k in keep if k in meta}


def _classes_description(colorizer) -> str:
    if not getattr(getattr(getattr(colorizer, "model", None), "config", None), "class_aware", False):
        return "class-blind weights: instance labels are not used"
    if getattr(colorizer, "uses_classes", False):
        return "class-aware weights, given each instance's label (COCO name; others unknown)"
    return "class-aware weights, every instance given the unknown class (class_aware off)"


def describe_protocol(config: EvaluationConfig, colorizer, compare, boxes, runner: _Evaluator, n_images: int, version: str) -> dict:
    """The protocol written into every report, so that two reports can be compared."""
    import importlib.metadata as md

    def version_of(package: str) -> str:
        try:
            return md.version(package)
        except md.PackageNotFoundError:
            return "not installed"

    if config.resolution is None:
        resize = "none: metrics at each photo's full resolution; the networks see 256x256 and ab is upsampled"
    else:
        resize = (
            f"ground truth resized to {config.resolution}x{config.resolution} (aspect not kept) with Pillow "
            "Image.resize(BILINEAR), rounded to 8 bits; colorized at that size"
        )
    detector = getattr(getattr(colorizer, "detector", None), "name", None)
    if boxes is not None:
        box_source = "boxes file (boxes in original pixels; images without an entry have no box)"
    elif detector is not None:
        settings = getattr(colorizer.detector, "filter", None)
        box_source = f"detector {detector}" + (f" ({settings})" if settings is not None else "")
        box_source += ", run on the full-resolution grey photo"
    else:
        box_source = "none (no boxes file, no detector): fusion falls back to the full-image network"
    lpips = runner.lpips
    protocol = {
        "instcolor": version,
        "images_evaluated": n_images,
        "resolution": "full" if config.resolution is None else config.resolution,
        "ground_truth": "decoded photo (EXIF orientation applied, alpha ignored), rounded to 8 bits per channel",
        "resize": resize,
        "grey_input": (
            "BT.709 luma 0.2125 R + 0.7154 G + 0.0721 B of the 8-bit sRGB ground truth at the evaluation size, "
            "rounded to 8 bits (instcolor.color.rgb_to_grey, as in training)"
        ),
        "colour_conversion": (
            "CIE Lab D65 (kornia); result = L of the grey input + predicted ab, converted to sRGB, "
            "clipped to the gamut, rounded to 8 bits"
        ),
        "skipped_images": (
            f"one colour channel, or Lab range of a* plus range of b* under {MIN_AB_RANGE:g} "
            "(greyscale originals, the training rule)"
        ),
        "boxes": box_source,
        "detector": detector or "none",
        "max_instances": config.max_instances,
        "box_mapping": (
            "x * w / W and y * h / H onto the evaluation image, truncated to integer pixels, clipped, "
            "at least 1 px (instcolor.geometry.sanitize_boxes)"
        ),
        "instance_metrics": (
            f"metrics on the box crop of result and ground truth at the evaluation size; boxes with a side "
            f"under {config.min_box_side} px left out; mean over all instances of all images"
        ),
        "psnr": "10 log10(255^2 / MSE) over all pixels and RGB channels of the 8-bit images (torchmetrics)",
        "ssim": (
            "Wang et al. 2004 on 8-bit RGB: skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False, data_range=255, channel_axis=-1), i.e. Gaussian window 11x11, K1 0.01, "
            "K2 0.03, mean over channels and the window positions inside the image "
            f"(scikit-image {version_of('scikit-image')})"
        ),
        "lpips": (
            f"AlexNet, v0.1 linear layers (lpips {version_of('lpips')}), inputs scaled to [-1, 1]; "
            f"AlexNet weights {lpips.weights.describe()}" if lpips is not None else None
        ),
        "lpips_backbone_is_release": lpips.weights.official if lpips is not None else None,
        "colourfulness": "Hasler and Suesstrunk 2003 on 0..255 sRGB (no reference; higher is more colourful)",
        "fid": (
            "Fréchet distance of torchvision Inception-v3 (IMAGENET1K_V1) 2048-d pool features, whole images "
            "resized to 299x299 (bilinear, antialiased), ImageNet normalisation (torchmetrics "
            f"FrechetInceptionDistance); weights {runner.inception.describe()}; not comparable to FID computed "
            "with the TF-Inception weights, and biased upwards for sets under about 2,000 images"
            if runner.inception is not None else None
        ),
        "fid_backbone_is_release": runner.inception.official if runner.inception is not None else None,
        "confidence_intervals": (
            f"95% percentile bootstrap over images, {config.bootstrap_resamples} resamples, seed {config.seed} "
            "(an image's instances are resampled together)"
        ),
        "instance_classes": _classes_description(colorizer),
        "weights": _weights_description(colorizer),
        "compare_weights": _weights_description(compare) if compare is not None else None,
        "network_input": f"{getattr(colorizer, 'size', 256)}x{getattr(colorizer, 'size', 256)}",
        "device": str(getattr(colorizer, "device", "cpu")),
        "software": {
            name: version_of(name) for name in ("torch", "torchvision", "torchmetrics", "scikit-image", "lpips", "kornia", "Pillow", "numpy")
        },
    }
    if config.hint_points:
        model_config = getattr(getattr(colorizer, "model", None), "config", None)
        protocol["hints"] = (
            f"PSNR with {', '.join(map(str, config.hint_points))} hint points drawn from each image's ground "
            f"truth (instcolor.evaluation.hints: Zhang et al.'s sampler, {POINT_SIDE}x{POINT_SIDE}-cell patches "
            f"of the mean colour, the first n of one draw per image, seed {config.seed} and the image name); "
            "fusion with the image's instances"
        )
        protocol["hint_mode"] = getattr(colorizer, "hint_mode", None)
        protocol["weights_trained_with_hints"] = getattr(model_config, "hints", None)
    return protocol
