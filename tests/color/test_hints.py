import numpy as np
import pytest
import torch

from instcolor.color import AB_SCALE, rgb_to_lab
from instcolor.color.hints import (
    Hints,
    colours_ab,
    draw_training_hints,
    grid_hints,
    hint_planes,
    instance_hints,
    instance_regions,
    parse_hints,
)
from instcolor.geometry import sanitize_boxes
from instcolor.instances import parse_colour
from instcolor.inference.preprocess import crop_and_resize


def test_a_point_hint_lands_in_the_crops_that_contain_it_at_the_right_place():
    width, height, size = 200, 100, 32
    boxes = sanitize_boxes(np.array([[0, 0, 100, 100], [100, 0, 200, 50], [120, 20, 180, 80]]), (width, height))
    hints = Hints(rects=[[150, 30, 150, 30]], ab=[[40, -20]])  # one point in boxes 2 and 3, not in box 1
    full, crops = grid_hints(hints, (width, height), boxes, size)
    assert full[0, 2].sum() == 1 and full[0, 2, int(30 / height * size), int(150 / width * size)] == 1
    assert crops[0].abs().sum() == 0
    for k, (x1, y1, x2, y2) in ((1, boxes[1]), (2, boxes[2])):
        row, col = int((30 - y1) / (y2 - y1) * size), int((150 - x1) / (x2 - x1) * size)
        assert crops[k, 2].sum() == 1 and crops[k, 2, row, col] == 1
        torch.testing.assert_close(crops[k, :2, row, col], torch.tensor([40.0, -20.0]) / AB_SCALE)


def test_hint_planes_follow_the_crop_geometry_of_crop_and_resize():
    """A marked pixel block, cropped and resized like the crops, lands where its hint is drawn."""
    width, height, size = 90, 60, 16
    box = sanitize_boxes(np.array([[13, 7, 77, 51]]), (width, height))[0]
    image = torch.zeros(1, 1, height, width)
    rect = [40, 20, 52, 31]
    image[..., rect[1] : rect[3], rect[0] : rect[2]] = 1.0
    crop = crop_and_resize(image, box[None], size)[0, 0]
    planes = hint_planes(Hints(rects=[rect], ab=[[10, 10]]), box, size, instance=0)
    covered = planes[0, 2] > 0
    assert crop[covered].min() > 0  # every hint cell sees some of the block
    assert crop[~covered].max() < 0.5  # cells the hint leaves out are mostly outside the block


def test_a_tiny_hint_never_vanishes_on_a_coarse_grid():
    planes = hint_planes(Hints(rects=[[500.2, 300.1, 500.4, 300.3]], ab=[[1, 2]]), (0, 0, 4000, 3000), 8)
    assert planes[0, 2].sum() == 1 and planes[0, 2, 0, 1] == 1  # 500/4000*8 = 1, 300/3000*8 = 0.8


def test_cell_aligned_patches_cover_exactly_their_cells():
    size, width, height = 32, 97, 61
    rect = [5 * width / size, 7 * height / size, 9 * width / size, 10 * height / size]
    planes = hint_planes(Hints(rects=[rect], ab=[[0, 0]]), (0, 0, width, height), size)
    expected = torch.zeros(size, size)
    expected[7:10, 5:9] = 1
    assert torch.equal(planes[0, 2], expected)


def test_instance_hints_reach_only_their_own_crop():
    boxes = np.array([[0, 0, 64, 64], [0, 0, 64, 64]])  # the same region twice
    hints = instance_hints(boxes, [None, (200, 30, 30)], size=32)
    full, crops = grid_hints(hints, (64, 64), boxes, 32)
    assert full is None and crops[0].abs().sum() == 0 and crops[1, 2].sum() > 0
    red_ab = colours_ab([(200, 30, 30)])[0] / AB_SCALE
    torch.testing.assert_close(crops[1, :2][:, crops[1, 2] > 0].mean(dim=1), torch.from_numpy(red_ab))


def test_instance_hints_stay_on_the_silhouette():
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 32:, :] = True  # lower half
    hints = instance_hints(np.array([[0, 0, 64, 64]]), [(0, 0, 255)], size=32, masks=masks)
    assert len(hints) and hints.rects[:, 1].min() >= 28  # patches around points in the lower half only


def test_no_hint_gives_no_planes():
    assert grid_hints(None, (10, 10), np.zeros((0, 4)), 8) == (None, None)
    assert grid_hints(Hints(), (10, 10), np.zeros((0, 4)), 8) == (None, None)
    outside = Hints(rects=[[0, 0, 1, 1]], ab=[[1, 1]])
    full, crops = grid_hints(outside, (10, 10), np.array([[5, 5, 10, 10]]), 8)
    assert full is not None and crops is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("#b22222", (178, 34, 34)), ("B22222", (178, 34, 34)), ([1, 2, 3], (1, 2, 3))],
)
def test_parse_colour(value, expected):
    assert parse_colour(value) == expected


@pytest.mark.parametrize("value", ["#b2222", "red", [1, 2], [1, 2, 256], [1.5, 2, 3], [True, 2, 3], 7, None])
def test_parse_colour_rejects_bad_colours(value):
    with pytest.raises(ValueError, match="colour"):
        parse_colour(value)


def test_parse_hints_maps_colours_to_lab_ab():
    hints = parse_hints([{"xy": [10, 20], "colour": "#ff0000"}, {"xy": [0, 0], "color": [0, 0, 255]}], (64, 48))
    expected = rgb_to_lab(torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]).T.reshape(1, 3, 2, 1))[0, 1:, :, 0].T
    np.testing.assert_allclose(hints.ab, expected.numpy(), rtol=1e-5)
    assert np.all(hints.instance == -1)
    x1, y1, x2, y2 = hints.rects[0]
    assert x1 <= 10 <= x2 and y1 <= 20 <= y2


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"xy": [1, 1]}, "must be a list"),
        ([[1, 1]], "hint 1: must be an object"),
        ([{"xy": [1, 1], "colour": "#000000"}, {"xy": [65, 1], "colour": "#000000"}], "hint 2: point .* outside"),
        ([{"xy": [-1, 1], "colour": "#000000"}], "outside the 64x48 image"),
        ([{"xy": ["1", 1], "colour": "#000000"}], "'xy' must be two numbers"),
        ([{"xy": [1, float("nan")], "colour": "#000000"}], "finite"),
        ([{"xy": [1, 1]}], "no 'colour'"),
        ([{"xy": [1, 1], "colour": "blue"}], "hint 1: a colour must be"),
        ([{"xy": [1, 1], "colour": "#000000", "size": 3}], "unknown key"),
    ],
)
def test_parse_hints_rejects_bad_input(items, message):
    with pytest.raises(ValueError, match=message):
        parse_hints(items, (64, 48))


def test_training_hints_follow_zhang_et_al():
    size, width, height = 64, 300, 200
    target = torch.rand(2, size, size) * 2 - 1
    counts, inside = [], True
    for seed in range(2000):
        hints = draw_training_hints(target, (width, height), torch.Generator().manual_seed(seed), no_hint_share=0.25)
        counts.append(len(hints))
        inside &= bool(np.all(hints.rects[:, [0, 2]] >= 0) and np.all(hints.rects[:, [0, 2]] <= width))
        inside &= bool(np.all(hints.rects[:, [1, 3]] >= 0) and np.all(hints.rects[:, [1, 3]] <= height))
    counts = np.array(counts)
    assert inside
    # P(0) = 0.25 + 0.75 / 8; the hinted samples have a geometric count of mean (1 - p) / p = 7.
    assert abs((counts == 0).mean() - (0.25 + 0.75 / 8)) < 0.03
    assert abs(counts.mean() - 0.75 * 7) < 0.6


def test_training_hints_reveal_the_mean_colour_of_their_patch():
    size = 32
    target = torch.rand(2, size, size) * 2 - 1
    hints = draw_training_hints(target, (size, size), torch.Generator().manual_seed(3), count=5)
    assert len(hints) == 5
    for rect, ab in zip(hints.rects, hints.ab):
        x1, y1, x2, y2 = (round(v) for v in rect)
        assert 1 <= x2 - x1 <= 9 and x2 - x1 == y2 - y1
        np.testing.assert_allclose(ab, target[:, y1:y2, x1:x2].mean(dim=(1, 2)).numpy() * AB_SCALE, rtol=1e-5)
    planes = hint_planes(hints, (0, 0, size, size), size)
    x1, y1, x2, y2 = (round(v) for v in hints.rects[-1])
    torch.testing.assert_close(planes[0, :2, y1:y2, x1:x2].mean(dim=(1, 2)), torch.from_numpy(hints.ab[-1] / AB_SCALE))


def test_instance_regions_are_masks_or_feathered_boxes():
    boxes = np.array([[2, 2, 12, 10], [20, 0, 30, 8]])
    masks = np.zeros((2, 16, 32), bool)
    masks[1, 2:5, 22:25] = True
    weight = instance_regions(boxes, [0], (16, 32), feather=0.25)[0, 0]
    assert weight[:2].max() == 0 and weight[10:].max() == 0 and weight[:, 12:].max() == 0
    assert weight[6, 7] == 1 and 0 < weight[2, 7] < 1  # ramps up over a quarter of the box
    masked = instance_regions(boxes, [1, 1], (16, 32), masks=masks)[0, 0]
    assert torch.equal(masked.bool(), torch.from_numpy(masks[1]))
