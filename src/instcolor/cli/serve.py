"""``instcolor serve``: the local web page."""

from __future__ import annotations

import typer

from instcolor.cli.app import app, console, fail
from instcolor.cli.colorize import (
    BACKEND_HELP,
    CLASS_AWARE_HELP,
    HINT_MODE_HELP,
    BackendChoice,
    ClassAwareChoice,
    DetectorChoice,
    HintModeChoice,
    choose_weights,
)


@app.command()
def serve(
    weights: str | None = typer.Option(None, help="installed weights name or a file"),
    detector: DetectorChoice = typer.Option(DetectorChoice.auto, help="instance detector"),
    class_aware: ClassAwareChoice = typer.Option(ClassAwareChoice.auto, help=CLASS_AWARE_HELP),
    hint_mode: HintModeChoice = typer.Option(HintModeChoice.propagate, help=HINT_MODE_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (127.0.0.1: this computer only)"),
    port: int = typer.Option(7860, help="port"),
    max_mb: float = typer.Option(25.0, min=0.1, help="upload cap per photo, in megabytes"),
    max_megapixels: float = typer.Option(40.0, min=0.1, help="upload cap per photo, in megapixels"),
    max_files: int = typer.Option(32, min=1, help="photos per run"),
    backend: BackendChoice = typer.Option(BackendChoice.torch, help=BACKEND_HELP),
) -> None:
    """Open a local web page to colorize photos in the browser (offline; this computer only unless --host)."""
    from instcolor.apps.web import build_app, launch
    from instcolor.apps.web_photos import PageLimits
    from instcolor.inference.pipeline import Colorizer
    from instcolor.models.weights.store import WeightsError

    try:
        colorizer = Colorizer.from_pretrained(
            choose_weights(weights),
            device=device,
            detector=detector.value,
            backend=backend.value,
            class_aware=class_aware.value,
            hint_mode=hint_mode.value,
        )
        limits = PageLimits(max_bytes=int(max_mb * 2**20), max_megapixels=max_megapixels, max_files=max_files)
        page = build_app(colorizer, limits=limits)
    except (WeightsError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    console.print(f"serving on http://{host}:{port}  (Ctrl+C stops)")
    launch(page, host=host, port=port)
