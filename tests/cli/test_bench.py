import json
from pathlib import Path

from typer.testing import CliRunner

from instcolor.cli import app

runner = CliRunner()
TARGETS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "targets.json"


def test_bench_networks_only_writes_json_and_a_table(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--device", "cpu", "--paths", "fp32", "--width", "0.0625", "--input-size", "64", "--instances", "0,1",
            "--repeats", "1", "--networks-only", "--detector", "none", "--no-isolate", "--no-backends",
            "--json", str(out), "--targets", str(TARGETS_FILE)]  # fmt: skip
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["paths"]) == ["eager", "fp32"]  # the eager baseline is always measured
    assert "speedup" in result.output and "eager" in result.output
    assert "fp32_fast_path" in report["targets"] and "target fp32_fast_path" in result.output
    assert report["comparison"]["fp32"]["networks"][1]["max_delta_ab_network_units"] <= 1e-4


def test_bench_rejects_bad_options():
    assert runner.invoke(app, ["bench", "--paths", "fp64"]).exit_code == 2
    assert runner.invoke(app, ["bench", "--sizes", "big"]).exit_code == 2
    assert runner.invoke(app, ["bench", "--targets", "no-such-targets.json"]).exit_code == 2


def test_bench_backends_and_folder_sizes(tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path / "home"))
    out = tmp_path / "bench.json"
    args = ["--device", "cpu", "--width", "0.0625", "--input-size", "32", "--repeats", "1", "--skip-paths",
            "--folder-sizes", "0.01MP", "--folder-images", "2", "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    runtimes = {row["runtime"] for row in report["backends"]["rows"]}
    assert {"torch fp32", "torch eager fp32", "onnxruntime fp32", "onnxruntime int8"} <= runtimes
    assert all(row["max_delta_ab_lab"] <= 110 * 1e-4 for row in report["backends"]["rows"] if row["runtime"] == "onnxruntime fp32")
    assert report["backends"]["pick"] in runtimes
    (folder,) = report["folder_sizes"]["rows"]
    two_at_once = report["folder_sizes"]["runtime"].startswith("torch")  # ONNX Runtime: one at a time only
    expected = {"one at a time", "overlapped I/O"} | ({"two at once"} if two_at_once else set())
    assert folder["size"] == "0.01MP" and set(folder["images_per_second"]) == expected
    assert all(rate > 0 for rate in folder["images_per_second"].values()) and folder["ratio"]["one at a time"] == 1.0
    assert "CPU" in result.output and "model_name" in report["device"]
