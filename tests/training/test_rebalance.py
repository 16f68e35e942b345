import json

import numpy as np
import pytest
import torch

from instcolor.training import TrainConfig, train
from instcolor.training.rebalance import GRID, ab_bins, ab_histogram, pixel_weights, rebalancing_table
from instcolor.training.synthetic import write_scenes


def ab_plane(a: float, b: float, size: int = 4) -> torch.Tensor:
    """A ``(2, size, size)`` target of one Lab colour (a*, b* in Lab units)."""
    return torch.tensor([a, b]).view(2, 1, 1).expand(2, size, size) / 110


def test_bins_cover_lab_units_in_steps_of_ten():
    centre = GRID // 2
    assert ab_bins(ab_plane(0, 0))[0, 0] == centre * GRID + centre
    assert ab_bins(ab_plane(-5, 15))[0, 0] == (centre - 1) * GRID + centre + 1
    assert ab_bins(ab_plane(-500, 500))[0, 0] == 0 * GRID + GRID - 1  # clamped to the outer bins


def test_rare_colours_weigh_more_and_weights_average_one_on_the_data():
    common, rare = ab_plane(0, 5, size=30), ab_plane(60, 40, size=3)  # 900 grey pixels, 9 red
    histogram = ab_histogram([common, rare])
    assert histogram.sum() == 909
    table = torch.from_numpy(rebalancing_table(histogram, strength=0.5))
    weight_common = pixel_weights(common[None], table)[0, 0, 0]
    weight_rare = pixel_weights(rare[None], table)[0, 0, 0]
    assert weight_rare > 10 * weight_common
    mean_on_data = (900 * weight_common + 9 * weight_rare) / 909
    assert float(mean_on_data) == pytest.approx(1.0)


def test_strength_zero_weighs_every_occurring_colour_one():
    histogram = ab_histogram([ab_plane(0, 5, size=30), ab_plane(60, 40, size=3)])
    table = rebalancing_table(histogram, strength=0.0)
    assert np.allclose(table[table > 0], 1.0)
    with pytest.raises(ValueError, match="strength"):
        rebalancing_table(histogram, strength=1.0)


def test_rebalanced_training_keeps_its_table_and_changes_the_loss(tmp_path):
    write_scenes(tmp_path / "scenes", 4, size=64, seed=3, objects=(1, 1))
    common = dict(data=[str(tmp_path / "scenes")], width=0.0625, size=32, num_workers=0, threads=1,
                  progress=False, log_every=1, max_steps=2, batch_size=4)  # fmt: skip
    plain = train(TrainConfig(out=str(tmp_path / "plain"), **common))
    rebalanced = train(TrainConfig(out=str(tmp_path / "rebalanced"), colour_rebalance=0.5, **common))
    saved = json.loads((tmp_path / "rebalanced" / "colour_rebalancing.json").read_text())
    assert saved["strength"] == 0.5
    assert saved["pixels"] in {k * 32 * 32 for k in (1, 2, 3, 4)}  # the colour samples of epoch 0
    assert not (tmp_path / "plain" / "colour_rebalancing.json").exists()
    assert rebalanced.loss != pytest.approx(plain.loss, rel=1e-3)
