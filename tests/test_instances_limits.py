"""Issue 13: boxes files checked and bounded for every reader (API, training data, evaluate)."""

import json

import numpy as np
import pytest

from instcolor.instances import BoxesFileError, load_boxes_file, mask_to_rle


def test_loading_caps_instances_before_decoding_masks(tmp_path, monkeypatch):
    import instcolor.instances as instances

    mask = np.zeros((10, 12), bool)
    mask[2:6, 3:8] = True
    items = [{"box": [3, 2, 8, 6], "score": i / 100, "mask": mask_to_rle(mask)} for i in range(50)]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"a.png": items}))
    decoded = []
    real = instances.rle_to_mask
    monkeypatch.setattr(instances, "rle_to_mask", lambda rle: decoded.append(1) or real(rle))
    entries = load_boxes_file(path, max_instances=3)
    assert decoded == []  # nothing decoded when the file is read
    found = entries["a.png"]
    assert len(found) == 3 and found.masks.shape == (3, 10, 12) and len(decoded) == 3
    np.testing.assert_allclose(found.scores, [0.47, 0.48, 0.49])


def test_declared_mask_size_is_checked_before_decoding(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"a.png": [{"box": [0, 0, 4, 4], "mask": {"size": [50000, 50000], "counts": [2500000000]}}]}))
    with pytest.raises(BoxesFileError, match="more than the limit"):
        load_boxes_file(path)
    path.write_text(json.dumps({"a.png": [{"box": [0, 0, 4, 4], "mask": {"size": [4, 4], "counts": [99]}}]}))
    with pytest.raises(BoxesFileError, match="expected 4x4"):
        load_boxes_file(path)
    path.write_text(json.dumps({"a.png": [{"box": [0, 0, 4, 4], "mask": {"size": [4, 4], "counts": [16]}}]}))
    entries = load_boxes_file(path)
    with pytest.raises(ValueError, match="mask is 4x4 but the image is 8x6"):
        entries.instances("a.png", (6, 8))
