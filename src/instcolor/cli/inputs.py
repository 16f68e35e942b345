"""Checks shared by the commands that read photos and write results: run before any computing.

Light at import (stdlib and typer only); what they need is imported when they run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from instcolor.cli.app import EXIT_USAGE, console, fail


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM like Ctrl-C (KeyboardInterrupt), so temporaries are cleaned up the same way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prepare_output_folder(output: Path, started: float) -> None:
    """Fail (exit 2) unless results can be written to ``output``; remove our stale temporaries there."""
    from instcolor.io import check_output_folder, remove_stale_temporaries

    try:
        check_output_folder(output)
    except ValueError as err:
        raise fail(str(err), EXIT_USAGE) from None
    removed = remove_stale_temporaries(output, started)
    if removed:
        console.print(
            f"note: removed {len(removed)} unfinished temporary file(s) left in {output} by an interrupted run",
            highlight=False,
        )


def prepare_output_file(output: Path, started: float) -> None:
    """Like :func:`prepare_output_folder` for a single output file."""
    from instcolor.io import check_output_file, remove_stale_temporaries

    try:
        check_output_file(output)
    except ValueError as err:
        raise fail(str(err), EXIT_USAGE) from None
    stale = [p for p in remove_stale_temporaries(output.parent, started) if p.name.startswith(f".{output.name}.")]
    if stale:
        console.print(f"note: removed {len(stale)} unfinished temporary file(s) of {output}", highlight=False)


def read_boxes(path: Path):
    """The checked boxes file (:class:`instcolor.instances.BoxesFile`); a malformed one exits 2, one line per image."""
    from instcolor.instances import read_boxes_file

    return _read_entries(path, read_boxes_file, "boxes")


def _read_entries(path: Path, reader, kind: str):
    """``reader(path)`` for a per-image file (``kind``: boxes, hints); a malformed one exits 2 with one line per image."""
    from instcolor.instances import ImageEntriesError

    try:
        return reader(path)
    except ImageEntriesError as err:
        console.print(f"[bold red]error:[/] {path}: malformed {kind} file", highlight=False)
        for problem in err.problems:
            console.print(f"  {problem}", highlight=False)
        raise fail(f"fix or remove the {len(err.problems)} entr{'y' if len(err.problems) == 1 else 'ies'} above", EXIT_USAGE) from None
    except OSError as err:
        raise fail(f"cannot read {kind} file: {err}", EXIT_USAGE) from None


def given_instances(entries, source: Path, relative: Path, max_instances: int, notes: list[str]):
    """A callable giving ``source``'s instances from a boxes file (None: not in it), checked against
    the image's size (read from its header) and capped before any mask is decoded; notes go to ``notes``."""
    from instcolor.instances import lookup_key
    from instcolor.io import image_size

    key = lookup_key(entries, source, relative)
    if key is None:
        return None

    def lookup():
        found, box_notes = entries.instances(key, image_size(source), max_instances)
        notes.extend(box_notes)
        return found

    return lookup


def read_hints(path: Path) -> dict[str, list[dict]]:
    """The checked hints file (:func:`instcolor.color.hints.read_hints_file`); a malformed one exits 2,
    one line per image."""
    from instcolor.color.hints import read_hints_file

    return _read_entries(path, read_hints_file, "hints")


def given_hints(entries: dict[str, list[dict]], source: Path, relative: Path) -> tuple[str | None, list[dict] | None]:
    """``source``'s key and hints in a hints file (``(None, None)``: not in it), their points checked
    against the image's size (read from its header).

    Raises:
        ValueError: a point outside the image (the message names the hint).
    """
    from instcolor.color.hints import check_hint_items
    from instcolor.instances import lookup_key
    from instcolor.io import image_size

    key = lookup_key(entries, source, relative)
    if key is None:
        return None, None
    try:
        size = image_size(source)
    except ValueError:
        return key, entries[key]  # an unreadable image fails where it is colorized, like any other
    check_hint_items(entries[key], size)
    return key, entries[key]
