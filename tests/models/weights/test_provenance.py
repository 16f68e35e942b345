"""Issue 13: weights traced to the authors' files, offline runs that fail fast, refused pickles."""

import dataclasses
import hashlib
import io
import json
import os
import pickle
import socket
import time
import warnings

import pytest
import torch
from typer.testing import CliRunner

from tests.support.checkpoint_builders import reference_state_dicts
from tests.support.helpers import tiny_model
from instcolor.cli import app
from tests.support.local_http import LocalServer, refuse_non_loopback

FAST = {"progress": False, "retry_wait": 0.0, "timeout": 5.0}
runner = CliRunner()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reference_files(model) -> dict[str, bytes]:
    out = {}
    for name, state in reference_state_dicts(model).items():
        blob = io.BytesIO()
        torch.save(state, blob)
        out[f"latest_net_{name}.pth"] = blob.getvalue()
    return out


def test_registry_holds_the_authors_lfs_hashes_and_mirrors():
    from instcolor.models.weights import registry

    commit = "13e6eec8aba37f893a2d2812834f6629707edf5a"
    g = registry.known_file("91c2812f62095526612e85ed6eeafaab55f31bcec6b1e97e4d7299c442f490ab")
    assert (g.folder, g.network, g.size) == ("coco_finetuned_mask_256_ffs", "G", 136789235)
    assert len(registry.KNOWN_FILES) == 7
    lfs = registry.REGISTRY["paper-coco"].downloads[-1]
    assert lfs.layout == "reference-files" and len(lfs.parts) == 3
    assert lfs.parts[0].url == (
        f"https://media.githubusercontent.com/media/ericsujw/InstColorization/{commit}/checkpoints/"
        "coco_finetuned_mask_256_ffs/latest_net_G.pth"
    )
    assert all(part.full_sha256 and part.size for part in lfs.parts)
    sig = registry.REGISTRY["siggraph_retrained"].downloads[0]
    assert sig.sha256 == "29fc246aea5c99e7e2aeed92382ceef239802b53857b87e2e5e167912f865db1" and sig.size == 136785828
    line, verified = registry.describe_files({"latest_net_G.pth": g.sha256})
    assert line == "latest_net_G.pth: the authors' coco_finetuned_mask_256_ffs G, verified" and verified


def test_import_says_which_known_file_each_input_is(tmp_path, monkeypatch):
    from instcolor.models.weights import registry
    from instcolor.models.weights.store import read_metadata

    files = reference_files(tiny_model(seed=3))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = runner.invoke(app, ["weights", "import", str(folder), "--name", "mine", "-o", str(tmp_path / "a.safetensors")])
    assert result.exit_code == 0, result.output
    assert "matches no file the authors published" in result.output and "unverified" in result.output
    assert read_metadata(tmp_path / "a.safetensors")["verified"] == "no"
    # the same bytes, pretending they are the authors' (their real files are 137 MB each)
    known = tuple(
        registry.KnownFile("coco_finetuned_mask_256_ffs", name[11:-4], sha(data), len(data)) for name, data in files.items()
    )
    monkeypatch.setattr(registry, "KNOWN_FILES", known)
    result = runner.invoke(app, ["weights", "import", str(folder), "--name", "mine", "-o", str(tmp_path / "b.safetensors")])
    assert result.exit_code == 0, result.output
    assert "latest_net_G.pth: the authors' coco_finetuned_mask_256_ffs G, verified" in result.output
    meta = read_metadata(tmp_path / "b.safetensors")
    assert meta["verified"] == "yes" and json.loads(meta["source_files"])["latest_net_G.pth"] == sha(files["latest_net_G.pth"])


def test_download_of_per_file_mirror_checks_each_file_and_says_sizes(tmp_path, monkeypatch, capsys):
    from instcolor.models.weights import download, registry

    refuse_non_loopback(monkeypatch)
    files = reference_files(tiny_model(seed=4))
    with LocalServer() as server:
        parts = tuple(
            registry.RemoteFile(server.add(f"/lfs/{name}", data), name, "checkpoint", sha256=sha(data), size=len(data))
            for name, data in files.items()
        )
        remote = registry.RemoteFile(parts[0].url, "x-G.pth", "reference-files", sha256=parts[0].sha256,
                                     size=parts[0].size, member="x", parts=parts)  # fmt: skip
        weight_set = dataclasses.replace(registry.REGISTRY["paper-coco"], name="lfs-test", downloads=(remote,), config=None)
        known = tuple(registry.KnownFile("x", n[11:-4], sha(d), len(d)) for n, d in files.items())
        monkeypatch.setattr(registry, "KNOWN_FILES", known)
        result = download.install(weight_set, progress=True, retry_wait=0.0)
    assert "the authors' x G, verified" in result.message
    err = capsys.readouterr().err
    total = sum(len(d) for d in files.values())
    assert "downloading 3 files" in err and download.format_size(total) in err
    assert download.format_size(len(files["latest_net_G.pth"])) in err


def test_name_resolution_failure_is_not_retried_and_stops_the_other_mirrors(tmp_path, monkeypatch):
    from instcolor.models.weights import download, registry
    from instcolor.models.weights.http import DownloadError

    lookups = []

    def getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))
    weight_set = dataclasses.replace(
        registry.REGISTRY["paper-coco"],
        name="offline-test",
        downloads=(registry.RemoteFile("http://a.example/x.pth", "x.pth", "auto"),
                   registry.RemoteFile("http://b.example/y.pth", "y.pth", "auto")),
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(DownloadError, match="offline"):
        download.install(weight_set, progress=False, retry_wait=1.0)
    assert lookups == ["a.example"] and not slept and time.monotonic() - started < 5


def test_a_failed_automatic_download_is_remembered(monkeypatch):
    from instcolor.models.weights import download
    from instcolor.models.weights.http import DownloadError

    monkeypatch.delenv("INSTCOLOR_OFFLINE")
    calls = []

    def failing(name, **kwargs):
        calls.append(name)
        raise DownloadError("http://x: cannot resolve x (offline?)")

    monkeypatch.setattr(download, "install", failing)
    path, message = download.default_weights()
    assert calls == ["paper-coco"] and path.name == "starter.safetensors"
    state = json.loads(download.download_state_path().read_text())
    assert state["paper-coco"]["time"] <= time.time() and "offline" in state["paper-coco"]["reason"]
    path, message = download.default_weights()
    assert calls == ["paper-coco"], "tried again at once"
    assert "not trying again" in message and "INSTCOLOR_OFFLINE" in message
    state["paper-coco"]["time"] = time.time() - download.FAILED_DOWNLOAD_WAIT - 1
    download.download_state_path().write_text(json.dumps(state))
    download.default_weights()
    assert calls == ["paper-coco", "paper-coco"]


def test_from_pretrained_paper_coco_falls_back_with_a_warning():
    from instcolor import Colorizer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        colorizer = Colorizer.from_pretrained("paper-coco", device="cpu", detector=None)
    assert any("starter" in str(w.message) for w in caught)
    assert colorizer.metadata.get("name", "starter") != "paper-coco"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refused_pickle_does_not_repeat_torchs_advice(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    files = reference_files(tiny_model())
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "latest_net_G.pth").write_bytes(pickle.dumps({"x": _Evil()}))
    result = runner.invoke(app, ["weights", "import", str(folder), "-o", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 1
    assert "weights_only=False" not in result.output and "weights_only` set to `False" not in result.output
    assert "cannot be loaded safely" in result.output and "never runs code" in result.output
    mm = tmp_path / "evil.pth"
    mm.write_bytes(pickle.dumps({"x": _Evil()}))
    result = runner.invoke(app, ["weights", "import", str(mm), "-o", str(tmp_path / "p.safetensors")])
    assert result.exit_code == 1 and "weights_only" not in result.output.replace("\n", "")
