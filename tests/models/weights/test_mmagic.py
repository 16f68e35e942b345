"""mmagic's single-file checkpoint maps onto our model key by key, and nothing slips through."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from tests.support.checkpoint_builders import mmagic_state_dict
from tests.support.helpers import TINY, tiny_model
from instcolor.models.weights.mmagic import (
    convert_mmagic_state_dict,
    infer_mmagic_config,
    map_mmagic_key,
    mmagic_key,
    read_mmagic_checkpoint,
)
from instcolor.models.model import InstColorModel
from instcolor.models.config import ModelConfig
from instcolor.models.weights.store import WeightsError
from tests.support.mmagic_layout import mmagic_layout, reference_name, scaled_shape


def test_real_layout_covers_every_tensor_of_the_model():
    layout = mmagic_layout()  # written out literally, not derived from our tables
    assert layout["image_model.model_class.weight"] == (529, 256, 1, 1)
    assert "fusion_model.weight_layer8_1.simple_bg_conv.4.bias" in layout
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in InstColorModel(ModelConfig()).state_dict().items()}
    mapped, dropped = {}, []
    for key, shape in layout.items():
        ours = map_mmagic_key(key)
        if ours is None:
            dropped.append(key)
            continue
        assert ours not in mapped, f"{key} and {mapped.get(ours)} both map to {ours}"
        assert ours in expected, f"{key} -> {ours}, not in the model"
        assert expected[ours] == shape, f"{key}: {shape} vs {expected[ours]}"
        mapped[ours] = key
    assert set(mapped) == set(expected)
    assert all(".model_class." in k or k.startswith("fusion_model.weight_layerout.") for k in dropped)
    assert len(dropped) == 3 * 2 + 12  # model_class weight+bias per net, weight_layerout's 2 x 3 convs


def random_mmagic_weights(width: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under every key of the literal mmagic layout, at ``width``."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in mmagic_layout().items():
        shape = scaled_shape(shape, width)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith("weight") and len(shape) == 4:
            state[key] = torch.randn(shape, generator=generator) * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1 + (1.0 if key.endswith("weight") else 0.0)
    return state


def test_mmagic_file_colours_like_the_same_weights_read_as_the_authors_checkpoints():
    """An mmagic file and the authors' three checkpoints holding the same tensors give the same ab.

    The mmagic keys come from the literal layout, the reference keys from mmagic's documented rule
    (bare layers gain ``0.``); the reference import (checked against the authors' code by
    tests/test_reference_equivalence.py) is the independent side. A swapped row in the mmagic
    table (``weight_layer5`` / ``weight_layer6``: same shapes) changes the output.
    """
    from instcolor.geometry import box_infos
    from instcolor.models.model import network_input
    from instcolor.models.weights.reference import convert_reference_state_dicts

    state = random_mmagic_weights(TINY.width)
    references: dict[str, dict[str, torch.Tensor]] = {"G": {}, "GF": {}, "GComp": {}}
    for key, value in state.items():
        network, reference_key = reference_name(key)
        references[network][reference_key] = value
    from_mmagic, config = convert_mmagic_state_dict(state)
    assert config == TINY
    from_reference = convert_reference_state_dicts(references, TINY)

    def colorize(weights):
        model = InstColorModel(TINY)
        model.load_state_dict(weights)
        model.eval()
        generator = torch.Generator().manual_seed(1)
        full = network_input(torch.rand(1, 1, 32, 32, generator=generator) - 0.5)
        crops = network_input(torch.rand(2, 1, 32, 32, generator=generator) - 0.5)
        boxes = np.array([[2.0, 3.0, 20.0, 28.0], [10.0, 0.0, 32.0, 16.0]])
        infos = {g: torch.from_numpy(i) for g, i in box_infos(boxes, (32, 32), (32, 16, 8, 4)).items()}
        with torch.no_grad():
            return model.full(full)[0], model(full, crops, infos)

    (full_a, fused_a), (full_b, fused_b) = colorize(from_mmagic), colorize(from_reference)
    assert fused_a.abs().max() > 1e-3  # not a degenerate output
    torch.testing.assert_close(full_a, full_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(fused_a, fused_b, atol=1e-6, rtol=0)
    for key, value in from_reference.items():
        assert torch.equal(from_mmagic[key], value), key


@pytest.mark.parametrize(
    "key, ours",
    [
        ("image_model.model1.0.weight", "full.conv1.0.weight"),
        ("instance_model.model8up.weight", "instance.conv8_up.weight"),
        ("image_model.model10up.bias", "full.conv10_up.bias"),
        ("instance_model.model3short8.bias", "instance.shortcut3_8.bias"),
        ("fusion_model.model10.1.weight", "fusion.backbone.conv10.1.weight"),
        ("fusion_model.model_out.0.bias", "fusion.backbone.ab_head.0.bias"),
        ("fusion_model.weight_layer.simple_instance_conv.0.weight", "fusion.fusers.conv1_2.instance_net.0.weight"),
        ("fusion_model.weight_layer9_2.simple_bg_conv.4.bias", "fusion.fusers.conv9_3.background_net.4.bias"),
        ("image_model.model_class.weight", None),
        ("fusion_model.weight_layerout.simple_bg_conv.0.weight", None),
        ("data_preprocessor.mean", None),
    ],
)
def test_explicit_mapping(key, ours):
    assert map_mmagic_key(key) == ours
    if ours is not None:
        assert mmagic_key(ours) == key


@pytest.mark.parametrize(
    "key",
    [
        "generator.model1.0.weight",
        "image_model.model11.0.weight",
        "image_model.weight_layer.simple_bg_conv.0.weight",  # weight layers live in fusion_model only
        "image_model.weightlayerout.x",
        "fusion_model.weight_layer.other_conv.0.weight",
        "image_model.module.model1.0.weight",
        "model1.0.weight",
    ],
)
def test_unknown_keys_are_errors(key):
    with pytest.raises(WeightsError, match="unexpected key"):
        map_mmagic_key(key)


def test_reference_spelling_of_bare_modules_is_accepted_but_not_twice():
    assert map_mmagic_key("image_model.model8up.0.weight") == "full.conv8_up.weight"
    assert map_mmagic_key("fusion_model.model1short10.0.bias") == "fusion.backbone.shortcut1_10.bias"
    state = mmagic_state_dict(tiny_model())
    state["image_model.model2short9.0.weight"] = state["image_model.model2short9.weight"].clone()
    state["image_model.model8up.1.weight"] = state["image_model.model8up.weight"].clone()
    with pytest.raises(WeightsError) as err:
        convert_mmagic_state_dict(state)
    assert "both map to 'full.shortcut2_9.weight'" in str(err.value)
    assert "'image_model.model8up.1.weight' maps to 'full.conv8_up.1.weight', which the model does not have" in str(
        err.value
    )


def test_inverse_mapping_round_trips_every_key():
    for key in tiny_model().state_dict():
        assert map_mmagic_key(mmagic_key(key)) == key
    with pytest.raises(WeightsError):
        mmagic_key("full.conv99.0.weight")


def test_conversion_reproduces_the_model():
    model = tiny_model(seed=3)
    state, config = convert_mmagic_state_dict(mmagic_state_dict(model))
    assert config == TINY
    assert infer_mmagic_config(mmagic_state_dict(model)) == TINY
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_missing_unexpected_and_mis_shaped_tensors_are_named():
    state = mmagic_state_dict(tiny_model())
    del state["instance_model.model4.6.running_var"]
    state["fusion_model.weight_layer3.simple_bg_conv.0.bias"] = torch.zeros(99)
    state["fusion_model.extra_head.0.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as err:
        convert_mmagic_state_dict(state, TINY)
    message = str(err.value)
    assert "instance_model.model4.6.running_var" in message
    assert "weight_layer3.simple_bg_conv.0.bias" in message and "(99,)" in message
    assert "fusion_model.extra_head.0.weight" in message


def test_full_width_file_into_tiny_config_is_refused():
    state = mmagic_state_dict(tiny_model())
    with pytest.raises(WeightsError, match="expected"):
        convert_mmagic_state_dict(state, ModelConfig(width=0.125))


class NotATensor:
    pass


def test_read_accepts_mmengine_and_bare_and_module_prefixed(tmp_path):
    state = mmagic_state_dict(tiny_model())
    for name, obj in {
        "mmengine": {"meta": {"epoch": 1}, "state_dict": state},
        "bare": state,
        "ddp": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
    }.items():
        torch.save(obj, tmp_path / f"{name}.pth")
        loaded, meta = read_mmagic_checkpoint(tmp_path / f"{name}.pth")
        assert set(loaded) == set(state), name
    assert read_mmagic_checkpoint(tmp_path / "mmengine.pth")[1] == {"epoch": 1}


def test_read_refuses_pickled_objects_and_garbage(tmp_path):
    torch.save({"state_dict": mmagic_state_dict(tiny_model()), "meta": NotATensor()}, tmp_path / "code.pth")
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        read_mmagic_checkpoint(tmp_path / "code.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        read_mmagic_checkpoint(tmp_path / "junk.pth")
    buffer = io.BytesIO()
    torch.save({"state_dict": {"image_model.model1.0.weight": "text"}}, buffer)
    (tmp_path / "text.pth").write_bytes(buffer.getvalue())
    with pytest.raises(WeightsError, match="not tensors"):
        read_mmagic_checkpoint(tmp_path / "text.pth")
