"""The evaluation protocol end to end, checked against an independent re-derivation of each step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from torch import nn

from tests.support.helpers import tiny_model
from instcolor.evaluation import EvaluationConfig, evaluate
from instcolor.evaluation.metrics import BackboneWeights
from instcolor.instances import Instances, load_boxes_file
from instcolor.inference.pipeline import Colorizer


def by_name(result, name):
    return next(r for r in result.images if r.name == name)


def independent_truth_and_grey(path, side):
    """The protocol's first steps written out with numpy and Pillow only."""
    truth = np.asarray(Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
    luma = ((truth.astype(np.float64) / 255.0) * np.array([0.2125, 0.7154, 0.0721])).sum(axis=2) * 255.0
    return truth, np.clip(np.round(luma), 0, 255).astype(np.uint8)


def test_images_skipped_and_failed_are_accounted_for(evaluated):
    assert sorted(r.name for r in evaluated.images) == ["astronaut.png", "chelsea.png", "coffee.png"]
    skipped = dict(evaluated.skipped)
    assert "one colour channel" in skipped["grey.png"]
    assert "ab range" in skipped["colourless.png"]
    assert [name for name, _ in evaluated.failed] == ["broken.png"]


def test_grey_baseline_and_full_network_match_an_independent_computation(evaluated, photo_set):
    truth, grey = independent_truth_and_grey(photo_set["folder"] / "chelsea.png", 64)
    record = by_name(evaluated, "chelsea.png")
    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    assert record.metrics["grey"]["image"]["psnr"] == pytest.approx(sk_psnr(truth, grey_rgb, data_range=255), abs=1e-5)
    assert record.metrics["grey"]["image"]["colourfulness"] == 0.0
    full = np.asarray(Colorizer(tiny_model(0), size=64)(grey, Instances(), mode="full").image)
    assert record.metrics["full"]["image"]["psnr"] == pytest.approx(sk_psnr(truth, full, data_range=255), abs=1e-5)


def test_boxes_are_mapped_and_small_ones_left_out(evaluated, photo_set):
    width, height = photo_set["sizes"]["chelsea"]
    chelsea = by_name(evaluated, "chelsea.png")
    assert chelsea.eval_size == (64, 64) and chelsea.size == (width, height)
    expected = [int(20 * 64 / width), int(5 * 64 / height), int(80 * 64 / width), int(60 * 64 / height)]
    assert chelsea.instances[0]["eval_box"] == expected
    assert chelsea.modes["fusion"] == "fusion" and chelsea.modes["full"] == "full"
    coffee = by_name(evaluated, "coffee.png")
    assert [inst["used"] for inst in coffee.instances] == [True, False]
    assert len(coffee.metrics["fusion"]["instances"]) == 1


def test_instance_metrics_are_measured_inside_the_box(evaluated, photo_set):
    truth, grey = independent_truth_and_grey(photo_set["folder"] / "chelsea.png", 64)
    x1, y1, x2, y2 = by_name(evaluated, "chelsea.png").instances[0]["eval_box"]
    inside = by_name(evaluated, "chelsea.png").metrics["grey"]["instances"][0]["psnr"]
    crop = (slice(y1, y2), slice(x1, x2))
    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    assert inside == pytest.approx(sk_psnr(truth[crop], grey_rgb[crop], data_range=255), abs=1e-5)


def test_image_without_boxes_uses_the_full_network(evaluated):
    astronaut = by_name(evaluated, "astronaut.png")
    assert astronaut.instances == [] and astronaut.modes["fusion"] == "full"
    assert astronaut.metrics["fusion"]["image"] == pytest.approx(astronaut.metrics["full"]["image"], nan_ok=True)


def test_lpips_is_computed_for_every_method_and_fid_is_reported_unavailable(evaluated):
    assert list(evaluated.methods) == ["grey", "full", "fusion", "compare"]
    for record in evaluated.images:
        for method in evaluated.methods:
            value = record.metrics[method]["image"]["lpips"]
            assert np.isfinite(value) and value > 0
    assert "lpips" not in evaluated.unavailable
    assert "inception_v3_google" in evaluated.unavailable["fid"] and evaluated.fid == {}
    assert "NOT the torchvision release" in evaluated.protocol["lpips"]


def test_summaries_pool_images_and_instances(evaluated):
    values = [r.metrics["fusion"]["image"]["psnr"] for r in evaluated.images]
    summary = evaluated.summary["image"]["fusion"]["psnr"]
    assert summary.mean == pytest.approx(np.mean(values)) and summary.n == 3
    assert summary.low <= summary.mean <= summary.high
    instance = evaluated.summary["instance"]["fusion"]["ssim"]
    assert instance.n == 2 and instance.n_images == 2
    assert evaluated.summary["image"]["ground_truth"]["colourfulness"].mean > 10


class RecordingDetector:
    """A stand-in detector: remembers what it saw, returns one box in the image's pixels."""

    name = "recording"

    def __init__(self):
        self.seen = []

    def __call__(self, grey):
        self.seen.append(grey)
        height, width = grey.shape[:2]
        return Instances(boxes=[[0, 0, width * 0.75, height * 0.75]], labels=["thing"], scores=[0.99])


def test_detector_runs_on_the_full_resolution_grey_photo(photo_set):
    detector = RecordingDetector()
    path = photo_set["folder"] / "coffee.png"
    config = EvaluationConfig(resolution=64, lpips=False, fid=False, bootstrap_resamples=0)
    result = evaluate([path], Colorizer(tiny_model(0), size=64, detector=detector), config=config)
    (seen,) = detector.seen
    assert seen.shape[:2] == (photo_set["sizes"]["coffee"][1], photo_set["sizes"]["coffee"][0])
    assert np.array_equal(seen[..., 0], seen[..., 1]) and np.array_equal(seen[..., 0], seen[..., 2])
    record = result.images[0]
    assert record.modes["fusion"] == "fusion" and record.instances[0]["eval_box"] == [0, 0, 48, 48]
    assert "recording" in result.protocol["boxes"]


def test_full_resolution_and_metrics_turned_off(photo_set):
    path = photo_set["folder"] / "chelsea.png"
    config = EvaluationConfig(resolution=None, lpips=False, fid=False, bootstrap_resamples=0)
    result = evaluate([path], Colorizer(tiny_model(0), size=64), boxes=load_boxes_file(photo_set["boxes"]), config=config)
    record = result.images[0]
    assert record.eval_size == record.size == photo_set["sizes"]["chelsea"]
    assert record.instances[0]["eval_box"] == [20, 5, 80, 60]
    assert "lpips" not in record.metrics["full"]["image"]  # never a silent 0
    assert result.unavailable == {"lpips": "turned off for this run", "fid": "turned off for this run"}
    assert result.protocol["resolution"] == "full"


class PixelStatistics(nn.Module):
    num_features = 12

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images.float(), 2).flatten(1)


def test_frechet_distance_is_wired_for_every_method(photo_set, monkeypatch, tmp_path):
    fake = BackboneWeights(path=tmp_path / "features.pth", origin="argument", sha256="0" * 64, official=False)
    monkeypatch.setattr("instcolor.evaluation.runner.load_inception", lambda *a, **k: (PixelStatistics(), fake))
    paths = [photo_set["folder"] / f"{n}.png" for n in ("chelsea", "coffee", "astronaut")]
    config = EvaluationConfig(resolution=32, lpips=False, bootstrap_resamples=0)
    result = evaluate(paths, Colorizer(tiny_model(0), size=64), config=config)
    assert set(result.fid) == {"grey", "full", "fusion"}
    assert all(np.isfinite(v) and v >= 0 for v in result.fid.values())
    assert "fid" not in result.unavailable and "features.pth" in result.protocol["fid"]


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="multiple of 8"):
        EvaluationConfig(resolution=100)
    with pytest.raises(ValueError, match="at least 31"):
        EvaluationConfig(min_box_side=16)


def test_synthetic_scenes_evaluate_end_to_end(tmp_path):
    from instcolor.training.synthetic import write_scenes

    boxes = write_scenes(tmp_path / "scenes", count=2, size=64, seed=0, objects=(1, 2), object_size=(0.3, 0.4))
    paths = sorted((tmp_path / "scenes").glob("*.png"))
    config = EvaluationConfig(resolution=128, lpips=False, fid=False, bootstrap_resamples=0)
    result = evaluate(paths, Colorizer(tiny_model(0), size=64), boxes=load_boxes_file(boxes), config=config)
    assert len(result.images) == 2 and not result.failed and not result.skipped
    assert all(r.modes["fusion"] == "fusion" for r in result.images)
    assert result.summary["instance"]["fusion"]["psnr"].n > 0


def test_paired_differences_are_per_photo_and_per_instance_differences(evaluated):
    assert set(evaluated.differences["image"]) == {"fusion-full", "fusion-compare"}
    for pair in ("fusion-full", "fusion-compare"):
        first, second = pair.split("-")
        image = evaluated.differences["image"][pair]["psnr"]
        # fusion against full only where fusion had instances (the astronaut has none: both are the full network)
        records = [r for r in evaluated.images if pair == "fusion-compare" or r.modes["fusion"] == "fusion"]
        values = [r.metrics[first]["image"]["psnr"] - r.metrics[second]["image"]["psnr"] for r in records]
        assert image.mean == pytest.approx(np.mean(values)) and image.n == len(values) == (2 if second == "full" else 3)
        assert image.low <= image.mean <= image.high
        inside = evaluated.differences["instance"][pair]["ssim"]
        per_instance = [
            a["ssim"] - b["ssim"]
            for r in evaluated.images
            for a, b in zip(r.metrics[first]["instances"], r.metrics[second]["instances"])
        ]
        assert inside.mean == pytest.approx(np.mean(per_instance)) and inside.n == 2 and inside.n_images == 2
    assert "lpips" in evaluated.differences["image"]["fusion-full"]  # LPIPS ran: compared too


def test_paired_differences_count_perfect_results_instead_of_dropping_them():
    from types import SimpleNamespace

    from instcolor.evaluation.stats import paired_differences

    def record(a, b):
        return SimpleNamespace(metrics={"x": {"image": {"psnr": a}, "instances": []}, "y": {"image": {"psnr": b}, "instances": []}})

    records = [record(float("inf"), 20.0), record(float("inf"), float("inf")), record(22.0, 21.0), record(23.0, 21.0)]
    found = paired_differences(records, "x", "y", ["psnr"], resamples=0)["image"]["psnr"]
    assert found.n == 4 and found.mean == pytest.approx((80.0 + 0.0 + 1.0 + 2.0) / 4)
