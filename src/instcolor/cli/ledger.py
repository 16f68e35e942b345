"""``instcolor ledger OUT``: where a folder run stands, from its ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from instcolor.cli.app import EXIT_USAGE, app, console, fail


@app.command()
def ledger(
    output: Path = typer.Argument(..., help="the output folder of a colorize run"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
) -> None:
    """Summarise a colorize run's ledger: done / failed / pending, throughput, failures by reason."""
    from instcolor.inference.ledger import Ledger, pending_count, summarize

    book = Ledger(output)
    if not book.exists():
        raise fail(f"no ledger in {output} (runs with --engine ray or --ledger write {book.path.name})", EXIT_USAGE)
    summary = summarize(book.read())
    pending = pending_count(summary)
    if as_json:
        data = {
            "inputs": summary.inputs, "done": summary.done, "failed": summary.failed, "pending": pending,
            "retried": summary.retried, "lost": summary.lost, "attempts": summary.attempts,
            "images_per_second": round(summary.throughput, 4), "busy_seconds": round(summary.busy_seconds, 3),
            "wall_seconds": round(summary.wall_seconds, 3), "failures": dict(summary.failures),
            "per_worker": dict(summary.per_worker), "detectors": dict(summary.detectors),
        }  # fmt: skip
        typer.echo(json.dumps(data, indent=2))
        return
    console.print(f"ledger: {book.path}", highlight=False)
    console.print(
        f"{summary.inputs} inputs: {summary.done} done, {summary.failed} failed, {pending} pending; "
        f"{summary.attempts} attempts, {summary.retried} inputs retried, {summary.lost} lost with a worker",
        highlight=False,
    )
    console.print(
        f"throughput: {summary.throughput:.2f} images/s over {summary.wall_seconds:.1f} s of runs "
        f"({summary.busy_seconds:.1f} worker-seconds)",
        highlight=False,
    )
    if summary.detectors:
        console.print("detectors: " + ", ".join(f"{k} {v}" for k, v in summary.detectors.most_common()), highlight=False)
    if summary.per_worker:
        console.print("per worker: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.per_worker.items())), highlight=False)
    for reason, count in summary.failures.most_common():
        console.print(f"  failed: {count} x {reason}", highlight=False)
