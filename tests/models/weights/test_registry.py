"""The registry's entries, the default choice of weights, and verification of installed files."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
import numpy as np
import torch

import instcolor.models.weights.registry as registry
from tests.support.checkpoint_builders import mmagic_checkpoint_bytes
from tests.support.helpers import TINY, tiny_model, tiny_weights_file
from instcolor.models.weights.registry import REGISTRY, RemoteFile, get_weight_set, tensors_sha256, verify_weights
from instcolor.models.weights.download import default_weights
from instcolor.models.weights.store import WeightsError, save_model, weights_home
from tests.support.local_http import LocalServer, closed_port_url, refuse_non_loopback


def test_paper_coco_entry():
    paper = get_weight_set("paper-coco")
    drive, mmagic, _lfs = paper.downloads
    assert drive.google_drive and "id=1Xb-DKAA9ibCVLqm8teKd1MWk6imjwTBh" in drive.url
    assert drive.layout == "reference-zip" and drive.member == "coco_finetuned_mask_256_ffs"
    assert mmagic.url.startswith("https://download.openmmlab.com/mmediting/inst_colorization/")
    assert mmagic.layout == "mmagic"
    # OpenMMLab file names end in the first 8 hex digits of the file's sha256
    assert mmagic.sha256 == re.search(r"-([0-9a-f]{8})\.pth$", mmagic.url).group(1) == "5b9d4eee"
    assert not mmagic.full_sha256
    assert "MIT" in paper.licence and "COCO" in paper.trained_on and paper.architecture == "instcolorization"


def test_every_entry_is_complete():
    for name, weight_set in REGISTRY.items():
        assert weight_set.name == name
        assert weight_set.licence and weight_set.source and weight_set.trained_on and weight_set.description
        assert weight_set.downloads or weight_set.bundled, name
    assert REGISTRY["starter"].bundled == "starter.safetensors" and not REGISTRY["starter"].downloads


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(WeightsError, match="paper-coco"):
        get_weight_set("nope")


@pytest.mark.parametrize("kwargs", [{"layout": "pickle"}, {"sha256": "abc"}, {"sha256": "z" * 64}])
def test_remote_file_rejects_bad_fields(kwargs):
    with pytest.raises(ValueError):
        RemoteFile(**{"url": "http://127.0.0.1/x", "file_name": "x", "layout": "auto", **kwargs})


def test_tensors_sha256_sees_values_dtypes_and_names():
    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(2)}
    base = tensors_sha256(tensors)
    assert base == tensors_sha256(dict(reversed(tensors.items())))
    assert base != tensors_sha256({**tensors, "a": tensors["a"].clone().index_fill_(1, torch.tensor([0]), 7.0)})
    assert base != tensors_sha256({**tensors, "b": torch.zeros(2, dtype=torch.float64)})
    assert base != tensors_sha256({"c": tensors["a"], "b": tensors["b"]})


def test_tensors_sha256_is_the_documented_digest():
    """Against a constant and an independent computation: sha256 over, in sorted name order, each
    tensor's JSON header ``[name, dtype, shape]`` then its raw bytes."""
    import hashlib
    import json

    tensors = {"b": torch.zeros(2, dtype=torch.float64), "a": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    digest = hashlib.sha256()
    digest.update(json.dumps(["a", "torch.float32", [2, 3]]).encode())
    digest.update(np.arange(6, dtype="<f4").tobytes())
    digest.update(json.dumps(["b", "torch.float64", [2]]).encode())
    digest.update(np.zeros(2, dtype="<f8").tobytes())
    assert tensors_sha256(tensors) == digest.hexdigest()
    assert tensors_sha256(tensors) == "bef38cc6a5dcbe686a0efc2b03c4f17a83b17665b66f4587c7a80bcbe734a37d"


# --- default choice -------------------------------------------------------------------------------


@pytest.fixture
def starter(tmp_path, monkeypatch):
    """Pretend the package bundles starter weights (the real file is trained elsewhere)."""
    path = tiny_weights_file(tmp_path / "starter.safetensors")
    monkeypatch.setattr(registry, "bundled_path", lambda ws: path if ws.name == "starter" else None)
    return path


@pytest.fixture
def no_starter(monkeypatch):
    monkeypatch.setattr(registry, "bundled_path", lambda ws: None)


@pytest.fixture
def paper_from(monkeypatch):
    """Point paper-coco's mirrors at loopback URLs with tiny weights."""
    refuse_non_loopback(monkeypatch)

    def point(*remotes: RemoteFile) -> None:
        paper = REGISTRY["paper-coco"]
        tiny = dataclasses.replace(paper, downloads=remotes, config=TINY)
        monkeypatch.setitem(REGISTRY, "paper-coco", tiny)

    return point


def test_installed_paper_weights_win(starter):
    path = tiny_weights_file(weights_home() / "paper-coco.safetensors")
    assert default_weights() == (path, None)


def test_paper_weights_are_downloaded_when_missing(starter, paper_from, monkeypatch):
    import instcolor.models.weights.http as http

    monkeypatch.setattr(http, "_progress_bar", lambda enabled: http.Progress(disable=True))
    model = tiny_model(seed=8)
    blob = mmagic_checkpoint_bytes(model)
    with LocalServer() as server:
        url = server.add("/paper.pth", blob)
        paper_from(RemoteFile(url, "paper.pth", "mmagic", sha256=hashlib.sha256(blob).hexdigest()[:8]))
        path, message = default_weights(allow_download=True)
    assert path == weights_home() / "paper-coco.safetensors" and "downloaded paper-coco" in message


def test_starter_is_used_when_the_download_fails(starter, paper_from, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    monkeypatch.delenv("INSTCOLOR_OFFLINE", raising=False)
    paper_from(RemoteFile(closed_port_url(), "checkpoints.zip", "reference-zip"))
    path, message = default_weights()
    assert path == starter
    assert "\n" not in message and "starter" in message and "could not be downloaded" in message
    assert "cannot connect" in message
    assert "instcolor weights download paper-coco" in message
    assert not (weights_home() / "paper-coco.safetensors").exists()


def test_offline_means_no_download(starter, monkeypatch):
    def no_install(*args, **kwargs):
        raise AssertionError("tried to download while offline")

    monkeypatch.setattr("instcolor.models.weights.download.install", no_install)
    monkeypatch.setenv("INSTCOLOR_OFFLINE", "1")
    path, message = default_weights()
    assert path == starter and "INSTCOLOR_OFFLINE" in message
    assert default_weights(allow_download=False)[0] == starter


def test_nothing_available_is_a_clear_error(no_starter, monkeypatch):
    monkeypatch.setenv("INSTCOLOR_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        default_weights()
    message = str(err.value)
    assert "paper-coco is not installed" in message and "starter" in message and "missing" in message
    assert "instcolor weights download paper-coco" in message and "instcolor weights import" in message


# --- verification ---------------------------------------------------------------------------------


def installed_like_a_download(path, **overrides):
    model = tiny_model(seed=9)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    meta = {
        "name": "paper-coco",
        "source_url": REGISTRY["paper-coco"].downloads[1].url,
        "source_sha256": "5b9d4eee" + "0" * 56,
        "tensors_sha256": tensors_sha256(state),
        **overrides,
    }
    save_model(path, model, meta)
    return path


def test_verify_accepts_a_good_download(tmp_path):
    result = verify_weights(installed_like_a_download(tmp_path / "paper-coco.safetensors"))
    assert result.ok, result.problems
    assert any("sha256 prefix 5b9d4eee" in check for check in result.checks)
    assert any("tensors unchanged" in check for check in result.checks)


def test_verify_catches_changed_tensors(tmp_path):
    path = installed_like_a_download(tmp_path / "paper-coco.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x55  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    result = verify_weights(path)
    assert not result.ok and "tensors changed" in result.problems[0]


def test_verify_catches_a_source_checksum_that_is_not_the_published_one(tmp_path):
    path = installed_like_a_download(tmp_path / "paper-coco.safetensors", source_sha256="deadbeef" * 8)
    result = verify_weights(path)
    assert not result.ok and "does not match the published 5b9d4eee" in result.problems[0]


def test_verify_catches_unreadable_and_mis_shaped_files(tmp_path):
    path = installed_like_a_download(tmp_path / "cut.safetensors")
    path.write_bytes(path.read_bytes()[:5000])
    assert "not a readable safetensors" in verify_weights(path).problems[0]
    wrong = tmp_path / "wrong.safetensors"
    save_model(wrong, tiny_model(), {"config": '{"width": 0.125, "fusion_hidden": 16}'})
    assert "do not fit the architecture" in verify_weights(wrong).problems[0]
