"""``instcolor colorize``: colorize files, folders and globs at full resolution."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from instcolor.cli.app import EXIT_INPUT_FAILED, EXIT_USAGE, app, console, fail

#: Output keeps these endings; anything else (gif, pgm, ...) is written as PNG.
KEPT_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


class DetectorChoice(str, Enum):
    auto = "auto"
    maskrcnn = "maskrcnn"
    centernet = "centernet"
    none = "none"


class Mode(str, Enum):
    fusion = "fusion"
    full = "full"


class BackendChoice(str, Enum):
    torch = "torch"
    onnxruntime = "onnxruntime"
    auto = "auto"


#: ``--backend``, shared by colorize, serve and bench.
BACKEND_HELP = "torch; onnxruntime (exported graphs, fp32/int8); auto: the faster here, measured once and cached"


class PrecisionChoice(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


def plan_outputs(inputs: list[str], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair every input image with its output path.

    Folders keep their inner structure under ``out_dir``; files and globs go flat into it.

    Returns:
        ``(pairs, problems)``: ``(input, output)`` pairs and one message per input that failed.
    """
    from instcolor.io import walk_inputs

    found, problems = walk_inputs(inputs)
    pairs = [(source, out_dir / relative) for source, relative in found]
    planned: list[tuple[Path, Path]] = []
    inputs_resolved = {p.resolve() for p, _ in pairs}
    claimed: set[Path] = set()
    sources: set[Path] = set()
    for source, target in pairs:
        if source.resolve() in sources:  # the same file named twice (a folder and a file in it)
            continue
        sources.add(source.resolve())
        suffix = target.suffix.lower() if target.suffix.lower() in KEPT_SUFFIXES else ".png"
        target = target.with_suffix(suffix)
        if target.resolve() in inputs_resolved:
            problems.append(f"{source}: output {target} would overwrite an input; choose another --output folder")
        elif target.resolve() in claimed:
            problems.append(f"{source}: output {target} is already written by another input of the same name")
        else:
            claimed.add(target.resolve())
            planned.append((source, target))
    return planned, problems


def choose_weights(weights: str | None) -> str:
    """``--weights`` when given, else the default set (see :func:`instcolor.models.weights.download.default_weights`)."""
    if weights is not None:
        return weights
    from instcolor.models.weights.download import default_weights

    path, message = default_weights()
    if message:
        console.print(message, highlight=False)
    return str(path)


@app.command()
def colorize(
    inputs: list[str] = typer.Argument(..., help="image files, folders (recursive) or glob patterns"),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the colour results"),
    weights: str | None = typer.Option(None, help="installed weights name (paper-coco, starter) or a file"),
    boxes: Path | None = typer.Option(None, help="boxes file (JSON) from `instcolor detect` or your own"),
    detector: DetectorChoice = typer.Option(DetectorChoice.auto, help="instance detector"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    mode: Mode = typer.Option(Mode.fusion, help="fusion (instance-aware) or full (full-image network only)"),
    score_threshold: float | None = typer.Option(None, help="detector score threshold (default: per detector)"),
    max_instances: int = typer.Option(8, help="most instances per image (0: no cap)"),
    precision: PrecisionChoice = typer.Option(
        PrecisionChoice.fp32,
        help="network precision: fp32; bf16 (CPUs with bf16 instructions, CUDA); fp16 (CUDA); "
        "int8 (CPUs with VNNI/AMX); auto: the fastest accurate one here, measured once and cached",
    ),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the networks (slow first image)"),
    backend: BackendChoice = typer.Option(BackendChoice.torch, help=BACKEND_HELP),
) -> None:
    """Colorize grey photos; results are written at the input's full resolution."""
    from instcolor.inference.overlap import Job, colorize_files
    from instcolor.inference.pipeline import Colorizer, resolve_device
    from instcolor.inference.runtime import check_precision
    from instcolor.instances import load_boxes_file, lookup_instances
    from instcolor.models.weights.store import WeightsError

    try:
        if precision is not PrecisionChoice.auto:
            check_precision(precision.value, resolve_device(device))
        if backend is not BackendChoice.torch:
            from instcolor.inference.backends import check_backend

            check_backend(backend.value, precision.value, resolve_device(device))
    except ValueError as err:
        raise fail(str(err), EXIT_USAGE) from None
    box_entries = {}
    if boxes is not None:
        try:
            box_entries = load_boxes_file(boxes)
        except (OSError, ValueError) as err:
            raise fail(f"cannot read boxes file: {err}", EXIT_USAGE) from None
    pairs, problems = plan_outputs(inputs, output)
    for problem in problems:
        console.print(f"[red]failed:[/] {problem}", highlight=False)
    if not pairs:
        raise typer.Exit(EXIT_INPUT_FAILED)
    try:
        colorizer = Colorizer.from_pretrained(
            choose_weights(weights),
            device=device,
            detector=None if mode is Mode.full else detector.value,
            score_threshold=score_threshold,
            max_instances=max_instances,
            precision=precision.value,
            compile=compile,
            backend=backend.value,
        )
    except (WeightsError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    if colorizer.detector is not None:
        console.print(f"detector: {colorizer.detector.name}", highlight=False)
    if precision is PrecisionChoice.auto:
        console.print(f"precision: {colorizer.precision}", highlight=False)
    if backend is BackendChoice.auto:
        console.print(f"backend: {colorizer.backend}", highlight=False)
    failures = len(problems)
    jobs: list[Job] = []
    for source, target in pairs:
        try:
            relative = target.relative_to(output).with_suffix(source.suffix)
            given = lookup_instances(box_entries, source, relative) if box_entries else None
        except Exception as err:
            failures += 1
            console.print(f"[red]failed:[/] {source}: {err}", highlight=False)
            continue
        jobs.append(Job(source, target, given))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("colorizing", total=len(pairs))
        progress.advance(task, len(pairs) - len(jobs))
        # the next image is decoded and the previous one written while the networks run
        for done in colorize_files(colorizer, jobs, mode=mode.value):
            if done.error is not None:  # one bad file must not stop a folder run
                failures += 1
                progress.console.print(f"[red]failed:[/] {done.job.source}: {done.error}", highlight=False)
            progress.advance(task)
    console.print(f"wrote {len(pairs) - (failures - len(problems))} of {len(pairs)} images to {output}")
    if failures:
        raise typer.Exit(EXIT_INPUT_FAILED)
