"""Image-quality metrics for colorization, on 8-bit sRGB images.

Every function takes ``(H, W, 3)`` uint8 sRGB arrays (prediction first, ground truth second), the
form in which results are saved and compared; values are computed in float64 where it matters.

* :func:`psnr`: peak signal-to-noise ratio over all pixels and the three channels, data range 255
  (torchmetrics; the same as ``skimage.metrics.peak_signal_noise_ratio(data_range=255)``).
* :func:`ssim`: structural similarity of Wang et al. (2004): 11x11 Gaussian window, sigma 1.5,
  K1 = 0.01, K2 = 0.03, data range 255, population covariance, per RGB channel, averaged over the
  window positions that fit inside the image: ``skimage.metrics.structural_similarity(
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)``.
  (scikit-image's defaults, a 7x7 uniform window with sample covariance, give other numbers, and
  torchmetrics 1.x also averages over the reflect-padded border: protocols must say which.)
* :class:`LPIPS`: learned perceptual distance of Zhang et al. (2018), AlexNet, v0.1 linear layers
  (the ``lpips`` package). The AlexNet backbone weights are loaded explicitly (see
  :func:`load_lpips`), never left random.
* :func:`colourfulness`: Hasler and Suesstrunk (2003), on 0..255 values.
* :func:`seam_score`: how much the chroma jumps across the instance box borders, relative to the
  chroma change just inside and outside them (1 = no seam; box-shaped casts give more).
* :func:`cast_score`: share of pixels inside person boxes whose a* is below -5 (a green cast).
* :class:`FrechetDistance`: a Fréchet distance between the Inception-v3 pool features of two image
  sets (torchmetrics' ``FrechetInceptionDistance`` with torchvision's Inception-v3), see
  :func:`load_inception`.

Backbone weights for LPIPS and the Fréchet distance are looked up, in order, at the path given,
the environment variable (:data:`ALEXNET_ENV`, :data:`INCEPTION_ENV`), the torch hub cache
(``$TORCH_HOME/hub/checkpoints/``, where torchvision keeps them), and finally by download through
torchvision when allowed. When none works, :class:`MetricUnavailable` says why.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Environment variables naming local backbone weights (torchvision state dicts).
ALEXNET_ENV = "INSTCOLOR_ALEXNET_WEIGHTS"
INCEPTION_ENV = "INSTCOLOR_INCEPTION_WEIGHTS"

#: Smallest side LPIPS's AlexNet accepts (the third max-pool needs a 3x3 input).
LPIPS_MIN_SIDE = 31
#: Smallest side SSIM's 11x11 window fits in.
SSIM_MIN_SIDE = 11

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (its package or backbone weights are missing)."""


def _as_batch(images: list[np.ndarray], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``M x (H, W, 3)`` uint8 -> ``(M, 3, H, W)`` float in ``[0, 255]``."""
    arrays = [np.asarray(image) for image in images]
    for image in arrays:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 images, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(dtype)


def _check_pairs(preds: list[np.ndarray], target: np.ndarray) -> None:
    for pred in preds:
        if np.shape(pred) != np.shape(target):
            raise ValueError(f"prediction {np.shape(pred)} and ground truth {np.shape(target)} differ in size")


def psnr_many(preds: list[np.ndarray], target: np.ndarray) -> list[float]:
    """PSNR in dB of each ``(H, W, 3)`` uint8 prediction against one ground truth (``inf`` if identical)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    _check_pairs(preds, target)
    if not preds:
        return []
    values = peak_signal_noise_ratio(
        _as_batch(preds, torch.float64), _as_batch([target], torch.float64).expand(len(preds), -1, -1, -1),
        data_range=255.0, reduction="none", dim=(1, 2, 3),
    )  # fmt: skip
    return [float(v) for v in values]


def ssim_many(preds: list[np.ndarray], target: np.ndarray) -> list[float]:
    """SSIM of each ``(H, W, 3)`` uint8 prediction against one ground truth; NaN under 11 px."""
    from skimage.metrics import structural_similarity

    _check_pairs(preds, target)
    if min(np.shape(target)[:2]) < SSIM_MIN_SIDE:
        return [float("nan")] * len(preds)
    return [
        float(structural_similarity(
            np.asarray(pred), np.asarray(target), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=255, channel_axis=-1, K1=0.01, K2=0.03,
        ))  # fmt: skip
        for pred in preds
    ]


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of two ``(H, W, 3)`` uint8 images (``inf`` when they are identical)."""
    return psnr_many([pred], target)[0]


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM of two ``(H, W, 3)`` uint8 images, in ``[-1, 1]``; NaN when a side is under 11 px."""
    return ssim_many([pred], target)[0]


def colourfulness(image: np.ndarray) -> float:
    """Colourfulness M of Hasler and Suesstrunk (2003) of an ``(H, W, 3)`` uint8 image.

    ``rg = R - G``, ``yb = (R + G) / 2 - B``;
    ``M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)`` (population std).
    0 for a grey image; about 15 "slightly", 33 "moderately", 59 "quite", 82 "highly" colourful.
    """
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


#: :func:`seam_score` compares the border step with steps this many pixels inside and outside it.
SEAM_BAND = (2, 3, 4, 5)
#: :func:`cast_score`: a* below this counts as green (skin, clothes and hair rarely go there).
GREEN_A_STAR = -5.0


def _ab(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 sRGB -> ``(H, W, 2)`` float64 Lab a*, b* (D65)."""
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(image, dtype=np.uint8))[..., 1:]


def seam_score(image: np.ndarray, boxes: np.ndarray) -> float:
    """Chroma step across box borders over the chroma steps next to them; NaN without a border.

    For every box edge that lies inside the image, the step is ``|ab(p) - ab(p')|`` (Euclidean in
    a*, b*) between the two pixels on either side of the edge, along the edge's length. The
    reference steps are the same differences taken :data:`SEAM_BAND` pixels further inside and
    outside the box. The score is ``mean(border steps) / mean(reference steps)``: about 1 when the
    border is no different from its surroundings, above 1 when the chroma jumps at the box edge.

    Args:
        image: ``(H, W, 3)`` uint8 sRGB.
        boxes: ``(N, 4)`` int ``x1, y1, x2, y2`` in the image's pixels.
    """
    ab = _ab(image)
    height, width = ab.shape[:2]

    def column_step(x: int, y1: int, y2: int) -> np.ndarray | None:  # between columns x-1 and x
        if 1 <= x < width:
            return np.linalg.norm(ab[y1:y2, x] - ab[y1:y2, x - 1], axis=-1)
        return None

    def row_step(y: int, x1: int, x2: int) -> np.ndarray | None:
        if 1 <= y < height:
            return np.linalg.norm(ab[y, x1:x2] - ab[y - 1, x1:x2], axis=-1)
        return None

    border, band = [], []
    for x1, y1, x2, y2 in np.asarray(boxes, np.int64).reshape(-1, 4).tolist():
        for position, inward, step, lo, hi in (
            (x1, 1, column_step, y1, y2), (x2, -1, column_step, y1, y2),
            (y1, 1, row_step, x1, x2), (y2, -1, row_step, x1, x2),
        ):  # fmt: skip
            edge = step(position, lo, hi)
            if edge is None or edge.size == 0:
                continue
            border.append(edge)
            for d in SEAM_BAND:
                for moved in (position + inward * d, position - inward * d):
                    near = step(moved, lo, hi)
                    if near is not None:
                        band.append(near)
    if not border or not band:
        return float("nan")
    reference = float(np.concatenate(band).mean())
    return float(np.concatenate(border).mean() / max(reference, 1e-6))


def cast_score(image: np.ndarray, boxes: np.ndarray, labels: list[str]) -> float:
    """Share (0..1) of the pixels inside ``"person"`` boxes with a* < :data:`GREEN_A_STAR`; NaN without one.

    Pixels covered by several person boxes count once.

    Args:
        image: ``(H, W, 3)`` uint8 sRGB.
        boxes: ``(N, 4)`` int ``x1, y1, x2, y2`` in the image's pixels.
        labels: N COCO category names.
    """
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    inside = np.zeros(np.asarray(image).shape[:2], dtype=bool)
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels):
        if label == "person":
            inside[y1:y2, x1:x2] = True
    if not inside.any():
        return float("nan")
    return float((_ab(image)[..., 0][inside] < GREEN_A_STAR).mean())


@dataclass(frozen=True)
class BackboneWeights:
    """Where a backbone's weights came from.

    Attributes:
        path: the file read.
        origin: ``"argument"``, ``"environment"``, ``"torch hub cache"`` or ``"download"``.
        sha256: of the file.
        official: True when the sha256 starts with the hash prefix of torchvision's release file
            name (``alexnet-owt-7be5be79.pth``...), i.e. these are the published weights.
    """

    path: Path
    origin: str
    sha256: str
    official: bool

    def describe(self) -> str:
        kind = "torchvision release" if self.official else "NOT the torchvision release"
        return f"{self.path} ({self.origin}; sha256 {self.sha256[:16]}…; {kind})"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_backbone_weights(
    url: str, path: str | os.PathLike | None, env_var: str, download: bool
) -> BackboneWeights:
    """Find torchvision backbone weights: ``path``, ``$env_var``, the torch hub cache, then download.

    Args:
        url: torchvision's release URL (its file name carries the sha256 prefix).
        path: a file the user named, or None.
        env_var: environment variable that may name a file.
        download: whether to try downloading through torch hub when nothing local exists.

    Raises:
        MetricUnavailable: saying what was tried.
    """
    file_name = Path(urlparse(url).path).name
    hash_prefix = file_name.rsplit("-", 1)[-1].split(".")[0]
    candidates: list[tuple[Path, str]] = []
    if path is not None:
        candidates.append((Path(path), "argument"))
    elif os.environ.get(env_var):
        candidates.append((Path(os.environ[env_var]), "environment"))
    for candidate, origin in candidates:
        if not candidate.is_file():
            raise MetricUnavailable(f"backbone weights {candidate} ({origin}) do not exist")
    if not candidates:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if cached.is_file():
            candidates.append((cached, "torch hub cache"))
        elif download:
            try:
                torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, weights_only=True)
            except Exception as err:  # no network, proxy refusal, hash mismatch...
                raise MetricUnavailable(
                    f"{file_name} is not in the torch hub cache and could not be downloaded "
                    f"({type(err).__name__}: {err}); set {env_var} to a local copy"
                ) from err
            candidates.append((cached, "download"))
        else:
            raise MetricUnavailable(
                f"{file_name} is not in the torch hub cache ({cached.parent}) and downloads are off; "
                f"set {env_var} to a local copy"
            )
    found, origin = candidates[0]
    sha = _sha256(found)
    return BackboneWeights(path=found, origin=origin, sha256=sha, official=sha.startswith(hash_prefix))


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise MetricUnavailable(f"{path}: not a loadable state dict ({type(err).__name__}: {err})") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MetricUnavailable(f"{path}: not a state dict of tensors")
    return state


class LPIPS:
    """LPIPS distance (AlexNet, v0.1) with an explicitly loaded backbone.

    Build with :func:`load_lpips`. Calling it on two ``(H, W, 3)`` uint8 images returns the
    distance (0 for identical images; typically 0.1-0.4 for colorizations); NaN when a side is
    under :data:`LPIPS_MIN_SIDE` px.
    """

    def __init__(self, network: nn.Module, weights: BackboneWeights, device: torch.device) -> None:
        self.network = network.to(device).eval()
        self.weights = weights
        self.device = device

    def _tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        return _as_batch(images).to(self.device) / 127.5 - 1.0

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.many([pred], target)[0]

    @torch.inference_mode()
    def many(self, preds: list[np.ndarray], target: np.ndarray) -> list[float]:
        """Distances of several same-size predictions to one ground truth, in one batch."""
        _check_pairs(preds, target)
        if not preds:
            return []
        if min(np.shape(target)[:2]) < LPIPS_MIN_SIDE:
            return [float("nan")] * len(preds)
        reference = self._tensor([target]).expand(len(preds), -1, -1, -1)
        return [float(v) for v in self.network(self._tensor(preds), reference).reshape(-1)]


def load_lpips(
    weights: str | os.PathLike | None = None, *, download: bool = True, device: str | torch.device = "cpu"
) -> LPIPS:
    """Build LPIPS (AlexNet, v0.1) with the AlexNet weights loaded from a known file.

    The ``lpips`` package would fetch torchvision's AlexNet itself and, offline, fail or (with
    ``pnet_rand``) run with random features. Here it is built with ``pnet_rand=True`` and every
    AlexNet feature tensor is then overwritten from the resolved file; a file that lacks any of
    them is an error. The linear calibration layers ship inside the ``lpips`` package.

    Args:
        weights: a torchvision AlexNet state dict (``features.*`` keys; ``classifier.*`` keys are
            ignored). None: ``$INSTCOLOR_ALEXNET_WEIGHTS``, the torch hub cache, then download.
        download: allow the download through torch hub.

    Raises:
        MetricUnavailable: without the ``lpips`` package or the AlexNet weights.
    """
    try:
        import lpips as lpips_package
    except ImportError as err:
        raise MetricUnavailable("the lpips package is not installed (pip install 'instcolor[lpips]')") from err
    from torchvision.models import AlexNet_Weights

    found = resolve_backbone_weights(AlexNet_Weights.IMAGENET1K_V1.url, weights, ALEXNET_ENV, download)
    state = _load_state_dict(found.path)
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated", raised inside lpips
        warnings.simplefilter("ignore", UserWarning)
        network = lpips_package.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    targets = {
        f"features.{index}.{kind}": f"net.{slice_name}.{index}.{kind}"
        for slice_name, block in network.net.named_children()
        for index, layer in block.named_children()
        if isinstance(layer, nn.Conv2d)
        for kind in ("weight", "bias")
    }
    missing = [key for key in targets if key not in state]
    unexpected = [k for k in state if k not in targets and not k.startswith("classifier.")]
    if missing or unexpected:
        raise MetricUnavailable(
            f"{found.path}: not a torchvision AlexNet state dict (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    own = network.state_dict()
    for source, target in targets.items():
        if own[target].shape != state[source].shape:
            raise MetricUnavailable(
                f"{found.path}: {source} has shape {tuple(state[source].shape)}, expected {tuple(own[target].shape)}"
            )
        own[target] = state[source].to(own[target].dtype)
    network.load_state_dict(own, strict=True)
    return LPIPS(network, found, torch.device(device))


class InceptionPoolFeatures(nn.Module):
    """torchvision Inception-v3 up to its 2048-d average pool, for the Fréchet distance.

    Input ``(B, 3, H, W)`` float sRGB in ``[0, 1]``; resized to 299x299 (bilinear, antialiased)
    and normalised as for ImageNet. Output ``(B, 2048)``.
    """

    num_features = 2048

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        network.fc = nn.Identity()
        self.network = network.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=True)
        return self.network((images - self.mean) / self.std)


def load_inception(
    weights: str | os.PathLike | None = None, *, download: bool = True
) -> tuple[InceptionPoolFeatures, BackboneWeights]:
    """torchvision's Inception-v3 (``IMAGENET1K_V1``) pool features with weights from a known file.

    Args:
        weights: a torchvision Inception-v3 state dict; None: ``$INSTCOLOR_INCEPTION_WEIGHTS``,
            the torch hub cache, then download.

    Raises:
        MetricUnavailable: when the weights cannot be found or do not fit.
    """
    from torchvision.models import Inception_V3_Weights, inception_v3

    found = resolve_backbone_weights(Inception_V3_Weights.IMAGENET1K_V1.url, weights, INCEPTION_ENV, download)
    state = _load_state_dict(found.path)
    network = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise MetricUnavailable(f"{found.path}: not a torchvision Inception-v3 state dict ({err})") from err
    return InceptionPoolFeatures(network), found


class FrechetDistance:
    """Fréchet distance between the features of the ground truth and of each method's results.

    One ``torchmetrics`` ``FrechetInceptionDistance`` per method accumulates that method's
    features; the ground truth's features are computed once and merged into each at the end.

    Args:
        features: module ``(B, 3, H, W)`` float in ``[0, 1]`` -> ``(B, D)`` with ``num_features``.
    """

    def __init__(self, features: nn.Module, device: str | torch.device = "cpu") -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        self._make = lambda: FrechetInceptionDistance(feature=features, normalize=True).to(device)
        self.device = torch.device(device)
        self.real = self._make()
        self.fake: dict[str, FrechetInceptionDistance] = {}
        self._merged: set[str] = set()

    @staticmethod
    def _batch(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255

    @torch.inference_mode()
    def update_real(self, images: list[np.ndarray]) -> None:
        """Add ground-truth ``(H, W, 3)`` uint8 images (all of one size)."""
        self.real.update(self._batch(images).to(self.device), real=True)

    @torch.inference_mode()
    def update_fake(self, method: str, images: list[np.ndarray]) -> None:
        """Add a method's ``(H, W, 3)`` uint8 results (all of one size)."""
        if method not in self.fake:
            self.fake[method] = self._make()
        self.fake[method].update(self._batch(images).to(self.device), real=False)

    def compute(self) -> dict[str, float]:
        """``{method: distance}``; needs at least two images on each side."""
        out = {}
        for method, metric in self.fake.items():
            if method not in self._merged:
                metric.merge_state(self.real)
                self._merged.add(method)
            out[method] = float(metric.compute())
        return out
