import numpy as np
import torch

from instcolor.color import rgb_to_lab
from instcolor.instances import load_boxes_file
from instcolor.io import decode_image
from instcolor.training.synthetic import SHAPE_COLOURS, make_scene, write_scenes


def test_boxes_are_tight_around_masks_and_objects_do_not_overlap():
    for seed in range(5):
        scene = make_scene(np.random.default_rng(seed), size=96)
        inst = scene.instances
        assert 2 <= len(inst) <= 5 and inst.masks.shape == (len(inst), 96, 96)
        assert inst.masks.sum(axis=0).max() == 1
        for box, mask in zip(inst.boxes.astype(int), inst.masks):
            rows, cols = np.nonzero(mask)
            assert (box == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).all()


def test_object_colour_is_set_by_its_class():
    for seed in range(4):
        scene = make_scene(np.random.default_rng(seed), size=128)
        lab = rgb_to_lab(torch.from_numpy(scene.image / 255.0).permute(2, 0, 1)[None].float())[0].numpy()
        for label, mask in zip(scene.instances.labels, scene.instances.masks):
            core = mask.copy()
            for axis in (0, 1):  # away from the dark outline
                core &= np.roll(mask, 2, axis) & np.roll(mask, -2, axis)
            a, b = (np.median(lab[c][core]) for c in (1, 2))
            expected = np.array(SHAPE_COLOURS[label])
            assert np.hypot(*(np.array([a, b]) - expected)) < 8, (label, a, b)


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
