"""``instcolor colorize``: colorize files, folders and globs at full resolution."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.markup import escape
from rich.text import Text

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


class ClassAwareChoice(str, Enum):
    auto = "auto"
    off = "off"


class HintModeChoice(str, Enum):
    propagate = "propagate"
    network = "network"
    both = "both"


#: Help shared by the commands that colorize.
FUSION_RULE_HELP = (
    "auto: the rule the weights were trained with; confined: each instance only inside its box or mask "
    "(no casts from other instances); reference: the paper's softmax"
)
MASKS_HELP = (
    "auto: confine instances to their masks (from the boxes file or Mask R-CNN, else person silhouettes "
    "from the embedded segmenter), boxes elsewhere; none: boxes only (confined rule only)"
)
CLASS_AWARE_HELP = (
    "auto: class-aware weights get each instance's label (detector or boxes file); "
    "off: every instance is of unknown class (class-blind weights: no difference)"
)
HINT_MODE_HELP = (
    "what point hints do: propagate: spread each hint's colour over the result, edge-aware (any weights); "
    "network: feed them to the networks (weights trained with --hints); both"
)


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class RateColumn(ProgressColumn):
    """Images per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- img/s" if speed is None else f"{speed:.2f} img/s")


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


class ColourInput(str, Enum):
    grey = "grey"
    keep_chroma = "keep-chroma"
    skip = "skip"


COLOUR_INPUT_HELP = (
    "an input that already has colour: grey (colorize its lightness, with a note), keep-chroma (keep its "
    "own colour where it has some), skip (leave it out)"
)


def plan_outputs(
    inputs: list[str],
    out_dir: Path,
    listed: list[tuple[Path, Path]] = (),
    skipped: list[str] | None = None,
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair every input image with its output path.

    Folders keep their inner structure under ``out_dir``; files and globs go flat into it.
    ``listed``: more ``(image, relative name)`` pairs, e.g. read from list files. Nothing inside
    ``out_dir`` is ever read (an output folder inside an input folder); ``skipped`` gets a line for
    what was left out that way, and for broken symlinks and symlink loops.

    Returns:
        ``(pairs, problems)``: ``(input, output)`` pairs and one message per input that failed.
    """
    from instcolor.io import walk_inputs

    found, problems = walk_inputs(inputs, exclude=out_dir, skipped=skipped) if inputs else ([], [])
    found = [*found, *listed]
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
    boxes: Path | None = typer.Option(
        None, help='boxes file (JSON) from `instcolor detect` or your own; an instance\'s "colour": "#rrggbb" pushes it to that colour'
    ),
    hints: Path | None = typer.Option(
        None, help='colour hints (JSON): {"photo.jpg": [{"xy": [x, y], "colour": "#rrggbb"}, ...]}, points in image pixels'
    ),
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
    class_aware: ClassAwareChoice = typer.Option(ClassAwareChoice.auto, help=CLASS_AWARE_HELP),
    hint_mode: HintModeChoice = typer.Option(HintModeChoice.propagate, help=HINT_MODE_HELP),
    engine: Engine = typer.Option(
        Engine.local, help="local: this process; ray: workers on a Ray cluster (pip install 'instcolor[ray]')"
    ),
    address: str | None = typer.Option(
        None, help="--engine ray: the Ray cluster's address (default: start a local Ray on 127.0.0.1)"
    ),
    in_flight: int | None = typer.Option(
        None, "--in-flight", min=1,
        help="--engine local: images colorized at once (default: 2 on a CPU with two or more cores, each "
        "with half of the threads; else 1)",
    ),  # fmt: skip
    workers: int | None = typer.Option(None, min=1, help="--engine ray: workers (default: 1 per 2 CPUs or per GPU share)"),
    cpus_per_worker: float | None = typer.Option(None, help="--engine ray: CPUs (threads) per worker (default: shared out)"),
    gpus_per_worker: float = typer.Option(0.0, min=0.0, help="--engine ray: GPUs per worker (0.5: two per GPU)"),
    retries: int = typer.Option(2, min=0, help="attempts after the first for an input that fails or loses its worker"),
    ledger: bool | None = typer.Option(
        None, "--ledger/--no-ledger",
        help="keep the run ledger (OUT/instcolor-ledger.jsonl) and skip inputs done and verified; "
        "default: on with --engine ray or when OUT has a ledger",
    ),  # fmt: skip
    colour_input: ColourInput = typer.Option(ColourInput.grey, help=COLOUR_INPUT_HELP),
    backend: BackendChoice = typer.Option(BackendChoice.torch, help=BACKEND_HELP),
) -> None:
    """Colorize grey photos; results are written at the input's full resolution.

    INPUTS may also be list files (.txt one path a line, .csv or .parquet with a `path` column).
    """
    import contextlib
    import hashlib
    import re
    import time
    import warnings

    from instcolor.cli.inputs import (
        given_hints,
        given_instances,
        prepare_output_folder,
        read_boxes,
        read_hints,
        sigterm_as_interrupt,
    )
    from instcolor.inference.overlap import Job
    from instcolor.inference.pipeline import Colorizer, resolve_device
    from instcolor.inference.runtime import check_precision
    from instcolor.io import frame_count
    from instcolor.models.weights.store import WeightsError

    started = time.time()

    if engine is Engine.ray:
        from instcolor.inference.ray_engine import INSTALL_HINT, ray_available

        if in_flight is not None:
            raise fail("--in-flight is for --engine local; with --engine ray give --workers", EXIT_USAGE)
        if not ray_available():
            raise fail(escape(INSTALL_HINT), EXIT_USAGE)
    elif address is not None or workers is not None or cpus_per_worker is not None or gpus_per_worker:
        raise fail("--address, --workers, --cpus-per-worker and --gpus-per-worker need --engine ray", EXIT_USAGE)
    if in_flight is not None and in_flight > 1:
        from instcolor.inference.overlap import side_by_side_refusal_for

        why = side_by_side_refusal_for(resolve_device(device), backend.value, compile=compile)
        if why is not None:
            raise fail(f"--in-flight {in_flight}: {why}", EXIT_USAGE)
    try:
        if precision is not PrecisionChoice.auto and engine is Engine.local:
            check_precision(precision.value, resolve_device(device))
        if backend is not BackendChoice.torch:
            from instcolor.inference.backends import check_backend

            check_backend(backend.value, precision.value, resolve_device(device))
    except ValueError as err:
        raise fail(str(err), EXIT_USAGE) from None
    prepare_output_folder(output, started)  # before any computing: a file, or a folder we cannot write
    box_entries = read_boxes(boxes) if boxes is not None else None
    hint_entries = read_hints(hints) if hints is not None else None
    listed, list_problems = read_lists(inputs)
    skipped: list[str] = []
    pairs, problems = plan_outputs([i for i in inputs if not is_list(i)], output, listed, skipped)
    problems = list_problems + problems
    for line in skipped:
        console.print(f"[yellow]skipped:[/] {line}", highlight=False)
    for problem in problems:
        console.print(f"[red]failed:[/] {problem}", highlight=False)
    if not pairs:
        raise typer.Exit(EXIT_INPUT_FAILED)
    failures = len(problems)
    jobs: list[Job] = []
    notes: dict[str, list[str]] = {}
    hint_problems: list[str] = []
    hinted: set[str] = set()
    for source, target in pairs:
        noted = notes.setdefault(str(Path(source).resolve()), [])
        relative = target.relative_to(output).with_suffix(source.suffix)
        image_hints = None
        if hint_entries is not None:
            try:
                key, image_hints = given_hints(hint_entries, source, relative)
                hinted.add(key)
            except ValueError as err:
                hint_problems.append(f"{source}: {err}")
        try:
            given = given_instances(box_entries, source, relative, max_instances, noted) if box_entries else None
        except Exception as err:
            failures += 1
            console.print(f"[red]failed:[/] {source}: {err}", highlight=False)
            continue
        frames = frame_count(source)
        if frames > 1:
            noted.append(f"has {frames} frames or pages; only the first is colorized")
        jobs.append(Job(source, target, given, image_hints))
    if hint_entries is not None:
        hint_problems += [f"{name}: no input image of this name" for name in hint_entries if name not in hinted]
    if hint_problems:
        console.print(f"[bold red]error:[/] {hints}: hints that do not fit the images", highlight=False)
        for problem in hint_problems:
            console.print(f"  {problem}", highlight=False)
        raise fail(f"fix the {len(hint_problems)} entr{'y' if len(hint_problems) == 1 else 'ies'} above", EXIT_USAGE)
    # Every option of Colorizer.from_pretrained, as one dict: the Ray workers get it as it is.
    options = dict(
        device=device,
        detector=None if mode is Mode.full else detector.value,
        score_threshold=score_threshold,
        max_instances=max_instances,
        precision=precision.value,
        compile=compile,
        fusion_rule=None if fusion_rule is FusionRuleChoice.auto else fusion_rule.value,
        masks=masks.value,
        colour_input=colour_input.value,
        backend=backend.value,
    )
    if class_aware is not ClassAwareChoice.auto:  # only when given, so that ledgers of earlier runs still match
        options["class_aware"] = class_aware.value
    colours_given = box_entries is not None and box_entries.has_colours
    if hints is not None or colours_given:  # what hints do is part of the settings outputs are verified against
        options["hint_mode"] = hint_mode.value
    weights_path = choose_weights(weights)
    try:
        hints_digest = None if hints is None else hashlib.sha256(hints.read_bytes()).hexdigest()
        run = start_run(output, weights_path, options, mode.value, engine, ledger, jobs, retries, hints_digest)
    except (WeightsError, OSError, ValueError, LookupError) as err:
        raise fail(str(err)) from None
    quiet = contextlib.ExitStack()  # the colorizer's hint warning is said once here instead
    any_hints = bool(hint_entries) or colours_given
    if any_hints and hint_mode is not HintModeChoice.propagate and not run.trained_with_hints:
        from instcolor.inference.pipeline import HINTS_IGNORED

        console.print(f"[yellow]note:[/] {HINTS_IGNORED}", highlight=False)
        quiet.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message=re.escape(HINTS_IGNORED))
    jobs_left = run.plan.todo
    for job, record in run.plan.gave_up:
        failures += 1
        console.print(f"[red]failed:[/] {job.source}: gave up after {record.get('attempt')} attempts "
                      f"(raise --retries to try again): {record.get('error')}", highlight=False)  # fmt: skip
    if run.plan.skipped:
        console.print(f"skipping {run.plan.skipped} images already done (outputs verified by sha256)")
    try:
        if engine is Engine.ray:
            from instcolor.inference.ray_engine import ColorizerSpec, RayOptions, run_ray

            spec = ColorizerSpec(run.weights_file, run.options, mode.value, run.weights_sha256)
            ray_options = RayOptions(address, workers, cpus_per_worker, gpus_per_worker)
            records = run_ray(spec, jobs_left, ray_options, max_attempts=retries + 1, log=_log)
        else:
            from instcolor.inference.runs import run_local

            colorizer = Colorizer.from_pretrained(weights_path, **run.options) if jobs_left else None
            if colorizer is not None:
                _print_instance_source(colorizer, [a.job for a in jobs_left], boxes)
            if colorizer is not None and precision is PrecisionChoice.auto:
                console.print(f"precision: {colorizer.precision}", highlight=False)
            if colorizer is not None and backend is BackendChoice.auto:
                console.print(f"backend: {colorizer.backend}", highlight=False)
            records = run_local(colorizer, jobs_left, mode=mode.value, in_flight=in_flight or "auto") if jobs_left else iter(())
        with sigterm_as_interrupt():
            written = _consume(records, run, len(pairs), len(pairs) - len(jobs_left), notes)
    except (WeightsError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    finally:
        quiet.close()
    failures += written.failed
    extras = ([f"{run.plan.skipped} already done"] if run.plan.skipped else []) + (
        [f"{written.skipped} skipped"] if written.skipped else []
    )
    console.print(
        f"wrote {written.done} of {len(pairs)} images to {output}{written.rate()}" + (f" ({', '.join(extras)})" if extras else "")
    )
    if failures:
        raise typer.Exit(EXIT_INPUT_FAILED)


def _log(message: str) -> None:
    console.print(message, highlight=False)


def is_list(item: str) -> bool:
    """Whether an input names a list file (text, CSV or Parquet)."""
    from instcolor.inference.runs import is_list_file

    return is_list_file(item)


def read_lists(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """The images named by the list files among ``inputs``."""
    from instcolor.inference.runs import read_list_file

    found, problems = [], []
    for item in inputs:
        if is_list(item):
            more, trouble = read_list_file(item)
            found += more
            problems += trouble
    return found, problems


class _Run:
    """One colorize run's ledger side: the plan, and what each record gets stamped with."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


def start_run(output, weights_path, options, mode, engine, use_ledger, jobs, retries, hints_digest=None):
    """Resolve the detector, hash the weights, read the ledger and plan the run (``hints_digest``:
    the hints file's sha256, part of the settings outputs are verified against)."""
    from instcolor.detection import choose_detector
    from instcolor.inference.ledger import Ledger, settings_fingerprint, sha256_file
    from instcolor.inference.runs import new_run_id, plan_run
    from instcolor.models.weights.registry import resolve_weights_path
    from instcolor.models.weights.store import read_metadata

    weights_file = str(resolve_weights_path(weights_path))
    weights_sha256 = sha256_file(weights_file)
    options = dict(options)
    if options.get("detector") not in (None, "none"):  # "auto" picks here, so every worker runs the same one
        options["detector"] = choose_detector(options["detector"]) or "none"
    book = Ledger(output)
    if use_ledger is None:
        use_ledger = engine is Engine.ray or book.exists()
    settings = settings_fingerprint(
        weights_sha256, {**options, "mode": mode, **({"hints": hints_digest} if hints_digest else {})}
    )
    plan = plan_run(jobs, book if use_ledger else None, settings, retries)
    config = json.loads(read_metadata(weights_file).get("config", "{}"))
    return _Run(
        ledger=book if use_ledger else None, plan=plan, options=options, weights_file=weights_file,
        weights_sha256=weights_sha256, settings=settings, engine=engine.value, run_id=new_run_id(),
        trained_with_hints=bool(config.get("hints", False)),
    )  # fmt: skip


class _Tally:
    done = 0
    failed = 0
    skipped = 0
    seconds = 0.0  # from the first image started to the last one finished (loading not counted)

    def rate(self) -> str:
        """``" in 12.3 s, 7.80 images/s overall"`` for the images written, or ``""``."""
        return f" in {self.seconds:.1f} s, {self.done / self.seconds:.2f} images/s overall" if self.done and self.seconds > 0 else ""


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


def _consume(records, run, total: int, already: int, notes: dict[str, list[str]]) -> _Tally:
    """Append each record to the ledger, advance the one progress bar, report failures."""
    tally = _Tally()
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )  # fmt: skip
    start = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("colorizing", total=total - already)
        for record in records:
            record.weights, record.settings, record.engine, record.run = (
                run.weights_sha256, run.settings, run.engine, run.run_id
            )  # fmt: skip
            if run.ledger is not None:
                run.ledger.append(record)
            if record.status == "lost":  # queued again; the bar moves when it is done
                continue
            for note in notes.get(record.input, []) + list(record.notes or []):
                progress.console.print(f"[yellow]note:[/] {record.input}: {note}", highlight=False)
            if record.status == "done":
                tally.done += 1
            elif record.status == "skipped":
                tally.skipped += 1
                progress.console.print(f"[yellow]skipped:[/] {record.input}: {record.error}", highlight=False)
            else:  # one bad file must not stop a folder run
                tally.failed += 1
                progress.console.print(f"[red]failed:[/] {record.input}: {record.error}", highlight=False)
            progress.advance(task)
    tally.seconds = time.perf_counter() - start
    return tally
