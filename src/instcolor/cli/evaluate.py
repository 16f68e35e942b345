"""``instcolor evaluate``: the paper's metrics on colour photos, with a report folder.

    instcolor evaluate --data photos/ --out report/
    instcolor evaluate --dataset cocostuff-val --root /data/cocostuff --boxes val_boxes.json --out report/
    instcolor evaluate --data photos/ --hints 0,1,2,5,10,20 --out report/   # PSNR against hint points
"""

from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from instcolor.cli.app import EXIT_INPUT_FAILED, EXIT_USAGE, app, console, fail
from instcolor.cli.colorize import (
    CLASS_AWARE_HELP,
    FUSION_RULE_HELP,
    HINT_MODE_HELP,
    MASKS_HELP,
    ClassAwareChoice,
    DetectorChoice,
    FusionRuleChoice,
    HintModeChoice,
    MasksChoice,
    choose_weights,
)

#: The names of :data:`instcolor.evaluation.datasets.DATASETS` (a test keeps them equal), without importing it.
DATASET_NAMES = ("imagenet-ctest10k", "cocostuff-val", "places205-val")
DatasetChoice = Enum("DatasetChoice", {name.replace("-", "_"): name for name in DATASET_NAMES}, type=str)


def parse_resolution(value: str) -> int | None:
    """``"256"`` (the paper's) or another multiple of 8 -> int; ``"full"`` -> None."""
    if value.strip().lower() == "full":
        return None
    try:
        side = int(value)
    except ValueError:
        raise typer.BadParameter(f"expected 256, full or a multiple of 8, got {value!r}") from None
    if side < 16 or side % 8:
        raise typer.BadParameter(f"the evaluation side must be a multiple of 8 of at least 16, got {side}")
    return side


@app.command()
def evaluate(
    data: Path | None = typer.Option(None, "--data", help="folder of colour photos (searched recursively)"),
    dataset: DatasetChoice | None = typer.Option(None, "--dataset", help="a named benchmark layout (needs --root)"),
    root: Path | None = typer.Option(None, "--root", help="folder holding the --dataset"),
    out: Path = typer.Option(Path("evaluation"), "--out", "-o", help="report folder"),
    weights: str | None = typer.Option(None, help="installed weights name (paper-coco, starter) or a file"),
    compare: str | None = typer.Option(None, help="second weights to compare (its fusion is the `compare` method)"),
    boxes: Path | None = typer.Option(None, help="boxes file from `instcolor detect` (else the detector runs)"),
    detector: DetectorChoice = typer.Option(DetectorChoice.auto, help="detector when no --boxes is given"),
    score_threshold: float | None = typer.Option(None, help="detector score threshold (default: per detector)"),
    max_instances: int = typer.Option(8, help="most instances per image, best scores first"),
    resolution: str = typer.Option("256", help="256 (the paper's protocol), full, or another multiple of 8"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    limit: int = typer.Option(0, help="evaluate only the first N images (0: all)"),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", help="compute LPIPS (needs AlexNet weights)"),
    lpips_weights: Path | None = typer.Option(
        None, help="torchvision AlexNet state dict for LPIPS (default: $INSTCOLOR_ALEXNET_WEIGHTS or the torch hub cache)"
    ),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="compute the Fréchet distance (needs Inception-v3 weights)"),
    inception_weights: Path | None = typer.Option(
        None, help="torchvision Inception-v3 state dict (default: $INSTCOLOR_INCEPTION_WEIGHTS or the torch hub cache)"
    ),
    download: bool | None = typer.Option(
        None, "--download/--no-download", help="allow downloading backbone weights (default: unless $INSTCOLOR_OFFLINE)"
    ),
    min_box_side: int = typer.Option(32, help="boxes with a shorter side (evaluation pixels) are left out of instance metrics"),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95% intervals"),
    seed: int = typer.Option(0, help="bootstrap seed"),
    preview: int = typer.Option(16, help="images shown in the contact sheet"),
    fusion_rule: FusionRuleChoice = typer.Option(FusionRuleChoice.auto, help=FUSION_RULE_HELP),
    masks: MasksChoice = typer.Option(MasksChoice.auto, help=MASKS_HELP),
    class_aware: ClassAwareChoice = typer.Option(ClassAwareChoice.auto, help=CLASS_AWARE_HELP),
    hint_mode: HintModeChoice = typer.Option(HintModeChoice.propagate, help=HINT_MODE_HELP),
    hints: str | None = typer.Option(
        None, "--hints", help="also PSNR with N hint points drawn from the ground truth, e.g. 0,1,2,5,10,20 (a table and hints.png)"
    ),
) -> None:
    """Measure PSNR, SSIM, LPIPS, colourfulness and a Fréchet distance on colour photos.

    Each photo is turned grey exactly as in training and colorized by the grey baseline (ab = 0), the full-image network and the instance-aware fusion (and --compare weights); metrics are taken over the whole image and inside the instance boxes. The report folder gets metrics.json, report.md, contact_sheet.png and distributions.png, with the protocol written into each.
    """
    import re
    import warnings

    from instcolor.evaluation import EvaluationConfig, find_dataset, write_report
    from instcolor.evaluation import evaluate as run_evaluation
    from instcolor.inference.pipeline import Colorizer
    from instcolor.instances import load_boxes_file
    from instcolor.io import find_images
    from instcolor.models.weights.store import WeightsError

    if (data is None) == (dataset is None):
        raise fail("give either --data DIR or --dataset NAME --root DIR", EXIT_USAGE)
    if dataset is not None and root is None:
        raise fail(f"--dataset {dataset.value} needs --root DIR (see `instcolor evaluate --help`)", EXIT_USAGE)
    try:
        side = parse_resolution(resolution)
        hint_points = ()
        if hints is not None:
            from instcolor.evaluation.hints import parse_points

            hint_points = parse_points(hints)
        config = EvaluationConfig(
            resolution=side, max_instances=max_instances, min_box_side=min_box_side, lpips_weights=lpips_weights,
            inception_weights=inception_weights, download=download, lpips=lpips, fid=fid,
            bootstrap_resamples=bootstrap, seed=seed, preview_images=preview, hint_points=hint_points,
        )  # fmt: skip
    except (typer.BadParameter, ValueError) as err:
        raise fail(str(err), EXIT_USAGE) from None

    problems: list[str] = []
    if dataset is not None:
        try:
            found = find_dataset(dataset.value, root)
        except (KeyError, FileNotFoundError) as err:
            raise fail(str(err), EXIT_USAGE) from None
        images, problems, image_root = found.paths, list(found.problems), root
        if found.paths and len(found.paths) != found.expected:
            console.print(f"note: found {len(found.paths)} of the {found.expected} images of {dataset.value}", highlight=False)
    else:
        if not data.is_dir():
            raise fail(f"--data {data} is not a folder", EXIT_USAGE)
        images, problems = find_images([str(data)])
        image_root = data
    for problem in problems:
        console.print(f"[red]failed:[/] {problem}", highlight=False)
    if limit > 0:
        images = images[:limit]
    if not images:
        raise fail("no images to evaluate")

    box_entries = None
    if boxes is not None:
        try:
            box_entries = load_boxes_file(boxes, max_instances=max_instances)
        except (OSError, ValueError) as err:
            raise fail(f"cannot read boxes file: {err}", EXIT_USAGE) from None
    try:
        weights_name = choose_weights(weights)
        colorizer = Colorizer.from_pretrained(
            weights_name,
            device=device,
            detector=None if box_entries is not None else detector.value,
            score_threshold=score_threshold,
            max_instances=max_instances,
            fusion_rule=None if fusion_rule is FusionRuleChoice.auto else fusion_rule.value,
            masks=masks.value,
            class_aware=class_aware.value,
            hint_mode=hint_mode.value,
        )
        second = (
            Colorizer.from_pretrained(
                compare, device=device, detector=None, masks=masks.value, class_aware=class_aware.value,
                hint_mode=hint_mode.value,
            )
            if compare
            else None
        )
    except (WeightsError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    if colorizer.detector is not None:
        console.print(f"detector: {colorizer.detector.name}", highlight=False)

    protocol = {
        "data": str(data) if data is not None else f"{dataset.value} under {root}",
        "weights_given": weights_name,
        "compare_given": compare,
        "boxes_file": str(boxes) if boxes is not None else None,
        "command": "instcolor " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    failures = len(problems)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("evaluating", total=len(images))

        def advance(path: Path, error: str | None) -> None:
            if error is not None:
                progress.console.print(f"[red]failed:[/] {path}: {error}", highlight=False)
            progress.advance(task)

        with warnings.catch_warnings():
            if hint_points and hint_mode is not HintModeChoice.propagate and not colorizer.model.config.hints:
                # said once here, and in the report
                from instcolor.inference.pipeline import HINTS_IGNORED

                progress.console.print(f"[yellow]note:[/] {HINTS_IGNORED}", highlight=False)
                warnings.filterwarnings("ignore", message=re.escape(HINTS_IGNORED))
            result = run_evaluation(
                images, colorizer, boxes=box_entries, compare=second, config=config, root=image_root,
                protocol=protocol, progress=advance,
            )  # fmt: skip
    failures += len(result.failed)
    for metric, reason in result.unavailable.items():
        console.print(f"[yellow]{metric}: unavailable:[/] {reason}", highlight=False)
    written = write_report(result, out)
    console.print(
        f"evaluated {len(result.images)} images ({len(result.skipped)} skipped, {failures} failed); "
        f"report: {written['report.md']}",
        highlight=False,
    )
    if failures:
        raise typer.Exit(EXIT_INPUT_FAILED)
