"""PSNR against hint points (``EvaluationConfig.hint_points``, ``instcolor evaluate --hints``)."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from instcolor.evaluation import EvaluationConfig, evaluate, write_report
from instcolor.evaluation.hints import ground_truth_hints, hint_psnr, image_seed, parse_points
from instcolor.evaluation.metrics import psnr
from instcolor.inference.pipeline import Colorizer
from instcolor.instances import Instances, load_boxes_file
from tests.support.helpers import gradient_image, tiny_model


@pytest.mark.parametrize(("text", "points"), [("0,1,2,5,10,20", (0, 1, 2, 5, 10, 20)), ("10", (10,)), ("5, 0,5", (0, 5))])
def test_parse_points(text, points):
    assert parse_points(text) == points


@pytest.mark.parametrize("text", ["", "a", "-1,2", "1.5"])
def test_parse_points_rejects_bad_lists(text):
    with pytest.raises(ValueError, match="--hints"):
        parse_points(text)


def test_ground_truth_hints_are_deterministic_point_sized_and_inside():
    truth = gradient_image(60, 90)
    first = ground_truth_hints(truth, 20, 32, image_seed(0, "a.png"))
    again = ground_truth_hints(truth, 20, 32, image_seed(0, "a.png"))
    other = ground_truth_hints(truth, 20, 32, image_seed(0, "b.png"))
    assert len(first) == 20 and np.array_equal(first.rects, again.rects) and not np.array_equal(first.rects, other.rects)
    widths = first.rects[:, 2] - first.rects[:, 0]
    np.testing.assert_allclose(widths, 3 * 90 / 32)
    assert first.rects.min() >= 0 and first.rects[:, 2].max() <= 90 and first.rects[:, 3].max() <= 60


class _Oracle:
    """A colorizer that paints each hint's colour over its whole rectangle (and nothing else):
    more ground-truth points, closer to the truth."""

    size = 32

    def __init__(self, truth):
        self.truth = truth

    def __call__(self, grey, instances, mode="fusion", hints=None):
        out = np.repeat(grey[..., None], 3, axis=2).copy()
        for x1, y1, x2, y2 in ([] if hints is None else hints.rects.astype(int).tolist()):
            out[y1:y2, x1:x2] = self.truth[y1:y2, x1:x2]
        return type("Result", (), {"image": Image.fromarray(out)})()


def test_hint_psnr_uses_the_first_n_points_of_one_draw():
    truth = gradient_image(64, 64)
    grey = truth.mean(axis=2).astype(np.uint8)
    values = hint_psnr(_Oracle(truth), grey, truth, Instances(), (0, 1, 5, 20), seed=3)
    assert list(values) == [0, 1, 5, 20]
    assert values[0] == pytest.approx(psnr(np.repeat(grey[..., None], 3, axis=2), truth))
    assert values[0] < values[5] < values[20]  # nested draws: more revealed, never less


@pytest.mark.parametrize("hint_mode", ["propagate", "network"])
def test_evaluation_with_hint_points_reports_a_curve(tmp_path, hint_mode):
    from instcolor.training.synthetic import write_scenes

    boxes = write_scenes(tmp_path / "scenes", count=2, size=64, seed=0, objects=(1, 2), object_size=(0.3, 0.4))
    paths = sorted((tmp_path / "scenes").glob("*.png"))
    config = EvaluationConfig(resolution=64, lpips=False, fid=False, bootstrap_resamples=0, hint_points=(5, 0, 2))
    colorizer = Colorizer(tiny_model(0), size=32, hint_mode=hint_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(paths, colorizer, boxes=load_boxes_file(boxes), config=config)
    warned = any("not trained with colour hints" in str(w.message) for w in caught)
    assert warned == (hint_mode == "network")  # only hints fed to the networks need weights trained with them
    assert list(result.hint_curve) == [0, 2, 5]
    for record in result.images:
        assert record.hint_psnr[0] == pytest.approx(record.metrics["fusion"]["image"]["psnr"])
        assert record.hint_psnr[5] != record.hint_psnr[0]
        if hint_mode == "propagate":  # ground-truth colours spread over the result bring it closer
            assert record.hint_psnr[5] > record.hint_psnr[0]
    assert result.protocol["weights_trained_with_hints"] is False and result.protocol["hint_mode"] == hint_mode
    written = write_report(result, tmp_path / "report")
    assert "hints.png" in written and Image.open(written["hints.png"]).size[0] > 100
    report = written["report.md"].read_text()
    assert "## PSNR against hint points" in report and "| 5 |" in report
    assert ("not trained with hints" in report) == (hint_mode == "network")
    data = json.loads(written["metrics.json"].read_text())
    assert set(data["hint_curve"]) == {"0", "2", "5"} and set(data["images"][0]["hint_psnr"]) == {"0", "2", "5"}


def test_no_hint_points_no_curve(tmp_path):
    Image.fromarray(gradient_image(48, 64)).save(tmp_path / "a.png")
    config = EvaluationConfig(resolution=32, lpips=False, fid=False, bootstrap_resamples=0)
    result = evaluate([tmp_path / "a.png"], Colorizer(tiny_model(0), size=32), config=config)
    assert not result.hint_curve and "hints" not in result.protocol and "hint_psnr" not in result.images[0].to_json()
    assert "hints.png" not in write_report(result, tmp_path / "report")
