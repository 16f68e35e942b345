"""Downloads against a loopback HTTP server: resume, checksums, atomicity, mirrors, Google Drive pages."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

from tests.support.checkpoint_builders import mmagic_checkpoint_bytes, reference_zip_bytes
from tests.support.helpers import TINY, tiny_model, tiny_weights_file
from instcolor.models.weights.http import DownloadError, download_file, google_drive_confirm_url
from instcolor.models.weights.download import detect_layout, install
from instcolor.models.weights.registry import RemoteFile, WeightSet, tensors_sha256
from instcolor.models.weights.store import load_weights, read_metadata, weights_home
from tests.support.local_http import LocalServer, closed_port_url, refuse_non_loopback

FAST = {"progress": False, "retry_wait": 0.0, "timeout": 5.0}
PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, several read chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(monkeypatch):
    refuse_non_loopback(monkeypatch)
    with LocalServer() as local:
        yield local


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_full_sha256(server, tmp_path):
    url = server.add("/w/file.bin", PAYLOAD)
    result = download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD
    assert result.sha256 == sha(PAYLOAD) and result.size == len(PAYLOAD)
    assert files_in(tmp_path) == ["file.bin"]
    assert [h.range for h in server.hits] == [None]


def test_download_verifies_sha256_prefix(server, tmp_path):
    url = server.add("/file-abc.pth", PAYLOAD)
    result = download_file(RemoteFile(url, "f.pth", "mmagic", sha256=sha(PAYLOAD)[:8]), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD


def test_resumes_a_truncated_part_file(server, tmp_path):
    url = server.add("/file.bin", PAYLOAD)
    have = len(PAYLOAD) * 2 // 5
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:have])
    result = download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD
    assert [(h.range, h.status, h.sent) for h in server.hits] == [(f"bytes={have}-", 206, len(PAYLOAD) - have)]
    assert files_in(tmp_path) == ["file.bin"]


def test_resumes_within_the_run_after_a_dropped_connection(server, tmp_path):
    cut = len(PAYLOAD) // 3
    url = server.add("/file.bin", PAYLOAD, cut_after=cut, cut_times=1)
    result = download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD
    assert [h.range for h in server.hits] == [None, f"bytes={cut}-"]


def test_server_ignoring_range_starts_over(server, tmp_path):
    url = server.add("/file.bin", PAYLOAD, ranges=False)
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes from somewhere else")
    result = download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD


def test_complete_part_file_answered_with_416_is_verified(server, tmp_path):
    url = server.add("/file.bin", PAYLOAD)
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    result = download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD
    assert [h.status for h in server.hits] == [416]


def test_corrupted_download_is_refused_and_leaves_nothing(server, tmp_path):
    corrupted = bytearray(PAYLOAD)
    corrupted[1000] ^= 0xFF
    url = server.add("/file.bin", bytes(corrupted))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)), tmp_path, **FAST)
    assert files_in(tmp_path) == []


def test_truncated_file_is_refused_and_leaves_nothing(server, tmp_path):
    url = server.add("/file.bin", PAYLOAD[: len(PAYLOAD) // 2])  # a mirror holding a cut-off copy
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(RemoteFile(url, "file.bin", "auto", sha256=sha(PAYLOAD)[:8]), tmp_path, **FAST)
    assert files_in(tmp_path) == []


def test_transfer_that_keeps_ending_early_is_refused_and_leaves_nothing(server, tmp_path):
    url = server.add("/file.bin", PAYLOAD, cut_after=len(PAYLOAD) // 2)  # announces the full length every time
    with pytest.raises(DownloadError, match="transfer ended at byte") as err:
        download_file(RemoteFile(url, "file.bin", "auto"), tmp_path, retries=2, **FAST)
    assert "kept" not in str(err.value)
    assert files_in(tmp_path) == []
    assert len(server.hits) == 4  # the first answer, then three resumes without progress


def test_unreachable_server_keeps_the_partial_file_for_later(tmp_path, monkeypatch):
    refuse_non_loopback(monkeypatch)
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:100])
    with pytest.raises(DownloadError, match="cannot connect") as err:
        download_file(RemoteFile(closed_port_url(), "file.bin", "auto"), tmp_path, retries=1, **FAST)
    assert "partial download kept" in str(err.value)
    assert (tmp_path / "file.bin.part").read_bytes() == PAYLOAD[:100]


def test_a_refusal_keeps_an_earlier_partial_file(server, tmp_path):
    url = server.add("/busy.bin", b"try later", status=503)
    (tmp_path / "busy.bin.part").write_bytes(PAYLOAD[:100])
    with pytest.raises(DownloadError, match="HTTP 503") as err:
        download_file(RemoteFile(url, "busy.bin", "auto"), tmp_path, retries=1, **FAST)
    assert "partial download kept" in str(err.value) and len(server.hits) == 2
    assert (tmp_path / "busy.bin.part").read_bytes() == PAYLOAD[:100]


def test_http_error_is_clear_and_not_retried(server, tmp_path):
    url = server.add("/gone.bin", b"gone", status=404)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(RemoteFile(url, "gone.bin", "auto"), tmp_path, **FAST)
    assert len(server.hits) == 1 and files_in(tmp_path) == []


def test_html_page_instead_of_a_file_is_refused(server, tmp_path):
    url = server.add("/login", b"<html><title>Sign in</title></html>", content_type="text/html")
    with pytest.raises(DownloadError, match="HTML page"):
        download_file(RemoteFile(url, "file.bin", "auto"), tmp_path, **FAST)
    assert files_in(tmp_path) == []


def confirm_form_page(base: str) -> bytes:
    """Google Drive's current "can't scan for viruses" page: a GET form to drive.usercontent."""
    return (
        "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
        "<p>Google Drive can't scan this file for viruses.</p>"
        f'<form id="download-form" action="{base}/download" method="get">'
        '<input type="submit" id="uc-download-link" value="Download anyway"/>'
        '<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-123">'
        "</form></body></html>"
    ).encode()


def test_google_drive_confirm_form_is_answered_and_resumes(server, tmp_path):
    page = server.add("/uc", confirm_form_page(server.base), content_type="text/html", query={"id": "FILEID"})
    server.add("/download", PAYLOAD, query={"id": "FILEID", "confirm": "t", "uuid": "u-123", "export": "download"})
    have = 12345
    (tmp_path / "checkpoints.zip.part").write_bytes(PAYLOAD[:have])
    remote = RemoteFile(page, "checkpoints.zip", "reference-zip", google_drive=True)
    result = download_file(remote, tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD
    assert "/download?" in result.url
    assert [(h.range, h.status) for h in server.hits] == [(None, 200), (f"bytes={have}-", 206)]


def test_google_drive_confirm_link_and_cookie_variants(server, tmp_path):
    link_page = b'<html><a id="uc-download-link" href="/uc2?export=download&amp;confirm=AbC&amp;id=X">Download</a></html>'
    server.add("/uc2", PAYLOAD, query={"confirm": "AbC", "id": "X"})
    url = server.add("/uc2", link_page, content_type="text/html", query={"id": "X"})
    result = download_file(RemoteFile(url, "a.bin", "auto", google_drive=True), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD

    server.add("/uc3", PAYLOAD, query={"confirm": "TOKEN42"})
    url = server.add(
        "/uc3", b"<html><title>warning</title></html>", content_type="text/html",
        set_cookie="download_warning_13058876669334088843_FILEID=TOKEN42; Path=/",
    )  # fmt: skip
    result = download_file(RemoteFile(url, "b.bin", "auto", google_drive=True), tmp_path, **FAST)
    assert result.path.read_bytes() == PAYLOAD
    assert server.hits[-1].cookie and "TOKEN42" in server.hits[-1].cookie


def test_google_drive_quota_page_is_a_clear_error(server, tmp_path):
    page = b"<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users</body></html>"
    url = server.add("/uc", page, content_type="text/html")
    with pytest.raises(DownloadError, match="Quota exceeded") as err:
        download_file(RemoteFile(url, "checkpoints.zip", "reference-zip", google_drive=True), tmp_path, **FAST)
    assert "instcolor weights import" in str(err.value)
    assert files_in(tmp_path) == []


def test_confirm_url_from_a_page():
    page = confirm_form_page("https://drive.usercontent.google.com")
    url = google_drive_confirm_url("https://drive.google.com/uc?export=download&id=F", page)
    assert url == "https://drive.usercontent.google.com/download?id=FILEID&export=download&confirm=t&uuid=u-123"


# --- install: download + conversion into the cache ------------------------------------------------


def tiny_set(*downloads: RemoteFile, name: str = "tiny-set") -> WeightSet:
    return WeightSet(
        name=name, description="test", architecture="instcolorization", trained_on="nothing", licence="MIT (test)",
        source="tests", downloads=downloads, config=TINY,
    )  # fmt: skip


def assert_same_weights(path, model) -> None:
    loaded = load_weights(path).model.state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key


def test_install_converts_an_mmagic_file_and_records_its_source(server):
    model = tiny_model(seed=5)
    blob = mmagic_checkpoint_bytes(model)
    url = server.add("/mmediting/inst-colorization-tiny-" + sha(blob)[:8] + ".pth", blob)
    result = install(tiny_set(RemoteFile(url, "tiny.pth", "mmagic", sha256=sha(blob)[:8])), **FAST)
    assert result.path == weights_home() / "tiny-set.safetensors"
    assert_same_weights(result.path, model)
    meta = read_metadata(result.path)
    assert meta["source_url"] == url and meta["source_sha256"] == sha(blob)
    assert meta["source_layout"] == "mmagic" and meta["licence"] == "MIT (test)"
    assert json.loads(meta["config"])["width"] == TINY.width
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert meta["tensors_sha256"] == tensors_sha256(state)
    assert files_in(weights_home() / "downloads") == []  # the raw download is not kept
    again = install(tiny_set(RemoteFile(url, "tiny.pth", "mmagic")), **FAST)
    assert "already installed" in again.message and len(server.hits) == 1


def test_install_picks_the_named_folder_of_the_authors_zip(server):
    model, decoy = tiny_model(seed=1), tiny_model(seed=2)
    blob = reference_zip_bytes(model, "coco_finetuned_mask_256_ffs", decoy=decoy)
    url = server.add("/uc", blob)
    remote = RemoteFile(url, "checkpoints.zip", "reference-zip", member="coco_finetuned_mask_256_ffs")
    result = install(tiny_set(remote), **FAST)
    assert_same_weights(result.path, model)
    missing = RemoteFile(url, "checkpoints.zip", "reference-zip", member="siggraph_retrained")
    with pytest.raises(DownloadError, match="zip has no .*siggraph_retrained/latest_net_G.pth"):
        install(tiny_set(missing, name="other"), **FAST)


def test_install_falls_back_to_the_next_mirror(server):
    model = tiny_model(seed=4)
    blob = mmagic_checkpoint_bytes(model)
    bad = server.add("/broken.pth", blob[:-10] + b"0123456789")
    good = server.add("/good.pth", blob)
    weight_set = tiny_set(
        RemoteFile(closed_port_url(), "a.zip", "reference-zip"),
        RemoteFile(bad, "b.pth", "mmagic", sha256=sha(blob)),
        RemoteFile(good, "c.pth", "mmagic", sha256=sha(blob)),
    )
    result = install(weight_set, retries=0, **FAST)
    assert result.source_url == good
    assert_same_weights(result.path, model)
    assert [h.path for h in server.hits] == ["/broken.pth", "/good.pth"]
    assert files_in(weights_home() / "downloads") == []


def test_install_fails_with_every_mirror_listed_and_leaves_nothing(server):
    good_checksum_wrong_layout = b"PK\x05\x06" + bytes(18)  # an empty zip: downloads fine, converts to nothing
    url_a = server.add("/a.zip", good_checksum_wrong_layout)
    url_b = server.add("/missing.pth", b"", status=404)
    weight_set = tiny_set(
        RemoteFile(url_a, "a.zip", "reference-zip", sha256=sha(good_checksum_wrong_layout)),
        RemoteFile(url_b, "b.pth", "mmagic"),
    )
    with pytest.raises(DownloadError) as err:
        install(weight_set, **FAST)
    message = str(err.value)
    assert "every source failed" in message and "/a.zip" in message and "missing latest_net_" in message
    assert "/missing.pth: HTTP 404" in message
    assert files_in(weights_home()) == ["downloads"] and files_in(weights_home() / "downloads") == []


def test_install_with_url_detects_the_layout(server, tmp_path):
    model = tiny_model(seed=6)
    ours = tiny_weights_file(tmp_path / "ours.safetensors", seed=6)
    url = server.add("/files/ours.safetensors", ours.read_bytes())
    result = install("my-set", url=url, sha256=sha(ours.read_bytes()), **FAST)
    assert result.path == weights_home() / "my-set.safetensors"
    assert read_metadata(result.path)["source_layout"] == "instcolor"
    assert_same_weights(result.path, model)


def test_detect_layout(tmp_path):
    model = tiny_model()
    (tmp_path / "m.pth").write_bytes(mmagic_checkpoint_bytes(model))
    (tmp_path / "c.zip").write_bytes(reference_zip_bytes(model, "x"))
    tiny_weights_file(tmp_path / "w.safetensors")
    assert detect_layout(tmp_path / "m.pth") == "mmagic"
    assert detect_layout(tmp_path / "c.zip") == "reference-zip"
    assert detect_layout(tmp_path / "w.safetensors") == "instcolor"


def test_bundled_set_needs_no_download(monkeypatch, tmp_path):
    import instcolor.models.weights.download as download

    starter = tiny_weights_file(tmp_path / "starter.safetensors")
    monkeypatch.setattr(download, "bundled_path", lambda ws: starter if ws.name == "starter" else None)
    result = install("starter", progress=False)
    assert result.path == starter and "nothing to download" in result.message
    monkeypatch.setattr(download, "bundled_path", lambda ws: None)
    with pytest.raises(Exception, match="reinstall instcolor"):
        install("starter", progress=False)
    assert not os.path.exists(weights_home() / "starter.safetensors")
