"""Named benchmark layouts are found on disk; missing images are reported, not ignored."""

from __future__ import annotations

import pytest

from instcolor.evaluation.datasets import DATASETS, find_dataset


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_cocostuff_val_in_the_cocostuff_and_coco_layouts(tmp_path):
    stuff = tmp_path / "cocostuff"
    expected = [touch(stuff / "images" / "val2017" / f"0000000{i}.jpg") for i in (3, 1, 2)]
    touch(stuff / "images" / "train2017" / "00000009.jpg")
    found = find_dataset("cocostuff-val", stuff)
    assert found.paths == sorted(expected) and not found.problems and found.expected == 5000
    coco = tmp_path / "coco"
    touch(coco / "val2017" / "a.jpg")
    assert [p.name for p in find_dataset("cocostuff-val", coco).paths] == ["a.jpg"]
    assert find_dataset("cocostuff-val", tmp_path / "coco" / "val2017").paths  # the image folder itself


def test_ctest10k_list_with_original_paths_and_labels(tmp_path):
    root = tmp_path / "imagenet"
    a = touch(root / "val" / "n01440764" / "ILSVRC2012_val_00000293.JPEG")
    b = touch(root / "val" / "n01443537" / "ILSVRC2012_val_00000236.JPEG")
    (root / "ctest10k.txt").write_text(
        "/data/ILSVRC2012/val/n01443537/ILSVRC2012_val_00000236.JPEG 1\n"
        "ILSVRC2012_val_00000293.JPEG 0\n"
        "ILSVRC2012_val_00099999.JPEG 5\n"
    )
    found = find_dataset("imagenet-ctest10k", root)
    assert found.paths == [b, a]  # list order
    assert len(found.problems) == 1 and "ILSVRC2012_val_00099999.JPEG" in found.problems[0]


def test_places205_val_csv_relative_to_images256(tmp_path):
    root = tmp_path / "places"
    image = touch(root / "images256" / "a" / "abbey" / "gsun_0001.jpg")
    touch(root / "images256" / "a" / "abbey" / "gsun_train.jpg")
    listing = root / "trainvalsplit_places205" / "val_places205.csv"
    listing.parent.mkdir(parents=True)
    listing.write_text("a/abbey/gsun_0001.jpg 0\n")
    found = find_dataset("places205-val", root)
    assert found.paths == [image] and not found.problems and found.expected == 20500


def test_missing_list_unknown_name_and_missing_root(tmp_path):
    found = find_dataset("imagenet-ctest10k", tmp_path)
    assert not found.paths and "ctest10k.txt" in found.problems[0]
    with pytest.raises(KeyError, match="known: imagenet-ctest10k, cocostuff-val, places205-val"):
        find_dataset("imagenet-val", tmp_path)
    with pytest.raises(FileNotFoundError):
        find_dataset("cocostuff-val", tmp_path / "absent")
    assert set(DATASETS) == {"imagenet-ctest10k", "cocostuff-val", "places205-val"}
