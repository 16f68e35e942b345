import copy

import pytest
import torch

from instcolor.color import AB_SCALE
from instcolor.inference.quantization import (
    QuantizedIsland,
    calibration_samples,
    int8_engine,
    is_quantized,
    quantize_int8,
)
from tests.support.helpers import tiny_model

pytestmark = pytest.mark.skipif(int8_engine() is None, reason="no quantized CPU engine")


@pytest.fixture(scope="module")
def samples():
    return calibration_samples(32, names=("astronaut",))


def test_calibration_samples_have_crops_and_placements(samples):
    (sample,) = samples
    assert sample.full.shape == (1, 4, 32, 32)
    assert sample.crops.shape == (2, 4, 32, 32)
    assert set(sample.box_info) == {32, 16, 8, 4}


@pytest.fixture(scope="module")
def quantized_pair(samples):
    model = tiny_model(seed=2).set_fusion_strategy("streamed")
    before = copy.deepcopy(model.state_dict())
    return model, before, quantize_int8(model, samples)


def test_quantized_copy_is_close_and_leaves_the_model_alone(samples, quantized_pair):
    model, before, quantized = quantized_pair
    assert is_quantized(quantized) and not is_quantized(model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    islands = [m for m in quantized.modules() if isinstance(m, QuantizedIsland)]
    assert len(islands) == 3 * 13 + 13 * 2  # per backbone: 10 blocks + 3 shortcuts; 2 per fusion layer
    (sample,) = samples
    with torch.inference_mode():
        exact = model(sample.full, sample.crops, sample.box_info)
        approx = quantized(sample.full, sample.crops, sample.box_info)
    delta = (exact - approx).abs() * AB_SCALE
    assert 0 < delta.mean() <= 1.0


def test_keeps_the_fusion_strategy(quantized_pair):
    assert quantized_pair[2].fusion_strategy == "streamed"
