"""``instcolor weights list / download / import / verify`` against a loopback server and tiny files."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from typer.testing import CliRunner

from tests.support.checkpoint_builders import mmagic_checkpoint_bytes
from tests.support.helpers import TINY, tiny_model
from instcolor.cli import app
from instcolor.models.weights.registry import REGISTRY, RemoteFile
from instcolor.models.weights.store import load_weights, read_metadata, weights_home
from tests.support.local_http import LocalServer, refuse_non_loopback
from tests.support.reference_fixtures import official_cases, write_reference_checkpoints

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["weights", *map(str, args)])


@pytest.fixture(autouse=True)
def wide_and_offline(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich tables without folding
    refuse_non_loopback(monkeypatch)


@pytest.fixture
def server():
    with LocalServer() as local:
        yield local


def test_list_shows_registered_sets_and_how_to_get_them():
    result = run("list")
    assert result.exit_code == 0, result.output
    assert "paper-coco" in result.output and "not installed" in result.output
    assert "instcolor weights download paper-coco" in result.output
    assert "instcolor weights import PATH/TO/checkpoints.zip" in result.output
    assert "starter" in result.output


def test_download_with_url_then_list_and_verify(server):
    blob = mmagic_checkpoint_bytes(tiny_model(seed=11))
    url = server.add("/w/tiny.pth", blob)
    result = run("download", "tiny", "--url", url, "--sha256", hashlib.sha256(blob).hexdigest())
    assert result.exit_code == 0, result.output
    installed = weights_home() / "tiny.safetensors"
    assert read_metadata(installed)["source_sha256"] == hashlib.sha256(blob).hexdigest()
    listing = run("list")
    assert "tiny" in listing.output and "installed" in listing.output
    verified = run("verify")
    assert verified.exit_code == 0, verified.output
    assert "OK" in verified.output and "tensors unchanged" in verified.output


def test_verify_catches_a_tampered_file(server):
    blob = mmagic_checkpoint_bytes(tiny_model(seed=12))
    url = server.add("/w/tiny.pth", blob)
    assert run("download", "tiny", "--url", url).exit_code == 0
    installed = weights_home() / "tiny.safetensors"
    data = bytearray(installed.read_bytes())
    data[len(data) // 2] ^= 0x01
    installed.write_bytes(bytes(data))
    result = run("verify", "tiny")
    assert result.exit_code == 1
    assert "FAILED" in result.output and "tensors changed since install" in result.output
    installed.write_bytes(bytes(data[:100]))
    assert "unreadable" in run("list").output
    assert "not a readable safetensors file" in run("verify").output


def test_download_refuses_a_bad_checksum_and_installs_nothing(server):
    url = server.add("/w/tiny.pth", mmagic_checkpoint_bytes(tiny_model()))
    result = run("download", "tiny", "--url", url, "--sha256", "0123abcd")
    assert result.exit_code == 1 and "checksum mismatch" in result.output
    assert not (weights_home() / "tiny.safetensors").exists()
    assert not any((weights_home() / "downloads").iterdir())


def test_download_registered_set_with_mirror_fallback(server, monkeypatch):
    model = tiny_model(seed=13)
    blob = mmagic_checkpoint_bytes(model)
    dead = server.add("/gone.zip", b"", status=404)
    good = server.add("/mirror.pth", blob)
    remotes = (RemoteFile(dead, "checkpoints.zip", "reference-zip"), RemoteFile(good, "m.pth", "mmagic"))
    monkeypatch.setitem(REGISTRY, "paper-coco", dataclasses.replace(REGISTRY["paper-coco"], downloads=remotes, config=TINY))
    result = run("download", "paper-coco")
    assert result.exit_code == 0, result.output
    assert "installed paper-coco" in result.output
    meta = read_metadata(weights_home() / "paper-coco.safetensors")
    assert meta["source_url"] == good and "MIT" in meta["licence"]
    again = run("download", "paper-coco")
    assert again.exit_code == 0 and "already installed" in again.output


def test_download_usage_and_input_errors(server, monkeypatch):
    assert run("download", "no-such-set").exit_code == 2
    assert run("download", "paper-coco", "--sha256", "abcdef12").exit_code == 2
    assert run("download", "x", "--url", server.add("/x", b"x"), "--sha256", "nothex!!").exit_code == 2
    monkeypatch.setattr("instcolor.models.weights.download.bundled_path", lambda ws: None)
    result = run("download", "starter")
    assert result.exit_code == 1 and "reinstall instcolor" in result.output
    dead = (RemoteFile(server.add("/gone", b"", status=404), "gone.pth", "mmagic"),)
    monkeypatch.setitem(REGISTRY, "paper-coco", dataclasses.replace(REGISTRY["paper-coco"], downloads=dead))
    result = run("download", "paper-coco")
    assert result.exit_code == 1 and "every source failed" in result.output and "HTTP 404" in result.output


def test_verify_names_what_is_missing(monkeypatch):
    monkeypatch.setattr("instcolor.models.weights.registry.bundled_path", lambda ws: None)
    result = run("verify", "paper-coco")
    assert result.exit_code == 1 and "instcolor weights download paper-coco" in result.output
    nothing = run("verify")
    assert nothing.exit_code == 0 and "no weights installed" in nothing.output  # not a failure


def test_import_of_an_mmagic_file(tmp_path):
    model = tiny_model(seed=14)
    (tmp_path / "mm.pth").write_bytes(mmagic_checkpoint_bytes(model))
    result = run("import", tmp_path / "mm.pth", "--name", "mm")
    assert result.exit_code == 0, result.output
    loaded = load_weights(weights_home() / "mm.safetensors").model.state_dict()
    assert all((loaded[k] == v).all() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert run("verify", "mm").exit_code == 0


def test_import_of_incomplete_checkpoints_is_an_error(tmp_path):
    (tmp_path / "ckpt").mkdir()
    result = run("import", tmp_path / "ckpt")
    assert result.exit_code == 1 and "missing latest_net_" in result.output


@pytest.mark.skipif(not official_cases(), reason="no reference fixture case")
def test_import_of_reference_checkpoints(tmp_path):
    """Full-size reference-format files (the fixture recipe), as the authors publish them."""
    write_reference_checkpoints(official_cases()[0], tmp_path / "ckpt")
    result = run("import", tmp_path / "ckpt")
    assert result.exit_code == 0, result.output
    installed = weights_home() / "paper-coco.safetensors"
    assert installed.is_file() and "imported" in result.output
    verified = run("verify", "paper-coco")
    assert verified.exit_code == 0, verified.output
    assert "imported from local checkpoints" in verified.output
    listing = run("list")
    assert "paper-coco" in listing.output and "not installed" not in listing.output.split("starter")[0]
