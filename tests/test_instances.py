import json

import numpy as np
import pytest

from instcolor.instances import (
    Instances,
    load_boxes_file,
    lookup_instances,
    mask_to_rle,
    rle_to_mask,
    save_boxes_file,
)


def test_rle_roundtrip_and_coco_convention():
    mask = np.zeros((3, 4), bool)
    mask[0, 0] = True  # first pixel set: counts start with a zero-length run of zeros
    mask[1:, 2] = True
    rle = mask_to_rle(mask)
    assert rle["size"] == [3, 4] and rle["counts"][0] == 0
    assert sum(rle["counts"]) == 12
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    # column-major: the second column's pixels come before the third column's
    assert mask_to_rle(np.eye(2, dtype=bool))["counts"] == [0, 1, 2, 1]


def test_rle_size_mismatch():
    with pytest.raises(ValueError):
        rle_to_mask({"size": [2, 2], "counts": [1, 1]})


def test_boxes_file_roundtrip(tmp_path):
    masks = np.zeros((2, 5, 6), bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 4, 5] = True
    entries = {
        "a.jpg": Instances(boxes=[[1, 1, 4, 3], [5, 4, 6, 5]], scores=[0.9, 0.75], labels=["person", "cup"], masks=masks),
        "b.png": Instances(),
    }
    save_boxes_file(tmp_path / "boxes.json", entries)
    raw = json.loads((tmp_path / "boxes.json").read_text())
    assert raw["a.jpg"][1] == {"box": [5.0, 4.0, 6.0, 5.0], "score": 0.75, "label": "cup", "mask": mask_to_rle(masks[1])}
    loaded = load_boxes_file(tmp_path / "boxes.json")
    np.testing.assert_array_equal(loaded["a.jpg"].masks, masks)
    assert loaded["a.jpg"].labels == ["person", "cup"] and len(loaded["b.png"]) == 0


def test_user_written_file_without_scores_or_masks(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps({"x.jpg": [{"box": [0, 0, 5, 5]}]}))
    inst = load_boxes_file(tmp_path / "b.json")["x.jpg"]
    assert inst.scores.tolist() == [1.0] and inst.labels == [""] and inst.masks is None


@pytest.mark.parametrize("content", ["[1, 2]", '{"a.jpg": [{"box": [1, 2]}]}', "not json"])
def test_bad_boxes_files(tmp_path, content):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ValueError):
        load_boxes_file(tmp_path / "bad.json")


def test_lookup_by_path_name_or_stem(tmp_path):
    entries = {"photo.jpg": Instances(boxes=[[0, 0, 1, 1]]), "scan": Instances()}
    assert len(lookup_instances(entries, tmp_path / "photo.jpg")) == 1
    assert lookup_instances(entries, tmp_path / "scan.tif") is entries["scan"]
    assert lookup_instances(entries, tmp_path / "other.jpg") is None


def test_top_keeps_highest_scores_in_original_order():
    inst = Instances(boxes=np.arange(16).reshape(4, 4), scores=[0.1, 0.9, 0.5, 0.8], labels=list("abcd"))
    assert inst.top(2).labels == ["b", "d"]
    assert len(inst.top(0)) == 4


def test_mismatched_lengths():
    with pytest.raises(ValueError):
        Instances(boxes=[[0, 0, 1, 1]], scores=[0.5, 0.6])


def test_instance_colours_are_read_written_and_selected(tmp_path):
    from instcolor.instances import load_boxes_file, save_boxes_file

    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"a.png": [
        {"box": [0, 0, 4, 4]}, {"box": [1, 1, 5, 5], "colour": "#b22222"}, {"box": [2, 2, 6, 6], "color": [1, 2, 3]},
    ], "old.png": [{"box": [0, 0, 4, 4], "score": 0.5}]}))  # fmt: skip
    entries = load_boxes_file(path)
    assert entries.has_colours
    found = entries["a.png"]
    assert found.colours == [None, (178, 34, 34), (1, 2, 3)]
    assert found.select([2, 1]).colours == [(1, 2, 3), (178, 34, 34)]
    assert found.select([0]).colours is None
    assert entries["old.png"].colours is None
    save_boxes_file(tmp_path / "again.json", {"a.png": found})
    assert load_boxes_file(tmp_path / "again.json")["a.png"].colours == found.colours
    assert "colour" not in Instances(boxes=[[0, 0, 1, 1]]).to_json()[0]


def test_bad_instance_colours_are_reported_per_image(tmp_path):
    from instcolor.instances import BoxesFileError, read_boxes_file

    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"a.png": [{"box": [0, 0, 4, 4], "colour": "crimson"}], "b.png": [{"box": [0, 0, 4, 4]}]}))
    with pytest.raises(BoxesFileError, match="a.png: a colour must be"):
        read_boxes_file(path)
    with pytest.raises(ValueError, match="colours"):
        Instances(boxes=[[0, 0, 1, 1]], colours=[None, None])
