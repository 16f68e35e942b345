"""``instcolor video`` and ``instcolor evaluate-video``: colorize a film; measure flicker and PSNR."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from instcolor.cli.app import EXIT_USAGE, app, console, fail
from instcolor.cli.colorize import CLASS_AWARE_HELP, ClassAwareChoice, DetectorChoice, choose_weights

#: ``instcolor.apps.video.WINDOW`` (not imported here: the CLI loads torch only when a command runs).
WINDOW = 12
WINDOW_HELP = "frames on each side of the two-sided temporal mean of chroma within a shot (0: the running blend, --smoothing)"
SMOOTHING_HELP = "with --window 0: weight of the previous output in the running blend (0: no temporal smoothing)"


def _progress():
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]} frames/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console)


def _advance(progress, task):
    start = time.perf_counter()
    first: list[int] = []

    def advance(done: int, total: int | None) -> None:
        if not first:
            first.append(done - 1)  # a resumed run starts past 0
        elapsed = time.perf_counter() - start
        fps = (done - first[0]) / elapsed if elapsed > 0 else 0.0
        progress.update(task, completed=done, total=total, fps=f"{fps:.2f}")

    return advance


def _colorizer(weights, device, detector, class_aware: ClassAwareChoice):
    from instcolor.inference.pipeline import Colorizer
    from instcolor.models.weights.store import WeightsError

    try:
        colorizer = Colorizer.from_pretrained(
            choose_weights(weights), device=device, detector=detector.value, class_aware=class_aware.value
        )
    except (WeightsError, ValueError) as err:
        raise fail(str(err)) from None
    if colorizer.detector is not None:
        console.print(f"detector: {colorizer.detector.name}", highlight=False)
    return colorizer


@app.command()
def video(
    source: Path = typer.Argument(..., help="input video file"),
    output: Path = typer.Option(..., "--output", "-o", help="output video file (.mp4, .mkv, .mov, ...)"),
    weights: str | None = typer.Option(None, help="installed weights name or a file"),
    detector: DetectorChoice = typer.Option(DetectorChoice.auto, help="instance detector (instances are tracked across frames)"),
    class_aware: ClassAwareChoice = typer.Option(ClassAwareChoice.auto, help=CLASS_AWARE_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    window: int = typer.Option(WINDOW, min=0, help=WINDOW_HELP),
    smoothing: float = typer.Option(0.95, min=0.0, max=0.99, help=SMOOTHING_HELP),
    detect_every: int = typer.Option(1, min=1, help="run the detector every N frames of a shot (tracks hold boxes between)"),
    cut_threshold: float = typer.Option(0.3, min=0.0, max=1.0, help="lightness-histogram distance that starts a new shot"),
    chunk_frames: int = typer.Option(100, min=1, help="frames per resumable chunk"),
    restart: bool = typer.Option(False, "--restart", help="ignore a killed run's finished chunks and start over"),
    crf: int = typer.Option(18, help="x264 quality (lower is better)"),
    max_frames: int | None = typer.Option(None, help="stop after this many frames"),
) -> None:
    """Colorize a video; audio is copied, a killed run resumes, and the file appears only when complete."""
    import time

    from instcolor.apps.video import colorize_video
    from instcolor.cli.inputs import prepare_output_file, sigterm_as_interrupt

    if not source.is_file():  # before anything is loaded
        raise fail(f"{source}: no such file" if not source.exists() else f"{source}: not a file", EXIT_USAGE)
    if output.resolve() == source.resolve():
        raise fail("the output would overwrite the input", EXIT_USAGE)
    prepare_output_file(output, time.time())
    colorizer = _colorizer(weights, device, detector, class_aware)
    with _progress() as progress:
        task = progress.add_task("frames", total=None, fps="-")
        try:
            with sigterm_as_interrupt():
                report = colorize_video(
                    source, output, colorizer, smoothing=smoothing, crf=crf, max_frames=max_frames,
                    on_frame=_advance(progress, task), detect_every=detect_every, cut_threshold=cut_threshold,
                    chunk_frames=chunk_frames, resume=not restart, window=window,
                )
        except (ValueError, RuntimeError) as err:
            raise fail(str(err)) from None
    if report.resumed_from:
        console.print(f"resumed after frame {report.resumed_from}", highlight=False)
    console.print(report.summary(), highlight=False)
    console.print(f"wrote {report.frames} frames to {output}", highlight=False)


@app.command("evaluate-video")
def evaluate_video(
    source: Path = typer.Argument(..., help="a COLOUR video: its grey version is colorized and compared with it"),
    weights: str | None = typer.Option(None, help="installed weights name or a file"),
    detector: DetectorChoice = typer.Option(DetectorChoice.auto, help="instance detector"),
    class_aware: ClassAwareChoice = typer.Option(ClassAwareChoice.auto, help=CLASS_AWARE_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    window: int = typer.Option(WINDOW, min=0, help=WINDOW_HELP + " (ours)"),
    smoothing: float = typer.Option(0.95, min=0.0, max=0.99, help=SMOOTHING_HELP + " (ours)"),
    detect_every: int = typer.Option(1, min=1, help="run the detector every N frames of a shot (ours)"),
    cut_threshold: float = typer.Option(0.3, min=0.0, max=1.0, help="lightness-histogram distance that starts a new shot"),
    max_frames: int | None = typer.Option(None, help="use only the first N frames"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the numbers to this JSON file"),
) -> None:
    """Flicker and PSNR of per-frame colorization and of ours, against a colour clip's own frames."""
    from instcolor.apps.video import evaluate_video as run

    colorizer = _colorizer(weights, device, detector, class_aware)
    with _progress() as progress:
        task = progress.add_task("frames (per-frame, then ours)", total=None, fps="-")
        try:
            report = run(source, colorizer, smoothing=smoothing, detect_every=detect_every, cut_threshold=cut_threshold,
                         max_frames=max_frames, on_frame=_advance(progress, task), window=window)
        except (ValueError, RuntimeError) as err:
            raise fail(str(err)) from None
    console.print(f"{report['frames']} frames, {report['cuts']} scene cut(s)", highlight=False)
    console.print("                 flicker   (same pixel)   PSNR (dB)   frames/s", highlight=False)
    for name in ("per_frame", "ours"):
        row = report[name]
        console.print(f"{name:<16} {row['flicker']:8.3f}   {row['flicker_same_pixel']:12.3f}   {row['psnr']:9.2f}   {row['fps']:8.2f}",
                      highlight=False)
    truth = report["ground_truth"]
    console.print(f"{'ground truth':<16} {truth['flicker']:8.3f}   {truth['flicker_same_pixel']:12.3f}", highlight=False)
    console.print("flicker follows the camera (the previous frame warped by the global motion); same pixel: without", highlight=False)
    console.print(f"flicker ours / per-frame: {report['flicker_ratio']:.0%}; colour carried across cuts: {report['cut_leak']:.3f}", highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2))
