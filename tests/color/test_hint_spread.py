"""``spread_hints``: hint colours spread over a result, edge-aware."""

import numpy as np
import torch
import torch.nn.functional as F

from instcolor.color.hint_spread import PRIOR, WORK_SIDE, spread_hints
from instcolor.color.hints import Hints

RED_AB = np.array([60.0, 40.0], np.float32)


def two_halves(height: int = 64, width: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Lightness 30 on the left half, 80 on the right; a flat, slightly warm result everywhere."""
    lightness = torch.full((1, 1, height, width), 30.0)
    lightness[..., width // 2 :] = 80.0
    ab = torch.zeros(1, 2, height, width)
    ab[:, 1] = 5.0
    return lightness, ab


def point(x: float, y: float, ab=RED_AB, side: float = 4.0) -> Hints:
    return Hints([[x - side / 2, y - side / 2, x + side / 2, y + side / 2]], [ab])


def test_no_hint_leaves_the_result_as_it_is():
    lightness, ab = two_halves()
    assert spread_hints(lightness, ab, Hints()) is ab


def test_a_hint_colours_its_spot_and_its_side_of_a_lightness_edge_only():
    lightness, ab = two_halves()
    spread = spread_hints(lightness, ab, point(20, 32))[0].numpy()
    at_spot = spread[:, 30:34, 18:22].mean(axis=(1, 2))
    residual = RED_AB - np.array([0.0, 5.0])
    assert np.abs(at_spot - RED_AB).max() <= PRIOR / (1 + PRIOR) * np.abs(residual).max() + 0.5
    moved = np.abs(spread - ab[0].numpy()).sum(axis=0)
    assert moved[:, 30:44].mean() > 30  # the hinted (dark) half, near the edge
    assert moved[:, 52:66].max() < 0.5  # the light half across the edge, as near to the hint


def test_far_from_every_hint_the_result_stays():
    lightness = torch.full((1, 1, 64, 640), 50.0)
    ab = torch.zeros(1, 2, 64, 640)
    moved = (spread_hints(lightness, ab, point(10, 32)) - ab).abs().sum(dim=1)[0]
    assert moved[:, :20].mean() > 30 and moved[:, -40:].max() < 0.5


def test_two_hints_on_two_surfaces_each_keep_their_colour():
    lightness, ab = two_halves()
    blue = np.array([10.0, -45.0], np.float32)
    hints = point(20, 32) + point(76, 32, blue)
    spread = spread_hints(lightness, ab, hints)[0].numpy()
    assert np.abs(spread[:, 20:44, 8:32].mean(axis=(1, 2)) - RED_AB).max() < 8  # around each hint
    assert np.abs(spread[:, 20:44, 64:88].mean(axis=(1, 2)) - blue).max() < 8


def test_the_spread_does_not_depend_on_the_image_resolution():
    small_l, small_ab = two_halves(64, 96)
    scale = 2 * WORK_SIDE // 96 + 1  # well above the working grid
    large_l, large_ab = (F.interpolate(t, scale_factor=scale, mode="nearest") for t in (small_l, small_ab))
    small = spread_hints(small_l, small_ab, point(20, 32))
    large = spread_hints(large_l, large_ab, point(20 * scale, 32 * scale, side=4.0 * scale))
    down = F.interpolate(large, size=small.shape[-2:], mode="area")
    away_from_edge = torch.ones(96, dtype=torch.bool)
    away_from_edge[40:56] = False
    assert (down - small)[..., away_from_edge].abs().max() < 1.0


def test_shift_to_colour_sets_the_weighted_mean_and_moves_nothing_of_weight_zero():
    from instcolor.color.hint_spread import shift_to_colour

    ab = torch.randn(1, 2, 20, 30) * 10
    weight = torch.zeros(1, 1, 20, 30)
    assert shift_to_colour(ab, weight, RED_AB) is ab
    weight[..., 5:15, 10:20] = torch.linspace(0.2, 1.0, 10)  # a soft border
    shifted = shift_to_colour(ab, weight, RED_AB)
    core = weight[0, 0] > 0.5
    assert torch.allclose(shifted[0][:, core].mean(dim=1), torch.tensor(RED_AB), atol=1e-3)
    assert torch.equal(shifted[..., weight[0, 0] == 0], ab[..., weight[0, 0] == 0])
    step = (shifted - ab)[0][:, weight[0, 0] > 0] / weight[0, 0][weight[0, 0] > 0]
    assert torch.allclose(step, step[:, :1].expand_as(step), atol=1e-4)  # one step: no overshoot on the border
    assert shift_to_colour(ab, torch.full_like(weight, 0.4), RED_AB) is ab  # no core: nothing to set


def test_box_foreground_follows_the_object_at_the_centre_of_the_box():
    from instcolor.color.hint_spread import box_foreground

    lightness = torch.full((1, 1, 120, 200), 30.0)
    lightness[..., 40:90, 70:150] = 75.0  # the object: off-centre in the box, touching its centre
    chance = box_foreground(lightness, (40, 20, 180, 110))  # 140 x 90 box
    assert chance.shape == (90, 140) and 0 <= chance.min() and chance.max() <= 1
    object_part = chance[20 + 5 : 70 - 5, 30 + 5 : 110 - 5]  # the object inside the box, off its edges
    background = chance[:, :20]  # the box's dark left part
    assert object_part.min() > 0.8 and background.max() < 0.2


def test_box_foreground_of_a_flat_region_is_the_whole_box():
    from instcolor.color.hint_spread import box_foreground

    for level in (0.0, 100.0):  # pure black or white: no edge for the walk to follow (it would divide by 0)
        chance = box_foreground(torch.full((1, 1, 60, 80), level), (20, 10, 60, 50))
        assert torch.equal(chance, torch.ones(40, 40))


def test_an_empty_or_full_mask_counts_as_no_mask():
    from instcolor.color.hint_spread import instance_colour_weight

    lightness = torch.full((1, 1, 60, 80), 30.0)
    lightness[..., 20:40, 30:50] = 80.0
    boxes = np.array([[20, 10, 60, 50]])
    without = instance_colour_weight(lightness, boxes, 0, None)
    for fill in (False, True):
        masks = np.full((1, 60, 80), fill)
        assert torch.allclose(instance_colour_weight(lightness, boxes, 0, masks), without)
    assert without[0, 0, 30, 40] > 0.9 and without[0, 0, 12, 22] < 0.2  # the light object, not the corner
