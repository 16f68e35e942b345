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


class FusionRuleChoice(str, Enum):
    auto = "auto"
    reference = "reference"
    confined = "confined"


class MasksChoice(str, Enum):
    auto = "auto"
    none = "none"


#: Help shared by the commands that colorize.
FUSION_RULE_HELP = (
    "auto: the rule the weights were trained with; confined: each instance only inside its box or mask "
    "(no casts from other instances); reference: the paper's softmax"
)
MASKS_HELP = (
    "auto: confine instances to their masks (from the boxes file or Mask R-CNN, else person silhouettes "
    "from the embedded segmenter), boxes elsewhere; none: boxes only (confined rule only)"
)


class PrecisionChoice(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


class ColourInput(str, Enum):
    grey = "grey"
    keep_chroma = "keep-chroma"
    skip = "skip"


COLOUR_INPUT_HELP = (
    "an input that already has colour: grey (colorize its lightness, with a note), keep-chroma (keep its "
    "own colour where it has some), skip (leave it out)"
)


def plan_outputs(
    inputs: list[str], out_dir: Path, skipped: list[str] | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair every input image with its output path.

    Folders keep their inner structure under ``out_dir``; files and globs go flat into it. Nothing
    inside ``out_dir`` is ever read (an output folder inside an input folder); ``skipped`` gets a
    line for what was left out that way, and for broken symlinks and symlink loops.

    Returns:
        ``(pairs, problems)``: ``(input, output)`` pairs and one message per input that failed.
    """
    from instcolor.io import walk_inputs

    found, problems = walk_inputs(inputs, exclude=out_dir, skipped=skipped)
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
    fusion_rule: FusionRuleChoice = typer.Option(FusionRuleChoice.auto, help=FUSION_RULE_HELP),
    masks: MasksChoice = typer.Option(MasksChoice.auto, help=MASKS_HELP),
    colour_input: ColourInput = typer.Option(ColourInput.grey, help=COLOUR_INPUT_HELP),
) -> None:
    """Colorize grey photos; results are written at the input's full resolution."""
    import time

    from instcolor.cli.inputs import prepare_output_folder, read_boxes, sigterm_as_interrupt

    from instcolor.inference.pipeline import resolve_device
    from instcolor.inference.runtime import check_precision

    started = time.time()
    try:
        if precision is not PrecisionChoice.auto:
            check_precision(precision.value, resolve_device(device))
    except ValueError as err:
        raise fail(str(err), EXIT_USAGE) from None
    prepare_output_folder(output, started)  # before any computing: a file, or a folder we cannot write
    box_entries = read_boxes(boxes) if boxes is not None else None
    skipped: list[str] = []
    pairs, problems = plan_outputs(inputs, output, skipped)
    for line in skipped:
        console.print(f"[yellow]skipped:[/] {line}", highlight=False)
    for problem in problems:
        console.print(f"[red]failed:[/] {problem}", highlight=False)
    if not pairs:
        raise typer.Exit(EXIT_INPUT_FAILED)
    with sigterm_as_interrupt():
        _colorize_pairs(
            pairs, problems, output, box_entries, boxes, weights=weights, device=device, detector=detector,
            mode=mode, score_threshold=score_threshold, max_instances=max_instances, precision=precision,
            compile=compile, fusion_rule=fusion_rule, masks=masks, colour_input=colour_input,
        )  # fmt: skip


def _colorize_pairs(
    pairs, problems, output, box_entries, boxes, *, weights, device, detector, mode, score_threshold,
    max_instances, precision, compile, fusion_rule, masks, colour_input,
) -> None:  # fmt: skip
    from instcolor.cli.inputs import given_instances
    from instcolor.inference.overlap import Job, colorize_files
    from instcolor.inference.pipeline import Colorizer, InputSkipped
    from instcolor.io import frame_count
    from instcolor.models.weights.store import WeightsError

    try:
        colorizer = Colorizer.from_pretrained(
            choose_weights(weights),
            device=device,
            detector=None if mode is Mode.full else detector.value,
            score_threshold=score_threshold,
            max_instances=max_instances,
            precision=precision.value,
            compile=compile,
            fusion_rule=None if fusion_rule is FusionRuleChoice.auto else fusion_rule.value,
            masks=masks.value,
            colour_input=colour_input.value,
        )
    except (WeightsError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    if precision is PrecisionChoice.auto:
        console.print(f"precision: {colorizer.precision}", highlight=False)
    failures = len(problems)
    jobs: list[Job] = []
    notes: dict[Path, list[str]] = {}
    for source, target in pairs:
        notes[source] = []
        try:
            relative = target.relative_to(output).with_suffix(source.suffix)
            given = given_instances(box_entries, source, relative, max_instances, notes[source]) if box_entries else None
        except Exception as err:
            failures += 1
            console.print(f"[red]failed:[/] {source}: {err}", highlight=False)
            continue
        frames = frame_count(source)
        if frames > 1:
            notes[source].append(f"has {frames} frames or pages; only the first is colorized")
        jobs.append(Job(source, target, given))
    _print_instance_source(colorizer, jobs, boxes)
    skipped = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("colorizing", total=len(pairs))
        progress.advance(task, len(pairs) - len(jobs))
        # the next image is decoded and the previous one written while the networks run
        for done in colorize_files(colorizer, jobs, mode=mode.value):
            for note in notes.get(done.job.source, []) + done.notes:
                progress.console.print(f"[yellow]note:[/] {done.job.source}: {note}", highlight=False)
            if isinstance(done.error, InputSkipped):
                skipped += 1
                progress.console.print(f"[yellow]skipped:[/] {done.job.source}: {done.error}", highlight=False)
            elif done.error is not None:  # one bad file must not stop a folder run
                failures += 1
                progress.console.print(f"[red]failed:[/] {done.job.source}: {done.error}", highlight=False)
            progress.advance(task)
    wrote = len(pairs) - (failures - len(problems)) - skipped
    extra = f" ({skipped} skipped)" if skipped else ""
    console.print(f"wrote {wrote} of {len(pairs)} images to {output}{extra}")
    if failures:
        raise typer.Exit(EXIT_INPUT_FAILED)


def _print_instance_source(colorizer, jobs, boxes: Path | None) -> None:
    """One line saying where instances come from: the boxes file, the detector, or both."""
    name = colorizer.detector.name if colorizer.detector is not None else None
    if boxes is None:
        if name is not None:
            console.print(f"detector: {name}", highlight=False)
        return
    without = sum(1 for job in jobs if job.instances is None)
    if not without or name is None:
        console.print(f"boxes from {boxes}", highlight=False)
    else:
        console.print(f"boxes from {boxes}; detector: {name} for the {without} image(s) not in it", highlight=False)
