import numpy as np
import pytest
import torch
from PIL import Image

from instcolor.color import lightness
from instcolor.instances import Instances
from instcolor.inference.pipeline import Colorizer
from tests.support.helpers import gradient_image, tiny_model


class RecordingDetector:
    name = "recording"

    def __init__(self, boxes):
        self.boxes = boxes
        self.seen = []

    def __call__(self, image):
        self.seen.append(image)
        return Instances(boxes=self.boxes, scores=[0.9] * len(self.boxes), labels=["person"] * len(self.boxes))


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer(tiny_model(), device="cpu", size=32)


def test_output_has_full_resolution_and_keeps_lightness():
    model = tiny_model()
    with torch.no_grad():  # keep predicted chroma small so that no pixel leaves the sRGB gamut
        for net in (model.full, model.fusion.backbone):
            net.ab_head[0].weight.mul_(0.02)
            net.ab_head[0].bias.fill_(0.05)
    grey = (60 + gradient_image(height=75, width=130, channels=1) * 0.55).astype(np.uint8)  # mid-tones
    result = Colorizer(model, size=32)(grey, boxes=[[10, 5, 60, 40]])
    assert result.image.size == (130, 75) and result.image.mode == "RGB"
    assert result.ab.shape == (2, 75, 130)
    assert result.mode == "fusion"
    out = torch.from_numpy(np.asarray(result.image) / 255.0).permute(2, 0, 1)[None].float()
    source = torch.from_numpy(np.repeat(grey[..., None], 3, 2) / 255.0).permute(2, 0, 1)[None].float()
    # the output's lightness is the input's (up to 8-bit rounding and gamut clipping)
    error = (lightness(out) - lightness(source)).abs()
    assert error.mean() < 0.3 and error.quantile(0.99) < 1.0
    assert np.asarray(result.image).std(axis=2).mean() > 0  # it is not grey


def test_no_box_runs_the_full_image_network(colorizer):
    result = colorizer(gradient_image(channels=1), instances=Instances())
    assert result.mode == "full" and len(result.instances) == 0


def test_full_mode_ignores_boxes_and_differs_from_fusion(colorizer):
    image = gradient_image(channels=1)
    fused = colorizer(image, boxes=[[0, 0, 40, 30]])
    full = colorizer(image, boxes=[[0, 0, 40, 30]], mode="full")
    plain = colorizer(image, instances=Instances())
    assert full.mode == "full"
    np.testing.assert_array_equal(full.ab, plain.ab)
    assert np.abs(fused.ab - full.ab).max() > 1e-3


def test_detector_runs_on_grey_and_given_boxes_override_it():
    detector = RecordingDetector([[5, 5, 30, 30]])
    colorizer = Colorizer(tiny_model(), detector=detector, size=32)
    detected = colorizer(gradient_image())
    assert len(detector.seen) == 1 and detected.detector == "recording"
    seen = detector.seen[0]
    assert seen.dtype == np.uint8 and seen.shape == (48, 64, 3)
    assert np.all(seen[..., 0] == seen[..., 1])  # the detector saw the grey image
    given = colorizer(gradient_image(), boxes=[[1, 1, 20, 20]])
    assert len(detector.seen) == 1 and given.detector is None
    np.testing.assert_array_equal(given.boxes, [[1, 1, 20, 20]])


def test_alpha_is_carried_over(colorizer):
    rgba = np.dstack([gradient_image(), np.linspace(0, 255, 48 * 64).reshape(48, 64).astype(np.uint8)])
    result = colorizer(Image.fromarray(rgba, "RGBA"))
    assert result.image.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(result.image)[..., 3], rgba[..., 3])


def test_cpu_results_are_deterministic(colorizer):
    image = gradient_image(seed=3)
    first = colorizer(image, boxes=[[3, 4, 30, 40], [20, 10, 60, 47]])
    second = colorizer(image, boxes=[[3, 4, 30, 40], [20, 10, 60, 47]])
    np.testing.assert_array_equal(first.ab, second.ab)
    np.testing.assert_array_equal(np.asarray(first.image), np.asarray(second.image))


def test_tiny_border_and_out_of_image_boxes(colorizer):
    boxes = [[0, 0, 1, 1], [63, 47, 64, 48], [-20, -20, 500, 500], [30, 30, 30, 30]]
    result = colorizer(gradient_image(), boxes=boxes)
    assert result.mode == "fusion" and np.isfinite(result.ab).all()


def test_many_instances(colorizer):
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(0, 48, size=(20, 2, 2)), axis=1).reshape(20, 4)[:, [0, 2, 1, 3]]
    result = colorizer(gradient_image(), boxes=boxes)
    assert len(result.instances) == 8 and np.isfinite(result.ab).all()  # capped (max_instances=8)
    assert any("kept the 8" in note for note in result.notes)
    colorizer.max_instances = 0
    result = colorizer(gradient_image(), boxes=boxes)
    assert len(result.instances) == 20 and np.isfinite(result.ab).all()


def test_16bit_input_and_path_input(colorizer, tmp_path):
    values = (gradient_image(channels=1).astype(np.uint16) * 257)
    Image.fromarray(values).save(tmp_path / "deep.png")
    result = colorizer(tmp_path / "deep.png")
    assert result.image.size == (64, 48)


def test_bad_mode(colorizer):
    with pytest.raises(ValueError):
        colorizer(gradient_image(), mode="sepia")


def test_from_pretrained_loads_paper_coco_by_name(tmp_path, monkeypatch):
    """``Colorizer.from_pretrained("paper-coco")`` with a tiny ``paper-coco`` installed in the home."""
    from instcolor.models.weights.registry import weights_home
    from instcolor.models.weights.store import save_model

    model = tiny_model(seed=4)
    weights_home().mkdir(parents=True, exist_ok=True)
    save_model(weights_home() / "paper-coco.safetensors", model, {"source": "tests: a tiny paper-coco", "licence": "MIT"})
    colorizer = Colorizer.from_pretrained("paper-coco", device="cpu", detector=None)
    assert colorizer.metadata["source"] == "tests: a tiny paper-coco"
    loaded = colorizer.model.state_dict()
    for key, value in model.state_dict().items():
        if key in loaded and loaded[key].is_floating_point():
            torch.testing.assert_close(loaded[key].float(), value, msg=key)
    result = colorizer(gradient_image(channels=1), boxes=[[4, 4, 40, 30]])
    assert result.image.size == (64, 48) and result.mode == "fusion"


def test_bundled_starter_colours_a_bundled_sample():
    from pathlib import Path

    from instcolor.color import rgb_to_lab

    sample = Path(__file__).resolve().parents[2] / "samples" / "pig.jpg"
    colorizer = Colorizer.from_pretrained("starter", device="cpu", detector="centernet")
    result = colorizer(sample)
    assert result.image.size == Image.open(sample).size
    rgb = torch.from_numpy(np.asarray(result.image.convert("RGB"), np.float32) / 255.0).permute(2, 0, 1)[None]
    lab = rgb_to_lab(rgb)[0]
    assert float(lab[1:].abs().sum(0).mean()) > 3.0  # coloured, not grey
    assert float(lab[1:].abs().sum(0).std()) > 1.0  # and not one flat cast
    assert len(result.boxes) >= 1  # the embedded detector found the pig
