"""``instcolor bench``: time every fast path against the plain eager fp32 path."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from instcolor.cli.app import EXIT_USAGE, app, console, fail


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@app.command()
def bench(
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    paths: str | None = typer.Option(
        None,
        help="comma-separated: eager, fp32, fp32-nchw, bf16, fp16, int8, auto, any +compile "
        "(default: eager, fp32 and the reduced precisions this device runs natively)",
    ),
    instances: str = typer.Option("0,1,8,16", help="instance counts"),
    sizes: str = typer.Option("256,0.25MP,1MP,12MP", help="image sizes: 256 (256x256), WxH, or megapixels like 12MP"),
    repeats: int = typer.Option(2, min=1, help="timed runs per measurement (the minimum is reported)"),
    weights: str | None = typer.Option(None, help="installed weights name or file (default: random weights)"),
    width: float = typer.Option(1.0, help="channel width of the random model (1.0: the paper's networks)"),
    input_size: int = typer.Option(256, help="network input side of the random model"),
    detector: str = typer.Option("centernet", help="detector to time (centernet, maskrcnn, auto, none)"),
    folder_images: int = typer.Option(6, min=0, help="images in the folder-throughput run (0: skip)"),
    networks_only: bool = typer.Option(False, "--networks-only", help="time the networks only"),
    compile: bool = typer.Option(False, "--compile", help="add the compiled fp32 path"),
    threads: int | None = typer.Option(None, help="torch threads per process (default: torch's)"),
    isolate: bool = typer.Option(True, help="measure each path in a process of its own (own peak memory)"),
    json_path: Path | None = typer.Option(None, "--json", help="write the full report as JSON here ('-': stdout)"),
    targets_path: Path | None = typer.Option(
        None, "--targets", help="judge the results against this targets file (JSON, e.g. benchmarks/targets.json)"
    ),
    backends: bool = typer.Option(
        True, help="CPU: also time torch vs onnxruntime, fp32 and int8, at 0, 1 and 8 instances (networks alone)"
    ),
    folder_sizes: str = typer.Option(
        "0.3MP,1MP,12MP", help="folder throughput, overlapped vs one at a time, at these sizes ('': skip)"
    ),
    backend_instances: str = typer.Option("0,1,8", help="instance counts of the backend rows"),
    skip_paths: bool = typer.Option(False, "--skip-paths", help="skip the per-path tables (only backends and folders)"),
) -> None:
    """Time decode, detect, networks, upsample/convert and encode for each fast path vs eager fp32."""
    from instcolor.bench.benchmark import (
        BenchSettings,
        load_targets,
        path_options,
        render,
        run_benchmark,
        size_dimensions,
        write_report,
    )

    try:
        path_list = _split(paths) if paths else None
        for path in path_list or []:
            path_options(path)
        counts = [int(v) for v in _split(instances)]
        size_list = _split(sizes)
        for size in size_list:
            size_dimensions(size)
        targets = load_targets(targets_path) if targets_path is not None else None
    except ValueError as err:
        raise fail(f"bad option: {err}", EXIT_USAGE) from None
    if any(c < 0 for c in counts):
        raise fail("instance counts must be >= 0", EXIT_USAGE)
    if input_size <= 0 or input_size % 8:
        raise fail("--input-size must be a positive multiple of 8", EXIT_USAGE)
    settings = BenchSettings(
        device=device, paths=path_list, instances=counts, sizes=size_list, repeats=repeats, width=width,
        input_size=input_size,
        weights=weights, detector=None if detector == "none" else detector, folder_images=folder_images,
        networks_only=networks_only, compile=compile, threads=threads, isolate=isolate,
    )  # fmt: skip
    log = lambda message: console.print(message, highlight=False)  # noqa: E731
    try:
        if skip_paths:
            from instcolor.bench.extra import bare_report

            report = bare_report(settings)
        else:
            report = run_benchmark(settings, log=log, targets=targets)
            render(report, console)
    except ValueError as err:
        raise fail(str(err)) from None
    if backends or (folder_sizes and not networks_only and folder_images):
        from instcolor.bench.extra import run_extra

        run_extra(
            report, settings, backends, _split(folder_sizes) if not networks_only else [], console, log,
            [int(v) for v in _split(backend_instances)],
        )
    if json_path is not None:
        if str(json_path) == "-":
            typer.echo(json.dumps(report, indent=1, default=str))
        else:
            write_report(report, json_path)
            console.print(f"report written to {json_path}", highlight=False)
    if any("error" in result for result in report["paths"].values()):
        raise typer.Exit(1)
