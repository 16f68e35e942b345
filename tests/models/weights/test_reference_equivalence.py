"""Every case in tests/fixtures/official reproduces the reference networks through our import path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from instcolor.geometry import box_infos
from instcolor.models.model import network_input
from instcolor.models.weights.reference import import_reference
from instcolor.models.weights.store import load_weights
from tests.support.reference_fixtures import official_cases, write_reference_checkpoints

CASES = official_cases()


def test_fixture_cases_exist():
    assert CASES, "no reference fixture case found in tests/fixtures/official"


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def imported(request, tmp_path_factory):
    case = request.param
    folder = tmp_path_factory.mktemp(case.name)
    hashes = write_reference_checkpoints(case, folder / "ckpt")
    meta = json.loads((case / "meta.json").read_text())
    assert hashes == meta["weight_sha256"], "weights recipe not rebuilt exactly"
    path = import_reference(folder / "ckpt", output=folder / "imported.safetensors")
    return case, load_weights(path).model, dict(np.load(case / "case.npz"))


def test_box_info_matches_reference(imported):
    case, _, data = imported
    infos = box_infos(data["boxes_xyxy"], tuple(int(v) for v in data["image_size_wh"]))
    for grid, info in infos.items():
        np.testing.assert_array_equal(info, data[f"box_info_{grid}"], err_msg=f"grid {grid}")


@pytest.fixture(scope="module")
def outputs(imported):
    """Each full-size network run once: ``model.full`` and ``model(...)``, whose instance and
    fusion networks' own outputs are caught on the way (forward hooks), so that comparing
    ``model(...)`` with the fused output costs no second run of the instance and fusion nets."""
    _, model, data = imported
    assert model.fusion_strategy == "reference"  # model(...) calls model.instance, then model.fusion
    full_in = network_input(torch.from_numpy(data["full_L"]))
    crops_in = network_input(torch.from_numpy(data["crops_L"]))
    infos = {g: torch.from_numpy(data[f"box_info_{g}"]) for g in (256, 128, 64, 32)}
    caught = {}
    hooks = [
        model.instance.register_forward_hook(lambda m, args, out: caught.__setitem__("instance", out[0])),
        model.fusion.register_forward_hook(lambda m, args, out: caught.__setitem__("fusion", out)),
    ]
    try:
        with torch.no_grad():
            ab_full = model.full(full_in)[0]
            ab_model = model(full_in, crops_in, infos)
    finally:
        for hook in hooks:
            hook.remove()
    return {"ab_full": ab_full, "ab_instance": caught["instance"], "ab_fused": caught["fusion"], "ab_model": ab_model}


def test_networks_match_reference(imported, outputs):
    _, _, data = imported
    np.testing.assert_allclose(outputs["ab_full"].numpy(), data["ab_full"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(outputs["ab_instance"].numpy(), data["ab_instance"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(outputs["ab_fused"].numpy(), data["ab_fused"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(outputs["ab_model"].numpy(), data["ab_fused"], atol=1e-4, rtol=0)


def test_mmagic_layout_of_the_same_weights_converts_to_the_same_model(imported):
    """The fixture's weights under mmagic's literal key layout (tests/mmagic_layout.py) convert to
    exactly the tensors the reference import gave, so to the outputs checked above."""
    from instcolor.models.weights.mmagic import convert_mmagic_state_dict
    from tests.support.mmagic_layout import mmagic_layout, reference_name
    from tests.support.reference_fixtures import rebuild_state_dict

    case, model, _ = imported
    seed = json.loads((case / "meta.json").read_text())["seed"]
    references = {net: rebuild_state_dict(case, net, seed)[0] for net in ("G", "GF", "GComp")}
    layout = mmagic_layout()
    state = {}
    for key, shape in layout.items():
        network, reference_key = reference_name(key)
        state[key] = references[network].pop(reference_key)
        assert tuple(state[key].shape) == shape, key
    assert all(not rest for rest in references.values()), "the literal layout misses reference tensors"
    converted, config = convert_mmagic_state_dict(state)
    assert config.width == 1.0
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key
