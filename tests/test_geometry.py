import numpy as np
import pytest

from instcolor.geometry import box_info, box_infos, fusion_grids, sanitize_boxes


def placement_is_consistent(info, grid):
    left, right, top, bottom, width, height = info
    return left + width + right == grid and top + height + bottom == grid and width >= 1 and height >= 1


def test_regular_box():
    # 100x50 image, box covering the middle half horizontally and the top half vertically.
    assert box_info([25, 0, 75, 25], (100, 50), 8) == [2, 2, 0, 4, 4, 4]


def test_tiny_box_grows_right_and_down():
    # int(50/100*8) == int(51/100*8) == 4: forced one cell wide, grown to the right.
    assert box_info([50, 10, 51, 11], (100, 100), 8) == [4, 3, 0, 7, 1, 1]


def test_tiny_box_on_last_cell_grows_left_and_up():
    # end corner on cell 7 of 8: 8 - 7 == 1 is not > 1, so the start moves back instead.
    assert box_info([95, 95, 96, 96], (100, 100), 8) == [6, 1, 6, 1, 1, 1]


def test_tiny_box_at_image_edge():
    assert box_info([99, 99, 100, 100], (100, 100), 8) == [7, 0, 7, 0, 1, 1]


def test_reference_quirk_second_to_last_cell():
    # end corner on cell 6 of 8: 8 - 6 == 2 > 1, grows right to cell 7.
    assert box_info([80, 0, 81, 100], (100, 100), 8) == [6, 1, 0, 0, 1, 8]


@pytest.mark.parametrize("grid", [256, 128, 64, 32, 8])
def test_random_boxes_always_tile_the_grid(grid):
    rng = np.random.default_rng(0)
    size = (451, 300)
    raw = rng.uniform(-50, 500, size=(200, 4))
    for box in sanitize_boxes(raw, size):
        assert placement_is_consistent(box_info(box, size, grid), grid)


def test_sanitize_clips_out_of_image_and_degenerate_boxes():
    boxes = sanitize_boxes([[-10, -5, 50, 40], [90, 90, 200, 300], [30, 30, 30, 30], [100, 10, 100, 20], [60, 50, 40, 10]], (100, 80))
    np.testing.assert_array_equal(
        boxes,
        [[0, 0, 50, 40], [90, 80 - 1, 100, 80], [30, 30, 31, 31], [99, 10, 100, 20], [40, 10, 60, 50]],
    )


def test_sanitize_truncates_like_reference():
    np.testing.assert_array_equal(sanitize_boxes([[1.9, 2.5, 10.99, 20.2]], (50, 50)), [[1, 2, 10, 20]])


def test_sanitize_rejects_nan():
    with pytest.raises(ValueError):
        sanitize_boxes([[0, 0, np.nan, 1]], (10, 10))


def test_box_infos_shapes_and_empty():
    infos = box_infos(np.zeros((0, 4)), (10, 10))
    assert set(infos) == {256, 128, 64, 32}
    assert all(v.shape == (0, 6) for v in infos.values())


def test_fusion_grids():
    assert fusion_grids(256) == (256, 128, 64, 32)
    assert fusion_grids(64) == (64, 32, 16, 8)
    with pytest.raises(ValueError):
        fusion_grids(100)
