"""Each metric against an independent computation on small arrays, and the backbone-loading rules."""

from __future__ import annotations

import os
import statistics
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim
from torch import nn

from instcolor.evaluation.metrics import (
    ALEXNET_ENV,
    FrechetDistance,
    MetricUnavailable,
    colourfulness,
    load_inception,
    load_lpips,
    psnr,
    psnr_many,
    ssim,
    ssim_many,
)


def pair(seed: int, shape=(23, 29, 3), noise: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, size=shape).astype(np.uint8)
    pred = np.clip(target + rng.normal(0, noise, size=shape), 0, 255).astype(np.uint8)
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_matches_skimage_and_the_formula(seed):
    pred, target = pair(seed)
    mse = np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2)
    by_hand = 10 * np.log10(255.0**2 / mse)
    assert psnr(pred, target) == pytest.approx(by_hand, abs=1e-5)  # torchmetrics keeps data_range in float32
    assert psnr(pred, target) == pytest.approx(sk_psnr(target, pred, data_range=255), abs=1e-5)


def test_psnr_of_identical_images_is_infinite():
    _, target = pair(0)
    assert psnr(target, target) == float("inf")


def ssim_by_torchmetrics(pred: np.ndarray, target: np.ndarray) -> float:
    """torchmetrics' SSIM map (an independent implementation), averaged over the positions where the
    11x11 window lies inside the image (torchmetrics itself also averages the padded border)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    def batch(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].double()

    _, full = structural_similarity_index_measure(
        batch(pred), batch(target), gaussian_kernel=True, sigma=1.5, data_range=255.0, return_full_image=True
    )
    return float(full[..., 5:-5, 5:-5].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_an_independent_implementation(seed):
    pred, target = pair(seed, shape=(40, 52, 3))
    assert ssim(pred, target) == pytest.approx(ssim_by_torchmetrics(pred, target), abs=1e-9)


def test_ssim_settings_matter():
    """scikit-image's default SSIM (7x7 uniform window, sample covariance) is another number: the
    reason reports must carry their protocol."""
    pred, target = pair(0, shape=(40, 52, 3))
    default = sk_ssim(target, pred, data_range=255, channel_axis=-1)
    assert abs(ssim(pred, target) - default) > 1e-3


def test_ssim_is_one_for_identical_and_nan_below_the_window():
    _, target = pair(3, shape=(16, 16, 3))
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-6)
    small_pred, small_target = pair(4, shape=(10, 30, 3))
    assert np.isnan(ssim(small_pred, small_target))


def test_batched_metrics_equal_one_at_a_time():
    target = pair(5, shape=(24, 24, 3))[1]
    preds = [pair(s, shape=(24, 24, 3))[0] for s in (6, 7, 8)]
    assert psnr_many(preds, target) == pytest.approx([psnr(p, target) for p in preds], abs=1e-9)
    assert ssim_many(preds, target) == pytest.approx([ssim(p, target) for p in preds], abs=1e-6)


def test_metrics_refuse_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def colourfulness_by_hand(image: np.ndarray) -> float:
    rg, yb = [], []
    for r, g, b in image.reshape(-1, 3).tolist():
        rg.append(r - g)
        yb.append(0.5 * (r + g) - b)
    sigma = (statistics.pstdev(rg) ** 2 + statistics.pstdev(yb) ** 2) ** 0.5
    mu = (statistics.fmean(rg) ** 2 + statistics.fmean(yb) ** 2) ** 0.5
    return sigma + 0.3 * mu


def test_colourfulness_matches_the_paper_formula():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(7, 9, 3)).astype(np.uint8)
    assert colourfulness(image) == pytest.approx(colourfulness_by_hand(image), rel=1e-12)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255  # rg = 255, yb = 127.5 everywhere, no spread
    assert colourfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))
    assert colourfulness(np.full((4, 4, 3), 90, np.uint8)) == 0.0


# --- LPIPS -------------------------------------------------------------------------------------


def lpips_by_hand(pred: np.ndarray, target: np.ndarray, alexnet_state: dict) -> float:
    """LPIPS v0.1 written out: torchvision AlexNet relu1..relu5, unit-normalised channels, squared
    difference weighted by the lpips package's linear layers, spatial mean, sum over layers."""
    import importlib.resources

    from torchvision.models import alexnet

    net = alexnet(weights=None)
    net.load_state_dict(alexnet_state, strict=False)
    lin_file = importlib.resources.files("lpips") / "weights" / "v0.1" / "alex.pth"
    lins = torch.load(str(lin_file), map_location="cpu", weights_only=True)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def features(image: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        x = (x - shift) / scale
        taps = []
        for index, layer in enumerate(net.features[:12]):
            x = layer(x)
            if index in (1, 4, 7, 9, 11):
                taps.append(x)
        return taps

    total = 0.0
    with torch.no_grad():
        for k, (a, b) in enumerate(zip(features(pred), features(target))):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            weight = lins[f"lin{k}.model.1.weight"]
            total += float((nn.functional.conv2d((a - b) ** 2, weight)).mean())
    return total


def test_lpips_with_injected_weights_matches_the_formula(random_alexnet):
    metric = load_lpips(random_alexnet, download=False)
    pred, target = pair(0, shape=(48, 40, 3))
    state = torch.load(random_alexnet, weights_only=True)
    assert metric(pred, target) == pytest.approx(lpips_by_hand(pred, target, state), rel=1e-4)
    assert metric(target, target) == pytest.approx(0.0, abs=1e-7)
    assert metric.weights.origin == "argument" and not metric.weights.official
    assert "NOT the torchvision release" in metric.weights.describe()


def test_lpips_backbone_really_holds_the_given_weights(random_alexnet):
    metric = load_lpips(random_alexnet, download=False)
    state = torch.load(random_alexnet, weights_only=True)
    loaded = getattr(metric.network.net.slice3, "6").weight.detach()
    assert torch.equal(loaded, state["features.6.weight"])


def test_lpips_batch_equals_single_and_small_crops_are_nan(random_alexnet):
    metric = load_lpips(random_alexnet, download=False)
    target = pair(1, shape=(40, 40, 3))[1]
    preds = [pair(s, shape=(40, 40, 3))[0] for s in (2, 3)]
    assert metric.many(preds, target) == pytest.approx([metric(p, target) for p in preds], rel=1e-5)
    tiny_pred, tiny_target = pair(4, shape=(30, 60, 3))
    assert np.isnan(metric(tiny_pred, tiny_target))


def test_lpips_unavailable_offline_without_weights():
    with pytest.raises(MetricUnavailable, match="not in the torch hub cache.*downloads are off"):
        load_lpips(download=False)


def test_lpips_unavailable_when_the_download_fails(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    with pytest.raises(MetricUnavailable, match="could not be downloaded.*no network here"):
        load_lpips(download=True)


def test_lpips_weights_from_environment_and_hub_cache(random_alexnet, monkeypatch):
    monkeypatch.setenv(ALEXNET_ENV, str(random_alexnet))
    assert load_lpips(download=False).weights.origin == "environment"
    monkeypatch.delenv(ALEXNET_ENV)
    cache = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"  # the tests' own (conftest)
    cache.mkdir(parents=True)
    (cache / "alexnet-owt-7be5be79.pth").write_bytes(random_alexnet.read_bytes())
    found = load_lpips(download=False).weights
    assert found.origin == "torch hub cache"
    assert not found.official  # the hash prefix in the release name does not match random weights


def test_lpips_refuses_incomplete_or_missing_weights(random_alexnet, tmp_path):
    state = torch.load(random_alexnet, weights_only=True)
    del state["features.10.weight"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(MetricUnavailable, match="features.10.weight"):
        load_lpips(broken, download=False)
    with pytest.raises(MetricUnavailable, match="do not exist"):
        load_lpips(tmp_path / "nowhere.pth", download=False)


# --- Fréchet distance ---------------------------------------------------------------------------


class PixelStatistics(nn.Module):
    """A small deterministic feature extractor: per-channel means over a 2x2 grid (12-d)."""

    num_features = 12

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images.float(), 2).flatten(1)


def frechet_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_matches_scipy_for_each_method():
    rng = np.random.default_rng(0)
    real = [rng.integers(0, 256, (16, 16, 3)).astype(np.uint8) for _ in range(30)]
    fakes = {
        "shifted": [np.clip(r.astype(int) + 40, 0, 255).astype(np.uint8) for r in real],
        "noisy": [np.clip(r + rng.normal(0, 25, r.shape), 0, 255).astype(np.uint8) for r in real],
    }
    metric = FrechetDistance(PixelStatistics())
    for image in real:
        metric.update_real([image])
    for method, images in fakes.items():
        for image in images:
            metric.update_fake(method, [image])
    got = metric.compute()
    extractor = PixelStatistics()

    def feats(images):
        return extractor(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255).double().numpy()

    for method, images in fakes.items():
        assert got[method] == pytest.approx(frechet_by_hand(feats(real), feats(images)), rel=1e-3, abs=1e-6)
    assert metric.compute() == got  # computing twice does not count the ground truth twice


def test_inception_unavailable_offline_and_refuses_foreign_state_dicts(tmp_path):
    with pytest.raises(MetricUnavailable, match="inception_v3_google"):
        load_inception(download=False)
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(MetricUnavailable, match="not a torchvision Inception-v3 state dict"):
        load_inception(foreign, download=False)


@pytest.mark.slow
def test_inception_features_with_injected_weights(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "inception-random.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict(), path)
    features, found = load_inception(path, download=False)
    out = features(torch.rand(2, 3, 64, 80))
    assert out.shape == (2, 2048) and torch.isfinite(out).all()
    assert found.origin == "argument"


def _lab_image(a: np.ndarray, b: np.ndarray, lightness: float = 60.0) -> np.ndarray:
    from skimage.color import lab2rgb

    lab = np.stack([np.full_like(a, lightness), a, b], axis=-1)
    return (np.clip(lab2rgb(lab), 0, 1) * 255).round().astype(np.uint8)


def test_seam_score_is_about_one_without_a_seam_and_large_with_a_box_shaped_cast():
    from instcolor.evaluation.metrics import seam_score

    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    a = 12 * np.sin(x / 3.0 + y / 7.0)  # smooth chroma texture
    b = 12 * np.cos(y / 4.0 - x / 9.0)
    box = np.array([[16, 16, 48, 48]])
    plain = seam_score(_lab_image(a, b), box)
    cast = a.copy()
    cast[16:48, 16:48] -= 15.0  # a green rectangle with a hard edge
    seamed = seam_score(_lab_image(cast, b), box)
    assert 0.7 < plain < 1.3
    assert seamed > 3.0
    assert np.isnan(seam_score(_lab_image(a, b), np.zeros((0, 4))))


def test_cast_score_counts_green_pixels_inside_person_boxes_only():
    from instcolor.evaluation.metrics import cast_score

    a = np.zeros((40, 40))
    a[0:10, 0:20] = -20.0  # green, inside the person box's top half
    a[30:40, 30:40] = -20.0  # green, inside a dog box
    image = _lab_image(a, np.zeros((40, 40)))
    boxes = np.array([[0, 0, 20, 20], [30, 30, 40, 40]])
    assert cast_score(image, boxes, ["person", "dog"]) == pytest.approx(0.5, abs=0.01)
    assert np.isnan(cast_score(image, boxes, ["cat", "dog"]))
