import json
from pathlib import Path

from typer.testing import CliRunner

from instcolor.cli import app

runner = CliRunner()
TARGETS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "targets.json"


def test_bench_networks_only_writes_json_and_a_table(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--device", "cpu", "--paths", "fp32", "--width", "0.0625", "--input-size", "64", "--instances", "0,1",
            "--repeats", "1", "--networks-only", "--detector", "none", "--no-isolate", "--json", str(out),
            "--targets", str(TARGETS_FILE)]  # fmt: skip
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
