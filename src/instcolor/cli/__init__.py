"""Command-line interface: ``instcolor COMMAND --help``."""

from __future__ import annotations

from instcolor.cli import bench as _bench  # noqa: E402,F401

# Each module registers its commands on ``app`` when imported.
from instcolor.cli import colorize as _colorize  # noqa: E402,F401
from instcolor.cli import convert as _convert  # noqa: E402,F401
from instcolor.cli import detect as _detect  # noqa: E402,F401
from instcolor.cli import evaluate as _evaluate  # noqa: E402,F401
from instcolor.cli import ledger as _ledger  # noqa: E402,F401
from instcolor.cli import export as _export  # noqa: E402,F401
from instcolor.cli import serve as _serve  # noqa: E402,F401
from instcolor.cli import train as _train  # noqa: E402,F401
from instcolor.cli import video as _video  # noqa: E402,F401
from instcolor.cli import weights as _weights  # noqa: E402,F401
from instcolor.cli.app import app


def main() -> None:
    app()
