"""The ``instcolor`` Typer application; each sub-command lives in its own module of this package."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="instcolor",
    help="Instance-aware colorization of grayscale photographs and film.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="List, download, import and verify weights.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")

#: Messages for people go to stderr; stdout stays clean for data.
console = Console(stderr=True, soft_wrap=True)

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_INPUT_FAILED) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)
