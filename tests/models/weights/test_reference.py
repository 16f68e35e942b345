import zipfile

import pytest
import torch

from instcolor.models.weights.store import WeightsError, load_weights, read_metadata, save_model
from instcolor.models.weights.reference import convert_reference_state_dicts, import_reference, map_reference_key
from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel
from tests.support.helpers import tiny_model
from tests.support.reference_fixtures import official_cases, rebuild_state_dict, write_reference_checkpoints

CASE = official_cases()[0]


@pytest.fixture(scope="module")
def reference_state_dicts():
    return {net: rebuild_state_dict(CASE, net, 1)[0] for net in ("G", "GF", "GComp")}


def test_key_mapping_examples():
    assert map_reference_key("G", "model1.0.weight") == "instance.conv1.0.weight"
    assert map_reference_key("GComp", "model8up.0.bias") == "full.conv8_up.bias"
    assert map_reference_key("GF", "module.model3short8.0.weight") == "fusion.backbone.shortcut3_8.weight"
    assert (
        map_reference_key("GF", "module.weight_layer8_1.simple_bg_conv.4.bias")
        == "fusion.fusers.conv8_up.background_net.4.bias"
    )
    assert map_reference_key("G", "model_class.0.weight") is None
    assert map_reference_key("GF", "weight_layerout.simple_bg_conv.0.weight") is None


def test_every_model_tensor_is_covered(reference_state_dicts):
    state = convert_reference_state_dicts(reference_state_dicts)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in InstColorModel(ModelConfig()).state_dict().items()}
    assert set(state) == set(expected)
    assert all(tuple(state[k].shape) == shape for k, shape in expected.items())
    # every reference tensor lands exactly once, and the rows whose shapes coincide land where the
    # reference puts them (written out here, not taken from the converter's tables)
    def fingerprint(tensor):
        return tuple(tensor.shape), tuple(tensor.reshape(-1)[:4].tolist()), float(tensor.double().sum())

    sources = {
        (net, fingerprint(v)): (net, k) for net, sd in reference_state_dicts.items() for k, v in sd.items() if v.is_floating_point()
    }
    network = {"full": "GComp", "instance": "G", "fusion": "GF"}  # (G and GComp hold the same recipe)
    landed = [
        sources.get((network[k.split(".")[0]], fingerprint(v))) for k, v in state.items() if v.is_floating_point()
    ]
    assert None not in landed and len(set(landed)) == len(landed)
    pairs = {
        "fusion.fusers.conv5_3.instance_net.0.weight": ("GF", "weight_layer5.simple_instance_conv.0.weight"),
        "fusion.fusers.conv6_3.background_net.2.bias": ("GF", "weight_layer6.simple_bg_conv.2.bias"),
        "fusion.fusers.conv8_up.instance_net.4.weight": ("GF", "weight_layer8_1.simple_instance_conv.4.weight"),
        "fusion.fusers.conv8_3.background_net.0.weight": ("GF", "weight_layer8_2.simple_bg_conv.0.weight"),
        "fusion.fusers.conv10_2.instance_net.0.bias": ("GF", "weight_layer10_2.simple_instance_conv.0.bias"),
        "fusion.backbone.conv5.0.weight": ("GF", "model5.0.weight"),
        "fusion.backbone.conv6.0.weight": ("GF", "model6.0.weight"),
        "instance.conv8.1.weight": ("G", "model8.1.weight"),
        "full.conv9_up.weight": ("GComp", "model9up.0.weight"),
        "full.shortcut2_9.bias": ("GComp", "model2short9.0.bias"),
    }
    for ours, (net, key) in pairs.items():
        assert torch.equal(state[ours], reference_state_dicts[net][key]), ours


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda sd: sd["G"].pop("model4.2.weight"), "missing tensor 'instance.conv4.2.weight'"),
        (lambda sd: sd["GF"].__setitem__("extra.weight", torch.zeros(1)), "'extra.weight'"),
        (lambda sd: sd["GComp"].__setitem__("model1.0.bias", torch.zeros(3)), "has shape (3,), expected (64,)"),
        (lambda sd: sd.pop("GF"), "missing network GF"),
    ],
)
def test_damaged_checkpoints_are_named(reference_state_dicts, damage, message):
    damaged = {net: dict(sd) for net, sd in reference_state_dicts.items()}
    damage(damaged)
    with pytest.raises(WeightsError) as err:
        convert_reference_state_dicts(damaged)
    assert message in str(err.value)


def test_import_from_zip_and_provenance(tmp_path):
    write_reference_checkpoints(CASE, tmp_path / "ckpt")
    archive = tmp_path / "checkpoints.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (tmp_path / "ckpt").iterdir():
            zf.write(f, f"checkpoints/coco_finetuned_mask_256_ffs/{f.name}")
    out = import_reference(archive, output=tmp_path / "paper.safetensors")
    meta = read_metadata(out)
    assert meta["architecture"] == "instcolorization" and "MIT" in meta["licence"]
    assert "latest_net_GF.pth" in meta["input_sha256"]
    assert load_weights(out).model.config.width == 1.0


def test_pickled_code_is_refused(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    for net in ("G", "GF", "GComp"):
        torch.save({"model1.0.weight": torch.zeros(1), "payload": object()}, folder / f"latest_net_{net}.pth")
    with pytest.raises(WeightsError, match="cannot be loaded safely"):
        import_reference(folder, output=tmp_path / "x.safetensors")


def test_missing_file_in_folder(tmp_path):
    with pytest.raises(WeightsError, match="missing .*latest_net_G.pth"):
        import_reference(tmp_path, output=tmp_path / "x.safetensors")


def test_own_format_roundtrip_and_foreign_file(tmp_path):
    model = tiny_model(seed=4)
    save_model(tmp_path / "w.safetensors", model, {"source": "unit test", "licence": "MIT"})
    loaded = load_weights(tmp_path / "w.safetensors")
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.model.state_dict()[key], value)
    assert loaded.metadata["source"] == "unit test"
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError):
        load_weights(tmp_path / "junk.safetensors")
