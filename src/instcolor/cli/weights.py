"""``instcolor weights``: list installed weights and import the reference checkpoints."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from instcolor.cli.app import console, fail, weights_app
from instcolor.weights import WeightsError, import_reference, installed_weights, weights_home


@weights_app.command("list")
def list_weights() -> None:
    """Show the installed weights, where they came from and their licence."""
    found = installed_weights()
    if not found:
        console.print(f"no weights installed in {weights_home()}")
        return
    table = Table(title=f"weights in {weights_home()}")
    for column in ("name", "source", "licence", "config", "created"):
        table.add_column(column, overflow="fold")
    for path, meta in found:
        table.add_row(path.stem, meta.get("source", "?"), meta.get("licence", "?"), meta.get("config", ""), meta.get("created", ""))
    console.print(table)


@weights_app.command("import")
def import_weights(
    path: Path = typer.Argument(..., help="checkpoints.zip, or a folder holding latest_net_{G,GF,GComp}.pth"),
    name: str = typer.Option("paper-coco", help="name of the installed weights"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write here instead of the weights cache"),
) -> None:
    """Convert the paper's reference checkpoints into instcolor's safetensors format, once."""
    try:
        written = import_reference(path, output=output, name=name)
    except WeightsError as err:
        raise fail(str(err)) from None
    console.print(f"imported {path} -> {written}")
