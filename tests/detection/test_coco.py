import pytest
import torchvision

from instcolor.detection.coco import (
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    TORCHVISION_COCO_NAMES,
    coco_index_from_torchvision_id,
    coco_name_from_index,
    coco_name_from_torchvision_id,
)


def test_eighty_classes_in_the_standard_order():
    assert len(COCO_CLASSES) == len(set(COCO_CLASSES)) == 80
    assert COCO_CLASSES[:3] == ("person", "bicycle", "car") and COCO_CLASSES[41] == "cup"
    assert COCO_CLASSES[-1] == "toothbrush" and coco_name_from_index(79) == "toothbrush"
    with pytest.raises(IndexError):
        coco_name_from_index(80)


def test_torchvision_ids_match_torchvisions_own_labels():
    torchvision_names = torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"]
    assert TORCHVISION_COCO_NAMES == tuple(torchvision_names)
    assert len(COCO_CATEGORY_IDS) == 80 and COCO_CATEGORY_IDS[-1] == 90
    for index, category_id in enumerate(COCO_CATEGORY_IDS):
        assert coco_index_from_torchvision_id(category_id) == index
        name = coco_name_from_torchvision_id(category_id)
        assert name == COCO_CLASSES[index] == TORCHVISION_COCO_NAMES[category_id]
    assert coco_name_from_torchvision_id(47) == "cup"
    for not_an_object in (0, 12, 83, 91):
        with pytest.raises(KeyError):
            coco_name_from_torchvision_id(not_an_object)


def test_labels_map_to_class_ids_with_zero_for_unknown():
    from instcolor.detection.coco import COCO_CLASS_COUNT, UNKNOWN_CLASS_ID, coco_class_ids

    assert COCO_CLASS_COUNT == 81 and UNKNOWN_CLASS_ID == 0
    ids = coco_class_ids(["person", "toothbrush", "", "unicorn", " Banana ", "N/A"])
    assert ids.tolist() == [1, 80, 0, 0, 1 + COCO_CLASSES.index("banana"), 0]
    assert ids.dtype.name == "int64" and coco_class_ids([]).shape == (0,)
    assert coco_class_ids(["person", "toothbrush"], num_classes=10).tolist() == [1, 0]  # beyond the model's ids
