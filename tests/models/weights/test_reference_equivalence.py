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


def test_networks_match_reference(imported):
    _, model, data = imported
    full_in = network_input(torch.from_numpy(data["full_L"]))
    crops_in = network_input(torch.from_numpy(data["crops_L"]))
    infos = {g: torch.from_numpy(data[f"box_info_{g}"]) for g in (256, 128, 64, 32)}
    with torch.no_grad():
        ab_full = model.full(full_in)[0]
        ab_instance, features = model.instance(crops_in)
        ab_fused = model.fusion(full_in, features, infos)
        ab_model = model(full_in, crops_in, infos)
    np.testing.assert_allclose(ab_full.numpy(), data["ab_full"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ab_instance.numpy(), data["ab_instance"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ab_fused.numpy(), data["ab_fused"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ab_model.numpy(), data["ab_fused"], atol=1e-4, rtol=0)
