"""Resumable runs without Ray: list files, the ledger, the plan, the local engine's ledger, `instcolor ledger`."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.support.helpers import gradient_image, tiny_weights_file
from instcolor.cli import app
from instcolor.inference.ledger import LEDGER_NAME, Ledger, Record, sha256_file, summarize
from instcolor.inference.overlap import Job
from instcolor.inference.runs import plan_run, read_list_file

runner = CliRunner()


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "1901").mkdir(parents=True)
    Image.fromarray(gradient_image(channels=1)).save(folder / "a.png")
    Image.fromarray(gradient_image(height=40, width=30, channels=1, seed=2)).save(folder / "1901" / "b.png")
    return folder


@pytest.fixture()
def weights(tmp_path):
    return tiny_weights_file(tmp_path / "tiny.safetensors")


def test_list_files_text_csv_parquet_keep_the_relative_layout(photos, tmp_path):
    text = photos / "list.txt"
    text.write_text("# catalogue\na.png\n1901/b.png\nmissing.png\n")
    found, problems = read_list_file(text)
    assert [r.as_posix() for _, r in found] == ["a.png", "1901/b.png"]
    assert len(problems) == 1 and "missing.png" in problems[0]

    table = tmp_path / "catalogue.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path"])
        writer.writerows([[1, photos / "a.png"], [2, photos / "1901" / "b.png"]])
    found, problems = read_list_file(table)  # absolute paths: layout below their common folder
    assert not problems and [r.as_posix() for _, r in found] == ["a.png", "1901/b.png"]

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    parquet = tmp_path / "catalogue.parquet"
    pq.write_table(pa.table({"path": [str(photos / "1901" / "b.png")]}), parquet)
    found, problems = read_list_file(parquet)
    assert not problems and [r.as_posix() for _, r in found] == ["b.png"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.png\n")
    assert "no 'path' column" in read_list_file(bad)[1][0]


def test_ledger_skips_a_torn_line_and_summarizes(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append(Record(input="/a", output="/o/a", status="failed", error="ValueError: cannot read image", seconds=1))
    ledger.append(Record(input="/a", output="/o/a", status="done", sha256="x", attempt=2, worker="h:1", seconds=1))
    ledger.append(Record(input="/b", output="/o/b", status="lost", error="WorkerLost: died", worker="h:2"))
    with open(ledger.path, "a") as handle:
        handle.write('{"input": "/c", "sta')  # a write cut short
    records = ledger.read()
    assert len(records) == 3
    summary = summarize(records)
    assert (summary.inputs, summary.done, summary.failed, summary.retried, summary.lost) == (2, 1, 1, 1, 1)
    assert summary.failures == {"WorkerLost": 1} and summary.per_worker == {"h:1": 1}


def test_plan_skips_verified_redoes_corrupted_and_gives_up_after_the_retries(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    jobs = [Job(tmp_path / f"{name}.png", out / f"{name}.png") for name in "abc"]
    (out / "a.png").write_bytes(b"good")
    (out / "b.png").write_bytes(b"good")
    ledger = Ledger(out)
    for job in jobs[:2]:
        ledger.append(Record(str(job.source.resolve()), str(job.target), "done", sha256=sha256_file(out / "a.png"),
                             settings="s"))  # fmt: skip
    for attempt in (1, 2):
        ledger.append(Record(str(jobs[2].source.resolve()), str(jobs[2].target), "failed", error="E: x",
                             settings="s", attempt=attempt))  # fmt: skip
    (out / "b.png").write_bytes(b"bad!")  # corrupted after it was recorded
    plan = plan_run(jobs, ledger, "s", retries=2)
    assert plan.skipped == 1 and [(a.job.target.name, a.attempt) for a in plan.todo] == [("b.png", 1), ("c.png", 3)]
    plan = plan_run(jobs, ledger, "s", retries=1)
    assert [a.job.target.name for a in plan.todo] == ["b.png"] and plan.gave_up[0][0] is jobs[2]
    assert len(plan_run(jobs, ledger, "other settings", retries=0).todo) == 3


def test_local_engine_writes_the_ledger_when_asked_and_reruns_skip(photos, weights, tmp_path):
    out = tmp_path / "out"
    args = ["colorize", str(photos / "list.txt"), "-o", str(out), "--weights", str(weights), "--detector", "none"]
    (photos / "list.txt").write_text("a.png\n1901/b.png\n")
    result = runner.invoke(app, [*args, "--ledger"])
    assert result.exit_code == 0, result.output
    assert (out / "1901" / "b.png").is_file() and (out / LEDGER_NAME).is_file()
    records = Ledger(out).read()
    assert [r["engine"] for r in records] == ["local", "local"] and records[0]["instances"] == 0
    result = runner.invoke(app, args)  # the ledger in OUT switches it on
    assert "skipping 2 images already done" in result.output and len(Ledger(out).read()) == 2
    summary = runner.invoke(app, ["ledger", str(out), "--json"])
    assert summary.exit_code == 0 and json.loads(summary.stdout)["done"] == 2


def test_without_a_ledger_the_local_engine_writes_none(photos, weights, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["colorize", str(photos), "-o", str(out), "--weights", str(weights), "--detector", "none"])
    assert result.exit_code == 0 and not (out / LEDGER_NAME).exists()
    assert runner.invoke(app, ["ledger", str(out)]).exit_code == 2


def test_ray_engine_without_ray_says_how_to_install(photos, weights, tmp_path, monkeypatch):
    import instcolor.inference.ray_engine as ray_engine

    monkeypatch.setattr(ray_engine, "ray_available", lambda: False)
    result = runner.invoke(app, ["colorize", str(photos), "-o", str(tmp_path / "o"), "--engine", "ray"])
    assert result.exit_code == 2 and "pip install 'instcolor[ray]'" in result.output
    result = runner.invoke(app, ["colorize", str(photos), "-o", str(tmp_path / "o"), "--workers", "2"])
    assert result.exit_code == 2 and "need --engine ray" in result.output
    result = runner.invoke(app, ["colorize", str(photos), "-o", str(tmp_path / "o"), "--engine", "ray", "--in-flight", "2"])
    assert result.exit_code == 2 and "--in-flight is for --engine local" in result.output


def test_in_flight_option_reaches_the_runner_and_gives_the_same_pixels(photos, weights, tmp_path, monkeypatch):
    import numpy as np

    import instcolor.inference.runs as runs

    seen = []
    real = runs.colorize_files

    def recording(colorizer, jobs, **options):
        seen.append(options["in_flight"])
        return real(colorizer, jobs, **options)

    monkeypatch.setattr(runs, "colorize_files", recording)
    outputs = {}
    for in_flight in ("1", "2"):
        out = tmp_path / f"o{in_flight}"
        result = runner.invoke(app, ["colorize", str(photos), "-o", str(out), "--weights", str(weights), "--in-flight", in_flight])
        assert result.exit_code == 0, result.output
        assert "images/s overall" in result.output.splitlines()[-1]
        outputs[in_flight] = {p.relative_to(out).as_posix(): np.asarray(Image.open(p)) for p in sorted(out.rglob("*.png"))}
    assert seen == [1, 2]
    assert sorted(outputs["1"]) == ["1901/b.png", "a.png"]
    for name, pixels in outputs["1"].items():  # torch's thread count may move a value by one level
        assert np.abs(pixels.astype(int) - outputs["2"][name].astype(int)).max() <= 1
    result = runner.invoke(app, ["colorize", str(photos), "-o", str(tmp_path / "o3"), "--weights", str(weights),
                                 "--in-flight", "2", "--compile"])  # fmt: skip
    assert result.exit_code == 2 and "--in-flight 2: two images at once do not run compiled networks" in result.output
