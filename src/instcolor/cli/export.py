"""``instcolor export onnx OUT/``: the networks as ONNX graphs with a model card."""

from __future__ import annotations

from pathlib import Path

import typer

from instcolor.cli.app import EXIT_USAGE, app, console, fail
from instcolor.cli.colorize import choose_weights

export_app = typer.Typer(help="Export the networks for other runtimes.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx_command(
    output: Path = typer.Argument(..., help="folder for full.onnx, fusion.onnx and the model card"),
    weights: str | None = typer.Option(None, help="installed weights name (paper-coco, starter) or a file"),
    size: int | None = typer.Option(None, help="network input side (default: the weights' own)"),
    int8: bool = typer.Option(False, "--int8", help="also write ONNX Runtime static int8 graphs into OUT/int8/"),
) -> None:
    """Write the full-image network and the instance + fusion path (dynamic instance count) as ONNX."""
    from instcolor.inference.backends import ort_available, quantize_graphs
    from instcolor.inference.onnx_export import export_onnx
    from instcolor.models.weights.registry import resolve_weights_path
    from instcolor.models.weights.store import WeightsError, load_weights

    if size is not None and (size <= 0 or size % 8):
        raise fail("--size must be a positive multiple of 8", EXIT_USAGE)
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise fail("ONNX export needs `pip install instcolor[onnx]`") from None
    try:
        loaded = load_weights(resolve_weights_path(choose_weights(weights)))
    except (WeightsError, ValueError) as err:
        raise fail(str(err)) from None
    card = export_onnx(loaded.model, output, size, metadata=loaded.metadata)
    console.print(f"wrote full.onnx, fusion.onnx and model_card.json (opset {card['opset']}) to {output}")
    if int8:
        if not ort_available():
            raise fail("--int8 needs onnxruntime (`pip install instcolor[onnx]`)")
        quantize_graphs(output, output / "int8", card["network_size"])
        console.print(f"wrote int8 graphs to {output / 'int8'}")
