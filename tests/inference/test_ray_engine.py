"""The Ray engine on a real local Ray cluster: a head and two worker nodes, all on 127.0.0.1.

One cluster serves the whole module (starting one takes seconds); each worker node has 1 CPU, so
``--workers 2`` puts one actor on each. The driver (this process) connects once; the engine reuses
that connection.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import instcolor
from tests.support.helpers import gradient_image, tiny_weights_file
from instcolor.cli import app
from instcolor.inference.ledger import LEDGER_NAME, Ledger
from instcolor.inference.ray_engine import RayOptions, connect

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

LOOPBACK = "127.0.0.1"
STORE = 80 * 1024 * 1024  # Ray's minimum object store is 75 MiB


@pytest.fixture(scope="module")
def cluster():
    source = str(Path(instcolor.__file__).parents[1])  # workers import this checkout's instcolor
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [source, saved]))
    common = dict(node_ip_address=LOOPBACK, object_store_memory=STORE)
    cluster = Cluster(
        initialize_head=True, head_node_args=dict(num_cpus=0, include_dashboard=False, **common)
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, **common)
    cluster.wait_for_nodes()
    connect(RayOptions(address=cluster.address))  # the engine then reuses this connection
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    for index in range(8):
        image = gradient_image(height=96 + 8 * index, width=128, channels=1, seed=index)
        Image.fromarray(image).save(photos / ("sub" if index % 2 else "") / f"p{index}.png")
    Image.fromarray(gradient_image(height=60, width=70, seed=11)).save(photos / "colour.jpg")
    weights = tiny_weights_file(root / "tiny.safetensors")
    local = root / "local"
    result = CliRunner().invoke(app, ["colorize", str(photos), "-o", str(local), "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    return root, photos, weights, local


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and p.name != LEDGER_NAME}  # fmt: skip


def colorize_ray(cluster, photos, weights, out, *more):
    args = ["colorize", str(photos), "-o", str(out), "--weights", str(weights), "--engine", "ray"]
    return CliRunner().invoke(app, [*args, "--address", cluster.address, "--workers", "2", *map(str, more)])


def test_outputs_match_the_local_engine_and_a_rerun_skips_everything(cluster, folder):
    root, photos, weights, local = folder
    out = root / "out-match"
    result = colorize_ray(cluster, photos, weights, out)
    assert result.exit_code == 0, result.output
    assert outputs(out) == outputs(local)  # byte for byte, on CPU fp32
    records = Ledger(out).read()
    assert len(records) == 9 and {r["status"] for r in records} == {"done"}
    assert len({r["worker"] for r in records}) == 2  # both worker nodes took part
    assert all(r["detector"] == "centernet" and r["sha256"] and r["weights"] for r in records)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    again = colorize_ray(cluster, photos, weights, out)
    assert again.exit_code == 0, again.output
    assert "skipping 9 images already done" in again.output
    assert len(Ledger(out).read()) == 9  # nothing ran again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps

    summary = CliRunner().invoke(app, ["ledger", str(out)])
    assert summary.exit_code == 0 and "9 done, 0 failed, 0 pending" in summary.output


def test_a_corrupted_output_is_found_by_its_hash_and_redone(cluster, folder):
    root, photos, weights, local = folder
    out = root / "out-corrupt"
    assert colorize_ray(cluster, photos, weights, out).exit_code == 0
    damaged = out / "sub" / "p1.png"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    result = colorize_ray(cluster, photos, weights, out)
    assert result.exit_code == 0, result.output
    assert "skipping 8 images" in result.output
    assert outputs(out) == outputs(local)
    redone = [r for r in Ledger(out).read() if r["input"].endswith("p1.png")]
    assert len(redone) == 2 and redone[-1]["status"] == "done"


def test_a_killed_worker_loses_nothing(cluster, folder):
    root, photos, weights, local = folder
    out = root / "out-kill"
    ledger = Ledger(out)
    finished = {}
    thread = threading.Thread(target=lambda: finished.setdefault("result", colorize_ray(cluster, photos, weights, out)))
    thread.start()
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and thread.is_alive():
        done = [r for r in ledger.read() if r["status"] == "done"]
        if done:  # the worker that just reported already holds its next image: kill it now
            victim = int(done[0]["worker"].rsplit(":", 1)[1])
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.005)
    thread.join(timeout=180)
    assert victim is not None
    result = finished["result"]
    assert result.exit_code == 0, result.output
    assert outputs(out) == outputs(local)  # every input done, no partial file left behind
    records = ledger.read()
    done = [r["input"] for r in records if r["status"] == "done"]
    assert sorted(done) == sorted(set(done)) and len(done) == 9  # each input done exactly once
    lost = [r for r in records if r["status"] == "lost"]
    assert lost and all(str(victim) in r["worker"] for r in lost)
    for record in lost:  # the ledger shows the retry
        retry = [r for r in records if r["input"] == record["input"] and r["status"] == "done"]
        assert retry[0]["attempt"] == record["attempt"] + 1 and str(victim) not in retry[0]["worker"]
    summary = CliRunner().invoke(app, ["ledger", str(out)])
    assert "9 done" in summary.output and f"{len(lost)} lost with a worker" in summary.output
