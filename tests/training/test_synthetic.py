import numpy as np
import pytest
import torch

from instcolor.color import rgb_to_lab
from instcolor.instances import load_boxes_file
from instcolor.io import decode_image
from instcolor.detection.coco import coco_class_ids
from instcolor.training.synthetic import LABEL_COLOURS, SHAPE_COLOURS, make_scene, write_scenes


def test_boxes_are_tight_around_masks_and_objects_do_not_overlap():
    for seed in range(5):
        scene = make_scene(np.random.default_rng(seed), size=96)
        inst = scene.instances
        assert 2 <= len(inst) <= 5 and inst.masks.shape == (len(inst), 96, 96)
        assert inst.masks.sum(axis=0).max() == 1
        for box, mask in zip(inst.boxes.astype(int), inst.masks):
            rows, cols = np.nonzero(mask)
            assert (box == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).all()


@pytest.mark.parametrize(("colour_by", "colours"), [("shape", SHAPE_COLOURS), ("label", LABEL_COLOURS)])
def test_object_colour_is_set_by_its_class(colour_by, colours):
    for seed in range(4):
        scene = make_scene(np.random.default_rng(seed), size=128, colour_by=colour_by)
        lab = rgb_to_lab(torch.from_numpy(scene.image / 255.0).permute(2, 0, 1)[None].float())[0].numpy()
        for label, mask in zip(scene.instances.labels, scene.instances.masks):
            core = mask.copy()
            for axis in (0, 1):  # away from the dark outline
                core &= np.roll(mask, 2, axis) & np.roll(mask, -2, axis)
            a, b = (np.median(lab[c][core]) for c in (1, 2))
            expected = np.array(colours[label])
            assert np.hypot(*(np.array([a, b]) - expected)) < 8, (label, a, b)


def test_label_coloured_objects_carry_coco_labels():
    labels = []
    for seed in range(12):
        labels += make_scene(np.random.default_rng(seed), size=96, colour_by="label").instances.labels
    assert set(labels) == set(LABEL_COLOURS) and (coco_class_ids(labels) > 0).all()
    shape_scene = make_scene(np.random.default_rng(3), size=64)  # the default draws as before
    assert np.array_equal(shape_scene.image, make_scene(np.random.default_rng(3), size=64, colour_by="shape").image)
    with pytest.raises(ValueError, match="colour_by"):
        make_scene(np.random.default_rng(0), colour_by="texture")


def test_write_scenes_is_deterministic_and_boxes_file_carries_masks(tmp_path):
    boxes_a = write_scenes(tmp_path / "a", 3, size=64, seed=9)
    boxes_b = write_scenes(tmp_path / "b", 3, size=64, seed=9)
    entries = load_boxes_file(boxes_a)
    assert sorted(entries) == ["scene_00000.png", "scene_00001.png", "scene_00002.png"]
    for name, inst in entries.items():
        assert inst.masks is not None and inst.masks.shape[1:] == (64, 64)
        assert set(inst.labels) <= set(SHAPE_COLOURS) and np.all(inst.scores == 1)
        np.testing.assert_array_equal(decode_image(tmp_path / "a" / name).rgb, decode_image(tmp_path / "b" / name).rgb)
    assert boxes_a.read_text() == boxes_b.read_text()
