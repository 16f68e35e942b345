"""Downloading registered weight sets and converting them into our format in the weights cache.

:func:`download_file` fetches one :class:`~instcolor.models.weights.registry.RemoteFile` with the standard
library's ``urllib``:

* a rich progress bar on stderr;
* a partial file ``NAME.part`` next to the destination, resumed with an HTTP ``Range`` request
  (within a run after a dropped connection, and on the next run after an interruption);
* sha256 verification (the full digest when known, a published prefix otherwise);
* atomic completion: the ``.part`` file is renamed onto the destination only after its checksum
  matched; data that failed a check is deleted, never left behind;
* Google Drive's "can't scan this file for viruses" confirm page is answered (form, link or
  ``download_warning`` cookie) to reach the file.

:func:`install` tries a set's mirrors in order, converts the first good download into
``weights_home() / "NAME.safetensors"`` and records the source URL and sha256 in its metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from instcolor.models.config import ModelConfig
from instcolor.models.weights.http import (
    DownloadError,
    Unreachable,
    download_file,
    format_size,
    is_google_drive,
    sha256_file,
    show_url,
)
from instcolor.models.weights.mmagic import convert_mmagic_state_dict, read_mmagic_checkpoint
from instcolor.models.weights.reference import (
    REFERENCE_FILES,
    convert_reference_state_dicts,
    read_reference_checkpoints,
)
from instcolor.models.weights.registry import (
    FALLBACK,
    INSTALL_HINT,
    OFFLINE_ENV,
    PREFERRED,
    REGISTRY,
    RemoteFile,
    WeightSet,
    bundled_path,
    describe_files,
    installed_path,
    offline,
    tensors_sha256,
)
from instcolor.models.weights.store import ARCHITECTURE, WeightsError, load_weights, save_state, weights_home


@dataclass(frozen=True)
class Installed:
    """Weights made ready by :func:`install`."""

    name: str
    path: Path
    message: str
    source_url: str | None = None
    source_sha256: str | None = None


def detect_layout(path: str | os.PathLike) -> str:
    """The layout of a checkpoint file, from its content.

    ``instcolor`` for a safetensors file, ``mmagic`` for a torch checkpoint (a zip holding
    ``data.pkl``, or a legacy pickle), ``reference-zip`` for any other zip (``checkpoints.zip``).
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "instcolor"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist()):
                return "reference-zip"
    return "mmagic"


def convert_file(
    path: str | os.PathLike,
    layout: str = "auto",
    *,
    member: str | None = None,
    expected: ModelConfig | None = None,
    hashes_out: dict[str, str] | None = None,
) -> tuple[dict[str, torch.Tensor], ModelConfig, str]:
    """Read a downloaded or local checkpoint and map it onto our model.

    Args:
        path: the file.
        layout: a :data:`~instcolor.models.weights.registry.LAYOUTS` value; ``auto`` looks at the content.
        member: for ``reference-zip``, the folder in the zip that holds the three networks.
        expected: the architecture the weights must have (None: whatever they have).
        hashes_out: gets ``{file: sha256}`` of each file that was read (for the authors' files:
            ``latest_net_G.pth`` and the rest).

    Returns:
        ``(state dict, config, layout)``.

    Raises:
        WeightsError: when the file is unreadable or does not fit the architecture.
    """
    path = Path(path)
    try:
        if layout == "auto":
            layout = "reference-files" if path.is_dir() else detect_layout(path)
        if hashes_out is not None and layout not in ("reference-zip", "reference-files"):
            hashes_out[path.name] = sha256_file(path)
        if layout in ("reference-zip", "reference-files"):
            state_dicts = _read_reference_zip(path, member if layout == "reference-zip" else None, hashes_out)
            config = _reference_config(state_dicts)
            _check_config(config, expected, path)
            state = convert_reference_state_dicts(state_dicts, config)
        elif layout == "mmagic":
            raw, _ = read_mmagic_checkpoint(path)
            state, config = convert_mmagic_state_dict(raw)
            _check_config(config, expected, path)
        elif layout == "instcolor":
            model = load_weights(path).model
            config = model.config
            _check_config(config, expected, path)
            state = model.state_dict()
        else:
            raise WeightsError(f"{path}: unknown layout {layout!r}")
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as err:
        raise WeightsError(f"{path}: unreadable as {layout} ({type(err).__name__}: {err})") from err
    return state, config, layout


def _read_reference_zip(
    path: Path, member: str | None, hashes_out: dict[str, str] | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    if member is None:
        state_dicts, hashes = read_reference_checkpoints(path)
        if hashes_out is not None:
            hashes_out.update(hashes)
        return state_dicts
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: not a zip file")
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        names = archive.namelist()
        found = {
            file_name: sorted(n for n in names if n == f"{member}/{file_name}" or n.endswith(f"/{member}/{file_name}"))
            for file_name in REFERENCE_FILES.values()
        }
        missing = [f"{member}/{file_name}" for file_name, inside in found.items() if not inside]
        if missing:
            raise WeightsError(f"{path}: the zip has no {', '.join(missing)}")
        for file_name, inside in found.items():
            (Path(tmp) / file_name).write_bytes(archive.read(inside[0]))
        state_dicts, hashes = read_reference_checkpoints(tmp)
        if hashes_out is not None:
            hashes_out.update(hashes)
        return state_dicts


def _reference_config(state_dicts: dict[str, dict[str, torch.Tensor]]) -> ModelConfig:
    first = state_dicts.get("GComp", {}).get("model1.0.weight")
    fusion = {k.removeprefix("module."): v for k, v in state_dicts.get("GF", {}).items()}
    hidden = fusion.get("weight_layer.simple_instance_conv.0.weight")
    if first is None or hidden is None:
        return ModelConfig()  # the strict conversion names what is missing
    return ModelConfig(width=first.shape[0] / 64, fusion_hidden=int(hidden.shape[0]))


def _check_config(config: ModelConfig, expected: ModelConfig | None, path: Path) -> None:
    if expected is not None and config != expected:
        raise WeightsError(f"{path}: the weights have architecture {config}, expected {expected}")


def _tensors_digest(state: dict[str, torch.Tensor]) -> str:
    return tensors_sha256({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})


def install(
    weights: str | WeightSet,
    *,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    keep_download: bool = False,
    timeout: float = 30.0,
    retries: int = 3,
    retry_wait: float = 1.0,
) -> Installed:
    """Make a weight set ready to use: ``weights_home() / f"{name}.safetensors"``.

    Args:
        weights: a registry name or a :class:`WeightSet`. With ``url``, a name outside the
            registry is allowed too.
        url: download from this URL instead of the registered mirrors (layout detected from the
            content; a Google Drive link gets the confirm-page handling).
        sha256: the expected sha256 (or a prefix of at least 8 digits) of the file at ``url``.
        force: download and convert again even when already installed.
        progress: show progress bars.
        keep_download: keep the raw download in ``weights_home() / "downloads"`` after conversion.
        timeout, retries, retry_wait: see :func:`download_file`.

    Returns:
        The installed file; a bundled set (``starter``) needs no download and returns its path.

    Raises:
        DownloadError: when every mirror failed (each failure is listed).
        WeightsError: for an unknown name without ``url``, or missing bundled weights.
    """
    weight_set = _resolve_set(weights, url, sha256)
    name = weight_set.name
    if not weight_set.downloads:
        path = bundled_path(weight_set)
        if path is None:
            raise WeightsError(f"{name} is bundled with instcolor but its file is missing; reinstall instcolor")
        message = f"{name} is bundled with instcolor ({path}); nothing to download"
        return Installed(name=name, path=path, message=message)
    home = weights_home()
    target = home / f"{name}.safetensors"
    if target.is_file() and not force:
        message = f"{name} is already installed at {target} (use --force to replace it)"
        return Installed(name=name, path=target, message=message)
    failures: list[str] = []
    for remote in weight_set.downloads:
        if remote.layout == "checkpoint":
            target = home / name / remote.file_name
            if target.is_file() and not force:
                return Installed(name=name, path=target, message=f"{name} is already downloaded at {target}")
        try:
            downloaded = _download(remote, home / "downloads", progress, timeout, retries, retry_wait)
        except Unreachable as err:  # offline: the other mirrors cannot be reached either
            failures.append(str(err))
            break
        except DownloadError as err:  # its message starts with the URL
            failures.append(str(err))
            continue
        if remote.layout == "checkpoint":
            described, _ = describe_files({remote.file_name: downloaded.sha256})
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(downloaded.path, target)
            message = f"downloaded {name} from {show_url(remote.url)} -> {target} ({described}; kept as published)"
            return Installed(name, target, message, source_url=remote.url, source_sha256=downloaded.sha256)
        converted = False
        hashes: dict[str, str] = {}
        try:
            state, config, layout = convert_file(
                downloaded.path, remote.layout, member=remote.member, expected=weight_set.config, hashes_out=hashes
            )
            described, verified = describe_files(hashes)
            metadata = {
                "name": name,
                "source": f"{weight_set.source}; downloaded from {remote.url}",
                "licence": weight_set.licence,
                "trained_on": weight_set.trained_on,
                "source_url": remote.url,
                "source_sha256": downloaded.sha256,
                "source_size": str(downloaded.size),
                "source_layout": layout,
                "source_files": json.dumps(hashes),
                "provenance": described,
                "verified": "yes" if verified else "no",
                "tensors_sha256": _tensors_digest(state),
            }
            save_state(target, state, config, metadata)
            converted = True
        except WeightsError as err:
            failures.append(f"{show_url(remote.url)}: downloaded, but {err}")
            continue
        finally:
            if not (converted and keep_download):
                if downloaded.path.is_dir():
                    shutil.rmtree(downloaded.path, ignore_errors=True)
                else:
                    downloaded.path.unlink(missing_ok=True)
        return Installed(
            name=name,
            path=target,
            message=f"installed {name} from {show_url(remote.url)} -> {target} ({described})",
            source_url=remote.url,
            source_sha256=downloaded.sha256,
        )
    raise DownloadError(f"could not install {name}; every source failed:\n  " + "\n  ".join(failures))


def _download(remote: RemoteFile, folder: Path, progress: bool, timeout: float, retries: int, retry_wait: float):
    """One mirror: a file, or (``reference-files``) a folder holding each of its parts."""
    if not remote.parts:
        return download_file(remote, folder, progress=progress, timeout=timeout, retries=retries, retry_wait=retry_wait)
    if progress:
        print(f"downloading {len(remote.parts)} files, {format_size(remote.total_size)} in all", file=sys.stderr)
    folder = folder / (remote.member or "files")
    first = None
    for part in remote.parts:
        got = download_file(part, folder, progress=progress, timeout=timeout, retries=retries, retry_wait=retry_wait)
        first = first or got
    return dataclasses.replace(first, path=folder)


def _resolve_set(weights: str | WeightSet, url: str | None, sha256: str | None) -> WeightSet:
    if isinstance(weights, WeightSet):
        weight_set = weights
    elif weights in REGISTRY:
        weight_set = REGISTRY[weights]
    elif url is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", weights):
            raise WeightsError(f"{weights!r} is not a usable name (letters, digits, '_', '.', '-')")
        weight_set = WeightSet(
            name=weights,
            description=f"downloaded from {url}",
            architecture=ARCHITECTURE,
            trained_on="unknown",
            licence="unknown (see the source)",
            source=url,
        )
    else:
        raise WeightsError(
            f"no weight set called {weights!r}; known: {', '.join(sorted(REGISTRY))} (or give --url)"
        )
    if url is None:
        return weight_set
    file_name = Path(urllib.parse.urlsplit(url).path).name
    if is_google_drive(url) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", file_name):
        file_name = f"{weight_set.name}.download"
    remote = RemoteFile(url=url, file_name=file_name, layout="auto", sha256=sha256, google_drive=is_google_drive(url))
    return dataclasses.replace(weight_set, downloads=(remote,), bundled=None)


def import_checkpoint(path: str | os.PathLike, name: str, output: str | os.PathLike | None = None) -> Path:
    """Convert a local checkpoint file of any known layout (``mmagic`` .pth, reference zip, ours).

    Returns:
        The written file: ``output`` or ``weights_home() / f"{name}.safetensors"``.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    weight_set = REGISTRY.get(name)
    hashes: dict[str, str] = {}
    state, config, layout = convert_file(path, "auto", hashes_out=hashes)
    described, verified = describe_files(hashes)
    output = Path(output) if output is not None else weights_home() / f"{name}.safetensors"
    metadata = {
        "name": name,
        "source": (f"{weight_set.source}; " if weight_set else "") + f"imported from {path.name}",
        "licence": weight_set.licence if weight_set else "unknown (see the source)",
        "input_sha256": json.dumps(
            hashes if layout.startswith("reference") else {path.name: hashes.get(path.name) or sha256_file(path)},
            sort_keys=True,
        ),
        "source_files": json.dumps(hashes),
        "provenance": described,
        "verified": "yes" if verified else "no",
        "source_layout": layout,
        "tensors_sha256": _tensors_digest(state),
    }
    save_state(output, state, config, metadata)
    return output


def default_weights(allow_download: bool | None = None) -> tuple[Path, str | None]:
    """Choose the weights to use when the user named none (``--weights`` always wins; callers check it).

    1. ``paper-coco`` when installed;
    2. otherwise download it (unless ``allow_download`` is False, or ``$INSTCOLOR_OFFLINE`` is set
       and ``allow_download`` is None);
    3. when that is impossible, the bundled ``starter`` weights, with a one-line message saying so.

    Returns:
        ``(path, message)``: ``message`` is one line for the user, or None when there is nothing to say.

    Raises:
        WeightsError: when not even ``starter`` exists, naming what is missing and how to install weights.
    """
    preferred = installed_path(PREFERRED)
    if preferred is not None:
        return preferred, None
    if allow_download is None:
        allow_download = not offline()
    reason = f"{PREFERRED} is not installed in {weights_home()}"
    recent = recent_failure(PREFERRED) if allow_download else None
    if recent is not None:
        allow_download = False
        minutes = max(1, round((FAILED_DOWNLOAD_WAIT - (time.time() - recent["time"])) / 60))
        reason = (
            f"{PREFERRED} could not be downloaded {_ago(recent['time'])} ({recent['reason']}); not trying again "
            f"for {minutes} min (set ${OFFLINE_ENV}=1 to never try)"
        )
    if allow_download:
        try:
            result = install(PREFERRED)
        except (DownloadError, WeightsError, OSError) as err:
            reason = f"{PREFERRED} could not be downloaded ({_one_line(err)})"
            remember_failure(PREFERRED, _one_line(err))
        else:
            forget_failure(PREFERRED)
            return result.path, f"downloaded {PREFERRED} to {result.path}"
    elif offline():
        reason += f" and ${OFFLINE_ENV} forbids downloading it"
    starter = installed_path(FALLBACK)
    if starter is not None:
        return starter, f"using the bundled {FALLBACK} weights because {reason}; for better results run: {INSTALL_HINT}"
    expected = importlib.resources.files("instcolor") / "assets" / (REGISTRY[FALLBACK].bundled or "")
    raise WeightsError(
        f"no weights available: {reason}, and the bundled {FALLBACK} weights are missing ({expected}). "
        f"Install weights with: {INSTALL_HINT}"
    )


#: After a failed automatic download, seconds before the next run tries again (``weights download`` always tries).
FAILED_DOWNLOAD_WAIT = 3600.0


def download_state_path() -> Path:
    """The small state file remembering failed automatic downloads: ``$INSTCOLOR_HOME/download-state.json``."""
    return weights_home().parent / "download-state.json"


def _read_state() -> dict:
    try:
        data = json.loads(download_state_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def recent_failure(name: str) -> dict | None:
    """The last failed automatic download of ``name`` (``{"time", "reason"}``) when within :data:`FAILED_DOWNLOAD_WAIT`."""
    entry = _read_state().get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("time"), (int, float)):
        return None
    age = time.time() - entry["time"]
    return entry if 0 <= age < FAILED_DOWNLOAD_WAIT else None


def remember_failure(name: str, reason: str) -> None:
    """Record a failed automatic download of ``name`` now (best effort)."""
    state = _read_state()
    state[name] = {"time": time.time(), "reason": reason[:500]}
    with contextlib.suppress(OSError):
        from instcolor.io import atomic_write_bytes

        atomic_write_bytes(download_state_path(), json.dumps(state, indent=1).encode())


def forget_failure(name: str) -> None:
    """Forget a failed download of ``name`` (after a success)."""
    state = _read_state()
    if state.pop(name, None) is not None:
        with contextlib.suppress(OSError):
            from instcolor.io import atomic_write_bytes

            atomic_write_bytes(download_state_path(), json.dumps(state, indent=1).encode())


def _ago(when: float) -> str:
    seconds = max(0, int(time.time() - when))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _one_line(err: BaseException) -> str:
    """An error as one line: a multi-line "every source failed" message keeps only the reasons."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return "; ".join(lines[1:]) if len(lines) > 1 and lines[0].endswith(":") else " ".join(lines)
