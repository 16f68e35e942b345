"""Class-aware models: zero start equals class-blind, where the class acts, and the weights file."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from instcolor.inference.preprocess import prepare
from instcolor.models.config import CLASS_INPUTS, ModelConfig
from instcolor.models.model import InstColorModel, is_class_key, network_input
from instcolor.models.weights.store import load_weights, read_metadata, save_model
from tests.support.helpers import TINY, tiny_class_aware_model, tiny_model

BOXES = np.array([[8, 8, 40, 40], [70, 60, 120, 120]])


def inputs(seed: int = 0):
    lightness = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(seed)) - 0.5
    prepared = prepare(lightness, BOXES, 64)
    return network_input(prepared.full), network_input(prepared.crops), prepared.box_info


@pytest.mark.parametrize("class_inputs", CLASS_INPUTS)
@pytest.mark.parametrize("strategy", ["reference", "streamed", "batched"])
def test_a_zero_initialised_class_aware_model_equals_the_class_blind_one(class_inputs, strategy):
    blind = tiny_model(0).set_fusion_strategy(strategy)
    aware = tiny_model(0, replace(TINY, num_classes=81, class_inputs=class_inputs)).set_fusion_strategy(strategy)
    assert aware.class_state_keys()  # it has class embeddings, all zero
    assert all(not aware.state_dict()[k].any() for k in aware.class_state_keys())
    full, crops, info = inputs()
    with torch.no_grad():
        expected = blind(full, crops, info)
        got = aware(full, crops, info, crop_classes=torch.tensor([1, 47]))
        alone = aware.instance(crops, classes=torch.tensor([1, 47]))[0]
    assert torch.equal(got, expected)
    assert torch.equal(alone, blind.instance(crops)[0])


def test_a_class_blind_model_has_no_class_parameters_and_ignores_classes():
    model = tiny_model(0)
    assert model.class_state_keys() == set() and not model.config.class_aware
    assert not any(is_class_key(k) for k in model.state_dict())
    full, crops, info = inputs()
    with torch.no_grad():
        assert torch.equal(model(full, crops, info, crop_classes=torch.tensor([3, 4])), model(full, crops, info))


@pytest.mark.parametrize("class_inputs", ["instance", "fusion"])
@pytest.mark.parametrize("rule", ["reference", "confined"])
def test_a_class_changes_only_its_own_instance(class_inputs, rule):
    model = tiny_class_aware_model(0, class_inputs=class_inputs, fusion_rule=rule)
    full, crops, info = inputs()
    with torch.no_grad():
        base = model(full, crops, info, crop_classes=torch.tensor([1, 2]))
        changed = model(full, crops, info, crop_classes=torch.tensor([3, 2]))
        again = model(full, crops, info, crop_classes=torch.tensor([1, 2]))
    assert torch.equal(base, again)
    # on the 64 grid, box 1 is [4, 20) x [4, 20) and box 2 [35, 60) x [30, 60)
    diff = (base - changed).abs().amax(dim=1)[0]
    assert diff[4:20, 4:20].mean() > 2e-4  # the re-classed instance changed (a logit bias moves less)
    assert diff[30:60, 35:60].max() < 1e-5  # the other did not
    far = torch.ones_like(diff, dtype=torch.bool)
    far[:32, :32] = False  # its box and a margin: the receptive field of the layers after fusion
    assert diff[far].max() < 1e-5


def test_only_instances_of_a_class_feel_its_embedding():
    model = tiny_class_aware_model(0, class_inputs="both")
    full, crops, info = inputs()
    classes = torch.tensor([1, 2])
    with torch.no_grad():
        before = model(full, crops, info, crop_classes=classes)
        for key in model.class_state_keys():
            model.get_parameter(key)[5].add_(1.0)  # a class no instance has
        after = model(full, crops, info, crop_classes=classes)
    assert torch.equal(before, after)


def test_the_crop_classes_must_match_the_crops():
    model = tiny_class_aware_model(0)
    full, crops, info = inputs()
    with pytest.raises(ValueError, match="2 crop classes"):
        model(full, crops, info, crop_classes=torch.tensor([1]))


def test_the_weights_file_says_whether_a_model_is_class_aware(tmp_path):
    aware = tiny_class_aware_model(0, class_inputs="fusion")
    save_model(tmp_path / "aware.safetensors", aware, {"source": "tests"})
    loaded = load_weights(tmp_path / "aware.safetensors").model
    assert loaded.config == aware.config and loaded.config.class_aware
    assert json.loads(read_metadata(tmp_path / "aware.safetensors")["config"])["num_classes"] == 81
    for key, value in aware.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    save_model(tmp_path / "blind.safetensors", tiny_model(0), {"source": "tests"})
    stored = json.loads(read_metadata(tmp_path / "blind.safetensors")["config"])
    assert stored == {"width": 0.0625, "fusion_hidden": 16, "input_size": 256, "fusion_rule": "reference",
                      "support_feather": 0.125, "hints": False}  # fmt: skip  # no class field: as before
    assert not load_weights(tmp_path / "blind.safetensors").model.config.class_aware


def test_config_checks_the_class_fields():
    with pytest.raises(ValueError, match="class_inputs"):
        ModelConfig(num_classes=81, class_inputs="everywhere")
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(num_classes=-1)
    config = ModelConfig(num_classes=81, class_inputs="instance")
    assert (config.instance_classes, config.fusion_classes) == (81, 0)
    assert InstColorModel(config).class_state_keys() == {"instance.class_embedding.weight"}
