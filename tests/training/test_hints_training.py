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


def _one_colour_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A colour of random hue whose BT.709 luma is 0.5 everywhere (chroma ramps left to right):
    the grey input says nothing about the hue, only a hint can."""
    luma = np.array([0.2125, 0.7154, 0.0721])
    u = np.cross(luma, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(luma, u)
    v /= np.linalg.norm(v)
    theta = rng.uniform(0, 2 * np.pi)
    amplitude = np.linspace(0.12, 0.24, size)[None, :, None]
    rgb = np.broadcast_to(0.5 + amplitude * (np.cos(theta) * u + np.sin(theta) * v), (size, size, 3))
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:these weights were not trained with colour hints")
def test_a_model_trained_with_hints_follows_them(tmp_path):
    """Hue is invisible in the grey input: only the model trained with hints gains from ground-truth points."""
    from PIL import Image

    from instcolor.color import rgb_to_grey
    from instcolor.evaluation.hints import hint_psnr
    from instcolor.inference.pipeline import Colorizer
    from instcolor.instances import Instances

    for i in range(256):
        Image.fromarray(_one_colour_image(np.random.default_rng([0, i]))).save(tmp_path / f"{i:03d}.png")
    tests = [_one_colour_image(np.random.default_rng([1, i])) for i in range(8)]
    gains = {}
    for hints in (False, True):
        config = TrainConfig(
            data=[str(tmp_path)], out=str(tmp_path / f"run-{hints}"), stage="full", width=0.0625, size=32,
            batch_size=16, lr=1e-3, max_steps=150, num_workers=0, threads=1, progress=False, hints=hints,
            no_hint_share=0.0,
        )  # fmt: skip
        colorizer = Colorizer(load_weights(train(config).weights).model, size=32, hint_mode="network")
        values = []
        for truth in tests:
            grey = rgb_to_grey(torch.from_numpy(truth / 255.0).permute(2, 0, 1)[None].float())[0, 0].numpy()
            grey = np.round(grey * 255).astype(np.uint8)
            values.append(hint_psnr(colorizer, grey, truth, Instances(), (0, 5), seed=1))
        gains[hints] = np.mean([v[5] - v[0] for v in values])
    assert gains[True] > 2.0 and gains[True] > gains[False] + 2.0, gains
