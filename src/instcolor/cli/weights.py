"""``instcolor weights``: list, download, import and verify weights."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from instcolor.cli.app import EXIT_USAGE, console, fail, weights_app


@weights_app.command("list")
def list_weights() -> None:
    """Show the installed weights (source, licence) and the registered sets not installed yet."""
    from instcolor.models.weights.registry import REGISTRY, bundled_path
    from instcolor.models.weights.store import installed_weights, weights_home

    table = Table(title=f"weights ({weights_home()})")
    for column in ("name", "status", "source", "licence", "config / how to get it"):
        table.add_column(column, overflow="fold")
    listed: set[str] = set()
    readable = dict(installed_weights())
    home = weights_home()
    for path in sorted(home.glob("*.safetensors")) if home.is_dir() else []:
        listed.add(path.stem)
        meta = readable.get(path)
        if meta is None:
            table.add_row(path.stem, "unreadable", str(path), "?", f"check it: instcolor weights verify {path.stem}")
        else:
            source, licence = meta.get("source", "?"), meta.get("licence", "?")
            table.add_row(path.stem, "installed", source, licence, meta.get("config", ""))
    for name, weight_set in REGISTRY.items():
        if name in listed:
            continue
        if weight_set.is_bundled:
            present = bundled_path(weight_set) is not None
            status = "bundled" if present else "bundled file missing"
            how = "ships with instcolor" if present else "reinstall instcolor"
        else:
            status = "not installed"
            how = f"instcolor weights download {name}"
            if any(remote.layout == "reference-zip" for remote in weight_set.downloads):
                how += "\nor: instcolor weights import PATH/TO/checkpoints.zip"
        table.add_row(name, status, weight_set.source, weight_set.licence, how)
    console.print(table)


@weights_app.command("download")
def download_weights(
    name: str = typer.Argument(..., help="registered name (instcolor weights list shows them) or, with --url, a new name"),
    url: str | None = typer.Option(None, "--url", help="download from this URL instead of the registered mirrors"),
    sha256: str | None = typer.Option(
        None, "--sha256", help="expected sha256 (or >= 8-digit prefix) of the file at --url"
    ),
    force: bool = typer.Option(False, "--force", help="download again even when already installed"),
    keep_download: bool = typer.Option(False, "--keep-download", help="keep the raw download next to the cache"),
) -> None:
    """Download a registered weight set (mirrors in order), verify it and convert it into the cache."""
    from instcolor.models.weights.download import install
    from instcolor.models.weights.http import DownloadError
    from instcolor.models.weights.registry import REGISTRY
    from instcolor.models.weights.store import WeightsError

    if name not in REGISTRY and url is None:
        raise fail(f"no weight set called {name!r}; known: {', '.join(REGISTRY)} (or give --url)", EXIT_USAGE)
    if sha256 is not None and url is None:
        raise fail("--sha256 applies to --url only (registered sets carry their own checksums)", EXIT_USAGE)
    try:
        result = install(name, url=url, sha256=sha256, force=force, keep_download=keep_download)
    except (WeightsError, DownloadError) as err:
        raise fail(str(err)) from None
    except ValueError as err:  # a malformed --sha256
        raise fail(str(err), EXIT_USAGE) from None
    console.print(result.message, highlight=False)


@weights_app.command("import")
def import_weights(
    path: Path = typer.Argument(
        ..., help="checkpoints.zip, a folder holding latest_net_{G,GF,GComp}.pth, or mmagic's .pth"
    ),
    name: str = typer.Option("paper-coco", help="name of the installed weights"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write here instead of the weights cache"),
) -> None:
    """Convert the paper's checkpoints (authors' zip or folder, or mmagic's file) into instcolor's format, once."""
    from instcolor.models.weights.download import import_checkpoint
    from instcolor.models.weights.store import WeightsError, read_metadata

    try:
        written = import_checkpoint(path, name=name, output=output)
    except WeightsError as err:
        raise fail(str(err)) from None
    meta = read_metadata(written)
    console.print(f"imported {path} -> {written}", highlight=False)
    if meta.get("provenance"):
        marked = "" if meta.get("verified") == "yes" else " (imported anyway, marked unverified in its metadata)"
        console.print(f"{meta['provenance']}{marked}", highlight=False)


@weights_app.command("verify")
def verify(
    name: str | None = typer.Argument(None, help="installed name or file; all installed weights when left out"),
) -> None:
    """Re-check installed weights: readable, fit the architecture, tensors and source checksums unchanged."""
    from instcolor.models.weights.registry import REGISTRY, bundled_path, installed_path, verify_weights
    from instcolor.models.weights.store import weights_home

    if name is not None:
        target = installed_path(name) or (Path(name) if Path(name).is_file() else None)
        if target is None:
            how = f"instcolor weights download {name}" if name in REGISTRY else "instcolor weights list"
            raise fail(f"{name!r} is not installed in {weights_home()}; see: {how}")
        targets = [target]
    else:
        home = weights_home()
        targets = sorted(home.glob("*.safetensors")) if home.is_dir() else []
        targets += [p for ws in REGISTRY.values() if (p := bundled_path(ws)) is not None]
        if not targets:
            console.print(f"no weights installed in {home}; see: instcolor weights list")
            return
    failed = 0
    for target in targets:
        result = verify_weights(target)
        if result.ok:
            console.print(f"[green]OK[/]     {result.name}  {target}", highlight=False)
            for check in result.checks:
                console.print(f"         {check}", highlight=False)
        else:
            failed += 1
            console.print(f"[bold red]FAILED[/] {result.name}  {target}", highlight=False)
            for problem in result.problems:
                console.print(f"         {problem}", highlight=False)
    if failed:
        raise fail(f"{failed} of {len(targets)} weights files failed verification")
