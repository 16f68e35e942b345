import numpy as np

from instcolor.instances import Instances
from instcolor.tracking import BoxTracker, box_iou


def test_box_iou():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])


def test_box_tracker_keeps_ids_and_holds_missed_boxes():
    tracker = BoxTracker(max_missing=1)
    tracker.update(Instances(boxes=[[0, 0, 10, 10], [20, 20, 40, 40]], scores=[0.9, 0.8], labels=["a", "b"]))
    ids = [t.id for t in tracker.tracks]
    instances, moved = tracker.update(Instances(boxes=[[22, 21, 42, 41]], scores=[0.8], labels=["b"]))
    assert [t.id for t in tracker.tracks] == ids  # "a" missed once: its track survives...
    assert instances.labels == ["b"] and list(moved) == [ids[1]]  # ...but the detector did not see it
    assert moved[ids[1]][0].tolist() == [20, 20, 40, 40]
    instances, _ = tracker.update(None)  # detection skipped: the seen boxes hold
    assert instances.labels == ["b"]
    instances, _ = tracker.update(Instances(boxes=[[1, 0, 11, 10], [23, 22, 43, 42]], scores=[0.9, 0.8], labels=["a", "b"]))
    assert [t.id for t in tracker.tracks] == ids and instances.labels == ["a", "b"]  # found again: same id
    tracker.update(Instances(boxes=[[23, 22, 43, 42]], scores=[0.8], labels=["b"]))
    tracker.update(Instances(boxes=[[23, 22, 43, 42]], scores=[0.8], labels=["b"]))
    assert [t.id for t in tracker.tracks] == [ids[1]]  # "a" missed twice: dropped


def test_tracks_follow_the_camera_between_detections():
    tracker = BoxTracker()
    tracker.update(Instances(boxes=[[20, 10, 40, 30]], scores=[0.9], labels=["person"]))

    def left(boxes):  # the camera pans right 6 px
        return boxes - np.array([6.0, 0.0, 6.0, 0.0])

    instances, moved = tracker.update(None, carry=left)  # detection skipped: the box rides the pan
    assert instances.boxes.tolist() == [[14, 10, 34, 30]]
    assert [box.tolist() for box in moved[0]] == [[20, 10, 40, 30], [14, 10, 34, 30]]  # (previous frame's, this frame's)
    instances, _ = tracker.update(Instances(boxes=[[8, 10, 28, 30]], scores=[0.9], labels=["person"]), carry=left)
    assert [t.id for t in tracker.tracks] == [0]  # matched (IoU 1 after the carries, 0.25 without: a new track)
    assert instances.boxes.tolist() == [[8, 10, 28, 30]]
