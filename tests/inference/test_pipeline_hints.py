"""``Colorizer(image, hints=...)`` and per-instance colours."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from instcolor.color.hint_spread import spread_hints
from instcolor.color.hints import parse_hints
from instcolor.color.lab import rgb_to_lab
from instcolor.inference.pipeline import HINTS_IGNORED, Colorizer
from instcolor.inference.preprocess import prepare
from instcolor.instances import Instances
from instcolor.models.model import network_input
from tests.support.helpers import TINY, gradient_image, tiny_model

IMAGE = gradient_image(height=60, width=80, channels=1)


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 Lab."""
    return rgb_to_lab(torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255.0)[0].numpy()
BOX = [[8, 6, 44, 50]]


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer(tiny_model(), size=32)


def test_no_hint_is_the_plain_path_byte_for_byte(colorizer):
    for boxes in (None, BOX):
        plain = colorizer(IMAGE, boxes=boxes)
        for hints in (None, []):
            again = colorizer(IMAGE, boxes=boxes, hints=hints)
            assert np.array_equal(plain.ab, again.ab) and plain.image.tobytes() == again.image.tobytes()
    inputs = prepare(torch.zeros(1, 1, 60, 80), np.array(BOX), 32, hints=parse_hints([], (80, 60)))
    assert inputs.full_hints is None and inputs.crop_hints is None


def test_network_input_without_hints_is_the_reference_tensor():
    lightness = torch.rand(2, 1, 8, 8) - 0.5
    plain = network_input(lightness)
    assert torch.equal(plain[:, :1], lightness) and torch.all(plain[:, 1:3] == 0) and torch.all(plain[:, 3] == -0.5)
    ab, mask = torch.rand(2, 2, 8, 8), torch.zeros(2, 1, 8, 8)
    mask[:, :, 2, 3] = 1
    hinted = network_input(lightness, ab, mask)
    assert torch.equal(hinted[:, 1:3], ab * mask) and torch.equal(hinted[:, 3:], mask - 0.5)
    assert torch.equal(network_input(lightness, torch.zeros_like(ab), torch.zeros_like(mask)), plain)


def test_a_hint_fed_to_the_networks_changes_the_result_near_it_and_warns_once_for_weights_without_hints():
    colorizer = Colorizer(tiny_model(), size=32, hint_mode="network")
    plain = colorizer(IMAGE, boxes=BOX)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        red = colorizer(IMAGE, boxes=BOX, hints=[{"xy": [20, 20], "colour": "#ff0000"}])
        colorizer(IMAGE, boxes=BOX, hints=[{"xy": [70, 50], "colour": [0, 0, 255]}])
    assert [str(w.message) for w in caught] == [HINTS_IGNORED]
    change = np.abs(red.ab - plain.ab).sum(axis=0)
    assert change.max() > 0
    assert change[10:30, 10:30].mean() > change[45:, 60:].mean()  # strongest around the hint


def test_by_default_hints_are_spread_over_the_result_without_hints_with_any_weights(colorizer):
    hints = [{"xy": [20, 20], "colour": "#ff0000"}, {"xy": [70, 50], "colour": [0, 0, 255]}]
    plain = colorizer(IMAGE, boxes=BOX)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing goes into networks trained without hints
        spread = colorizer(IMAGE, boxes=BOX, hints=hints)
    lightness = torch.from_numpy(lab_of(np.repeat(IMAGE[..., None], 3, axis=2))[None, :1])
    expected = spread_hints(lightness, torch.from_numpy(plain.ab)[None], parse_hints(hints, (80, 60), 32))
    assert np.abs(spread.ab - expected[0].numpy()).max() < 1e-3
    red = np.array(parse_hints(hints[:1], (80, 60)).ab[0])
    at_hint = spread.ab[:, 18:23, 18:23].mean(axis=(1, 2))
    assert np.linalg.norm(at_hint - red) < 0.2 * np.linalg.norm(plain.ab[:, 18:23, 18:23].mean(axis=(1, 2)) - red)


def test_hint_modes_route_point_hints(colorizer):
    hints = [{"xy": [20, 20], "colour": "#ff0000"}]
    results = {}
    for mode in ("propagate", "network", "both"):
        routed = Colorizer(colorizer.model, size=32, hint_mode=mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[mode] = routed(IMAGE, boxes=BOX, hints=hints).ab
    network_only = results["network"]
    assert not np.allclose(results["propagate"], network_only) and not np.allclose(results["both"], network_only)
    assert not np.allclose(results["both"], results["propagate"])
    with pytest.raises(ValueError, match="hint_mode must be one of"):
        Colorizer(colorizer.model, size=32, hint_mode="spread")


def test_weights_trained_with_hints_do_not_warn():
    colorizer = Colorizer(tiny_model(config=replace(TINY, hints=True)), size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        colorizer(IMAGE, hints=[{"xy": [20, 20], "colour": "#ff0000"}])


@pytest.mark.parametrize(
    ("hints", "message"),
    [
        ([{"xy": [81, 20], "colour": "#ff0000"}], "outside the 80x60 image"),
        ([{"xy": [1, 1], "colour": "#ff00"}], "a colour must be"),
        ("#ff0000", "must be a list"),
    ],
)
def test_bad_hints_raise(colorizer, hints, message):
    with pytest.raises(ValueError, match=message):
        colorizer(IMAGE, hints=hints)


@pytest.mark.filterwarnings("ignore:these weights were not trained")
def test_an_instance_colour_acts_in_its_crop_only(colorizer):
    two = [[8, 6, 44, 50], [50, 10, 78, 40]]
    plain = colorizer(IMAGE, Instances(boxes=two))
    coloured = colorizer(IMAGE, Instances(boxes=two, colours=[None, "#0000ff"]))
    assert np.abs(coloured.ab - plain.ab).max() > 0
    inputs = prepare(torch.zeros(1, 1, 60, 80), np.array(two), 32)  # what the pipeline feeds: crop 2 only
    from instcolor.color.hints import grid_hints, instance_hints
    from instcolor.geometry import sanitize_boxes

    full, crops = grid_hints(instance_hints(sanitize_boxes(np.array(two), (80, 60)), [None, (0, 0, 255)], 32),
                             (80, 60), inputs.boxes, 32)  # fmt: skip
    assert full is None and crops[0].abs().sum() == 0 and crops[1, 2].sum() > 0
    outside = np.ones((60, 80), bool)
    outside[10:40, 50:78] = False
    assert np.array_equal(coloured.ab[:, outside], plain.ab[:, outside])  # nothing outside the instance moves
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:40, 10:40] = masks[1, 15:30, 55:70] = True
    plain_masked = colorizer(IMAGE, Instances(boxes=two, masks=masks))
    masked = colorizer(IMAGE, Instances(boxes=two, masks=masks, colours=[None, "#0000ff"]))
    assert np.array_equal(masked.ab[:, ~masks[1]], plain_masked.ab[:, ~masks[1]])
    assert np.abs(masked.ab[:, masks[1]] - plain_masked.ab[:, masks[1]]).max() > 0
    full_mode = colorizer(IMAGE, Instances(boxes=two, colours=[None, "#0000ff"]), mode="full")
    assert any("ignored in --mode full" in note for note in full_mode.notes)


@pytest.mark.filterwarnings("ignore:these weights were not trained")
def test_an_instance_colour_with_a_spread_hint_in_it_leaves_the_rest_as_with_the_hint_alone(colorizer):
    two = [[8, 6, 44, 50], [50, 10, 78, 40]]
    hint = [{"xy": [60, 25], "colour": "#1e5aa8"}]  # inside instance 2, spread beyond it
    hinted = colorizer(IMAGE, Instances(boxes=two), hints=hint)
    coloured = colorizer(IMAGE, Instances(boxes=two, colours=[None, "#3c7a32"]), hints=hint)
    outside = np.ones((60, 80), bool)
    outside[10:40, 50:78] = False
    assert np.array_equal(coloured.ab[:, outside], hinted.ab[:, outside])
    assert np.abs(coloured.ab[:, ~outside] - hinted.ab[:, ~outside]).max() > 0


def test_by_default_an_instance_colour_becomes_its_silhouette_mean_colour_with_any_weights(colorizer):
    from instcolor.color.hints import colours_ab, instance_regions

    two = [[8, 6, 44, 50], [50, 10, 78, 40]]
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 10:40, 10:40] = masks[1, 15:30, 55:70] = True
    plain = colorizer(IMAGE, Instances(boxes=two, masks=masks))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing goes into networks trained without hints
        coloured = colorizer(IMAGE, Instances(boxes=two, masks=masks, colours=[None, "#b22222"]))
    feather = colorizer.model.config.support_feather
    weight = (instance_regions(np.array(two), [1], (60, 80), None, feather)
              * instance_regions(np.array(two), [1], (60, 80), masks, feather))[0, 0].numpy()  # fmt: skip
    assert weight[15:30, 55:70].min() > 0 and weight[masks[1] == 0].max() == 0  # the silhouette, softened
    mean = coloured.ab[:, weight > 0.5].mean(axis=1)
    assert np.abs(mean - colours_ab([(178, 34, 34)])[0]).max() < 1e-3
    assert np.array_equal(coloured.ab[:, weight == 0], plain.ab[:, weight == 0])
    step = (coloured.ab - plain.ab)[:, weight > 0] / weight[weight > 0]
    assert np.ptp(step, axis=1).max() < 1e-3  # one shift: the instance keeps its own variation


def test_by_default_a_box_colour_goes_to_the_object_a_random_walk_finds_in_the_box(colorizer):
    from instcolor.color.hints import colours_ab

    grey = np.full((60, 80), 40, np.uint8)
    grey[18:34, 56:72] = 200  # a light object in the middle of the box, on a dark background
    box = [[50, 10, 78, 42]]
    plain = colorizer(grey, Instances(boxes=box))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coloured = colorizer(grey, Instances(boxes=box, colours=["#b22222"]))
    moved = np.abs(coloured.ab - plain.ab).sum(axis=0)
    outside = np.ones((60, 80), bool)
    outside[10:42, 50:78] = False
    assert moved[outside].max() == 0
    object_colour = coloured.ab[:, 20:32, 58:70].mean(axis=(1, 2))
    assert np.abs(object_colour - colours_ab([(178, 34, 34)])[0]).max() < 8
    assert moved[20:32, 58:70].mean() > 5 * moved[12:16, 52:76].mean()  # the dark background in the box


def test_an_instance_colour_on_a_flat_box_colours_it_and_nothing_else(colorizer):
    flat = np.full((60, 80), 200, np.uint8)  # no edge for the random walk: the whole box is the object
    plain = colorizer(flat, Instances(boxes=[[20, 10, 60, 50]]))
    coloured = colorizer(flat, Instances(boxes=[[20, 10, 60, 50]], colours=["#b22222"]))
    assert np.isfinite(coloured.ab).all()
    rgb, before = (np.asarray(r.image.convert("RGB")).astype(int) for r in (coloured, plain))
    assert rgb[30, 40, 0] > rgb[30, 40, 1] + 20  # red inside
    assert np.array_equal(rgb[:8, :], before[:8, :])  # nothing moves outside the box
