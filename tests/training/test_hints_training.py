"""Training with random colour hints (``TrainConfig.hints``): samples, consistency, weights metadata."""

import numpy as np
import pytest
import torch

from instcolor.instances import load_boxes_file
from instcolor.models.weights.store import load_weights
from instcolor.training import TrainConfig, train
from instcolor.training.data import ColorizationDataset, collect_items
from instcolor.training.synthetic import write_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    boxes = write_scenes(folder, 6, size=64, seed=2)
    return folder, load_boxes_file(boxes), boxes


def _datasets(scenes, stage, **options):
    folder, instances, _ = scenes
    items, _ = collect_items([folder], stage, instances)
    return (
        ColorizationDataset(items, stage, size=32, seed=4),
        ColorizationDataset(items, stage, size=32, seed=4, hints=True, **options),
    )


@pytest.mark.parametrize("stage", ["full", "instance", "fusion"])
def test_hints_change_only_the_hint_channels(scenes, stage):
    plain, hinted = _datasets(scenes, stage, no_hint_share=0.0)
    with_hints = 0
    for epoch in range(4):
        for index in range(len(plain)):
            a, b = plain[(epoch, index)], hinted[(epoch, index)]
            assert torch.equal(a.target, b.target) and torch.equal(a.input[0], b.input[0])  # same augmentation
            mask = b.input[3] + 0.5
            assert set(mask.unique().tolist()) <= {0.0, 1.0}
            assert torch.all(b.input[1:3][:, mask == 0] == 0)
            with_hints += bool(mask.any())
            if stage == "fusion":
                assert torch.equal(a.crops[:, 0], b.crops[:, 0])
    assert with_hints >= len(plain) * 2  # most samples get a hint (P(none) = 1/8 here)


def test_fusion_crops_get_the_hints_of_the_full_image_that_fall_in_them(scenes):
    _, hinted = _datasets(scenes, "fusion", no_hint_share=0.0)
    checked = 0
    for epoch in range(6):
        for index in range(len(hinted)):
            sample = hinted[(epoch, index)]
            full_colours = {tuple(np.round(c, 5)) for c in sample.input[1:3][:, sample.input[3] > 0].T.tolist()}
            for crop in sample.crops:
                hinted_cells = crop[3] > 0
                if hinted_cells.any():
                    colours = {tuple(np.round(c, 5)) for c in crop[1:3][:, hinted_cells].T.tolist()}
                    assert colours <= full_colours
                    checked += 1
    assert checked > 0


def test_no_hint_share_one_gives_plain_inputs(scenes):
    plain, hinted = _datasets(scenes, "fusion", no_hint_share=1.0)
    for index in range(len(plain)):
        a, b = plain[(0, index)], hinted[(0, index)]
        assert torch.equal(a.input, b.input) and torch.equal(a.crops, b.crops)


def test_train_with_hints_records_it_in_the_weights(scenes, tmp_path):
    folder, _, _ = scenes
    config = TrainConfig(
        data=[str(folder)], out=str(tmp_path / "run"), stage="full", width=0.0625, size=32, batch_size=2,
        max_steps=2, num_workers=0, threads=1, progress=False, hints=True,
    )  # fmt: skip
    result = train(config)
    assert load_weights(result.weights).model.config.hints is True
    plain = train(TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "plain"), "hints": False}))
    assert load_weights(plain.weights).model.config.hints is False
