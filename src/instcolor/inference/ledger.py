"""The run ledger: one JSON line per attempt at one input, in the output folder.

A folder run (local or Ray engine) appends one record per input it finishes, fails, or loses with a
worker. The latest record of each input says where it stands; a rerun of the same command skips
inputs whose latest record is ``done`` with the same settings and whose output still has the
recorded sha256, and tries again what failed, up to its attempt budget.

Records are appended by one writer (the driver) as single ``write`` calls on a file opened with
``O_APPEND``, each one whole line, so a crash never interleaves or splits records; a torn last line
(power loss mid-write) is ignored when reading.

    >>> ledger = Ledger(out_dir)                                   # doctest: +SKIP
    >>> ledger.append(Record(input="a.png", output="out/a.png", status="done"))   # doctest: +SKIP
    >>> summarize(ledger.read()).done                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The ledger's file name inside the output folder.
LEDGER_NAME = "instcolor-ledger.jsonl"

DONE, FAILED, LOST, SKIPPED = "done", "failed", "lost", "skipped"


@dataclass
class Record:
    """One attempt at one input.

    Attributes:
        input: the input file (absolute path).
        output: the output file written (``done``) or planned.
        status: ``"done"``, ``"failed"`` (the image or its write failed), ``"skipped"`` (left alone
            on purpose, e.g. a colour input with ``--colour-input skip``) or ``"lost"`` (the worker
            running it died; it is retried).
        sha256: the output file's sha256 (``done`` only).
        detector: the detector that ran, None when boxes were given or detection is off.
        instances: how many instances were used.
        weights: sha256 of the weights file.
        settings: fingerprint of the weights and every colorizer option (a changed setting redoes).
        seconds: time the worker spent on it (decode, networks, encode, hash).
        worker: ``host:pid`` of the process that ran it.
        error: the error message, for ``failed`` and ``lost``.
        attempt: 1 for the first attempt at this input, counting over every run in the ledger.
        engine: ``"local"`` or ``"ray"``.
        run: the id of the run (one ``colorize`` command) that wrote it.
        time: when it was recorded (Unix seconds).
        notes: what the run noted about the input (boxes clipped, colour input...), if anything.
    """

    input: str
    output: str
    status: str
    sha256: str | None = None
    detector: str | None = None
    instances: int | None = None
    weights: str | None = None
    settings: str | None = None
    seconds: float = 0.0
    worker: str | None = None
    error: str | None = None
    attempt: int = 1
    engine: str | None = None
    run: str | None = None
    time: float = field(default_factory=time.time)
    notes: list[str] | None = None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def settings_fingerprint(weights_sha256: str, options: dict) -> str:
    """A short stable hash of the weights and the colorizer options (JSON, keys sorted)."""
    text = json.dumps({"weights": weights_sha256, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Ledger:
    """The JSONL ledger of one output folder."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir) / LEDGER_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def append(self, record: Record) -> None:
        """Append one record as a single whole line (one ``write`` on an ``O_APPEND`` file)."""
        self.append_many([record])

    def append_many(self, records: Iterable[Record]) -> None:
        data = "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in records).encode()
        if not data:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            view = memoryview(data)
            while view:  # one write for a line on a local file system; loop only on a short write
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        """Every whole record, oldest first (a torn last line is skipped)."""
        if not self.path.is_file():
            return []
        records = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    continue  # torn last line: its attempt is simply redone
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records


def latest_by_input(records: Iterable[dict]) -> dict[str, dict]:
    """The latest record of each input."""
    latest: dict[str, dict] = {}
    for record in records:
        latest[record["input"]] = record
    return latest


def attempts_by_input(records: Iterable[dict], settings: str | None = None) -> Counter:
    """Failed or lost attempts per input (with these settings when given) since its last success."""
    counts: Counter = Counter()
    for record in records:
        if settings is not None and record.get("settings") != settings:
            continue
        if record["status"] == DONE:
            counts.pop(record["input"], None)
        else:
            counts[record["input"]] += 1
    return counts


@dataclass
class Summary:
    """What :func:`summarize` finds in a ledger."""

    inputs: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0
    attempts: int = 0
    busy_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: Counter = field(default_factory=Counter)
    per_worker: Counter = field(default_factory=Counter)
    detectors: Counter = field(default_factory=Counter)

    @property
    def throughput(self) -> float:
        """Images done per second of wall time (the runs' spans added up)."""
        return self.done / self.wall_seconds if self.wall_seconds > 0 else 0.0


def failure_reason(error: str | None) -> str:
    """The kind of an error message: its exception name or first words, without the file name."""
    if not error:
        return "unknown"
    head = error.split(":", 1)[0].strip()
    if head and " " not in head and "/" not in head:  # "ValueError: ..." -> "ValueError"
        return head
    if "cannot read image" in error:
        return "unreadable image"
    return error.split("\n", 1)[0][:60]


def summarize(records: list[dict], planned: Iterable[str] | None = None) -> Summary:
    """Count done / failed inputs by their latest record, retries, losses, throughput and reasons.

    Args:
        planned: inputs of a run; those with no record are pending (``inputs`` counts them).
    """
    summary = Summary()
    latest = latest_by_input(records)
    inputs = set(latest) | set(planned or ())
    summary.inputs = len(inputs)
    attempts = Counter(r["input"] for r in records)
    summary.attempts = len(records)
    summary.retried = sum(1 for name in latest if attempts[name] > 1)
    summary.lost = sum(1 for r in records if r["status"] == LOST)
    for record in latest.values():
        if record["status"] == DONE:
            summary.done += 1
            summary.detectors[record.get("detector") or "none"] += 1
        else:
            summary.failed += 1
            summary.failures[failure_reason(record.get("error"))] += 1
    for record in records:
        summary.busy_seconds += float(record.get("seconds") or 0.0)
        if record["status"] == DONE:
            summary.per_worker[record.get("worker") or "?"] += 1
    spans: dict[str, list[float]] = {}
    for record in records:  # wall time of each run: from its first start to its last record
        end = float(record.get("time") or 0.0)
        start = end - float(record.get("seconds") or 0.0)
        span = spans.setdefault(record.get("run") or "?", [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    summary.wall_seconds = sum(end - start for start, end in spans.values())
    return summary


def pending_count(summary: Summary) -> int:
    return max(summary.inputs - summary.done - summary.failed, 0)
