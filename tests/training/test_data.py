import numpy as np
import pytest
import torch
from PIL import Image

from instcolor.training.data import (
    NO_AUGMENTATION,
    Augmentation,
    ColorizationDataset,
    StepBatchSampler,
    TrainingItem,
    ab_range,
    collate,
    collect_items,
    find_instances,
    transform_boxes,
)
from instcolor.instances import Instances, load_boxes_file
from instcolor.color import AB_SCALE
from instcolor.training.synthetic import write_scenes
from tests.support.helpers import gradient_image


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    boxes = write_scenes(folder / "nested", 6, size=64, seed=1)
    return folder, load_boxes_file(boxes)


def test_collect_items_walks_folders_and_keeps_images_with_boxes(scenes, tmp_path):
    folder, instances = scenes
    Image.fromarray(gradient_image()).save(folder / "unboxed.png")
    full, _ = collect_items([folder], "full")
    assert len(full) == 7 and all(len(item.boxes) == 0 for item in full)
    fusion, problems = collect_items([folder], "fusion", instances, max_instances=2)
    assert len(fusion) == 6 and all(1 <= len(item.boxes) <= 2 for item in fusion)
    assert any("no entry" in p for p in problems)


def test_find_instances_prefers_the_longest_matching_path():
    entries = {"a/1.jpg": Instances(boxes=[[0, 0, 1, 1]]), "1.jpg": Instances(boxes=[[0, 0, 2, 2], [1, 1, 2, 2]])}
    assert len(find_instances(entries, "/data/a/1.jpg")) == 1
    assert len(find_instances(entries, "/data/b/1.jpg")) == 2
    assert find_instances(entries, "/data/b/2.jpg") is None


def test_samples_have_network_shapes_and_are_reproducible(scenes):
    folder, instances = scenes
    for stage in ("full", "instance", "fusion"):
        items, _ = collect_items([folder / "nested"], stage, instances)
        dataset = ColorizationDataset(items, stage, size=32, seed=7)
        sample = dataset[(2, 1)]
        assert sample.input.shape == (4, 32, 32) and sample.target.shape == (2, 32, 32)
        assert torch.all(sample.input[1:3] == 0) and torch.all(sample.input[3] == -0.5)
        assert sample.input[0].abs().max() <= 0.5 and sample.target.abs().max() <= 1.0
        assert sample.valid
        again = dataset[(2, 1)]
        assert torch.equal(sample.input, again.input) and torch.equal(sample.target, again.target)
        other_epoch = dataset[(3, 1)]
        assert not torch.equal(sample.target, other_epoch.target)  # augmentation is drawn per epoch
        if stage == "fusion":
            assert sample.crops.shape == (len(sample.boxes), 4, 32, 32)
            assert set(sample.box_info) == {32, 16, 8, 4}


def test_grey_input_is_the_rounded_luma_and_target_is_lab_ab(tmp_path):
    rgb = gradient_image(height=32, width=32)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    item = TrainingItem(str(tmp_path / "c.png"))
    sample = ColorizationDataset([item], "full", size=32, augmentation=NO_AUGMENTATION)[(0, 0)]
    from instcolor.color import lightness, rgb_to_grey, rgb_to_lab

    tensor = torch.from_numpy(rgb / 255.0).permute(2, 0, 1)[None].float()
    expected_l = (lightness(rgb_to_grey(tensor)) - 50) / 100
    torch.testing.assert_close(sample.input[:1], expected_l[0])
    torch.testing.assert_close(sample.target, rgb_to_lab(tensor)[0, 1:] / AB_SCALE)


#: sRGB colour -> (grey level of its BT.709 luma rounded to 8 bits, L* of that grey, a*, b* of the
#: colour), D65, written out from skimage.color.rgb2lab (the reference's Lab) once.
KNOWN_COLOURS = {
    (255, 0, 0): (54, 22.6152, 80.0923, 67.2028),
    (0, 255, 0): (182, 74.0478, -86.1830, 83.1797),
    (0, 0, 255): (18, 5.4639, 79.1856, -107.8573),
    (200, 150, 100): (157, 64.7368, 12.7589, 33.5647),
}


def test_grey_input_and_ab_target_of_known_colours(tmp_path):
    """Independent expected values: four flat quadrants of known colours, their Lab written out."""
    rgb = np.zeros((32, 32, 3), np.uint8)
    corners = [(slice(0, 16), slice(0, 16)), (slice(0, 16), slice(16, 32)), (slice(16, 32), slice(0, 16)),
               (slice(16, 32), slice(16, 32))]  # fmt: skip
    for (rows, cols), colour in zip(corners, KNOWN_COLOURS):
        rgb[rows, cols] = colour
    Image.fromarray(rgb).save(tmp_path / "quadrants.png")
    item = TrainingItem(str(tmp_path / "quadrants.png"))
    sample = ColorizationDataset([item], "full", size=32, augmentation=NO_AUGMENTATION)[(0, 0)]
    for (rows, cols), (_, l_grey, a, b) in zip(corners, KNOWN_COLOURS.values()):
        y, x = rows.start + 8, cols.start + 8  # the middle of the quadrant
        assert float(sample.input[0, y, x]) == pytest.approx((l_grey - 50) / 100, abs=2e-4)
        assert float(sample.target[0, y, x]) == pytest.approx(a / 110, abs=2e-4)
        assert float(sample.target[1, y, x]) == pytest.approx(b / 110, abs=2e-4)


def test_greyscale_originals_are_marked_invalid(tmp_path):
    Image.fromarray(gradient_image(channels=1)).save(tmp_path / "grey.png")
    nearly = gradient_image(channels=1)[..., None].repeat(3, axis=2).astype(np.int16)
    nearly[..., 0] += 1  # a faint tint: ab range below 5
    Image.fromarray(np.clip(nearly, 0, 255).astype(np.uint8)).save(tmp_path / "tint.png")
    Image.fromarray(gradient_image()).save(tmp_path / "colour.png")
    items = [TrainingItem(str(tmp_path / n)) for n in ("grey.png", "tint.png", "colour.png")]
    dataset = ColorizationDataset(items, "full", size=32)
    batch = collate([dataset[(0, i)] for i in range(3)])
    assert batch.valid.tolist() == [0.0, 0.0, 1.0]


def test_ab_range_sums_the_ranges_of_a_and_b():
    ab = torch.zeros(1, 2, 4, 4)
    ab[0, 0, 0, 0], ab[0, 1, 1, 1], ab[0, 1, 2, 2] = 3.0, -1.0, 1.5
    assert ab_range(ab).item() == pytest.approx(5.5)


def test_transform_boxes_crops_drops_and_mirrors():
    boxes = np.array([[10, 10, 20, 20], [0, 0, 4, 4], [28, 5, 40, 9]], np.float32)
    moved = transform_boxes(boxes, (5, 5, 30, 30), flip=False, min_visible=0.5)
    np.testing.assert_allclose(moved, [[5, 5, 15, 15], [23, 0, 30, 4]])  # second box mostly cut away
    flipped = transform_boxes(boxes[:1], (0, 0, 40, 50), flip=True, min_visible=0.5)
    np.testing.assert_allclose(flipped, [[30, 10, 40, 20]])


def test_fusion_flip_mirrors_image_and_boxes_together(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[4:12, 2:10] = (230, 30, 30)  # a red square on the left, in its box
    Image.fromarray(rgb).save(tmp_path / "r.png")
    item = TrainingItem(str(tmp_path / "r.png"), np.array([[2, 4, 10, 12]], np.float32))
    dataset = ColorizationDataset([item], "fusion", size=32, augmentation=Augmentation(flip=True, crop_scale=(1, 1)))
    for epoch in range(6):
        sample = dataset[(epoch, 0)]
        x1, y1, x2, y2 = sample.boxes[0]
        red = sample.target[0] > 0.3
        inside = red[y1:y2, x1:x2].float().mean()
        assert inside > 0.9 and red.sum() <= (x2 - x1) * (y2 - y1)


def test_sampler_splits_global_batches_between_processes_and_resumes():
    one = StepBatchSampler(10, 4, seed=3, stop_step=7)
    batches = list(one)
    assert len(batches) == 7 and one.steps_per_epoch == 2
    first_epoch = [i for _, i in batches[0] + batches[1]]
    assert len(set(first_epoch)) == 8  # no repeats within an epoch
    ranks = [list(StepBatchSampler(10, 4, seed=3, stop_step=7, rank=r, world_size=2)) for r in (0, 1)]
    for step in range(7):
        assert ranks[0][step] + ranks[1][step] == batches[step]
    assert list(StepBatchSampler(10, 4, seed=3, start_step=5, stop_step=7)) == batches[5:]
    with pytest.raises(ValueError):
        StepBatchSampler(3, 4)
    with pytest.raises(ValueError):
        StepBatchSampler(10, 3, world_size=2)


def test_class_aware_samples_carry_their_instances_class_ids(tmp_path):
    boxes = load_boxes_file(write_scenes(tmp_path, 4, size=64, seed=4, colour_by="label"))
    blind_items, _ = collect_items([tmp_path], "fusion", boxes)
    assert all(item.labels and len(item.labels) == len(item.boxes) for item in blind_items)
    assert TrainingItem.from_json(blind_items[0].to_json()).labels == blind_items[0].labels
    assert TrainingItem("x.png", np.zeros((2, 4), np.float32)).class_ids().tolist() == [0, 0]  # no labels: unknown
    for stage in ("instance", "fusion"):
        items, _ = collect_items([tmp_path], stage, boxes)
        augmentation = Augmentation(crop_scale=(1.0, 1.0))  # flips only: no box is lost
        blind = ColorizationDataset(items, stage, size=32, augmentation=augmentation, seed=3)
        aware = ColorizationDataset(items, stage, size=32, augmentation=augmentation, seed=3, classes=True)
        for index in range(len(items)):
            plain, sample = blind[(0, index)], aware[(0, index)]
            assert plain.classes is None and torch.equal(plain.input, sample.input)  # same draws otherwise
            ids = items[index].class_ids()
            if stage == "fusion":
                assert sample.classes.tolist() == ids.tolist()
            else:
                assert sample.classes.shape == (1,) and int(sample.classes) in ids.tolist()
        batch = collate([aware[(0, i)] for i in range(2)])
        assert (batch.classes is None) == (stage == "fusion")
        assert batch.classes is None or batch.classes.shape == (2,)
    dropping = ColorizationDataset(items, "fusion", size=32, seed=3, classes=True, class_dropout=0.5)
    dropped = torch.cat([dropping[(epoch, i)].classes for epoch in range(4) for i in range(len(items))])
    assert 0 < (dropped == 0).float().mean() < 1
