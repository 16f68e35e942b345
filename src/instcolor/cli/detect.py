"""``instcolor detect``: find instances in images and write a boxes file for colorize/train/evaluate."""

from __future__ import annotations

import colorsys
import hashlib
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from instcolor.cli.app import EXIT_INPUT_FAILED, EXIT_USAGE, app, console, fail

if TYPE_CHECKING:
    from PIL import Image

    from instcolor.instances import Instances


class DetectorName(str, Enum):
    auto = "auto"
    maskrcnn = "maskrcnn"
    centernet = "centernet"


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def boxes_file_keys(paths: list[Path]) -> dict[Path, str]:
    """The key of each image in the boxes file: its file name, or, where several inputs share a
    file name, its path relative to the inputs' common folder (``a/1.jpg``, ``b/1.jpg``)."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.name] = counts.get(path.name, 0) + 1
    shared = [p for p in paths if counts[p.name] > 1]
    root = Path(os.path.commonpath([p.parent for p in shared])) if shared else None
    return {p: p.relative_to(root).as_posix() if counts[p.name] > 1 else p.name for p in paths}


def drawing_paths(keys: dict[Path, str], folder: Path) -> dict[Path, Path]:
    """Where ``--draw`` writes each image: ``folder/<key stem>.png``, or ``folder/<key>.png`` where
    that would be written twice (``a.jpg`` and ``a.png``) or would replace an input."""
    inputs = {path.resolve() for path in keys}
    stems = [(folder / key).with_suffix(".png").resolve() for key in keys.values()]
    paths = {}
    for (path, key), stem_path in zip(keys.items(), stems):
        clash = stems.count(stem_path) > 1 or stem_path in inputs
        paths[path] = folder / f"{key}.png" if clash else stem_path
    return paths


def label_colour(label: str) -> tuple[int, int, int]:
    """A bright colour that is the same for a label across images and runs."""
    hue = int(hashlib.md5(label.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.85, 1.0))  # type: ignore[return-value]


def draw_instances(image: Image.Image, instances: Instances) -> Image.Image:
    """The image with each instance's mask tinted and its box labelled ``label score``."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    canvas = np.asarray(image.convert("RGB"), dtype=np.float32)
    if instances.masks is not None:
        for mask, label in zip(instances.masks, instances.labels):
            canvas[mask] = 0.6 * canvas[mask] + 0.4 * np.asarray(label_colour(label), np.float32)
    drawn = Image.fromarray(np.round(canvas).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(drawn)
    width = max(1, round(max(drawn.size) / 300))
    font = ImageFont.load_default(size=max(10, round(max(drawn.size) / 50)))
    for box, score, label in zip(instances.boxes.tolist(), instances.scores.tolist(), instances.labels):
        colour = label_colour(label)
        pen.rectangle(box, outline=colour, width=width)
        text = f"{label or 'object'} {score:.2f}"
        left, top, right, bottom = pen.textbbox((box[0], box[1]), text, font=font, anchor="lb")
        if top < 0:
            left, top, right, bottom = pen.textbbox((box[0], box[1]), text, font=font, anchor="lt")
        pen.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
        pen.text((left, top), text, fill=(0, 0, 0), font=font)
    return drawn


@app.command()
def detect(
    inputs: list[str] = typer.Argument(..., help="image files, folders (recursive) or glob patterns"),
    output: Path = typer.Option(..., "--output", "-o", help="boxes file to write (JSON)"),
    detector: DetectorName = typer.Option(
        DetectorName.auto, help="auto: Mask R-CNN when its weights are present, else the embedded CenterNet"
    ),
    score_threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="keep scores >= this (default: per detector; Mask R-CNN 0.7 as the paper)"
    ),
    max_instances: int = typer.Option(8, min=0, help="most instances per image, highest scores first (0: no cap)"),
    classes: str | None = typer.Option(None, help="only these COCO classes, comma separated (person,cup)"),
    draw: Path | None = typer.Option(
        None, help="also write each image with its labelled boxes (and masks) into this folder"
    ),
    masks: str = typer.Option(
        "auto",
        help="auto: keep the detector's masks, else add person silhouettes from the embedded segmenter "
        "(the box for other classes); none: boxes only",
    ),
    device: DeviceName = typer.Option(DeviceName.auto, help="where the detector runs"),
) -> None:
    """Detect instances on the grey version of each image (as the paper) and write a boxes file.

    Keys are image file names; masks are stored as run-length encoding when the detector gives them.
    """
    from dataclasses import replace

    import numpy as np

    from instcolor.detection import check_class_names, detection_image, load_detector
    from instcolor.detection.person_masks import PersonSegmenter, with_person_masks
    from instcolor.instances import save_boxes_file
    from instcolor.io import decode_image, find_images, save_image, to_pil

    if masks not in ("auto", "none"):
        raise fail(f"--masks must be auto or none, got {masks!r}", EXIT_USAGE)
    class_names = None
    if classes is not None:
        try:
            class_names = check_class_names(classes.split(","))
        except ValueError as err:
            raise fail(str(err), EXIT_USAGE) from None
        if not class_names:
            raise fail("--classes names no class", EXIT_USAGE)
    paths, problems = find_images(inputs)
    for problem in problems:
        console.print(f"[red]failed:[/] {problem}", highlight=False)
    if not paths:
        raise typer.Exit(EXIT_INPUT_FAILED)
    try:
        model = load_detector(
            detector.value,
            device=device.value,
            score_threshold=score_threshold,
            max_instances=max_instances,
            classes=class_names,
        )
    except Exception as err:  # missing weights, no network, CUDA asked for but absent
        raise fail(f"cannot load the {detector.value} detector: {err}") from None
    console.print(f"detector: {model.name} (score >= {model.filter.score_threshold:g})", highlight=False)
    segmenter = PersonSegmenter(device="cpu") if masks == "auto" else None

    keys = boxes_file_keys(paths)
    drawings = drawing_paths(keys, draw) if draw is not None else {}
    entries: dict[str, Instances] = {}
    failures = len(problems)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("detecting", total=len(paths))
        for path in paths:
            try:
                decoded = decode_image(path)
                grey = detection_image(decoded)
                instances = model(grey)
                if segmenter is not None and instances.masks is None and "person" in instances.labels:
                    instances = with_person_masks(instances, np.asarray(grey)[..., 0], segmenter)
                elif masks == "none" and instances.masks is not None:
                    instances = replace(instances, masks=None)
                if draw is not None:
                    drawn = draw_instances(to_pil(decoded.rgb), instances)
                    save_image(drawn, drawings[path])
                entries[keys[path]] = instances
            except Exception as err:  # one bad file must not stop a folder run
                failures += 1
                progress.console.print(f"[red]failed:[/] {path}: {err}", highlight=False)
            progress.advance(task)
    save_boxes_file(output, entries)
    total = sum(len(instances) for instances in entries.values())
    console.print(f"wrote {total} instances of {len(entries)} of {len(paths)} images to {output}", highlight=False)
    if failures:
        raise typer.Exit(EXIT_INPUT_FAILED)
