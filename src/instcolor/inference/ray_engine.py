"""The Ray engine: colorize a folder run on a Ray cluster, one actor per worker, nothing lost.

Each worker is a Ray actor that loads the networks and the detector once (the same
:meth:`Colorizer.from_pretrained` call as the local engine, with the same options, passed through
as a dict) and colorizes one job per call with the local engine's own code
(:func:`instcolor.inference.overlap.colorize_files`), so the outputs are the same bytes. The driver
keeps ``in_flight`` calls queued per actor (the next image is ready when one finishes), collects the
results as they come, and yields one :class:`~instcolor.inference.ledger.Record` per attempt.

Worker loss: actors restart without limit (``max_restarts=-1``; Ray reschedules them, on another
node when theirs is gone) and their calls are not retried by Ray (``max_task_retries=0``): the
driver sees the lost call, yields a ``lost`` record, removes any temporary file the dead writer
left, and queues the job again while it has attempts left. Outputs are written atomically by the
worker (temporary file + rename), so a killed worker never leaves a partial output.

Ray is optional (``pip install instcolor[ray]``): this module imports it only inside functions.

Why actors and not Ray Data: a run here is a list of files whose results are side effects (files
written by workers) plus one small record each; actors that hold the networks, with the driver
owning the queue, make retries and the ledger exact (Ray Data would retry lost blocks on its own,
without telling the ledger) at about a millisecond of overhead per image.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from instcolor.inference.ledger import FAILED, LOST, Record
from instcolor.inference.runs import Attempt, done_record, input_key, remove_partial_files, worker_name

#: Object store of a local Ray started here: weights and records only (Ray's minimum is 75 MiB).
OBJECT_STORE_BYTES = 512 * 1024 * 1024

INSTALL_HINT = "the Ray engine needs Ray: pip install 'instcolor[ray]' (or pip install 'ray>=2.9')"


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


@dataclass
class ColorizerSpec:
    """How every worker builds its colorizer: ``Colorizer.from_pretrained(weights, **options)``.

    ``options`` holds every keyword argument as given (device, detector, precision, and any option
    added later), so new colorizer options reach the workers without changes here.
    """

    weights: str
    options: dict = field(default_factory=dict)
    mode: str = "fusion"
    weights_sha256: str | None = None


@dataclass
class RayOptions:
    """Where and how wide to run.

    Attributes:
        address: a Ray cluster's address (``ray://host:10001``, ``host:6379`` or ``auto``); None
            starts a local Ray on 127.0.0.1 only (or uses the Ray this process is already connected to).
        workers: actors; None: one per ``gpus_per_worker`` of the cluster's GPUs when that is set,
            else one per 2 CPUs (at least 1).
        cpus_per_worker: CPUs each actor reserves, and its torch threads; None: the cluster's CPUs
            divided among the workers (at least 1).
        gpus_per_worker: GPUs each actor reserves (0: CPU only); fractions share a GPU.
        in_flight: calls queued on each actor.
        init_options: more :func:`ray.init` keyword arguments (e.g. ``object_store_memory``).
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0
    in_flight: int = 2
    init_options: dict = field(default_factory=dict)


class _Worker:
    """The actor: holds one colorizer, colorizes one job per call."""

    def __init__(self, spec: ColorizerSpec, weights_ref: list, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        path = spec.weights
        if not _has_weights(path, spec.weights_sha256):  # another machine: use the driver's copy
            import ray

            path = _cache_weights(ray.get(weights_ref[0]), spec.weights_sha256)
        from instcolor.inference.pipeline import Colorizer

        self.colorizer = Colorizer.from_pretrained(path, **spec.options)
        self.mode = spec.mode
        self.name = worker_name()

    def info(self) -> dict:
        import torch

        detector = self.colorizer.detector
        return {
            "worker": self.name, "pid": os.getpid(), "threads": torch.get_num_threads(),
            "detector": None if detector is None else detector.name,
        }  # fmt: skip

    def colorize(self, job, attempt: int) -> Record:
        from instcolor.inference.overlap import colorize_files

        (done,) = colorize_files(self.colorizer, [job], mode=self.mode, overlap=False, in_flight=1)
        return done_record(done, attempt, self.name)


def _has_weights(path: str, sha256: str | None) -> bool:
    if not Path(path).is_file():
        return False
    if sha256 is None:
        return True
    from instcolor.inference.ledger import sha256_file

    return sha256_file(path) == sha256


def _cache_weights(data: bytes, sha256: str | None) -> str:
    import tempfile

    from instcolor.io import atomic_write_bytes

    name = (sha256 or hashlib.sha256(data).hexdigest())[:16]
    path = Path(tempfile.gettempdir()) / "instcolor-ray-weights" / f"{name}.safetensors"
    if not path.is_file():
        atomic_write_bytes(path, data)
    return str(path)


def connect(options: RayOptions, log: Callable[[str], None] = print) -> bool:
    """Connect to Ray; returns True when this call started it (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    init = {"include_dashboard": False, "log_to_driver": False, **options.init_options}
    if not options.address:  # the store holds the weights and small records only
        init.setdefault("object_store_memory", OBJECT_STORE_BYTES)
    if options.address:
        _keep_loopback(options.address)
        ray.init(address=options.address, **init)
        log(f"ray: connected to {options.address}")
    else:  # a private local Ray, listening on the loopback interface only
        ray.init(address="local", _node_ip_address="127.0.0.1", **init)
        log("ray: started a local Ray on 127.0.0.1")
    return True


def _keep_loopback(address: str) -> None:
    """Let a driver reach a cluster bound to 127.0.0.1 (``ray start --node-ip-address 127.0.0.1``).

    Ray rewrites a loopback address into this machine's network address before connecting, which
    such a cluster does not listen on; with the flag below (what Ray does on macOS and Windows) it
    keeps the loopback address.
    """
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def plan_workers(options: RayOptions, resources: dict) -> tuple[int, float]:
    """``(workers, cpus per worker)`` for the cluster's resources and the options."""
    cpus = float(resources.get("CPU", 1.0))
    gpus = float(resources.get("GPU", 0.0))
    workers = options.workers
    if not workers:
        if options.gpus_per_worker > 0:
            workers = max(1, int(gpus / options.gpus_per_worker))
        else:
            workers = max(1, int(cpus // 2))
    per_worker = options.cpus_per_worker or max(1.0, float(int(cpus // workers)))
    return workers, per_worker


def run_ray(
    spec: ColorizerSpec,
    attempts: Sequence[Attempt],
    options: RayOptions,
    max_attempts: int = 3,
    log: Callable[[str], None] = print,
    on_start: Callable[[list[dict]], None] | None = None,
) -> Iterator[Record]:
    """Colorize ``attempts`` on Ray, yielding one record per attempt as results arrive.

    Args:
        spec: the colorizer every worker builds.
        attempts: the jobs, with the attempt number each starts at.
        max_attempts: a job whose worker is lost is queued again until it reaches this attempt.
        log: where messages for people go (workers started, lost, per-worker counts).
        on_start: called with each worker's :meth:`_Worker.info` once all are ready.
    """
    try:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError
    except ImportError as err:
        raise RuntimeError(INSTALL_HINT) from err
    if not attempts:
        return
    started = connect(options, log)
    try:
        workers, cpus = plan_workers(options, ray.cluster_resources())
        actor_class = ray.remote(_Worker).options(
            num_cpus=cpus, num_gpus=options.gpus_per_worker, max_restarts=-1, max_task_retries=0
        )
        weights_ref = ray.put(Path(spec.weights).read_bytes())
        actors = [actor_class.remote(spec, [weights_ref], max(1, int(cpus))) for _ in range(workers)]
        try:
            infos = ray.get([actor.info.remote() for actor in actors])
        except ray.exceptions.RayError as err:  # a worker could not load the weights or the detector
            for actor in actors:
                ray.kill(actor)
            raise RuntimeError(f"the Ray workers could not start: {err}") from None
        log(f"ray: {workers} worker(s), {cpus:g} CPU(s) and {options.gpus_per_worker:g} GPU(s) each: "
            + ", ".join(f"{i['worker']} ({i['threads']} threads, detector {i['detector']})" for i in infos))  # fmt: skip
        if on_start is not None:
            on_start(infos)
        queue = deque((a.job, a.attempt) for a in attempts)
        inflight: dict = {}  # ref -> (job, attempt, actor index)
        probes: dict = {}  # ref of info() on a restarting actor -> actor index
        load = [0] * workers
        counts: Counter = Counter()

        def submit(index: int) -> None:
            if index in probes.values():  # restarting: wait for it to answer first
                return
            while queue and load[index] < options.in_flight:
                job, attempt = queue.popleft()
                ref = actors[index].colorize.remote(job, attempt)
                inflight[ref] = (job, attempt, index)
                load[index] += 1

        for index in range(workers):
            submit(index)
        while inflight or (queue and probes):
            ready, _ = ray.wait([*inflight, *probes], num_returns=1)
            for ref in ready:
                if ref in probes:  # a lost worker's replacement: in service once it answers
                    index = probes.pop(ref)
                    try:
                        infos[index] = ray.get(ref)
                        log(f"ray: worker {infos[index]['worker']} replaces the lost one")
                    except RayActorError:
                        time.sleep(0.2)
                        probes[actors[index].info.remote()] = index
                    submit(index)
                    continue
                job, attempt, index = inflight.pop(ref)
                load[index] -= 1
                try:
                    record = ray.get(ref)
                except (RayActorError, WorkerCrashedError) as err:
                    remove_partial_files(job.target)
                    reason = f"WorkerLost: worker {infos[index]['worker']} died: {type(err).__name__}"
                    last = attempt >= max_attempts
                    record = Record(
                        input=input_key(job), output=str(job.target), status=FAILED if last else LOST,
                        worker=infos[index]["worker"], error=reason, attempt=attempt,
                    )  # fmt: skip
                    log(f"ray: lost {job.source} with worker {infos[index]['worker']}"
                        + ("" if last else f"; retrying (attempt {attempt + 1})"))  # fmt: skip
                    if not last:
                        queue.appendleft((job, attempt + 1))
                    if index not in probes.values():  # Ray restarts it; use it again once it answers
                        probes[actors[index].info.remote()] = index
                counts[record.worker or "?"] += record.status == "done"
                yield record
                submit(index)
            for other in range(workers):  # a job queued again after a loss goes to a free actor
                submit(other)
        log("ray: images per worker: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
        for actor in actors:
            ray.kill(actor)
    finally:
        if started:
            ray.shutdown()

