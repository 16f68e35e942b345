"""Resumable folder runs shared by the engines: list files, the ledger plan, and the local engine.

A run is a list of :class:`instcolor.inference.overlap.Job` plus the colorizer's settings. With a
ledger (:mod:`instcolor.inference.ledger`), :func:`plan_run` drops the jobs already done with the
same settings whose output still has its recorded sha256, and the jobs that used up their attempts;
the engines (:func:`run_local` here, :func:`instcolor.inference.ray_engine.run_ray` on Ray) then
yield one :class:`~instcolor.inference.ledger.Record` per attempt, which the caller appends.
"""

from __future__ import annotations

import csv
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from instcolor.inference.ledger import (
    DONE,
    FAILED,
    SKIPPED,
    Ledger,
    Record,
    attempts_by_input,
    latest_by_input,
    sha256_file,
)
from instcolor.inference.overlap import Done, Job, colorize_files
from instcolor.inference.pipeline import InputSkipped
from instcolor.io import IMAGE_SUFFIXES

#: Endings read as list files (an archive's catalogue) rather than images.
LIST_SUFFIXES = (".txt", ".lst", ".csv", ".parquet")


def is_list_file(item: str) -> bool:
    """Whether a command-line input names a list file (an existing ``.txt``/``.csv``/``.parquet`` file)."""
    return Path(item).suffix.lower() in LIST_SUFFIXES and Path(item).is_file()


def read_list_file(path: str | os.PathLike, column: str = "path") -> tuple[list[tuple[Path, Path]], list[str]]:
    """Read the image paths of a list file: text (one per line), CSV or Parquet (a ``path`` column).

    Relative paths are relative to the list file's folder and keep that relative layout in the
    output folder; absolute paths keep their layout below the folder all absolute entries share.

    Returns:
        ``(images, problems)`` as :func:`instcolor.io.walk_inputs`: ``(path, relative name)`` pairs
        and one message per entry that is not an image file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if column not in (reader.fieldnames or []):
                return [], [f"{path}: CSV list has no {column!r} column (columns: {reader.fieldnames})"]
            entries = [row[column] for row in reader]
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return [], [f"{path}: reading Parquet lists needs pyarrow (pip install pyarrow)"]
        table = pq.read_table(path)
        if column not in table.column_names:
            return [], [f"{path}: Parquet list has no {column!r} column (columns: {table.column_names})"]
        entries = [str(value) for value in table.column(column).to_pylist() if value is not None]
    else:
        entries = path.read_text(encoding="utf-8").splitlines()
    entries = [entry.strip() for entry in entries]
    entries = [entry for entry in entries if entry and not entry.startswith("#")]
    absolute = [Path(entry) for entry in entries if Path(entry).is_absolute()]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute])) if absolute else None
    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for entry in entries:
        given = Path(entry)
        source, relative = (given, given.relative_to(common)) if given.is_absolute() else (path.parent / given, given)
        if ".." in relative.parts:
            problems.append(f"{entry}: listed path leaves the list's folder; list it as an absolute path")
        elif not source.is_file():
            problems.append(f"{entry}: no such file (listed in {path})")
        elif source.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{entry}: not an image file ending ({', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            found.append((source, relative))
    if not entries:
        problems.append(f"{path}: list file names no images")
    return found, problems


def input_key(job: Job) -> str:
    """The ledger's name for a job's input: its absolute path."""
    return str(Path(job.source).resolve())


@dataclass
class Attempt:
    """A job to run now, and which attempt at its input this is (counted over the whole ledger)."""

    job: Job
    attempt: int = 1


@dataclass
class RunPlan:
    """What :func:`plan_run` decided: the attempts to run, and what it left out."""

    todo: list[Attempt] = field(default_factory=list)
    skipped: int = 0
    gave_up: list[tuple[Job, dict]] = field(default_factory=list)


def plan_run(
    jobs: Sequence[Job], ledger: Ledger | None, settings: str, retries: int, verify: bool = True, threads: int = 4
) -> RunPlan:
    """Decide which jobs run: skip done and verified ones, give up on those out of attempts.

    Args:
        ledger: None plans every job.
        settings: the run's :func:`~instcolor.inference.ledger.settings_fingerprint`; a job done
            with other settings runs again.
        retries: attempts after the first one that an input may fail (or lose its worker) with
            these settings before reruns stop trying it.
        verify: check each done output's sha256 (else only that it exists).
    """
    if ledger is None:
        return RunPlan(todo=[Attempt(job) for job in jobs])
    records = ledger.read()
    latest = latest_by_input(records)
    failed = attempts_by_input(records, settings)
    plan = RunPlan()

    def is_done(job: Job) -> bool:
        record = latest.get(input_key(job))
        if not record or record["status"] != DONE or record.get("settings") != settings:
            return False
        output = Path(record["output"])
        if not output.is_file():
            return False
        return not verify or sha256_file(output) == record.get("sha256")

    with ThreadPoolExecutor(max_workers=threads) as pool:  # hashing reads files; hashlib frees the GIL
        done = list(pool.map(is_done, jobs))
    for job, finished in zip(jobs, done):
        key = input_key(job)
        if finished:
            plan.skipped += 1
        elif failed[key] > retries:
            plan.gave_up.append((job, latest[key]))
        else:
            plan.todo.append(Attempt(job, failed[key] + 1))
    return plan


def remove_partial_files(target: Path) -> None:
    """Remove temporary ``.NAME.*.part`` files a killed writer left beside ``target`` (or its PNG twin)."""
    target = Path(target)
    for name in {target.name, target.with_suffix(".png").name}:
        for stale in target.parent.glob(f".{name}.*.part"):
            stale.unlink(missing_ok=True)


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def done_record(done: Done, attempt: int, worker: str) -> Record:
    """The ledger record of a finished job (hashing its output when it was written)."""
    job = done.job
    notes = list(done.notes) or None
    if done.error is None:
        return Record(
            input=input_key(job), output=str(done.target), status=DONE, sha256=sha256_file(done.target),
            detector=done.detector, instances=done.instances, seconds=round(done.seconds, 4), worker=worker,
            attempt=attempt, notes=notes,
        )  # fmt: skip
    if isinstance(done.error, InputSkipped):
        return Record(
            input=input_key(job), output=str(job.target), status=SKIPPED, seconds=round(done.seconds, 4),
            worker=worker, error=str(done.error), attempt=attempt, notes=notes,
        )  # fmt: skip
    return Record(
        input=input_key(job), output=str(job.target), status=FAILED, seconds=round(done.seconds, 4),
        worker=worker, error=f"{type(done.error).__name__}: {done.error}", attempt=attempt, notes=notes,
    )  # fmt: skip


def run_local(
    colorizer, attempts: Sequence[Attempt], mode: str = "fusion", in_flight: int | str = "auto"
) -> Iterator[Record]:
    """The local engine: colorize in this process (:func:`colorize_files`), one record per job.

    The records lack ``weights``, ``settings``, ``engine`` and ``run``: the caller fills them in.
    """
    by_job = {id(a.job): a.attempt for a in attempts}
    worker = worker_name()
    for done in colorize_files(colorizer, [a.job for a in attempts], mode=mode, in_flight=in_flight):
        yield done_record(done, by_job[id(done.job)], worker)
