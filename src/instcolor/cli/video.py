"""``instcolor video``: colorize a film, frame by frame, keeping its audio."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from instcolor.cli.app import EXIT_USAGE, app, console, fail
from instcolor.cli.colorize import DetectorChoice, choose_weights


@app.command()
def video(
    source: Path = typer.Argument(..., help="input video file"),
    output: Path = typer.Option(..., "--output", "-o", help="output video file (.mp4, .mkv, .mov, ...)"),
    weights: str | None = typer.Option(None, help="installed weights name or a file"),
    detector: DetectorChoice = typer.Option(DetectorChoice.auto, help="instance detector, run on every frame"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    smoothing: float = typer.Option(0.5, min=0.0, max=0.99, help="temporal chroma smoothing against flicker (0: off)"),
    crf: int = typer.Option(18, help="x264 quality (lower is better)"),
    max_frames: int | None = typer.Option(None, help="stop after this many frames"),
) -> None:
    """Colorize a video; audio is copied, and the file appears only when complete."""
    from instcolor.apps.video import colorize_video
    from instcolor.inference.pipeline import Colorizer
    from instcolor.models.weights.store import WeightsError

    import time

    from instcolor.cli.inputs import prepare_output_file, sigterm_as_interrupt

    if not source.is_file():  # before anything is loaded
        raise fail(f"{source}: no such file" if not source.exists() else f"{source}: not a file", EXIT_USAGE)
    if output.resolve() == source.resolve():
        raise fail("the output would overwrite the input", EXIT_USAGE)
    prepare_output_file(output, time.time())
    try:
        colorizer = Colorizer.from_pretrained(choose_weights(weights), device=device, detector=detector.value)
    except (WeightsError, ValueError) as err:
        raise fail(str(err)) from None
    if colorizer.detector is not None:
        console.print(f"detector: {colorizer.detector.name}", highlight=False)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("frames", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        try:
            with sigterm_as_interrupt():
                frames = colorize_video(
                    source, output, colorizer, smoothing=smoothing, crf=crf, max_frames=max_frames, on_frame=advance
                )
        except (ValueError, RuntimeError) as err:
            raise fail(str(err)) from None
    console.print(f"wrote {frames} frames to {output}")
